"""Coordinator memory: every per-key entry is freed, whatever the outcome of the run.

For N keys, a run starts and a second caller queues behind it while it is in flight; the
outcome of each key rotates through the cases a daemon meets: the run succeeds, the run
raises, the queued run finds the key already done (the case that used to leak), and the
queued run is cancelled (shutdown). After the coalescing window has passed, the
coordinator must hold no entry. Prints one JSON line.
Usage: uv run python -m bench.coordinator_memory [N]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time

from core.engine.running.coordinator import Coordinator

WINDOW = 0.01  # seconds: short, so the bench waits it out quickly


async def one_key(coordinator: Coordinator, key: int) -> None:
    case = key % 4
    release = asyncio.Event()

    async def run() -> str:
        await release.wait()
        if case == 1:
            raise RuntimeError("the run failed")
        return "ran"

    async def already_done() -> str | None:
        return "up to date" if case == 2 else None

    first = asyncio.ensure_future(coordinator.run(key, run, still_needed=already_done))
    await asyncio.sleep(0)  # the first run is now in flight
    second = asyncio.ensure_future(coordinator.run(key, run, still_needed=already_done))
    await asyncio.sleep(0)
    if case == 3:
        queued = coordinator._keys[key].queued  # cancelled while it waits, as at shutdown
        assert queued is not None
        queued.cancel()
    release.set()
    for caller in (first, second):
        with contextlib.suppress(RuntimeError, asyncio.CancelledError):
            await caller


async def main(n: int) -> dict[str, object]:
    coordinator = Coordinator(window=WINDOW)
    started = time.perf_counter()
    keys = [asyncio.ensure_future(one_key(coordinator, key)) for key in range(n)]
    for _ in range(5):
        await asyncio.sleep(0)
    peak_entries = coordinator.size  # every key in flight, one queued behind each
    await asyncio.gather(*keys)
    await asyncio.sleep(WINDOW * 5)  # every entry's window has passed
    elapsed = time.perf_counter() - started
    return {
        "bench": "coordinator_memory",
        "keys": n,
        "entries_while_running": peak_entries,
        "entries_after_window": coordinator.size,
        "tracked_tasks_after": len(coordinator._tasks),
        "seconds": round(elapsed, 3),
    }


if __name__ == "__main__":
    keys = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    print(json.dumps(asyncio.run(main(keys))))
