"""The process's counts for the current minutes, kept in memory (the hot path).

A finished run, an external call's answer, a rate-limit wait each add to a dict under a
lock (calendar calls answer in worker threads); no statement per event. The history loop
takes everything once a minute and flushes it in one statement (``core.history.store``).
Process-wide like ``core.metrics``' registry; the runtime that opens says which clock
and time scale bucket its events (``use``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from core.history.grid import Grid

# Latency buckets (ms), eight per decade from 1 ms to ~28 h: a percentile is read as the
# upper bound of its bucket (at most 33 % above the true value).
LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(round(10 ** (k / 8), 3) for k in range(65))
MAX_ENTRIES = 50_000  # nobody flushing (a process without a leading runtime): stop growing


@dataclass(frozen=True)
class Entry:
    minute: datetime  # start of the minute bucket
    series: str
    label: str
    value: float
    samples: int


def latency_bucket(ms: float) -> str:
    for bound in LATENCY_BOUNDS_MS:
        if ms <= bound:
            return f"{bound:g}"
    return "inf"


class Tally:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[datetime, str, str], list[float]] = {}
        self._grid = Grid()
        self._now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.dropped = 0

    def use(self, now: Callable[[], datetime], grid: Grid) -> None:
        self._now, self._grid = now, grid

    @property
    def grid(self) -> Grid:
        return self._grid

    def add(self, series: str, label: str, value: float = 1.0, *,
            at: datetime | None = None, samples: int = 1) -> None:
        minute = self._grid.start(at or self._now())
        key = (minute, series, label)
        with self._lock:
            found = self._counts.get(key)
            if found is None:
                if len(self._counts) >= MAX_ENTRIES:
                    self.dropped += 1
                    return
                self._counts[key] = [value, samples]
            else:
                found[0] += value
                found[1] += samples

    def latency(self, ms: float, *, at: datetime) -> None:
        self.add("latency", latency_bucket(ms), at=at)

    def take(self) -> list[Entry]:
        with self._lock:
            counts, self._counts = self._counts, {}
        return [Entry(m, s, label, v, int(n)) for (m, s, label), (v, n) in counts.items()]

    def put_back(self, entries: Iterable[Entry]) -> None:
        """A flush that failed (the database away): the counts wait for the next one."""
        for e in entries:
            self.add(e.series, e.label, e.value, at=e.minute, samples=e.samples)


TALLY = Tally()
