"""The attacks of the hardening issue, each run as cell code through the real local sandbox
(bubblewrap namespaces, a session cgroup) and shown contained.

CI runs these as root, where a sandbox escape would be worth the most."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shared.config import Settings
from shared.sandbox import CellLimits, SandboxExecutor, make_executor
from shared.sandbox.isolation import SandboxUnavailable, detect_isolation
from shared.sandbox.local import LocalBackend
from shared.storage import FileStore

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[1]
CORPUS = "## Alpha\nThe needle is 42.\n"
LIMITS = CellLimits(timeout_seconds=60, memory_mb=1024, output_max_chars=20_000, max_processes=64)


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store")


@contextmanager
def sandbox(store: FileStore, limits: CellLimits = LIMITS, corpus: str = CORPUS, session_id: str = "s") -> Iterator[tuple[SandboxExecutor, LocalBackend]]:
    backend = LocalBackend(limits)
    try:
        executor = SandboxExecutor(backend, store, limits)
        executor.open(session_id, store.put_corpus(corpus))
        yield executor, backend
    finally:
        backend.close()


def run(executor: SandboxExecutor, code: str, session_id: str = "s") -> str:
    """Run a cell that must finish normally; its stdout."""
    result = executor.execute(session_id, uuid.uuid4().hex[:12], code)
    assert result.status == "done", result.stderr
    return result.stdout


def alive(pid: int) -> bool:
    """A host process that exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def host_pids_running(argv: list[str]) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().split(b"\0")[:-1] == [a.encode() for a in argv] and alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_for(condition, what: str, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


PROBE_UNIX = """
import socket
def reach(address):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(address)
        s.sendall(context.encode())
        return 'CONNECTED'
    except OSError as exc:
        return type(exc).__name__
    finally:
        s.close()
for address in {addresses!r}:
    print(reach(address))
"""


def test_host_unix_sockets_are_out_of_reach(store: FileStore, tmp_path: Path) -> None:
    """A terminal multiplexer's, Docker's or ssh-agent's socket: in /tmp, under /run, or abstract."""
    addresses = [str(tmp_path / "agent.sock"), f"\0rlm-test-{uuid.uuid4().hex}"]
    if os.access("/run", os.W_OK):
        addresses.append(f"/run/rlm-test-{uuid.uuid4().hex}.sock")
    listeners = []
    try:
        for address in addresses:
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(address)
            listener.listen()
            listener.setblocking(False)
            listeners.append(listener)
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.connect(address)  # the host itself can
            probe.close()
            listener.accept()[0].close()
        with sandbox(store) as (executor, _):
            out = run(executor, PROBE_UNIX.format(addresses=addresses))
        for listener in listeners:
            with pytest.raises(BlockingIOError):
                listener.accept()  # nobody from the sandbox ever connected
    finally:
        for listener in listeners:
            listener.close()
        for address in addresses:
            if not address.startswith("\0"):
                Path(address).unlink(missing_ok=True)
    assert "CONNECTED" not in out
    assert out.split() == ["FileNotFoundError", "ConnectionRefusedError", *(["FileNotFoundError"] * (len(addresses) - 2))]


ORPHAN = """
import os
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv('/bin/sleep', ['sleep', {mark!r}])
    os._exit(0)
os.waitpid(pid, 0)
print('detached')
"""


def test_an_orphan_after_setsid_and_double_fork_dies_with_its_session(store: FileStore) -> None:
    mark = f"{os.getpid() % 1000}.{uuid.uuid4().int % 10**6}"
    with sandbox(store) as (executor, backend):
        assert run(executor, ORPHAN.format(mark=mark)) == "detached\n"
        orphans = wait_for(lambda: host_pids_running(["sleep", mark]), "the orphan to appear on the host")
        process = backend.process("s")
        assert process is not None and process.cgroup is not None
        assert set(orphans) <= process.cgroup.pids()  # still counted against its session
        executor.close("s")
        assert not any(alive(pid) for pid in orphans)
        assert host_pids_running(["sleep", mark]) == []


def test_a_session_sees_neither_other_sessions_nor_host_processes(store: FileStore) -> None:
    secret = "## Other\nthe other session's secret 7781\n"
    with sandbox(store) as (executor, backend):
        executor.open("other", store.put_corpus(secret))
        out = run(
            executor,
            "import os\n"
            "found = []\n"
            "for d, dirs, files in os.walk('/'):\n"
            "    dirs[:] = [x for x in dirs if os.path.join(d, x) not in ('/proc', '/usr', '/dev')]\n"
            "    found += [os.path.join(d, f) for f in files if f == 'context.txt']\n"
            "print(found)\n"
            "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
            "print(open('/mnt/data/context.txt').read().count('7781'))",
        )
        lines = out.splitlines()
        assert lines[0] == "['/mnt/data/context.txt']"
        assert lines[2] == "0"
        inside = [int(p) for p in lines[1].strip("[]").split(", ")]
        assert len(inside) <= 3 and os.getpid() not in inside  # bwrap's init, the runtime, and `ls`-like helpers only


def test_cell_code_cannot_signal_the_host(store: FileStore) -> None:
    bystander = subprocess.Popen(["sleep", "600"])
    try:
        with sandbox(store) as (executor, _):
            code = (
                "import os, signal\n"
                "results = []\n"
                f"for pid in (os.getppid(), {os.getpid()}, {bystander.pid}):\n"
                "    try:\n"
                "        os.kill(pid, signal.SIGKILL)\n"
                "        results.append('sent')\n"
                "    except OSError as exc:\n"
                "        results.append(type(exc).__name__)\n"
                "try:\n"
                "    os.kill(-1, signal.SIGKILL)\n"
                "    results.append('broadcast')\n"
                "except OSError as exc:\n"
                "    results.append(type(exc).__name__)\n"
                "print(os.getppid(), results)"
            )
            out = run(executor, code)
            assert run(executor, "print('still here')") == "still here\n"
        assert bystander.poll() is None
        parent, rest = out.split(" ", 1)
        assert parent in ("0", "1")  # the host side of the pid namespace is not even addressable
        assert "ProcessLookupError" in rest
    finally:
        bystander.kill()
        bystander.wait()


def test_host_files_are_neither_readable_nor_writable(store: FileStore, tmp_path: Path) -> None:
    secret = tmp_path / "local.settings.json"
    secret.write_text('{"Values": {"MODEL_API_KEY": "sk-do-not-leak"}}')
    home = Path.home()
    targets = [
        str(secret), str(ROOT / "local.settings.json.example"), str(ROOT / "README.md"), "/etc/shadow", "/etc/passwd",
        str(home / ".ssh" / "id_rsa"), str(home / ".bashrc"), str(store.root / "corpora"),
    ]  # fmt: skip
    assert sum(Path(t).exists() for t in targets) >= 5  # most of them are there for the host
    writes = [str(ROOT / "pwned.py"), str(ROOT / "shared" / "pwned.py"), "/usr/pwned", "/opt/rlm/child.py", "/tmp/pwned", "context.txt"]
    code = (
        "import os\n"
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        print('READ', os.listdir(path) if os.path.isdir(path) else open(path).read()[:40])\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__)\n"
        f"for path in {writes!r}:\n"
        "    try:\n"
        "        open(path, 'a').write('import os; os.system(\"id\")')\n"
        "        print('WROTE', path)\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__)\n"
        "print(sorted(os.listdir('/')), os.listdir(os.path.expanduser('~')))"
    )
    with sandbox(store) as (executor, _):
        out = run(executor, code)
        assert run(executor, "len(context)") == f"{len(CORPUS)}\n"
    assert "READ" not in out and "WROTE" not in out and "sk-do-not-leak" not in out
    assert not (ROOT / "pwned.py").exists() and not (ROOT / "shared" / "pwned.py").exists() and not Path("/tmp/pwned").exists()
    top, own = out.splitlines()[-1].split("] ", 1)
    assert "home" not in top and "etc" not in top and "tmp" not in top and "work" not in top and "run" not in top
    assert own == "['context.txt']"
    assert store.get_text(store.containers.corpora, store.put_corpus(CORPUS)) == CORPUS


