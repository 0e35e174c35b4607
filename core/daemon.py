"""The long-lived daemon behind ``groupsync run`` (``python main.py run``).

The daemon is the process runtime (``core.embed.GroupsyncRuntime``) plus stop signals:
engine → schema check (waits while the database is down) → leadership (standby waits
here) → one term as leader: runtime → scheduler (``_scheduler`` set) → recovery (re-arm
owed retries) → reminder delivery (timers armed from the rows, rows left ``sending`` by a
crash settled) → outbox listener → sweep loop. On stop: the sweep ends, the scheduler
stops firing, in-flight runs get ``shutdown_timeout_seconds`` to finish, the rest are
cancelled (their keys stay owed and their leases are released), then everything closes.
On losing the leadership the term ends the same way and the daemon contends again as a
standby; a database outage of any length is ridden out (one log line pair).
"""

from __future__ import annotations

import asyncio
import gc
import signal

from core.config import Settings
from core.embed import DaemonFace, GroupsyncRuntime

__all__ = ["DaemonFace", "install_stop_signals", "run_daemon"]

def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def run_daemon(
    settings: Settings, stop: asyncio.Event | None = None, *, face: DaemonFace | None = None
) -> int:
    daemon = GroupsyncRuntime(settings, role="daemon", face=face, stop=stop)
    await daemon.start(wait=False)
    # What start-up made (imported modules, the clients' discovery documents) lives as long
    # as the process: frozen out of the collector, each full collection walks only what
    # the runs make. Unfrozen, they paused a reshuffle's loop 0.1-0.3 s at a time.
    gc.freeze()
    try:
        await daemon.wait()
    finally:
        await daemon.stop()
    return 0
