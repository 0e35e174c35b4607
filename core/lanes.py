"""The two lanes of outbound work (DESIGN §4), and the seam through which a client gives
the engine back a run's slot while the run only waits for a rate-limit token.

The engine holds one of a bounded number of run slots per run; a run that waits for a
token does no work, so it should not keep an interactive key (or another background key
whose service has tokens to spare) from starting. The engine installs a ``SlotHolder`` in
the run's context; the client's limiter wraps every wait in ``slot_released()``. Outside
an engine run (a test, a tool) there is no holder and the wait is a plain wait.

The holder also carries the run's ``LaneAsk``: a run the engine started in the background
lane may be raised to interactive while it is in flight (an interactive caller now waits
for it), and a background call of that run then waits for its token in the interactive
lane (``run_ask``), not behind the rest of the background queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar, Token
from enum import StrEnum
from typing import Protocol


class Lane(StrEnum):
    INTERACTIVE = "interactive"  # caused by a membership change or an operator
    BACKGROUND = "background"  # periodic refreshes and sweeps: throttled first


class LaneAsk:
    """The lane one queued run is owed, shared by every caller that joins it: an
    interactive caller joining a run queued by background work raises it to interactive
    (priority inheritance), and whoever waits on the ask (a run slot) is told at once."""

    def __init__(self, lane: Lane) -> None:
        self.lane = lane
        self._on_raise: list[Callable[[], None]] = []

    def raise_to(self, lane: Lane) -> None:
        if lane is Lane.INTERACTIVE and self.lane is Lane.BACKGROUND:
            self.lane = Lane.INTERACTIVE
            for listener in list(self._on_raise):
                listener()

    def lane_for(self, lane: Lane) -> Lane:
        """The lane a call of this run that asks for ``lane`` is owed: interactive once the
        run was raised, whatever lane its syncer was started in."""
        return Lane.INTERACTIVE if self.lane is Lane.INTERACTIVE else lane

    def on_raise(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` when the ask is raised; returns the undo."""
        self._on_raise.append(listener)
        return lambda: self._on_raise.remove(listener)


class SlotHolder(Protocol):
    @property
    def ask(self) -> LaneAsk: ...

    def release(self) -> None: ...

    async def reacquire(self) -> None: ...


_holder: ContextVar[SlotHolder | None] = ContextVar("groupsync_run_slot", default=None)


def install_slot_holder(holder: SlotHolder | None) -> Token[SlotHolder | None]:
    return _holder.set(holder)


def uninstall_slot_holder(token: Token[SlotHolder | None]) -> None:
    _holder.reset(token)


def run_ask() -> LaneAsk | None:
    """The lane ask of the engine run this code runs in (None outside an engine run)."""
    holder = _holder.get()
    return None if holder is None else holder.ask


async def slot_back() -> None:
    """Make sure the run holds its slot again (waiting for it if need be): for a wait that
    was cancelled half-way through ``slot_released``, whose own take-back was cut short."""
    holder = _holder.get()
    if holder is not None:
        await holder.reacquire()


@asynccontextmanager
async def slot_released() -> AsyncIterator[None]:
    """Around a wait that does no work: the run's slot is free meanwhile, and taken back
    (waiting for it if need be) before the run goes on."""
    holder = _holder.get()
    if holder is None:
        yield
        return
    holder.release()
    try:
        yield
    finally:
        await holder.reacquire()
