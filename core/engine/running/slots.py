"""Run slots in two lanes: how many syncs one process runs at once (DESIGN §4).

``total`` slots, of which ``reserved`` only interactive runs may take: background work
(periodic refreshes, sweeps) can never fill the process, so a membership change starts at
once however busy the background lane is. Waiters are served interactive first, then in
arrival order. A run holds its slot through ``hold(lane)``, which also installs the run's
``SlotHolder`` (core/lanes.py): the client's limiter gives the slot back while the run only
waits for a rate-limit token, and takes it back (waiting if need be) before the call.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from core.lanes import Lane, install_slot_holder, uninstall_slot_holder


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
        self._waiters: deque[tuple[Lane, asyncio.Future[None]]] = deque()

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
        return any(w_lane is Lane.INTERACTIVE or w_lane is lane for w_lane, _ in self._waiters)

    async def acquire(self, lane: Lane) -> None:
        if self._can_take(lane) and not self._queued_ahead(lane):
            self._busy[lane] += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (lane, future)
        self._waiters.append(entry)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(lane)  # handed to us as we were cancelled: pass it on
            else:
                self._waiters.remove(entry)
            raise

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
                waiting_lane, future = entry
                if waiting_lane is not lane:
                    continue
                self._waiters.remove(entry)
                if not future.done():
                    self._busy[lane] += 1
                    future.set_result(None)
                    if not self._can_take(lane):
                        break

    @asynccontextmanager
    async def hold(self, lane: Lane) -> AsyncIterator[None]:
        holder = _Holder(self, lane)
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

    def __init__(self, slots: RunSlots, lane: Lane) -> None:
        self._slots, self._lane, self._held = slots, lane, False
        self._taking = asyncio.Lock()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.release(self._lane)

    async def reacquire(self) -> None:
        async with self._taking:
            if not self._held:
                await self._slots.acquire(self._lane)
                self._held = True
