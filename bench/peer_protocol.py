"""What `bench/peers.py` and a peer's driver say to each other (standard library only: the
drivers run in the peers' own virtualenvs).

The bench writes one task as JSON on the driver's stdin; the driver answers it with the
peer's public API and prints one result line as JSON, the last line of its stdout. Clocks are
`time.monotonic()`, which Linux shares between processes, so the bench can line the driver's
times up with the scripted model server's log.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

RESULT_PREFIX = "PEER-RESULT "


class Task(TypedDict):
    """One question for a peer: the corpus is a text file, the model the bench's scripted server."""

    kind: str
    question: str
    corpus: str
    base_url: str
    api_key: str
    model: str
    max_iterations: int
    work_dir: str  # this run's own folder
    cache_dir: str  # kept across this peer's runs, as on a user's machine


def read_corpus(task: Task) -> str:
    return Path(task["corpus"]).read_text(encoding="utf-8")


def serve_task(answer: Callable[[Task], str]) -> None:
    """Run one task from stdin through `answer(task)` and print the timed result.

    The clock starts before the peer reads the corpus file, as for a user handing over a file.
    """
    task: Task = json.load(sys.stdin)
    started = time.monotonic()
    result = answer(task)
    ended = time.monotonic()
    line = {"answer": result, "started": started, "ended": ended}
    sys.stdout.write(RESULT_PREFIX + json.dumps(line) + "\n")
    sys.stdout.flush()


def parse_result(stdout: str) -> dict[str, Any]:
    """The driver's result line; a driver that printed none has failed."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise ValueError("the driver printed no result line")
