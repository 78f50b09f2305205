"""Which process and thread ran each function: for FUNCTIONS_WORKER_PROCESS_COUNT and
PYTHON_THREADPOOL_THREAD_COUNT."""
import os
import threading

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
_barriers: dict[str, threading.Barrier] = {}
_lock = threading.Lock()


@app.activity_trigger(input_name="spec", activity="WhoRuns")
def who_runs(spec: dict) -> dict:
    """Wait until `spec['together']` calls run at once in this process, then say where."""
    with _lock:
        barrier = _barriers.setdefault(spec["group"], threading.Barrier(spec["together"], timeout=60))
    barrier.wait()
    return {"pid": os.getpid(), "thread": threading.current_thread().name}


@app.orchestration_trigger(context_name="context", orchestration="Spread")
def spread(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    tasks = [context.call_activity("WhoRuns", {"group": spec["group"], "together": spec["together"]})
             for _ in range(spec["calls"])]
    return {"runs": (yield context.task_all(tasks)), "orchestrator_pid": os.getpid()}


@app.route(route="pid", methods=["GET"])
def pid(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(str(os.getpid()))


@app.activity_trigger(input_name="marker", activity="CrashOnce")
def crash_once(marker: str) -> int:
    """Kill the worker process the first time (no marker file yet), as a segfault would."""
    if not os.path.exists(marker):
        with open(marker, "w", encoding="utf-8") as handle:
            handle.write(str(os.getpid()))
        os._exit(3)
    return os.getpid()


@app.orchestration_trigger(context_name="context", orchestration="Survives")
def survives(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=100, max_number_of_attempts=3)
    return (yield context.call_activity_with_retry("CrashOnce", options, context.get_input()))
