"""The Azure Functions app: registers the RLM blueprints, nothing else (after configuring
OpenTelemetry for this process, before any function runs, as Azure documents)."""

import azure.durable_functions as df
import azure.functions as func

from rlm_activities.activities import bp as activities
from rlm_activities.batch import bp as batch
from rlm_activities.batch_http import bp as batch_http
from rlm_activities.batch_queue import bp as batch_queue
from rlm_activities.compare import bp as compare
from rlm_activities.compare_http import bp as compare_http
from rlm_activities.http_api import bp as http_api
from rlm_activities.judge import bp as judge
from rlm_activities.openapi import bp as openapi
from rlm_activities.orchestrator import bp as orchestrator
from rlm_activities.retrieval import bp as retrieval
from rlm_activities.web_ui import bp as web_ui
from shared.telemetry.setup import configure as configure_telemetry

configure_telemetry()

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(orchestrator)
app.register_functions(activities)
app.register_functions(http_api)
app.register_functions(batch)
app.register_functions(batch_http)
app.register_functions(batch_queue)
app.register_functions(retrieval)
app.register_functions(compare)
app.register_functions(compare_http)
app.register_functions(judge)
app.register_functions(openapi)
app.register_functions(web_ui)
