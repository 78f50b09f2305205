"""Jobs whose first step can be held in flight, to stop a host in the middle of them."""
import threading

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
started: list[str] = []
release = threading.Event()
_lock = threading.Lock()


@app.activity_trigger(input_name="key", activity="Work")
def work(key: str) -> str:
    with _lock:
        started.append(key)
    release.wait(60)
    return f"{key} done"


@app.orchestration_trigger(context_name="context", orchestration="Job")
def job(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("Work", f"{context.instance_id}-0")
    second = yield context.call_activity("Work", f"{context.instance_id}-1")
    return [first, second]


@app.queue_trigger(arg_name="msg", queue_name="jobs", connection="AzureWebJobsStorage")
@app.durable_client_input(client_name="client")
async def from_queue(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    await client.start_new("Job", msg.get_body().decode())
