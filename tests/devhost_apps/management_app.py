"""Instance management through the SDK's DurableOrchestrationClient, as an app calls it:
suspend and resume, terminate, rewind, restart, purge, status queries and history."""
import json
import threading
from collections import Counter
from datetime import datetime

import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions import OrchestrationRuntimeStatus

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
runs: Counter[str] = Counter()
_lock = threading.Lock()


@app.activity_trigger(input_name="step", activity="Step")
def step(step: str) -> str:
    with _lock:
        runs[step] += 1
    return f"{step} done"


@app.activity_trigger(input_name="step", activity="FailsOnce")
def fails_once(step: str) -> str:
    with _lock:
        runs[step] += 1
        if runs[step] == 1:
            raise RuntimeError(f"{step} failed the first time")
    return f"{step} done"


@app.orchestration_trigger(context_name="context", orchestration="Waiter")
def waiter(context: df.DurableOrchestrationContext):
    go = yield context.wait_for_external_event("Go")
    result = yield context.call_activity("Step", f"{context.instance_id}-after-{go}")
    return result


@app.orchestration_trigger(context_name="context", orchestration="Pipeline")
def pipeline(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("Step", f"{context.instance_id}-first")
    second = yield context.call_activity("FailsOnce", f"{context.instance_id}-second")
    return [first, second]


@app.orchestration_trigger(context_name="context", orchestration="Parent")
def parent(context: df.DurableOrchestrationContext):
    child = yield context.call_sub_orchestrator("Pipeline", None, f"{context.instance_id}-child")
    return {"child": child}


@app.orchestration_trigger(context_name="context", orchestration="Echo")
def echo(context: df.DurableOrchestrationContext):
    value = yield context.call_activity("Step", f"echo-{context.instance_id}")
    return {"input": context.get_input(), "value": value}


def _time(text):
    return datetime.fromisoformat(text) if text else None


def _status(status) -> dict:
    return {"id": status.instance_id, "name": status.name,
            "status": status.runtime_status.value if status.runtime_status else None, "output": status.output}


@app.route(route="client/{operation}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def client_call(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """One client method per operation, its arguments in the JSON body, its result back."""
    args = req.get_json()
    operation = req.route_params["operation"]
    try:
        if operation == "start":
            result = await client.start_new(args["name"], args.get("id"), args.get("input"))
        elif operation in ("suspend", "resume", "terminate"):
            result = await getattr(client, operation)(args["id"], args.get("reason", "because"))
        elif operation == "rewind":
            result = await client.rewind(args["id"], "try again")
        elif operation == "restart":
            result = await client.restart(args["id"], args.get("new_id", True))
        elif operation == "status":
            status = await client.get_status(args["id"], show_history=args.get("history", False),
                                             show_history_output=args.get("history", False))
            result = {**_status(status), "history": getattr(status, "historyEvents", None)} if status else None
        elif operation == "all":
            result = [_status(s) for s in await client.get_status_all()]
        elif operation == "by":
            statuses = [OrchestrationRuntimeStatus(s) for s in args.get("statuses", [])] or None
            found = await client.get_status_by(_time(args.get("from")), _time(args.get("to")), statuses,
                                               args.get("prefix"))
            result = [_status(s) for s in found]
        elif operation == "purge":
            result = (await client.purge_instance_history(args["id"])).instances_deleted
        elif operation == "purge_by":
            statuses = [OrchestrationRuntimeStatus(s) for s in args.get("statuses", [])] or None
            purged = await client.purge_instance_history_by(_time(args["from"]), _time(args.get("to")), statuses)
            result = purged.instances_deleted
        else:
            return func.HttpResponse(status_code=404)
    except Exception as refused:  # noqa: BLE001 - the client reports refusals by raising
        return func.HttpResponse(json.dumps({"error": str(refused)}), status_code=409, mimetype="application/json")
    return func.HttpResponse(json.dumps({"result": result}, default=str), mimetype="application/json")
