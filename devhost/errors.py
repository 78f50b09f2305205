"""Errors the CLI reports as one line, without a traceback."""


class UsageError(Exception):
    """Bad arguments or configuration: exit code 2 with the message."""


class StartError(Exception):
    """The host cannot start here (a busy port, a state dir in use): exit code 1."""
