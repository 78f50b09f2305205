"""An app whose behaviour shows host.json settings: activity and orchestrator concurrency,
queue retries, the HTTP route prefix."""
import threading

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
running = {"now": 0, "most": 0}
dequeues: list[int] = []
_lock = threading.Lock()
_pairs = threading.Barrier(2, timeout=60)


@app.activity_trigger(input_name="n", activity="Busy")
def busy(n: int) -> int:
    with _lock:
        running["now"] += 1
        running["most"] = max(running["most"], running["now"])
    try:
        _pairs.wait()
    finally:
        with _lock:
            running["now"] -= 1
    return n


@app.orchestration_trigger(context_name="context", orchestration="Crowd")
def crowd(context: df.DurableOrchestrationContext):
    return (yield context.task_all([context.call_activity("Busy", n) for n in range(6)]))


episodes = {"now": 0, "most": 0}
_company = threading.Condition()


@app.orchestration_trigger(context_name="context", orchestration="Sociable")
def sociable(context: df.DurableOrchestrationContext):
    """Its one episode waits a little for another episode to run beside it."""
    with _company:
        episodes["now"] += 1
        episodes["most"] = max(episodes["most"], episodes["now"])
        _company.notify_all()
        _company.wait_for(lambda: episodes["now"] > 1, timeout=2)
        episodes["now"] -= 1
    return context.instance_id


@app.queue_trigger(arg_name="msg", queue_name="jobs", connection="AzureWebJobsStorage")
def job(msg: func.QueueMessage) -> None:
    dequeues.append(msg.dequeue_count)
    raise RuntimeError("this job always fails")


@app.route(route="hello", methods=["GET"])
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("hello")
