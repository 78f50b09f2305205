"""Durable HTTP: orchestrators call HTTP APIs directly with context.call_http."""
import json

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def summary(response: dict) -> dict:
    return {"status": response["statusCode"], "content": json.loads(response["content"] or "null")}


@app.orchestration_trigger(context_name="context", orchestration="GetStatus")
def get_status(context: df.DurableOrchestrationContext):
    response = yield context.call_http("GET", context.get_input())
    return summary(response)


@app.orchestration_trigger(context_name="context", orchestration="PostJson")
def post_json(context: df.DurableOrchestrationContext):
    response = yield context.call_http("POST", context.get_input(), content={"order": 7},
                                       headers={"Content-Type": "application/json"})
    return summary(response)


@app.orchestration_trigger(context_name="context", orchestration="WithToken")
def with_token(context: df.DurableOrchestrationContext):
    source = df.ManagedIdentityTokenSource("https://management.core.windows.net")
    response = yield context.call_http("GET", context.get_input(), token_source=source)
    return summary(response)


@app.orchestration_trigger(context_name="context", orchestration="Unreachable")
def unreachable(context: df.DurableOrchestrationContext):
    try:
        yield context.call_http("GET", context.get_input())
    except Exception as failure:  # noqa: BLE001 - report what the failure said
        return {"failed": str(failure).splitlines()[0]}
    return None
