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
