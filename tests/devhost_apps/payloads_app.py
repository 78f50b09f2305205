"""Payloads near the backends' limits: a large activity result, a large custom status."""
import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.activity_trigger(input_name="size", activity="Blob")
def blob(size: int) -> str:
    return "x" * size


@app.orchestration_trigger(context_name="context", orchestration="BigResult")
def big_result(context: df.DurableOrchestrationContext):
    try:
        text = yield context.call_activity("Blob", context.get_input())
    except Exception as failure:  # noqa: BLE001 - report what the failure said
        return {"failed": str(failure).splitlines()[0]}
    return {"length": len(text)}


@app.orchestration_trigger(context_name="context", orchestration="LoudStatus")
def loud_status(context: df.DurableOrchestrationContext):
    context.set_custom_status("y" * context.get_input())
    yield context.call_activity("Blob", 1)
    return "done"


@app.orchestration_trigger(context_name="context", orchestration="Passthrough")
def passthrough(context: df.DurableOrchestrationContext):
    return len(context.get_input())


@app.orchestration_trigger(context_name="context", orchestration="BigOutput")
def big_output(context: df.DurableOrchestrationContext):
    return "o" * context.get_input()


@app.orchestration_trigger(context_name="context", orchestration="BigActivityInput")
def big_activity_input(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("Length", "i" * context.get_input()))


@app.activity_trigger(input_name="text", activity="Length")
def length(text: str) -> int:
    return len(text)


@app.orchestration_trigger(context_name="context", orchestration="AwaitData")
def await_data(context: df.DurableOrchestrationContext):
    data = yield context.wait_for_external_event("data")
    return len(data)
