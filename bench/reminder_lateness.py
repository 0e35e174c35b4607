"""Reminder lateness: posted time minus due time, with and without a saturated background lane.

The real daemon (in this process: scheduler, sweep, reminder delivery, clients) against the
sandbox at time scale 1, so Discord's real limits apply (5 messages per 5 s per channel,
50 requests/s overall, our client-side 40/s). N reminders (default 100) across N/5
channels fall due spread over two seconds; they are written while the daemon runs, by an
application process's sync. In the second pass, 20 tasks keep the Discord client's
background lane saturated with channel reads the whole time.
Prints one JSON line.  Usage: uv run python -m bench.reminder_lateness [N]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from core.db.migrate import upgrade
from core.db.models import Meeting, ReminderDelivery, SyncType
from core.db.session import create_engine, create_session_factory
from core.lanes import Lane
from core.notifications import scheduler as scheduler_module
from core.observability import configure_logging
from core.reminders.plan import ReminderKey, nonce_for
from core.reminders.sync import RemindersSyncer
from core.sandbox import start_sandbox
from tests.e2e.reminder_world import OFFSET, daemon_in_process, posted_at, seed_group
from tests.world import GUILD, sandbox_settings

PER_CHANNEL = 5
SPREAD_SECONDS = 2.0
LEAD_SECONDS = 3.0
BACKGROUND_TASKS = 20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def saturate_background(stop: asyncio.Event, channels: list[str]) -> int:
    """Keep the Discord client's background lane busy; returns how many calls it made."""
    running = scheduler_module._scheduler
    assert running is not None
    assert running.runtime is not None
    syncer = running.runtime.syncers[SyncType.REMINDERS]
    assert isinstance(syncer, RemindersSyncer)
    assert syncer.discord is not None
    discord = syncer.discord
    calls = 0

    async def worker(n: int) -> None:
        nonlocal calls
        while not stop.is_set():
            with contextlib.suppress(Exception):
                await discord.channel_overwrites(channels[n % len(channels)], Lane.BACKGROUND)
            calls += 1

    await asyncio.gather(*(worker(n) for n in range(BACKGROUND_TASKS)))
    return calls


async def one_pass(n: int, tmp: Path, saturated: bool) -> dict[str, Any]:
    url = f"sqlite+aiosqlite:///{tmp / f'bench-{saturated}.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    try:
        async with start_sandbox(time_scale=1.0) as sandbox:
            sandbox.discord.add_guild(GUILD, bot_role_position=50)
            far = datetime.now(UTC) + timedelta(days=1)
            groups = [
                await seed_group(sessions, sandbox, [far] * PER_CHANNEL)
                for _ in range(max(1, n // PER_CHANNEL))
            ]
            settings = sandbox_settings(sandbox, url, tmp, time_scale=1.0,
                                        outbox_poll_seconds=1.0)
            async with daemon_in_process(settings):
                stop = asyncio.Event()
                background = asyncio.ensure_future(
                    saturate_background(stop, [g.channel_id for g in groups])
                ) if saturated else None
                await asyncio.sleep(1.0 if saturated else 0)  # let the lane fill up
                first_due = datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS)
                meetings = [(g, m) for g in groups for m in g.meeting_ids]
                dues = {
                    m: first_due + timedelta(seconds=SPREAD_SECONDS * i / len(meetings))
                    for i, (_, m) in enumerate(meetings)
                }
                await _write_rows(sessions, meetings, dues)
                await _until_settled(sessions, len(meetings))
                stop.set()
                background_calls = await background if background is not None else 0
            lateness = [
                (posted_at(message) - dues[meeting]).total_seconds()
                for g in groups
                for message, meeting in _match(sandbox.discord.messages(g.channel_id), g)
            ]
    finally:
        await engine.dispose()
    return {
        "reminders": len(lateness),
        "p50_seconds": round(statistics.median(lateness), 3),
        "p99_seconds": round(percentile(lateness, 0.99), 3),
        "max_seconds": round(max(lateness), 3),
        "early": sum(v < 0 for v in lateness),
        "background_calls": background_calls,
    }


async def _write_rows(sessions: Any, meetings: list[Any], dues: dict[int, datetime]) -> None:
    """What a reminders sync writes (the rows), with due times spread over the window."""
    async with sessions() as session, session.begin():
        for _, meeting_id in meetings:
            await session.execute(
                update(Meeting).where(Meeting.id == meeting_id)
                .values(starts_at=dues[meeting_id] + timedelta(minutes=OFFSET))
            )
        await session.execute(insert(ReminderDelivery), [
            {"meeting_id": m, "offset_minutes": OFFSET, "group_id": g.group_id,
             "fire_at": dues[m], "status": "scheduled", "attempt": 0,
             "sentry_reported_level": 0, "nonce": nonce_for(ReminderKey(m, OFFSET))}
            for g, m in meetings
        ])


async def _until_settled(sessions: Any, n: int) -> None:
    for _ in range(1200):
        async with sessions() as session:
            statuses = (await session.execute(select(ReminderDelivery.status))).scalars().all()
        if sum(s == "sent" for s in statuses) == n:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("reminders not all sent")


def _match(messages: list[dict[str, Any]], group: Any) -> list[tuple[dict[str, Any], int]]:
    """Each message with its meeting, through the nonce the fake kept."""
    by_nonce = {nonce_for(ReminderKey(m, OFFSET)): m for m in group.meeting_ids}
    return [(msg, by_nonce[msg["nonce"]]) for msg in messages if msg.get("nonce") in by_nonce]


async def main(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        quiet = await one_pass(n, Path(tmp), saturated=False)
        busy = await one_pass(n, Path(tmp), saturated=True)
    return {"bench": "reminder_lateness", "reminders": n, "idle": quiet,
            "background_saturated": busy}


if __name__ == "__main__":
    configure_logging(level="WARNING", stream=sys.stderr)  # stdout: the one JSON line
    print(json.dumps(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))))