def test_no_network_not_even_loopback(store: FileStore) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        with sandbox(store) as (executor, _):
            out = run(
                executor,
                "import socket\n"
                "try:\n"
                f"    socket.create_connection(('127.0.0.1', {port}), timeout=5)\n"
                "    print('CONNECTED')\n"
                "except OSError as exc:\n"
                "    print(type(exc).__name__)\n"
                "print([name for _, name in socket.if_nameindex()])",
            )
    finally:
        listener.close()
    assert "CONNECTED" not in out
    assert out.splitlines()[1] == "['lo']"


FORK_WIDE = """
import os
r, w = os.pipe()
kids = []
try:
    while len(kids) < {ceiling}:
        pid = os.fork()
        if pid == 0:
            os.close(w)
            os.read(r, 1)
            os._exit(0)
        kids.append(pid)
    print('forked', len(kids))
except OSError as exc:
    print('refused after', len(kids), type(exc).__name__)
os.close(w)
for pid in kids:
    os.waitpid(pid, 0)
"""


def test_a_fork_bomb_is_bounded_by_the_session_process_limit(store: FileStore) -> None:
    limits = CellLimits(timeout_seconds=20, memory_mb=1024, output_max_chars=20_000, max_processes=32)
    with sandbox(store, limits) as (executor, backend):
        run(executor, "kept = 'from before'")
        wide = executor.execute("s", "wide", FORK_WIDE.format(ceiling=2 * limits.max_processes))
        words = wide.stdout.split()
        assert words[:2] == ["refused", "after"] and int(words[2]) < limits.max_processes, wide.stdout
        assert wide.status == "error" and "limit of 32 processes" in (wide.error or "")  # and a fresh sandbox
        bomb = executor.execute("s", "bomb", "import os\nwhile True:\n    os.fork()")
        assert bomb.status in ("error", "timeout")
        assert run(executor, "print(40 + 2, kept)") == "42 from before\n"  # rebuilt without replaying the bombs
        process = backend.process("s")
        assert process is not None and process.cgroup is not None
        members = process.cgroup.pids()
        assert len(members) <= limits.max_processes
        executor.close("s")
        assert not any(alive(pid) for pid in members)


