"""SQLite's stand-in for NOTIFY: wake the outbox sweep soon after another process commits.

What it compares is the schema's wake clock (``wake_clock.ticks``, migration 0014):
triggers bump it on every write to the tables a daemon acts on (sync_state,
service_state, bulk_jobs, held_plans, reminder_deliveries), whichever process writes.
The file's own commit counter (``PRAGMA data_version``) also changed with every
heartbeat of the daemon itself, which woke the sweep and the bulk worker each beat
(issue 26); it remains the fallback for a file without the table. Reading either is a
few microseconds when done in place: the watcher keeps its own plain ``sqlite3``
connection and reads it on the event loop's thread, never waiting on a lock
(``timeout=0``: WAL readers do not block; a busy moment is skipped, the next look
catches up).

It reads it only when the file changed: on Linux an inotify watch on the database's
folder (the file, its ``-wal`` and ``-journal``) makes the kernel say when someone wrote
to them, so an idle daemon does not wake at all. Looking 40 times a second instead was
most of an idle daemon's CPU (issue 26); that poll remains only where inotify is not to
be had (another OS, or the watch limit reached).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import sqlite3
import struct
import sys
from contextlib import AsyncExitStack
from pathlib import Path

from core.observability import get_logger

log = get_logger("groupsync.wakeup")
WATCH_SECONDS = 0.025  # the fallback poll, where the kernel cannot tell us
# After a write, look again after each of these pauses (the commit may not show yet).
LOOK_AGAIN_SECONDS = (0.005, 0.02, 0.05, 0.1, 0.25)

_IN_MODIFY, _IN_MOVED_TO, _IN_CREATE = 0x2, 0x80, 0x100
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then name)


class DataVersion:
    """What the watcher compares between two looks (None: could not read): the schema's
    wake clock (``wake_clock.ticks``, which triggers bump on every write to the tables a
    daemon acts on, by any process), so the daemon's own heartbeats and history writes
    wake nothing; where the table is missing (a bare file), the file's commit counter
    as this connection sees it, which any other connection's commit changes."""

    CLOCK = "SELECT ticks FROM wake_clock WHERE id = 1"
    COMMITS = "PRAGMA data_version"

    def __init__(self, path: Path) -> None:
        # check_same_thread=False: opened and closed from the loop's thread only, but the
        # stack that closes it may run its callbacks after the loop thread changed in tests.
        self._connection = sqlite3.connect(str(path), timeout=0, check_same_thread=False,
                                           isolation_level=None)
        self._query = self.CLOCK if self._has_clock() else self.COMMITS

    def _has_clock(self) -> bool:
        try:
            return self._connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'wake_clock'"
            ).fetchone() is not None
        except sqlite3.Error:
            return False

    def read(self) -> int | None:
        try:
            row = self._connection.execute(self._query).fetchone()
        except sqlite3.Error as exc:  # the file blinked; the sweep's own poll still runs
            log.debug("sqlite_watch_failed", error=str(exc))
            return None
        return int(row[0]) if row else None

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._connection.close()


class FileChanges:
    """An inotify watch on the folder of ``path`` that reports writes to the database's
    own files (events for other files there, such as a log, are read and dropped)."""

    def __init__(self, fd: int, names: frozenset[bytes]) -> None:
        self.fd = fd
        self._names = names

    @classmethod
    def open(cls, path: Path) -> FileChanges | None:
        """The watch, or None where inotify cannot be had."""
        if not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                raise OSError(ctypes.get_errno(), "inotify_init1")
            folder = os.fsencode(path.resolve().parent)
            if libc.inotify_add_watch(fd, folder, _IN_MODIFY | _IN_CREATE | _IN_MOVED_TO) < 0:
                error = ctypes.get_errno()
                os.close(fd)
                raise OSError(error, "inotify_add_watch")
        except (OSError, AttributeError) as exc:
            log.debug("sqlite_inotify_unavailable", error=str(exc))
            return None
        name = os.fsencode(path.name)
        return cls(fd, frozenset({name, name + b"-wal", name + b"-journal"}))

    def touched(self) -> bool:
        """Drain the pending events; True when one was a write to the database's files."""
        touched = False
        while True:
            try:
                data = os.read(self.fd, 64 * 1024)
            except (BlockingIOError, InterruptedError):
                return touched
            except OSError:
                return True  # cannot tell: look at the file
            if not data:
                return touched
            offset = 0
            while offset + _EVENT.size <= len(data):
                _wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
                start = offset + _EVENT.size
                name = data[start : start + length].rstrip(b"\0")
                touched = touched or name in self._names
                offset = start + length

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


async def watch_sqlite(path: Path, wake: asyncio.Event, stack: AsyncExitStack) -> bool:
    """Start watching ``path``; the watcher stops when ``stack`` closes. True when the
    kernel reports the writes (inotify), False when the watcher polls or could not start."""
    try:
        version = DataVersion(path)
    except sqlite3.Error as exc:
        log.warning("sqlite_watch_unavailable", error=str(exc), fallback="polling")
        return False
    stack.callback(version.close)
    changes = FileChanges.open(path)
    if changes is not None:
        _follow(changes, version, wake, stack)
        return True
    # The first look now, not in the task: a commit before the task first ran is seen.
    task = asyncio.get_running_loop().create_task(_watch(version, version.read(), wake))

    async def close() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    stack.push_async_callback(close)
    return False


def _follow(
    changes: FileChanges, version: DataVersion, wake: asyncio.Event, stack: AsyncExitStack
) -> None:
    """Read the version only when the kernel says the files were written to. A writer
    appends its frames before it publishes the commit in the shared index (memory, which
    inotify does not see), and a look may find only an earlier commit (the daemon's own):
    after each write the watcher looks at once and again a few times over a moment."""
    loop = asyncio.get_running_loop()
    last = version.read()
    later: list[asyncio.TimerHandle] = []

    def look(step: int) -> None:
        nonlocal last
        later.clear()
        current = version.read()
        if current is not None and last is not None and current != last:
            wake.set()
        if current is not None:
            last = current
        if step < len(LOOK_AGAIN_SECONDS):
            later.append(loop.call_later(LOOK_AGAIN_SECONDS[step], look, step + 1))

    def on_change() -> None:
        if changes.touched():
            for handle in later:
                handle.cancel()
            look(0)

    loop.add_reader(changes.fd, on_change)

    def close() -> None:
        for handle in later:
            handle.cancel()
        with contextlib.suppress(Exception):
            loop.remove_reader(changes.fd)
        changes.close()

    stack.callback(close)


async def _watch(version: DataVersion, last: int | None, wake: asyncio.Event) -> None:
    while True:
        await asyncio.sleep(WATCH_SECONDS)
        current = version.read()
        if current is None:
            continue
        if last is not None and current != last:
            wake.set()
        last = current
