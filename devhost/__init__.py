"""Embedded host: runs a Durable Functions app in-process, as Azure's extension would."""
from .host import EmbeddedHost, InstanceStatus
from .settings import load_local_settings

__all__ = ["EmbeddedHost", "InstanceStatus", "load_local_settings"]
