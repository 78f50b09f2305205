"""Human interaction, as the docs show it: wait for an approval event or a durable timer,
whichever comes first, and cancel the timer when the event wins."""
import json
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context", orchestration="Approval")
def approval(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    deadline = context.current_utc_datetime + timedelta(seconds=spec["timeout_seconds"])
    timeout = context.create_timer(deadline)
    approved = context.wait_for_external_event("Approved")
    winner = yield context.task_any([approved, timeout])
    if winner == approved:
        if spec.get("cancel", True):
            timeout.cancel()
        context.set_custom_status("decided")
        return {"approved_by": approved.result}
    return "timed out"


@app.orchestration_trigger(context_name="context", orchestration="PrepareThenWait")
def prepare_then_wait(context: df.DurableOrchestrationContext):
    prepared = yield context.call_activity("Prepare", context.get_input())
    ready = yield context.wait_for_external_event("Ready")
    return {"prepared": prepared, "ready": ready}


@app.activity_trigger(input_name="item", activity="Prepare")
def prepare(item: str) -> str:
    return f"{item} prepared"


@app.route(route="notify/{instance_id}/{event}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def notify(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        await client.raise_event(req.route_params["instance_id"], req.route_params["event"], req.get_json())
    except Exception as refused:  # noqa: BLE001 - the client reports 404 and 410 by raising
        return func.HttpResponse(json.dumps({"refused": str(refused)}), mimetype="application/json")
    return func.HttpResponse(json.dumps({"raised": True}), mimetype="application/json")
