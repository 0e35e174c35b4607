"""Wake-ups of one calendar's incremental list (Calendar push, issue 22), and the lock that
keeps one list of a calendar at a time.

A verified push notification calls ``wake(calendar_id)``; the push loop's worker takes
the woken calendars with ``woken()`` and lists each at once. The periodic pass and a
woken list of the same calendar take the same ``lock``: two lists from one stored token
would apply the same changes twice. Wakes that arrive while a calendar is being listed
leave it woken again, so a change made during a list is listed right after it.
"""

from __future__ import annotations

import asyncio


class CalendarWakes:
    def __init__(self) -> None:
        self._pending: dict[str, None] = {}  # insertion-ordered set of woken calendars
        self._event = asyncio.Event()
        self._locks: dict[str, asyncio.Lock] = {}
        self.wakes = 0  # notifications that woke a list (for status and tests)

    def wake(self, calendar_id: str) -> None:
        self.wakes += 1
        self._pending[calendar_id] = None
        self._event.set()

    async def woken(self) -> list[str]:
        """The calendars woken since the last call (waits for at least one)."""
        await self._event.wait()
        self._event.clear()
        woken, self._pending = list(self._pending), {}
        return woken

    def lock(self, calendar_id: str) -> asyncio.Lock:
        return self._locks.setdefault(calendar_id, asyncio.Lock())
