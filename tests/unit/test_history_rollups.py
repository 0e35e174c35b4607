"""The pure parts of the history rollups: buckets, the tally, rows, series, percentiles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.admin.charts import render_svg
from core.history.grid import HOUR, MINUTE, Grid
from core.history.series import RANGES, SERIES, build, percentile, step_starts
from core.history.store import rows_for
from core.history.tally import Tally, latency_bucket

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_a_minute_bucket_holds_its_instants_and_follows_the_time_scale() -> None:
    assert Grid(1.0).start(T0 + timedelta(seconds=59.999999)) == T0
    assert Grid(1.0).start(T0 + timedelta(seconds=60)) == T0 + timedelta(minutes=1)
    scaled = Grid(0.01)  # a minute is 0.6 s
    at = T0 + timedelta(seconds=1.3)
    assert scaled.start(at) == T0 + timedelta(seconds=1.2)
    assert scaled.start(scaled.start(at)) == scaled.start(at)  # a start is its own bucket
    assert scaled.start(at, HOUR) == T0  # 36 s hours: 12:00:00 starts one
    assert scaled.width(HOUR) == 60 * scaled.width(MINUTE)


def test_the_tally_sums_by_minute_series_and_label_and_empties_when_taken() -> None:
    tally = Tally()
    tally.use(lambda: T0, Grid(1.0))
    tally.add("runs", "discord:ok", at=T0 + timedelta(seconds=5))
    tally.add("runs", "discord:ok", at=T0 + timedelta(seconds=50))
    tally.add("runs", "discord:ok", at=T0 + timedelta(seconds=70))
    tally.add("calls", "discord:204")  # the tally's clock: T0
    taken = {(e.minute, e.series, e.label): e.value for e in tally.take()}
    assert taken == {(T0, "runs", "discord:ok"): 2, (T0 + timedelta(minutes=1), "runs",
                     "discord:ok"): 1, (T0, "calls", "discord:204"): 1}
    assert tally.take() == []


def test_a_failed_flush_puts_the_counts_back() -> None:
    tally = Tally()
    tally.add("runs", "calendar:ok", at=T0)
    entries = tally.take()
    tally.put_back(entries)
    tally.add("runs", "calendar:ok", at=T0)
    (entry,) = tally.take()
    assert (entry.value, entry.samples) == (2, 2)


def test_each_count_lands_in_its_minute_row_and_its_hour_row() -> None:
    tally = Tally()
    for minute in (0, 0, 1, 61):
        tally.add("runs", "rsvps:ok", at=T0 + timedelta(minutes=minute))
    rows = {(r["resolution"], r["at"]): r["value"] for r in rows_for(tally.take(), Grid(1.0))}
    assert rows == {
        (MINUTE, T0): 2, (MINUTE, T0 + timedelta(minutes=1)): 1,
        (MINUTE, T0 + timedelta(minutes=61)): 1,
        (HOUR, T0): 3, (HOUR, T0 + timedelta(hours=1)): 1,
    }


def test_latency_percentiles_are_the_upper_bounds_of_their_buckets() -> None:
    buckets: dict[str, float] = {}
    for ms in [20.0] * 98 + [900.0, 4000.0]:
        label = latency_bucket(ms)
        buckets[label] = buckets.get(label, 0) + 1
    p50, p99 = percentile(buckets, 0.5), percentile(buckets, 0.99)
    assert p50 is not None
    assert 20 <= p50 < 20 * 1.34
    assert p99 is not None
    assert 900 <= p99 < 900 * 1.34
    assert percentile({}, 0.5) is None


@dataclass
class FakeRow:
    at: datetime
    series: str
    label: str
    value: float
    samples: int = 1


def test_a_series_has_a_point_per_step_counters_zero_and_gauges_none_when_absent() -> None:
    grid = Grid(1.0)
    now = T0 + timedelta(minutes=59, seconds=30)
    starts = step_starts(now, grid, RANGES["1h"])
    assert len(starts) == 60
    assert starts[0] == T0
    assert starts[-1] == T0 + timedelta(minutes=59)
    rows = [FakeRow(T0, "runs", "discord:ok", 3), FakeRow(T0 + timedelta(minutes=2), "runs",
            "discord:transient", 1), FakeRow(T0, "owed", "discord", 10, 2)]
    runs = build(SERIES["runs"], rows, starts, timedelta(minutes=1))
    assert runs["labels"] == ["discord:ok", "discord:transient"]
    assert runs["points"][0]["values"] == {"discord:ok": 3, "discord:transient": 0}
    assert runs["totals"] == {"discord:ok": 3, "discord:transient": 1}
    owed = build(SERIES["owed"], rows, starts, timedelta(minutes=1))
    assert owed["points"][0]["values"] == {"discord": 5}  # two samples, mean 5
    assert owed["points"][1]["values"] == {"discord": None}


def test_the_24h_range_sums_minutes_into_quarter_hours() -> None:
    grid = Grid(1.0)
    starts = step_starts(T0 + timedelta(hours=23, minutes=50), grid, RANGES["24h"])
    assert len(starts) == 96
    rows = [FakeRow(T0 + timedelta(minutes=m), "runs", "calendar:ok", 1) for m in range(20)]
    built = build(SERIES["runs"], rows, starts, timedelta(minutes=15))
    assert [p["values"]["calendar:ok"] for p in built["points"][:3]] == [15, 5, 0]


def test_the_chart_is_labelled_escaped_and_says_when_it_is_empty() -> None:
    starts = step_starts(T0, Grid(1.0), RANGES["1h"])
    rows = [FakeRow(T0, "runs", "<discord>:ok", 4)]
    svg = render_svg(build(SERIES["runs"], rows, starts, timedelta(minutes=1)), "1h")
    assert "&lt;discord&gt;:ok: 4" in svg
    assert "<discord>" not in svg
    assert "<polyline" in svg
    assert "<desc>Sync runs (runs) over 1h, total" in svg
    empty = render_svg(build(SERIES["calls"], [], starts, timedelta(minutes=1)), "1h")
    assert "no data yet" in empty
    assert "<polyline" not in empty
