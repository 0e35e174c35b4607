"""The process slot: the one object that knows what this process runs.

It holds the runtime installed here (and the loop it runs on), the embedded
``GroupsyncRuntime`` that owns this process, and the hand-off tasks kept alive until they
end. ``SLOT`` is its one instance; nothing else in ``core`` holds a runtime (the public
scheduler handle ``core.notifications.scheduler._scheduler`` holds a scheduler only).

    with SLOT.installed(runtime):     # on the runtime's running loop
        ...                           # public calls in this process run on ``runtime``
    # uninstalled, also when the block raised
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from core.engine.running.context import Runtime
from core.errors import GroupsyncError


class SlotTaken(GroupsyncError):
    """A second runtime in one process: public calls could not tell which to use."""


@dataclass(frozen=True)
class Installed:
    """The runtime this process's public calls use, and the loop its connections live on."""

    runtime: Runtime
    loop: asyncio.AbstractEventLoop


class Embedded(Protocol):
    """What the slot asks of an embedded runtime (``core.embed.GroupsyncRuntime``)."""

    @property
    def stopping(self) -> bool: ...


class ProcessSlot:
    """What this process runs: one installed runtime, one embedded owner, kept tasks."""

    def __init__(self) -> None:
        self._installed: Installed | None = None
        self._embedded: Embedded | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @contextmanager
    def installed(self, runtime: Runtime) -> Iterator[Runtime]:
        """Make ``runtime`` the one public calls run on, for the block. Enter it on the
        runtime's loop (it is recorded: calls from other loops are sent there). Refuses
        a second runtime while one is installed; uninstalls on exit, even on error."""
        loop = asyncio.get_running_loop()  # outside a loop: RuntimeError, nothing held
        if self._installed is not None:
            raise SlotTaken("a groupsync runtime is already installed in this process")
        held = self._installed = Installed(runtime, loop)
        try:
            yield runtime
        finally:
            if self._installed is held:
                self._installed = None

    def current(self) -> Installed | None:
        """The installed runtime and its loop, or None (public calls then hand off)."""
        return self._installed

    def runtime(self) -> Runtime | None:
        return self._installed.runtime if self._installed is not None else None

    def loop_of(self, runtime: Runtime) -> asyncio.AbstractEventLoop | None:
        """The loop ``runtime`` was installed on, or None if it is not the installed one."""
        held = self._installed
        return held.loop if held is not None and held.runtime is runtime else None

    def claim(self, owner: Embedded) -> None:
        """Record ``owner`` as the embedded runtime of this process; refuses while
        another one runs (one that is stopping may be replaced)."""
        current = self._embedded
        if current is not None and current is not owner and not current.stopping:
            raise SlotTaken("a groupsync runtime is already running in this process")
        self._embedded = owner

    def release(self, owner: Embedded) -> None:
        if self._embedded is owner:
            self._embedded = None

    def embedded(self) -> Embedded | None:
        return self._embedded

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Hold a reference until the task ends (the loop keeps only weak ones)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def kept(self) -> int:
        """How many kept tasks have not ended yet."""
        return len(self._tasks)


SLOT = ProcessSlot()
