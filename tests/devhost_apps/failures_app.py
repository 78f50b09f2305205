"""Failures as the extension words them: an activity that raises, an orchestrator that
raises, a failed sub-orchestration, a call to an activity that is not registered."""
import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.activity_trigger(input_name="amount", activity="Charge")
def charge(amount: int) -> int:
    if amount < 0:
        raise ValueError(f"cannot charge {amount}")
    return amount


@app.orchestration_trigger(context_name="context", orchestration="CatchesCharge")
def catches_charge(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("Charge", -5)
    except Exception as failure:  # noqa: BLE001 - the point is what the failure says
        return str(failure)
    return None


@app.orchestration_trigger(context_name="context", orchestration="Checkout")
def checkout(context: df.DurableOrchestrationContext):
    yield context.call_activity("Charge", context.get_input())
    raise RuntimeError("the basket is empty")


@app.orchestration_trigger(context_name="context", orchestration="Order")
def order(context: df.DurableOrchestrationContext):
    try:
        yield context.call_sub_orchestrator("Checkout", 3, instance_id=f"{context.instance_id}-checkout")
    except Exception as failure:  # noqa: BLE001
        return str(failure)
    return None


@app.orchestration_trigger(context_name="context", orchestration="CallsMissing")
def calls_missing(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("Refund", 1)
    except Exception:  # noqa: BLE001 - in Azure this is not a task failure the code can catch
        return "caught"
    return "returned"