FILE_PAST_LIMIT = """
with open('big.bin', 'wb') as out:
    out.write(b'x' * (2 << 20))
    print('wrote', out.tell())
    out.write(b'x')
"""


def test_a_file_past_the_size_limit_is_a_clear_error_and_the_session_goes_on(store: FileStore) -> None:
    limits = CellLimits.from_settings(Settings(RLM_SANDBOX_MAX_FILE_MB="2", RLM_CELL_MEMORY_MB="1024"))
    assert limits.max_file_mb == 2
    with sandbox(store, limits) as (executor, backend):
        run(executor, "kept = 'from before'")
        first = backend.process("s")
        cell = executor.execute("s", "big", FILE_PAST_LIMIT)
        assert cell.status == "error" and cell.stdout == f"wrote {2 << 20}\n"
        assert "File too large" in cell.stderr, cell.stderr
        shell = "import subprocess\nprint(subprocess.run(['head', '-c', '3145728', '/dev/zero'], stdout=open('other.bin', 'wb')).returncode)"
        assert run(executor, shell) == f"{-signal.SIGXFSZ}\n"  # a program it starts is held to it too (and stopped)
        sizes = "import os\nprint(os.path.getsize('big.bin'), os.path.getsize('other.bin'))"
        assert run(executor, sizes) == f"{2 << 20} {2 << 20}\n"
        assert run(executor, "print(kept)") == "from before\n" and backend.process("s") is first  # the same sandbox


