"""The suspendable sandboxed REPL (DESIGN section 4): runtime, backends and the executor activities call."""

from shared.sandbox.base import CellLimits, SandboxBackend, SandboxError, SessionLost
from shared.sandbox.executor import SandboxExecutor, make_executor

__all__ = ["CellLimits", "SandboxBackend", "SandboxError", "SandboxExecutor", "SessionLost", "make_executor"]
