"""Bulk retry: a preview, then a durable job whose items are its progress.

The job and its items are rows: any process can create, read or cancel one, and the
active daemon's ``BulkWorker`` runs the items in the background lane, a few at a time,
so interactive syncs keep their share of the process and of the services' rate limits.
Cancelling marks every item not yet started as cancelled: those keys are left untouched.
A cancelled job whose items were running is shown ``cancelling`` until they end, then
``cancelled`` with ``finished_at`` (never "cancelled" while work still runs). The row keeps
``cancelled`` with no ``finished_at`` meanwhile: the state shown is derived from both.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, update

from core.admin.control import _notify, make_due
from core.admin.errors import Conflict, Invalid, NotFound
from core.admin.estimate import estimate_key
from core.admin.keys import KeyFilter
from core.db.models import BulkJob, BulkJobItem, SyncState, SyncType
from core.db.session import SessionFactory, engine_of
from core.engine.health.outage import is_database_unavailable
from core.engine.running.state import SyncKey
from core.lanes import Lane
from core.observability import get_logger

if TYPE_CHECKING:
    from core.runtime import Runtime

log = get_logger("groupsync.bulk")

SCOPE_STATUSES = ("failing", "retrying", "needs_attention")
# Between jobs the worker waits to be woken: a job created through this daemon's API
# wakes it at once, one another process queued wakes it with the outbox sweep (its
# NOTIFY, or the SQLite file written). It still looks every IDLE_SECONDS: one small read,
# where a look every second was a fifth of an idle daemon's CPU (issue 26).
IDLE_SECONDS = 10.0
WAKE_FLOOR_SECONDS = 1.0
ESTIMATE_SAMPLE = 500  # keys planned one by one; beyond that the average is extrapolated


@dataclass(frozen=True)
class BulkScope:
    service: str | None = None
    status: str | None = None  # default: every failing key (retrying or needs attention)

    def key_filter(self) -> KeyFilter:
        status = self.status or "failing"
        if status not in SCOPE_STATUSES:
            raise Invalid(f"bulk retry takes failing keys only: status must be one of "
                          f"{', '.join(SCOPE_STATUSES)}, got {status!r}")
        return KeyFilter(service=self.service, status=status)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in {"service": self.service, "status": self.status}.items() if v}


async def _keys_in(session_factory: SessionFactory, scope: BulkScope) -> list[SyncKey]:
    conditions = scope.key_filter().conditions()
    async with session_factory() as session:
        rows = await session.execute(
            select(SyncState.sync_type, SyncState.group_id).where(*conditions)
            .order_by(SyncState.group_id, SyncState.sync_type))
        return [SyncKey(SyncType(t), g) for t, g in rows]


async def preview(session_factory: SessionFactory, scope: BulkScope, now: datetime,
                  settings: Any = None) -> dict[str, Any]:
    found = await _keys_in(session_factory, scope)
    calls = 0  # only the count: a bulk preview lists no items
    if settings is not None:
        async with session_factory() as session:
            for key in found[:ESTIMATE_SAMPLE]:
                calls += (await estimate_key(session, settings, key.sync_type, key.group_id,
                                             now, lane=Lane.BACKGROUND)).calls
    if len(found) > ESTIMATE_SAMPLE:
        calls = round(calls * len(found) / ESTIMATE_SAMPLE)
    return {"scope": scope.to_json(), "groups": len({k.group_id for k in found}),
            "keys": len(found), "estimated_calls": calls}


async def create(session_factory: SessionFactory, scope: BulkScope, now: datetime, via: str
                 ) -> dict[str, Any]:
    found = await _keys_in(session_factory, scope)
    async with session_factory() as session, session.begin():
        job = BulkJob(kind="retry", state="queued" if found else "done", scope=scope.to_json(),
                      requested_by=via, created_at=now, updated_at=now,
                      finished_at=None if found else now)
        session.add(job)
        await session.flush()
        session.add_all(BulkJobItem(job_id=job.id, sync_type=k.sync_type,
                                    group_id=k.group_id, state="queued", updated_at=now)
                        for k in found)
        job_id = job.id
        await _notify(session)  # the active daemon's worker, whichever process queued it
    return await get_job(session_factory, job_id)


def shown_state(job: BulkJob) -> str:
    """``cancelling`` while a cancelled job's running items have not ended."""
    return "cancelling" if job.state == "cancelled" and job.finished_at is None else job.state


