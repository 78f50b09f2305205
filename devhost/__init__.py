"""Embedded host: runs a Durable Functions app in-process, as Azure's extension would."""
from .config import HostConfig
from .host import EmbeddedHost
from .settings import load_local_settings
from .status import InstanceStatus

__all__ = ["EmbeddedHost", "HostConfig", "InstanceStatus", "load_local_settings"]
