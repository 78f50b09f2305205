"""Durable entities: call_entity and signal_entity from orchestrations, signal and read
state from clients, class-based entities, errors reaching the caller, deletion, and one
operation at a time per entity."""
from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from devhost.functions import discover
from tests.devhost_apps.entities_app import app
from tests.devhost_apps.harness import WAIT, run_to_end, serving, stop, until, with_host


def test_entities_are_named_by_their_binding() -> None:
    assert set(discover(app).entities) == {"Counter", "Account"}


def test_signal_then_call_from_an_orchestration(tmp_path: Path) -> None:
    status = with_host(tmp_path, lambda host: run_to_end(host, "Tally", "t1"), app=app)
    assert status.output == 8, "the signal (add 5) was processed before the call (add 3), then get"


def test_operations_on_one_entity_never_overlap(tmp_path: Path) -> None:
    async def body(host):
        ids = [await host.start_new("Increment") for _ in range(20)]
        await asyncio.gather(*(host.wait_for_completion(i, timeout=WAIT) for i in ids))
        return host.engine.entities.read("Counter", "shared")

    entity = with_host(tmp_path, body, app=app)
    assert entity is not None and entity.state == "20"


def test_class_based_entity_and_its_errors(tmp_path: Path) -> None:
    async def body(host):
        ok = await run_to_end(host, "Transfer", {"from": "ada", "deposit": 10, "amount": 4})
        refused = await run_to_end(host, "Transfer", {"from": "bob", "deposit": 1, "amount": 9})
        return ok, refused, host.engine.entities.read("Account", "ada")

    ok, refused, ada = with_host(tmp_path, body, app=app)
    assert ok.output == {"left": 6}
    assert refused.output == {"refused": "cannot withdraw 9, the balance is 1"}
    assert ada.state == '{"balance": 6}'


def test_client_signal_read_and_delete(tmp_path: Path) -> None:
    async def body(host):
        server, origin = await serving(host)
        try:
            async with httpx.AsyncClient(timeout=WAIT) as http:
                missing = (await http.get(f"{origin}/api/entities/Counter/c1")).json()
                for amount in (2, 3):
                    assert (await http.post(f"{origin}/api/entities/Counter/c1/add", json=amount)).status_code == 202

                async def state():
                    read = (await http.get(f"{origin}/api/entities/Counter/c1")).json()
                    return read if read["state"] == 5 else None

                after_adds = await until(state, "both signals")
                await http.post(f"{origin}/api/entities/Counter/c1/delete", json=None)

                async def deleted():
                    read = (await http.get(f"{origin}/api/entities/Counter/c1")).json()
                    return read if not read["exists"] else None

                after_delete = await until(deleted, "the delete")
                code = {"code": host.keys.system_key}
                api = f"{origin}/runtime/webhooks/durabletask/entities/Counter/c2"
                # as `curl -d 7` sends it: a body that is not JSON reaches the operation as text
                signalled = await http.post(api, params={**code, "op": "add"}, content="7",
                                            headers={"Content-Type": "text/plain"})
                await until(lambda: host.engine.entities.read("Counter", "c2"), "the webhook signal")
                state = await http.get(api, params=code)
                unknown = await http.post(f"{origin}/runtime/webhooks/durabletask/entities/Nope/x", params=code)
        finally:
            await stop(server)
        return missing, after_adds, after_delete, signalled.status_code, state.json(), unknown

    missing, after_adds, after_delete, signalled, state, unknown = with_host(tmp_path, body, app=app)
    assert missing == {"exists": False, "state": None}
    assert after_adds == {"exists": True, "state": 5}
    assert after_delete == {"exists": False, "state": None}
    assert signalled == 202 and state == 7
    assert unknown.status_code == 400 and "'Nope' doesn't exist" in unknown.json()["ExceptionMessage"]
