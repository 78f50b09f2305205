"""A toy Durable Functions app: the basics every devhost test builds on (sequences, fan-outs,
sub-orchestrations, retries, timers, events, continue-as-new, HTTP and queue triggers)."""
from __future__ import annotations

import asyncio
import json
import os
import threading
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

_counts: dict[str, int] = {}
_counts_lock = threading.Lock()
_groups: dict[str, int] = {}
#: Which activity `replay_sensitive` calls first: tests flip it to provoke non-determinism.
FIRST_STEP = ["hello"]


def log(kind: str, key: Any) -> None:
    """Append one line to DEVHOST_TEST_LOG so tests can count and order executions."""
    path = os.environ.get("DEVHOST_TEST_LOG")
    if path:
        with _counts_lock, open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"kind": kind, "key": key}) + "\n")


# ---- activities ----------------------------------------------------------------------
@app.activity_trigger(input_name="name")
def hello(name: str) -> str:
    return f"Hello {name}"


@app.activity_trigger(input_name="payload")
async def async_echo(payload: dict) -> dict:
    await asyncio.sleep(0)
    return {"echo": payload, "loop_thread": threading.current_thread().name}


@app.activity_trigger(input_name="payload")
def thread_name(payload: Any) -> str:
    return threading.current_thread().name


_rendezvous: dict[str, asyncio.Event] = {}


@app.activity_trigger(input_name="spec")
async def rendezvous(spec: dict) -> int:
    """Finish only once `spec['n']` calls of the group are running at the same time."""
    group, n = spec["group"], spec["n"]
    log("start", spec["i"])
    _groups[group] = _groups.get(group, 0) + 1
    event = _rendezvous.setdefault(group, asyncio.Event())
    if _groups[group] >= n:
        event.set()
    await asyncio.wait_for(event.wait(), timeout=60)
    log("end", spec["i"])
    return spec["i"]


_barriers: dict[str, threading.Barrier] = {}


@app.activity_trigger(input_name="spec")
def thread_rendezvous(spec: dict) -> int:
    """The thread-pool counterpart: a barrier that only opens if calls overlap."""
    with _counts_lock:
        barrier = _barriers.setdefault(spec["group"], threading.Barrier(spec["n"], timeout=60))
    barrier.wait()
    return spec["i"]


@app.activity_trigger(input_name="spec")
def flaky(spec: dict) -> str:
    """Fail the first `spec['fail']` calls for `spec['key']`."""
    with _counts_lock:
        _counts[spec["key"]] = _counts.get(spec["key"], 0) + 1
        attempt = _counts[spec["key"]]
    if attempt <= spec["fail"]:
        raise RuntimeError(f"flaky failure {attempt}")
    return f"ok after {attempt}"


@app.activity_trigger(input_name="reason")
def boom(reason: str) -> None:
    raise ValueError(f"boom: {reason}")


@app.activity_trigger(input_name="size")
def big(size: int) -> str:
    return "x" * size


@app.activity_trigger(input_name="step")
def slow_step(step: int) -> int:
    """A checkpointed step for the crash test: logs start and end around a pause."""
    log("start", step)
    threading.Event().wait(float(os.environ.get("DEVHOST_STEP_SECONDS", "0.3")))
    log("end", step)
    return step * 10


# ---- orchestrators -------------------------------------------------------------------
@app.orchestration_trigger(context_name="context")
def sequence(context: df.DurableOrchestrationContext):
    names = context.get_input() or ["Tokyo", "Seattle", "London"]
    results = []
    for name in names:
        results.append((yield context.call_activity("hello", name)))
    echoed = yield context.call_activity("async_echo", {"n": len(results)})
    return {"greetings": results, "echo": echoed["echo"]}


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    activity = spec.get("activity", "rendezvous")
    tasks = [context.call_activity(activity, {"group": spec["group"], "n": spec["n"], "i": i})
             for i in range(spec["n"])]
    return sorted((yield context.task_all(tasks)))