def _job_json(job: BulkJob, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": job.id, "state": shown_state(job), "scope": job.scope,
        "requested_by": job.requested_by,
        "total": sum(counts.values()),
        "done": counts.get("done", 0), "failed": counts.get("failed", 0),
        "remaining": counts.get("queued", 0) + counts.get("running", 0),
        "cancelled": counts.get("cancelled", 0),
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


async def _counts(session: Any, job_ids: list[int]) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {i: {} for i in job_ids}
    if job_ids:
        rows = await session.execute(
            select(BulkJobItem.job_id, BulkJobItem.state, func.count())
            .where(BulkJobItem.job_id.in_(job_ids))
            .group_by(BulkJobItem.job_id, BulkJobItem.state))
        for job_id, state, n in rows:
            counts[job_id][state] = int(n)
    return counts


async def get_job(session_factory: SessionFactory, job_id: int) -> dict[str, Any]:
    async with session_factory() as session:
        job = await session.get(BulkJob, job_id)
        if job is None:
            raise NotFound(f"no bulk job {job_id}")
        return _job_json(job, (await _counts(session, [job_id]))[job_id])


async def list_jobs(session_factory: SessionFactory, limit: int = 20) -> list[dict[str, Any]]:
    async with session_factory() as session:
        jobs = (await session.scalars(
            select(BulkJob).order_by(BulkJob.id.desc()).limit(limit))).all()
        counts = await _counts(session, [j.id for j in jobs])
    return [_job_json(j, counts[j.id]) for j in jobs]


async def cancel(session_factory: SessionFactory, job_id: int, now: datetime) -> dict[str, Any]:
    async with session_factory() as session, session.begin():
        job = await session.get(BulkJob, job_id)
        if job is None:
            raise NotFound(f"no bulk job {job_id}")
        if job.state in ("done", "cancelled"):
            raise Conflict(f"bulk job {job_id} is already {shown_state(job)}")
        await session.execute(
            update(BulkJobItem).where(BulkJobItem.job_id == job_id, BulkJobItem.state == "queued")
            .values(state="cancelled", updated_at=now)
            .execution_options(synchronize_session=False))
        running = await session.scalar(select(func.count()).select_from(BulkJobItem).where(
            BulkJobItem.job_id == job_id, BulkJobItem.state == "running"))
        job.state, job.updated_at = "cancelled", now
        if not running:
            job.finished_at = now
    return await get_job(session_factory, job_id)


class BulkWorker:
    """Runs queued bulk items on the active daemon (oldest job first)."""

    def __init__(self, rt: Runtime, concurrency: int | None = None) -> None:
        self.rt = rt
        self.concurrency = concurrency or max(1, rt.settings.sync_concurrency // 2)
        self.wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            progressed = 0
            looked = loop.time()
            try:
                progressed = await self.step()
            except Exception as exc:
                if is_database_unavailable(exc):
                    self.rt.outage.failed(exc, where="bulk")  # one line per outage
                else:
                    log.exception("bulk_step_failed")
            if progressed:
                continue
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                waiters = [asyncio.ensure_future(self.wake.wait()),
                           asyncio.ensure_future(stop.wait())]
                await asyncio.wait(waiters, timeout=IDLE_SECONDS,
                                   return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
            # Woken by the sweep's wake-up, which every write to the watched rows sets
            # while the daemon works: at most one look a second (a drain of 4,000 keys
            # spent a sixth of its CPU here).
            rest = looked + WAKE_FLOOR_SECONDS - loop.time()
            if rest > 0 and not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=rest)

    async def step(self) -> int:
        """Run the next batch of one job; returns how many items finished."""
        sessions, now = self.rt.session_factory, self.rt.clock.now()
        if not await self._any_open():
            return 0
        await self._stamp_cancelled(now)
        async with sessions() as session, session.begin():
            job = await session.scalar(
                select(BulkJob).where(BulkJob.state.in_(("queued", "running")))
                .order_by(BulkJob.id).limit(1))
            if job is None:
                return 0
            job_id = job.id
            if job.state == "queued":
                job.state, job.updated_at = "running", now
                log.info("bulk_job_started", job=job_id)
            batch = (await session.scalars(
                select(BulkJobItem).where(BulkJobItem.job_id == job_id,
                                          BulkJobItem.state == "queued")
                .order_by(BulkJobItem.group_id, BulkJobItem.sync_type)
                .limit(self.concurrency))).all()
            keys = [SyncKey(SyncType(i.sync_type), i.group_id) for i in batch]
        if not keys:
            await self._finish_if_done(job_id)
            return 0
        claimed = [k for k in keys if await self._claim(job_id, k)]
        results = await asyncio.gather(*(self._one(job_id, k) for k in claimed))
        return sum(results)

    async def _any_open(self) -> bool:
        """Is there a job to run or a cancel to stamp? The idle worker's only statement."""
        async with engine_of(self.rt.session_factory).connect() as connection:
            return await connection.scalar(select(BulkJob.id).where(or_(
                BulkJob.state.in_(("queued", "running")),
                (BulkJob.state == "cancelled") & BulkJob.finished_at.is_(None),
            )).limit(1)) is not None

    async def _stamp_cancelled(self, now: datetime) -> None:
        """A cancelling job is cancelled (and finished) once the items running at the
        cancel have ended."""
        running = select(BulkJobItem.job_id).where(BulkJobItem.job_id == BulkJob.id,
                                                   BulkJobItem.state == "running")
        async with self.rt.session_factory() as session, session.begin():
            await session.execute(
                update(BulkJob).where(BulkJob.state == "cancelled",
                                      BulkJob.finished_at.is_(None), ~running.exists())
                .values(finished_at=now, updated_at=now)
                .execution_options(synchronize_session=False))

    async def _claim(self, job_id: int, key: SyncKey) -> bool:
        """queued → running, unless a cancel got there first."""
        async with self.rt.session_factory() as session, session.begin():
            result = await session.execute(
                update(BulkJobItem).where(*_item(job_id, key), BulkJobItem.state == "queued")
                .values(state="running", updated_at=self.rt.clock.now())
                .execution_options(synchronize_session=False))
        return bool(getattr(result, "rowcount", 0))

    async def _one(self, job_id: int, key: SyncKey) -> int:
        from core.engine.running import runner

        state = "done"
        if await self.rt.pauses.is_paused(key.sync_type):
            state = "queued"  # waits for the resume, like every paused key
        else:
            async def made_due() -> bool:
                return await make_due(self.rt.session_factory, key, self.rt.clock.now())

            try:
                result = await runner.run_key(self.rt, key, lane=Lane.BACKGROUND, reason="bulk",
                                              prepare=made_due)
            except asyncio.CancelledError:
                await self._set(job_id, key, "queued")
                raise
            # {"skipped": "not owed"}: settled meanwhile, so done.
            if result.get("skipped") == "service paused":
                state = "queued"
            elif "error" in result or int(result.get("failed", 0) or 0) > 0:
                state = "failed"
        await self._set(job_id, key, state)
        return int(state != "queued")

    async def _set(self, job_id: int, key: SyncKey, state: str) -> None:
        now = self.rt.clock.now()
        async with self.rt.session_factory() as session, session.begin():
            await session.execute(
                update(BulkJobItem).where(*_item(job_id, key))
                .values(state=state, updated_at=now)
                .execution_options(synchronize_session=False))

    async def _finish_if_done(self, job_id: int) -> None:
        now = self.rt.clock.now()
        async with self.rt.session_factory() as session, session.begin():
            open_items = await session.scalar(select(func.count()).select_from(BulkJobItem).where(
                BulkJobItem.job_id == job_id, BulkJobItem.state.in_(("queued", "running"))))
            if open_items:
                return
            job = await session.get(BulkJob, job_id)
            if job is not None and job.state in ("queued", "running"):
                job.state, job.finished_at, job.updated_at = "done", now, now
                log.info("bulk_job_finished", job=job_id)


def _item(job_id: int, key: SyncKey) -> tuple[Any, ...]:
    return (BulkJobItem.job_id == job_id, BulkJobItem.sync_type == key.sync_type,
            BulkJobItem.group_id == key.group_id)
