"""What every sandbox backend offers the executor, and the limits a cell runs under."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shared.config import Settings

RUNTIME_PATH = Path(__file__).with_name("runtime.py")
CHILD_PATH = Path(__file__).with_name("child.py")


@dataclass(frozen=True)
class CellLimits:
    """Sandbox limits: wall time per execute/resume and output per stream (RLM_CELL_*), memory
    for the session as a whole and for each of its processes, and per session a process
    count and a file size (RLM_SANDBOX_*)."""

    timeout_seconds: float = 120.0
    memory_mb: int = 4096
    output_max_chars: int = 1_000_000
    max_processes: int = 256
    max_file_mb: int = 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> CellLimits:
        return cls(
            settings.cell_timeout_seconds, settings.cell_memory_mb, settings.cell_output_max_chars,
            settings.sandbox_max_processes, settings.sandbox_max_file_mb,
        )  # fmt: skip

    @property
    def grace_seconds(self) -> float:
        """How long past the cell timeout the host waits before it declares the sandbox wedged."""
        return max(5.0, self.timeout_seconds * 0.25)

    @property
    def cpu_seconds(self) -> int:
        """RLIMIT_CPU over a session's life: generous, only a backstop for runaway processes."""
        return max(600, int(self.timeout_seconds * 20))


class SandboxError(RuntimeError):
    """The sandbox could not do what was asked (bad reply, failed setup, HTTP error)."""


class SessionLost(SandboxError):
    """The session's interpreter is gone; the executor rebuilds it by replay.

    `during_command` says it vanished while running the command (it may have caused it),
    rather than being gone before the command was sent.
    """

    def __init__(self, message: str, during_command: bool = False) -> None:
        super().__init__(message)
        self.during_command = during_command


class SandboxBackend(Protocol):
    """One interpreter per session id. Results are the runtime's raw dicts (see runtime.Repl)."""

    limits: CellLimits

    def start(self, session_id: str, context_path: Path) -> None:
        """A fresh interpreter with `context` loaded from the file, replacing any existing one."""

    def execute(self, session_id: str, cell_id: str, code: str | list[str], answers: list[list[str]]) -> dict[str, Any]:
        """Raises SessionLost when no interpreter holds this session."""

    def resume(self, session_id: str, cell_id: str, answers: dict[str, str]) -> dict[str, Any]:
        """Raises SessionLost when no interpreter holds this session."""

    def read_file(self, session_id: str, name: str) -> str:
        """A file of the session dir; raises SessionLost or FileNotFoundError."""

    def stop(self, session_id: str) -> None:
        """End the interpreter; stopping an unknown session is not an error."""

    def park(self, session_id: str) -> None:
        """Free what an idle session holds on this host; the executor rebuilds it by replay if it is used again."""


def timeout_result(cell_id: str, message: str) -> dict[str, Any]:
    """What a backend reports when it had to kill a sandbox that would not answer in time."""
    return {
        "cell_id": cell_id, "status": "timeout", "stdout": "", "stderr": message + "\n", "pending": [],
        "final": None, "used_sections": [], "error": message, "restart": True,
    }
