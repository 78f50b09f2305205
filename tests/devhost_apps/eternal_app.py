"""Eternal orchestrations: continue_as_new restarts the instance with new input and a
fresh history; events that arrive meanwhile reach the new generation."""
import threading
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
#: Test hooks: the Gate orchestrator pauses inside its continue-as-new episode.
entered = threading.Event()
release = threading.Event()


@app.orchestration_trigger(context_name="context", orchestration="Counter")
def counter(context: df.DurableOrchestrationContext):
    total = context.get_input() or 0
    value = yield context.wait_for_external_event("Add")
    if value is None:
        return total
    context.continue_as_new(total + value)
    return None


@app.orchestration_trigger(context_name="context", orchestration="Gate")
def gate(context: df.DurableOrchestrationContext):
    if not context.get_input():
        yield context.wait_for_external_event("First")
        if not context.is_replaying:
            entered.set()
            release.wait(60)
        context.continue_as_new(1)
        return None
    second = context.wait_for_external_event("Second")
    timeout = context.create_timer(context.current_utc_datetime + timedelta(seconds=context.get_input()))
    winner = yield context.task_any([second, timeout])
    if winner == second:
        timeout.cancel()
        return {"second": second.result}
    return "no second event"
