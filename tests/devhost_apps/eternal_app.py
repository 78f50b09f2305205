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


#: Test hooks: the Relay orchestrator pauses in the episode that continues it as new.
relay_entered = threading.Event()
relay_release = threading.Event()


@app.orchestration_trigger(context_name="context", orchestration="Relay")
def relay(context: df.DurableOrchestrationContext):
    """Each generation races a timer (task 0) with an event; the first generation's timer is
    still pending when it continues as new, as a query's deadline timer is."""
    generation = context.get_input() or 0
    seconds = 0.3 if generation == 0 else 60
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=seconds))
    event = context.wait_for_external_event("Next")
    winner = yield context.task_any([timer, event])
    if generation == 0:
        if not context.is_replaying:
            relay_entered.set()
            relay_release.wait(60)
        context.continue_as_new(1)
        return None
    if winner == timer:
        return "the new generation's timer"
    timer.cancel()
    return event.result
