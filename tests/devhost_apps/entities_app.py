"""Durable entities, function-based (the docs' Counter) and class-based (an Account class
whose methods are the operations), called and signalled from orchestrations and clients."""
import json

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.entity_trigger(context_name="context", entity_name="Counter")
def counter_entity(context: df.DurableEntityContext):
    current_value = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        current_value += context.get_input()
    elif operation == "reset":
        current_value = 0
    elif operation == "get":
        context.set_result(current_value)
    elif operation == "delete":
        context.destruct_on_exit()
        return
    context.set_state(current_value)


class Account:
    """A class-based entity: its state is the object, its operations are its methods."""

    def __init__(self, balance: int = 0) -> None:
        self.balance = balance

    def deposit(self, amount: int) -> int:
        self.balance += amount
        return self.balance

    def withdraw(self, amount: int) -> int:
        if amount > self.balance:
            raise ValueError(f"cannot withdraw {amount}, the balance is {self.balance}")
        self.balance -= amount
        return self.balance

    def get(self, _: object = None) -> int:
        return self.balance


@app.entity_trigger(context_name="context", entity_name="Account")
def account_entity(context: df.DurableEntityContext):
    account = Account(**context.get_state(dict))
    context.set_result(getattr(account, context.operation_name)(context.get_input()))
    context.set_state(vars(account))


@app.orchestration_trigger(context_name="context", orchestration="Tally")
def tally(context: df.DurableOrchestrationContext):
    counter = df.EntityId("Counter", context.get_input())
    context.signal_entity(counter, "add", 5)
    yield context.call_entity(counter, "add", 3)
    return (yield context.call_entity(counter, "get"))


@app.orchestration_trigger(context_name="context", orchestration="Increment")
def increment(context: df.DurableOrchestrationContext):
    yield context.call_entity(df.EntityId("Counter", "shared"), "add", 1)
    return "added"


@app.orchestration_trigger(context_name="context", orchestration="Transfer")
def transfer(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    source = df.EntityId("Account", spec["from"])
    yield context.call_entity(source, "deposit", spec["deposit"])
    try:
        left = yield context.call_entity(source, "withdraw", spec["amount"])
    except Exception as refused:  # noqa: BLE001 - the entity's error reaches the caller
        return {"refused": str(refused)}
    return {"left": left}


@app.route(route="entities/{name}/{key}/{operation}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def signal(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    entity = df.EntityId(req.route_params["name"], req.route_params["key"])
    await client.signal_entity(entity, req.route_params["operation"], req.get_json() if req.get_body() else None)
    return func.HttpResponse(status_code=202)


@app.route(route="entities/{name}/{key}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def read(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    state = await client.read_entity_state(df.EntityId(req.route_params["name"], req.route_params["key"]))
    return func.HttpResponse(json.dumps({"exists": state.entity_exists, "state": state.entity_state}),
                             mimetype="application/json")
