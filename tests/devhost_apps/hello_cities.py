"""The function-chaining sample in the v2 style of the official samples: functions named by
their trigger bindings (`orchestration=`, `activity=`), started through an HTTP starter."""
import azure.durable_functions as df
import azure.functions as func

myApp = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@myApp.route(route="orchestrators/{functionName}")
@myApp.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client):
    function_name = req.route_params.get("functionName")
    instance_id = await client.start_new(function_name)
    return client.create_check_status_response(req, instance_id)


@myApp.route(route="secure/orchestrators/{functionName}", auth_level=func.AuthLevel.FUNCTION)
@myApp.durable_client_input(client_name="client")
async def secure_start(req: func.HttpRequest, client):
    instance_id = await client.start_new(req.route_params["functionName"])
    return client.create_check_status_response(req, instance_id)


@myApp.orchestration_trigger(context_name="context", orchestration="HelloCities")
def hello_cities(context: df.DurableOrchestrationContext):
    result1 = yield context.call_activity("SayHello", "Tokyo")
    result2 = yield context.call_activity("SayHello", "Seattle")
    result3 = yield context.call_activity("SayHello", "London")
    return [result1, result2, result3]


@myApp.activity_trigger(input_name="city", activity="SayHello")
def say_hello(city: str) -> str:
    return f"Hello {city}!"
