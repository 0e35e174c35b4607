"""From rollup rows to the series the API and the charts show (pure: no I/O).

A range is a span, the resolution its rows come from and the step of its points:
1 h = 60 one-minute points, 24 h = 96 of 15 minutes (from minute rows), 14 d = 336
hourly points and 90 d = 90 daily ones (from hour rows); all on the scaled timeline.
Counters sum over a step, a gauge is its mean sample, latency percentiles come from the
merged bucket counts (the bucket's upper bound).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from core.history.grid import EPOCH, HOUR, MICRO, MINUTE, Grid
from core.history.tally import LATENCY_BOUNDS_MS

Kind = Literal["counter", "gauge", "latency"]


@dataclass(frozen=True)
class Range:
    name: str
    span_minutes: int
    resolution: str
    step_minutes: int

    @property
    def points(self) -> int:
        return self.span_minutes // self.step_minutes


RANGES = {r.name: r for r in (
    Range("1h", 60, MINUTE, 1),
    Range("24h", 24 * 60, MINUTE, 15),
    Range("14d", 14 * 24 * 60, HOUR, 60),
    Range("90d", 90 * 24 * 60, HOUR, 24 * 60),
)}


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    unit: str
    kind: Kind
    what: str  # what a label names


SERIES = {s.name: s for s in (
    Spec("runs", "Sync runs", "runs", "counter", "sync type:outcome"),
    Spec("calls", "External calls", "calls", "counter", "service:HTTP status"),
    Spec("rate_limit_waits", "Rate-limit waits", "waits", "counter", "service:lane"),
    Spec("owed", "Owed keys", "keys", "gauge", "sync type"),
    Spec("latency", "Commit to applied latency", "ms", "latency", "percentile"),
)}
PERCENTILES = (("p50", 0.5), ("p99", 0.99))


class Row(Protocol):
    at: datetime
    series: str
    label: str
    value: float
    samples: int


def step_starts(now: datetime, grid: Grid, chosen: Range) -> list[datetime]:
    """The starts of the range's points, the last one holding ``now``."""
    step_us = grid.minute_us * chosen.step_minutes
    last = ((now - EPOCH) // MICRO) // step_us * step_us
    return [EPOCH + MICRO * (last - step_us * k) for k in range(chosen.points - 1, -1, -1)]


def percentile(buckets: dict[str, float], q: float) -> float | None:
    """The upper bound of the bucket holding the q-th share of the counts."""
    total = sum(buckets.values())
    if total <= 0:
        return None
    ordered = sorted(buckets.items(), key=lambda item: _bound(item[0]))
    seen = 0.0
    for label, count in ordered:
        seen += count
        if seen >= q * total - 1e-9:
            return _bound(label)
    return _bound(ordered[-1][0])


def _bound(label: str) -> float:
    # Past the last bound: reported as that bound (JSON has no infinity), "at least".
    return LATENCY_BOUNDS_MS[-1] if label == "inf" else float(label)


def build(spec: Spec, rows: Iterable[Row], starts: Sequence[datetime],
          step: timedelta) -> dict[str, Any]:
    """One series: its labels, a point per step (absent counts are 0, absent samples
    None) and its totals over the range."""
    index = {at: n for n, at in enumerate(starts)}
    first = starts[0]
    sums: list[dict[str, list[float]]] = [{} for _ in starts]
    for row in rows:
        if row.series != spec.name or row.at < first:
            continue
        slot = index.get(first + step * ((row.at - first) // step))
        if slot is None:
            continue
        found = sums[slot].setdefault(row.label, [0.0, 0.0])
        found[0] += row.value
        found[1] += row.samples
    if spec.kind == "latency":
        return _latency(spec, sums, starts)
    labels = sorted({label for point in sums for label in point})
    points: list[dict[str, Any]] = []
    totals: dict[str, float] = {}
    peaks: dict[str, float] = {}
    for at, point in zip(starts, sums, strict=True):
        values: dict[str, float | None] = {}
        for label in labels:
            value, samples = point.get(label, (0.0, 0.0))
            if spec.kind == "gauge":
                values[label] = mean = round(value / samples, 2) if samples else None
                peaks[label] = max(peaks.get(label, 0.0), mean or 0.0)
            else:
                values[label] = value
                totals[label] = totals.get(label, 0.0) + value
        points.append({"at": at.isoformat(), "values": values})
    if spec.kind == "gauge":
        totals = peaks  # a gauge's "total" over a range is its highest mean
    return _shape(spec, labels, points, totals)


def _latency(spec: Spec, sums: list[dict[str, list[float]]], starts: Sequence[datetime]
             ) -> dict[str, Any]:
    labels = [name for name, _ in PERCENTILES]
    merged: dict[str, float] = {}
    points = []
    for at, point in zip(starts, sums, strict=True):
        buckets = {label: value for label, (value, _) in point.items()}
        for label, count in buckets.items():
            merged[label] = merged.get(label, 0.0) + count
        points.append({"at": at.isoformat(),
                       "values": {name: percentile(buckets, q) for name, q in PERCENTILES}})
    totals = {name: percentile(merged, q) for name, q in PERCENTILES}
    return _shape(spec, labels, points, {k: v for k, v in totals.items() if v is not None})


def _shape(spec: Spec, labels: list[str], points: list[dict[str, Any]],
           totals: dict[str, float]) -> dict[str, Any]:
    return {"name": spec.name, "title": spec.title, "unit": spec.unit, "kind": spec.kind,
            "label_names": spec.what, "labels": labels, "points": points,
            "totals": totals}
