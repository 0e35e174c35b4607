"""In-process coalescing per key, and the set of runs a shutdown must wait for.

The row lease makes runs exclusive across processes; this makes concurrent callers in
one process share runs instead of queueing one each. Per key there is at most one run in
flight and at most one queued behind it: a caller that arrives while a run is in flight
joins the queued one, which starts when the current run ends and no sooner than
``window`` seconds after it started. A burst of requests therefore costs one leading and
one trailing run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class _KeyState:
    current: asyncio.Task[Any] | None = None
    queued: asyncio.Task[Any] | None = None
    last_start: float = float("-inf")


@dataclass
class Coordinator:
    window: float  # seconds, already scaled
    _keys: dict[Hashable, _KeyState] = field(default_factory=dict)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _closed: bool = False

    @property
    def size(self) -> int:
        """Keys with an entry: in flight, queued, or inside their window."""
        return len(self._keys)

    def busy(self, key: Hashable) -> bool:
        state = self._keys.get(key)
        return state is not None and (state.current is not None or state.queued is not None)

    async def run(
        self,
        key: Hashable,
        fn: Callable[[], Awaitable[T]],
        *,
        still_needed: Callable[[], Awaitable[T | None]] | None = None,
    ) -> T:
        """Run ``fn`` for ``key``, or share a run that has not started yet.

        A queued run first awaits ``still_needed`` (when given) once the run before it has
        ended: a non-None value means the work is already done, and is every caller's
        result, so nobody waits out the window for nothing."""
        if self._closed:
            raise asyncio.CancelledError("shutting down")
        state = self._keys.setdefault(key, _KeyState())
        loop = asyncio.get_running_loop()
        if state.queued is None:
            wait = state.current is not None or loop.time() < state.last_start + self.window
            state.queued = self.spawn(self._start(key, state, fn, wait, still_needed))
            # A queued run cancelled before it ever started never reaches its ``finally``.
            state.queued.add_done_callback(lambda task: self._settle(key, state, task))
        # shield: a caller that gives up does not cancel a run others share.
        return await asyncio.shield(state.queued)

    async def _start(
        self,
        key: Hashable,
        state: _KeyState,
        fn: Callable[[], Awaitable[T]],
        wait: bool,
        still_needed: Callable[[], Awaitable[T | None]] | None,
    ) -> T:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        try:
            if wait:
                if state.current is not None:
                    await asyncio.wait([state.current])
                if still_needed is not None:
                    done = await still_needed()
                    if done is not None:
                        return done
                delay = state.last_start + self.window - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            # From here on, new callers queue behind this run rather than join it: they
            # may carry a change this run has already missed.
            state.queued, state.current, state.last_start = None, me, loop.time()
            return await fn()
        finally:
            if me is not None:
                self._settle(key, state, me)

    def _settle(self, key: Hashable, state: _KeyState, task: asyncio.Task[Any]) -> None:
        """Whatever the outcome (ran, found the work done, failed, was cancelled, even
        before it started), the entry goes once nothing is in flight or queued."""
        if state.queued is task:
            state.queued = None
        if state.current is task:
            state.current = None
        if state.current is None and state.queued is None:
            # Keep the state for the window so a caller right after still waits.
            asyncio.get_running_loop().call_later(
                max(self.window, 0), self._forget, key, state
            )

    def _forget(self, key: Hashable, state: _KeyState) -> None:
        if self._keys.get(key) is state and state.current is None and state.queued is None:
            del self._keys[key]

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start a tracked task: shutdown waits for it, then cancels it."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it; callers saw it

    def close(self) -> None:
        """Start no new run from now on (leadership lost, shutdown); in-flight runs go on."""
        self._closed = True

    async def drain(self, timeout: float) -> int:
        """Stop taking work, wait up to ``timeout`` for in-flight runs, cancel the rest.
        Returns how many were cancelled."""
        self._closed = True
        pending = set(self._tasks)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            with contextlib.suppress(Exception):
                await asyncio.wait(pending, timeout=5)
        return len(pending)
