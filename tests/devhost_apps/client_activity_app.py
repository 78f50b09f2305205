"""An activity that is also a client function (a durableClient binding on an activity
trigger): it starts another orchestration and reads an instance's status, as a function
with that binding may whatever its trigger."""
import azure.durable_functions as df

app = df.DFApp()


@app.orchestration_trigger(context_name="context", orchestration="Supervisor")
def supervisor(context: df.DurableOrchestrationContext):
    child = yield context.call_activity("StartChild", f"{context.instance_id}-child")
    mine = yield context.call_activity("StatusOf", context.instance_id)
    return {"child": child, "supervisor_seen_as": mine}


@app.orchestration_trigger(context_name="context", orchestration="Child")
def child(context: df.DurableOrchestrationContext):
    return f"child of {context.get_input()}"


@app.activity_trigger(input_name="instance_id", activity="StartChild")
@app.durable_client_input(client_name="client")
async def start_child(instance_id: str, client: df.DurableOrchestrationClient) -> str:
    return await client.start_new("Child", instance_id, instance_id.removesuffix("-child"))


@app.activity_trigger(input_name="instance_id", activity="StatusOf")
@app.durable_client_input(client_name="client")
async def status_of(instance_id: str, client: df.DurableOrchestrationClient) -> str:
    status = await client.get_status(instance_id)
    return status.runtime_status.value