MEMORY_SPREAD = """
import os, select, time
release_r, release_w = os.pipe()
report_r, report_w = os.pipe()
kids = {{}}
for i in range({children}):
    pid = os.fork()
    if pid == 0:
        os.close(release_w)
        data = b'x' * ({each_mb} << 20)
        os.write(report_w, bytes([i]))
        os.read(release_r, 1)
        os._exit(0)
    kids[pid] = i
os.close(report_w)
holding, dead = set(), {{}}
deadline = time.monotonic() + 120
while len(holding | set(dead)) < {children} and time.monotonic() < deadline:
    if select.select([report_r], [], [], 0.05)[0]:
        holding.update(os.read(report_r, 64))
    for pid, i in kids.items():
        if i not in dead and os.waitpid(pid, os.WNOHANG)[0]:
            dead[i] = pid
time.sleep(1)
os.close(release_w)
killed = 0
for pid, i in kids.items():
    status = os.waitpid(pid, 0)[1] if i not in dead else None
    if status is None or (os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9):
        killed += 1
print('killed', killed, 'of', {children})
"""


def test_the_memory_cap_holds_for_the_session_as_a_whole(store: FileStore) -> None:
    """Four forked children of 200 MB each stay under a 512 MB per-process cap, but not under the session's."""
    limits = CellLimits(timeout_seconds=150, memory_mb=512, output_max_chars=20_000, max_processes=64)
    with sandbox(store, limits) as (executor, _):
        out = run(executor, MEMORY_SPREAD.format(children=4, each_mb=200))
        assert run(executor, "print('the session lives on')") == "the session lives on\n"
    killed = int(out.split()[1])
    assert killed >= 2, out  # at most two 200 MB children fit in 512 MB together


def test_the_sandbox_runs_as_nobody_without_capabilities(store: FileStore) -> None:
    with sandbox(store) as (executor, _):
        out = run(
            executor,
            "import os\n"
            "status = dict(line.split(':\\t', 1) for line in open('/proc/self/status').read().splitlines() if ':\\t' in line)\n"
            "print(os.getuid(), os.getgid(), status['CapEff'].strip(), status['CapBnd'].strip(), status['NoNewPrivs'].strip())\n"
            "import ctypes\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "print(libc.unshare(0x10000000), ctypes.get_errno() != 0)",  # CLONE_NEWUSER
        )
    ids, nested = out.splitlines()
    assert ids == "65534 65534 0000000000000000 0000000000000000 1"
    assert nested == "-1 True"  # no nested user namespace, so no way to regain capabilities


def test_a_killed_sandbox_leaves_no_process_and_no_file(store: FileStore) -> None:
    with sandbox(store) as (executor, backend):
        run(executor, "import subprocess\nchild = subprocess.Popen(['sleep', '600'])\nopen('notes.txt', 'w').write('x')")
        process = backend.process("s")
        assert process is not None and process.cgroup is not None
        members, cwd, cgroup_dirs = process.cgroup.pids(), process.cwd, process.cgroup.dirs
        assert len(members) >= 3 and (cwd / "notes.txt").exists()
        os.kill(process.pid, signal.SIGKILL)
        wait_for(lambda: not any(alive(pid) for pid in members), "every process of the session to die with it")
        assert run(executor, "print('rebuilt')") == "rebuilt\n"
        executor.close("s")
    assert not cwd.exists()
    assert not any(d.exists() for d in cgroup_dirs)


def test_without_bubblewrap_the_host_refuses_unless_the_weak_mode_is_asked_for(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-bwrap-here"))
    detect_isolation.cache_clear()
    try:
        strict = LocalBackend(LIMITS)
        with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap") as refused:
            SandboxExecutor(strict, store, LIMITS).open("s", store.put_corpus(CORPUS))
        assert "RLM_SANDBOX_WEAK_ISOLATION=1" in str(refused.value)
        strict.close()
        assert make_executor(Settings(RLM_SANDBOX_WEAK_ISOLATION="1"), store).backend.allow_weak  # type: ignore[attr-defined]
        weak = LocalBackend(LIMITS, allow_weak=True)
        try:
            executor = SandboxExecutor(weak, store, LIMITS)
            executor.open("w", store.put_corpus(CORPUS))
            assert run(executor, "print(len(context))", "w") == f"{len(CORPUS)}\n"
        finally:
            weak.close()
        assert "WITHOUT full isolation" in caplog.text and "bubblewrap (bwrap) is not installed" in caplog.text
    finally:
        detect_isolation.cache_clear()
