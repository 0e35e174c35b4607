"""Run slots in two lanes: how many syncs one process runs at once (DESIGN §4).

``total`` slots, of which ``reserved`` only interactive runs may take: background work
(periodic refreshes, sweeps) can never fill the process, so a membership change starts at
once however busy the background lane is. Waiters are served interactive first, then in
arrival order; a waiter's lane is read when it is served, so a background run that an
interactive caller joined (its ``LaneAsk`` raised) is served as interactive from then on.
A run holds its slot through ``hold(ask)``, which also installs the run's
``SlotHolder`` (core/lanes.py): the client's limiter gives the slot back while the run only
waits for a rate-limit token, and takes it back (waiting if need be) before the call.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from core.lanes import Lane, LaneAsk, install_slot_holder, uninstall_slot_holder


def reserved_for_interactive(total: int) -> int:
    """A quarter of the slots, at least one when there are two or more."""
    return 0 if total < 2 else max(1, total // 4)


class RunSlots:
    def __init__(self, total: int, reserved: int | None = None) -> None:
        if total < 1:
            raise ValueError(f"total must be at least 1, got {total}")
        self.total = total
        self.reserved = reserved_for_interactive(total) if reserved is None else reserved
        self._busy = {Lane.INTERACTIVE: 0, Lane.BACKGROUND: 0}
        self._waiters: deque[tuple[LaneAsk, asyncio.Future[Lane]]] = deque()

    def busy(self, lane: Lane) -> int:
        return self._busy[lane]

    def capacity(self, lane: Lane) -> int:
        """Slots ``lane`` may fill: all of them for interactive runs, the unreserved ones for
        background runs."""
        return self.total if lane is Lane.INTERACTIVE else self.total - self.reserved

    def _can_take(self, lane: Lane) -> bool:
        if sum(self._busy.values()) >= self.total:
            return False
        return self._busy[lane] < self.capacity(lane)

    def _queued_ahead(self, lane: Lane) -> bool:
        return any(ask.lane is Lane.INTERACTIVE or ask.lane is lane for ask, _ in self._waiters)

    async def acquire(self, wanted: Lane | LaneAsk) -> Lane:
        """Take a slot; returns the lane it was taken in (what ``release`` is given)."""
        ask = wanted if isinstance(wanted, LaneAsk) else LaneAsk(wanted)
        if self._can_take(ask.lane) and not self._queued_ahead(ask.lane):
            self._busy[ask.lane] += 1
            return ask.lane
        future: asyncio.Future[Lane] = asyncio.get_running_loop().create_future()
        entry = (ask, future)
        self._waiters.append(entry)
        undo = ask.on_raise(self._hand_over)  # raised while waiting: maybe served now
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(future.result())  # handed to us as we were cancelled: pass it on
            else:
                self._waiters.remove(entry)
            raise
        finally:
            undo()

    def release(self, lane: Lane) -> None:
        self._busy[lane] -= 1
        self._hand_over()

    def _hand_over(self) -> None:
        # Stop scanning a lane once it is full: with hundreds of runs queued (an outbox
        # sweep's batch), checking every waiter on every release was quadratic.
        for lane in (Lane.INTERACTIVE, Lane.BACKGROUND):
            if not self._can_take(lane):
                continue
            for entry in list(self._waiters):
                ask, future = entry
                if ask.lane is not lane:
                    continue
                self._waiters.remove(entry)
                if not future.done():
                    self._busy[lane] += 1
                    future.set_result(lane)
                    if not self._can_take(lane):
                        break

    @asynccontextmanager
    async def hold(self, wanted: Lane | LaneAsk) -> AsyncIterator[None]:
        holder = _Holder(self, wanted if isinstance(wanted, LaneAsk) else LaneAsk(wanted))
        await holder.reacquire()
        token = install_slot_holder(holder)
        try:
            yield
        finally:
            uninstall_slot_holder(token)
            holder.release()


class _Holder:
    """One run's claim on a slot; released and re-taken around token waits.

    A run may have several calls in flight together, each waiting for its token: the
    first wait gives the slot up, and the first call past its wait takes it back while
    the others queue on the lock (one run never holds two slots)."""

    def __init__(self, slots: RunSlots, ask: LaneAsk) -> None:
        self._slots, self._ask = slots, ask
        self._held: Lane | None = None  # the lane the slot was taken in
        self._taking = asyncio.Lock()

    @property
    def ask(self) -> LaneAsk:
        return self._ask

    def release(self) -> None:
        if self._held is not None:
            lane, self._held = self._held, None
            self._slots.release(lane)

    async def reacquire(self) -> None:
        async with self._taking:
            if self._held is None:
                self._held = await self._slots.acquire(self._ask)
