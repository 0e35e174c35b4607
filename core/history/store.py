"""The ``history_rollups`` rows: flush a tally (one statement), prune, sample, read.

Each flush adds its counts into the minute row and into the hour row of the same instant
(``value = value + excluded.value``), so every process adds its own counts and an hour
row needs no second pass over the minutes. A gauge (owed keys) is a sum of samples with
their count: its value for any span is ``value / samples``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select

from core.db.models import HistoryRollup, SyncState
from core.db.session import SessionFactory, dialect_name
from core.history.grid import HOUR, MINUTE, Grid
from core.history.tally import Entry

BATCH = 400  # rows per INSERT: far below SQLite's bound-parameter limit


def rows_for(entries: Iterable[Entry], grid: Grid) -> list[dict[str, Any]]:
    """Minute and hour rows for these entries, summed per key (pure)."""
    summed: dict[tuple[str, datetime, str, str], list[float]] = {}
    for e in entries:
        for resolution in (MINUTE, HOUR):
            key = (resolution, grid.start(e.minute, resolution), e.series, e.label)
            found = summed.setdefault(key, [0.0, 0])
            found[0] += e.value
            found[1] += e.samples
    return [{"resolution": r, "at": at, "series": s, "label": label, "value": v,
             "samples": int(n)} for (r, at, s, label), (v, n) in summed.items()]


async def flush(session_factory: SessionFactory, entries: Sequence[Entry], grid: Grid) -> int:
    rows = rows_for(entries, grid)
    if not rows:
        return 0
    async with session_factory() as session, session.begin():
        if dialect_name(session) == "postgresql":
            from sqlalchemy.dialects import postgresql as chosen
        else:
            from sqlalchemy.dialects import sqlite as chosen  # type: ignore[no-redef]
        for first in range(0, len(rows), BATCH):
            stmt = chosen.insert(HistoryRollup).values(rows[first:first + BATCH])
            stmt = stmt.on_conflict_do_update(
                index_elements=[HistoryRollup.resolution, HistoryRollup.at,
                                HistoryRollup.series, HistoryRollup.label],
                set_={"value": HistoryRollup.value + stmt.excluded.value,
                      "samples": HistoryRollup.samples + stmt.excluded.samples},
            )
            await session.execute(stmt)
    return len(rows)


async def prune(session_factory: SessionFactory, now: datetime, grid: Grid,
                minute_days: float, hour_days: float) -> int:
    """Minute rows older than ``minute_days``, hour rows older than ``hour_days`` (both
    on the scaled timeline) go."""
    minutes_before = now - grid.scaled(minute_days * 86400)
    hours_before = now - grid.scaled(hour_days * 86400)
    stmt = delete(HistoryRollup).where(or_(
        (HistoryRollup.resolution == MINUTE) & (HistoryRollup.at < minutes_before),
        (HistoryRollup.resolution == HOUR) & (HistoryRollup.at < hours_before),
    )).execution_options(synchronize_session=False)
    async with session_factory() as session, session.begin():
        result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


async def owed_by_type(session_factory: SessionFactory) -> dict[str, int]:
    """Owed keys per sync type now (the gauge sampled once a minute)."""
    stmt = (select(SyncState.sync_type, func.count())
            .where(SyncState.requested_generation > SyncState.completed_generation)
            .group_by(SyncState.sync_type))
    async with session_factory() as session:
        return {t: int(n) for t, n in (await session.execute(stmt)).all()}


async def read(session_factory: SessionFactory, resolution: str, series: Sequence[str],
               since: datetime, until: datetime) -> list[HistoryRollup]:
    stmt = (select(HistoryRollup)
            .where(HistoryRollup.resolution == resolution,
                   HistoryRollup.series.in_(list(series)),
                   HistoryRollup.at >= since, HistoryRollup.at <= until)
            .order_by(HistoryRollup.at))
    async with session_factory() as session:
        return list((await session.scalars(stmt)).all())

