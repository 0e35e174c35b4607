"""A per-run step trace for an operator's "Sync now" (issue 23): what the run did, in
order (membership loaded, each call with its answer, the plan, the result).

The recorder rides in a context variable, so the engine, the syncers and the clients do
not pass it along: an admin action sets it around one run and the tasks that run spawns
inherit it (asyncio copies the context into each task, ``asyncio.to_thread`` into the
worker thread). Outside a traced run ``current()`` is None and each hook is one
``ContextVar.get``: nothing on the hot path of every other run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

MAX_STEPS = 400  # a large group's run: the first steps and a count of the rest


@dataclass
class Trace:
    started: float = field(default_factory=time.monotonic)
    steps: list[dict[str, Any]] = field(default_factory=list)
    dropped: int = 0

    def add(self, kind: str, text: str, **detail: Any) -> None:
        if len(self.steps) >= MAX_STEPS:
            self.dropped += 1
            return
        at_ms = round((time.monotonic() - self.started) * 1000, 1)
        self.steps.append({"kind": kind, "text": text, "at_ms": at_ms, **detail})

    def call(self, method: str, path: str, status: int | str) -> None:
        """One HTTP request and the service's answer (the path without its query)."""
        path = path.split("?", 1)[0]
        self.add("call", f"{method} {path} → {status}", method=method, path=path,
                 status=status)

    def to_json(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "steps_not_shown": self.dropped}


_current: ContextVar[Trace | None] = ContextVar("groupsync_trace", default=None)


def current() -> Trace | None:
    return _current.get()


def note(kind: str, text: str, **detail: Any) -> None:
    trace = _current.get()
    if trace is not None:
        trace.add(kind, text, **detail)


@contextmanager
def tracing(trace: Trace) -> Iterator[Trace]:
    token = _current.set(trace)
    try:
        yield trace
    finally:
        _current.reset(token)
