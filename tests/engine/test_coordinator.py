"""The in-process coordinator frees its entry for a key whatever the run's outcome."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest

from core.engine.running.coordinator import Coordinator

WINDOW = 0.01


async def _run_then_queue(
    coordinator: Coordinator,
    run: Callable[[], Awaitable[str]],
    still_needed: Callable[[], Awaitable[str | None]] | None = None,
    cancel_queued: bool = False,
) -> None:
    release = asyncio.Event()

    async def first_run() -> str:
        await release.wait()
        return await run()

    first = asyncio.ensure_future(coordinator.run("k", first_run))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(coordinator.run("k", run, still_needed=still_needed))
    await asyncio.sleep(0)
    if cancel_queued:
        queued = coordinator._keys["k"].queued
        assert queued is not None
        queued.cancel()  # as a shutdown does, before it ever started
    release.set()
    for caller in (first, second):
        with contextlib.suppress(RuntimeError, asyncio.CancelledError):
            await caller


async def _ok() -> str:
    return "ran"


async def _fails() -> str:
    raise RuntimeError("the sync failed")


async def _done() -> str | None:
    return "up to date"


@pytest.mark.parametrize(
    ("run", "still_needed", "cancel_queued"),
    [(_ok, None, False), (_fails, None, False), (_ok, _done, False), (_ok, None, True)],
    ids=["ran", "raised", "queued-run-found-it-done", "queued-run-cancelled"],
)
async def test_every_entry_is_freed_after_the_window(
    run: Callable[[], Awaitable[str]],
    still_needed: Callable[[], Awaitable[str | None]] | None,
    cancel_queued: bool,
) -> None:
    coordinator = Coordinator(window=WINDOW)

    await _run_then_queue(coordinator, run, still_needed, cancel_queued)
    await asyncio.sleep(WINDOW * 5)

    assert coordinator.size == 0
    assert not coordinator.busy("k")