@app.orchestration_trigger(context_name="context")
def child(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    value = yield context.call_activity("rendezvous", spec)
    return {"child": context.instance_id, "parent": context.parent_instance_id, "value": value}


@app.orchestration_trigger(context_name="context")
def sub_fan_out(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    tasks = [context.call_sub_orchestrator(
        "child", {"group": spec["group"], "n": spec["n"], "i": i},
        instance_id=f"{context.instance_id}-c{i}") for i in range(spec["n"])]
    results = yield context.task_all(tasks)
    return [r["value"] for r in results]


@app.orchestration_trigger(context_name="context")
def retrying(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    options = df.RetryOptions(first_retry_interval_in_milliseconds=50,
                              max_number_of_attempts=spec["attempts"])
    try:
        result = yield context.call_activity_with_retry("flaky", options, spec)
    except Exception as exc:  # noqa: BLE001 - the orchestrator reports the failure
        return {"failed": str(exc).splitlines()[0]}
    after = yield context.call_activity("hello", "after retry")
    return {"result": result, "after": after}


@app.orchestration_trigger(context_name="context")
def retry_fan_out(context: df.DurableOrchestrationContext):
    """Retries interleaved with plain activities inside one task_all."""
    options = df.RetryOptions(first_retry_interval_in_milliseconds=20, max_number_of_attempts=4)
    key = context.instance_id
    tasks = [context.call_activity_with_retry("flaky", options, {"key": f"{key}-a", "fail": 2}),
             context.call_activity("hello", "plain"),
             context.call_activity_with_retry("flaky", options, {"key": f"{key}-b", "fail": 1})]
    first = yield context.task_all(tasks)
    last = yield context.call_activity("hello", "end")
    return first + [last]


@app.orchestration_trigger(context_name="context")
def failing_child(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    result = yield context.call_activity("flaky", spec)
    return result


@app.orchestration_trigger(context_name="context")
def sub_retrying(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=20, max_number_of_attempts=3)
    spec = {"key": context.instance_id, "fail": 1}
    result = yield context.call_sub_orchestrator_with_retry(
        "failing_child", options, spec, instance_id=f"{context.instance_id}-retry-child")
    return result


@app.orchestration_trigger(context_name="context")
def timer(context: df.DurableOrchestrationContext):
    start = context.current_utc_datetime
    yield context.create_timer(start + timedelta(milliseconds=200))
    return (context.current_utc_datetime - start).total_seconds()


@app.orchestration_trigger(context_name="context")
def with_status(context: df.DurableOrchestrationContext):
    for step in range(3):
        context.set_custom_status({"step": step})
        yield context.call_activity("hello", str(step))
    context.set_custom_status({"step": "done"})
    return "finished"


@app.orchestration_trigger(context_name="context")
def catches(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("boom", "caught")
    except Exception as exc:  # noqa: BLE001 - the point is to catch the TaskFailed
        return {"caught": str(exc)}
    return {"caught": None}


@app.orchestration_trigger(context_name="context")
def raises(context: df.DurableOrchestrationContext):
    yield context.call_activity("hello", "before")
    raise ValueError("orchestrator gave up")


@app.orchestration_trigger(context_name="context")
def waits(context: df.DurableOrchestrationContext):
    context.set_custom_status("waiting")
    approval = yield context.wait_for_external_event("approve")
    return {"approved": approval}


@app.orchestration_trigger(context_name="context")
def counter(context: df.DurableOrchestrationContext):
    count = context.get_input() or 0
    yield context.call_activity("hello", str(count))
    if count < 3:
        context.continue_as_new(count + 1)
        return None
    return count


@app.orchestration_trigger(context_name="context")
def replay_sensitive(context: df.DurableOrchestrationContext):
    first = yield context.call_activity(FIRST_STEP[0], "x")
    go = yield context.wait_for_external_event("go")
    return [first, go]


@app.orchestration_trigger(context_name="context")
def payloads(context: df.DurableOrchestrationContext):
    size = context.get_input()
    text = yield context.call_activity("big", size)
    return len(text)


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    total = 0
    for step in range(context.get_input()):
        total += yield context.call_activity("slow_step", step)
    return total


# ---- HTTP and queue triggers ---------------------------------------------------------
@app.route(route="orchestrators/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient):
    body = req.get_body()
    payload = json.loads(body) if body else None
    instance_id = await client.start_new(req.route_params["name"], None, payload)
    return client.create_check_status_response(req, instance_id)


@app.route(route="ping/{who?}", methods=["GET"])
def ping(req: func.HttpRequest) -> func.HttpResponse:
    who = req.route_params.get("who") or req.params.get("who", "nobody")
    return func.HttpResponse(json.dumps({"pong": who}), mimetype="application/json")


@app.route(route="events/{instance_id}/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_event(req: func.HttpRequest, client: df.DurableOrchestrationClient):
    await client.raise_event(req.route_params["instance_id"], req.route_params["name"],
                             req.get_json())
    status = await client.get_status(req.route_params["instance_id"])
    return func.HttpResponse(json.dumps({"status": status.runtime_status.value}))


@app.queue_trigger(arg_name="msg", queue_name="work", connection="AzureWebJobsStorage")
@app.durable_client_input(client_name="client")
async def queue_start(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    spec = json.loads(msg.get_body())
    await client.start_new("sequence", spec["id"], spec["names"])


@app.queue_trigger(arg_name="msg", queue_name="fragile", connection="AzureWebJobsStorage")
def queue_fragile(msg: func.QueueMessage) -> None:
    log("dequeue", msg.dequeue_count)
    raise RuntimeError("cannot handle " + msg.get_body().decode())


@app.route(route="enqueue", methods=["POST"])
@app.queue_output(arg_name="out", queue_name="work", connection="AzureWebJobsStorage")
def http_enqueue(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    out.set(req.get_body().decode())
    return func.HttpResponse("queued", status_code=202)
