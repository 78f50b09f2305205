"""Entry point of a local sandbox process: harden itself, then serve runtime commands over private pipes.

Standard library only; started as `python -I child.py ...`. Besides the REPL ops it has
a plain `run` op (a persistent interpreter returning stdout/stderr), which the loopback
ACA-compatible test server uses as its stand-in for a Dynamic Sessions interpreter.
"""

from __future__ import annotations

import ast
import ctypes
import json
import os
import resource
import signal
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the script's dir off the path

from runtime import CONTEXT_FILE, Capped, Repl, Router, describe_exception, format_traceback  # noqa: E402


class Kernel:
    """A persistent interpreter that runs arbitrary code and captures its output, like a Jupyter kernel."""

    def __init__(self, output_max_chars: int = 1_000_000) -> None:
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
        self.limit = output_max_chars
        self.out: Capped | None = None
        self.err: Capped | None = None
        sys.stdout = Router(sys.stdout, lambda: self.out)
        sys.stderr = Router(sys.stderr, lambda: self.err)

    def run(self, code: str) -> dict[str, Any]:
        self.out, self.err = Capped(self.limit), Capped(self.limit)
        result, ok = "", True
        try:
            tree = ast.parse(code, "<execution>")
            echo = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            exec(compile(tree, "<execution>", "exec"), self.namespace)
            if echo is not None:
                value = eval(compile(ast.Expression(echo.value), "<execution>", "eval"), self.namespace)
                result = "" if value is None else repr(value)
        except BaseException as exc:  # reported like a notebook does, the kernel lives on
            ok = False
            self.err.write(format_traceback(exc))
        out, err = self.out.text(), self.err.text()
        self.out = self.err = None
        return {"ok": ok, "stdout": out, "stderr": err, "result": result}


CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


def isolate_network() -> bool:
    """The weak mode's best effort, without bubblewrap: a private user + network namespace, so
    generated code has no network at all, not even loopback. Needs unprivileged user
    namespaces; where the kernel refuses, the init reply says so."""
    uid, gid = os.getuid(), os.getgid()
    if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        return False
    for path, text in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"{uid} {uid} 1"), ("/proc/self/gid_map", f"{gid} {gid} 1")):
        with open(path, "w") as handle:
            handle.write(text)
    return True


def harden(parent_pid: int | None, memory_mb: int, cpu_seconds: int, file_mb: int) -> None:
    """Die with the parent; cap address space, CPU and file size, from inside the child (no
    preexec_fn in a threaded parent). The session-wide memory and process caps are the
    host's cgroup; these hold per process."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(70)
    limits = ((resource.RLIMIT_AS, memory_mb << 20), (resource.RLIMIT_CPU, cpu_seconds), (resource.RLIMIT_FSIZE, file_mb << 20))
    for kind, value in limits:
        if value > 0:
            resource.setrlimit(kind, (value, value + 5 if kind == resource.RLIMIT_CPU else value))


def run_cell(repl: Repl, msg: dict[str, Any]) -> dict[str, Any]:
    """An execute or resume. If the session cannot even start it (no thread can start: the
    process limit is spent), the reply says the session is lost, so the host runs the cell
    again in a fresh sandbox."""
    try:
        if msg["op"] == "execute":
            return repl.execute(msg["cell_id"], msg["code"], msg.get("answers"), msg.get("timeout", 120.0))
        return repl.resume(msg["cell_id"], msg.get("answers", {}), msg.get("timeout", 120.0))
    except (RuntimeError, OSError, MemoryError) as exc:
        return {"lost": f"the sandbox could not start this cell ({describe_exception(exc)})"}


def serve(cmd_fd: int, res_fd: int, network_isolated: bool | None) -> None:
    """Command loop: one JSON object per line in on `cmd_fd`, one per line out on `res_fd`.

    `network_isolated` is None when the host isolated this process (bubblewrap)."""
    repl: Repl | None = None
    kernel: Kernel | None = None
    with os.fdopen(cmd_fd, "rb") as commands:
        for line in commands:
            try:
                msg = json.loads(line)
                op = msg["op"]
                if op == "init":
                    repl = Repl(os.getcwd(), msg.get("context_file", CONTEXT_FILE), msg.get("output_max_chars", 1_000_000))
                    reply: dict[str, Any] = {
                        "ok": True, "context_chars": len(repl.globals["context"]), "network_isolated": network_isolated,
                    }  # fmt: skip
                elif op in ("execute", "resume") and repl is not None:
                    reply = run_cell(repl, msg)
                elif op == "run":
                    kernel = kernel or Kernel(msg.get("output_max_chars", 1_000_000))
                    reply = kernel.run(msg["code"])
                elif op == "ping":
                    reply = {"ok": True}
                else:
                    reply = {"fail": f"unknown op {op!r} or session not initialised"}
            except Exception as exc:  # a bad command is answered, never fatal
                reply = {"fail": describe_exception(exc)}
            data = (json.dumps(reply) + "\n").encode("utf-8")
            while data:
                data = data[os.write(res_fd, data) :]


def main(argv: list[str]) -> None:
    """Flags: --cmd-fd, --res-fd, --memory-mb, --cpu-seconds, --file-mb; the weak mode adds --parent-pid and --unshare-net."""
    opts = dict(zip(argv[0::2], argv[1::2], strict=True))
    parent = int(opts["--parent-pid"]) if "--parent-pid" in opts else None
    harden(parent, int(opts.get("--memory-mb", "0")), int(opts.get("--cpu-seconds", "0")), int(opts.get("--file-mb", "0")))
    serve(int(opts["--cmd-fd"]), int(opts["--res-fd"]), isolate_network() if opts.get("--unshare-net") == "1" else None)


if __name__ == "__main__":
    main(sys.argv[1:])
