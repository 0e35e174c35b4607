"""``python main.py demo``: the whole system against the sandbox, on a fresh SQLite file.

Starts the fake Discord and Calendar servers, seeds users, groups and meetings, starts the
daemon in this process, then plays joins, leaves and switches while injecting 429s, 5xx
and a short outage. The log stream shows every sync, retry, backoff, rate-limit wait and
breaker transition; the demo ends when every group has converged (the fakes hold exactly
what the database says), then stops the daemon cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings, load_settings
from core.daemon import run_daemon
from core.db.migrate import upgrade
from core.db.models import Group, Meeting, ReminderDelivery, SyncState, User
from core.db.session import SessionFactory, create_engine, create_session_factory
from core.group_joining import join_group, leave_group, switch_group, sync_after_group_change
from core.notifications import scheduler as scheduler_module
from core.observability import get_logger
from core.sandbox import Sandbox, start_sandbox
from core.syncers.discord_plan import TEXT_ALLOW
from core.syncers.snapshot_loader import load_snapshot

log = get_logger("groupsync.demo")
# A scripted membership change: runs in a transaction, returns (group to sync, previous).
Change = Callable[[AsyncSession], Awaitable[tuple[int, int | None]]]
GUILD = "700000000000000001"


@dataclass(frozen=True)
class DemoOptions:
    workdir: Path = Path("var/demo")
    time_scale: float = 0.2  # engine backoff and sandbox windows run 5x faster than life
    groups: int = 3
    users: int = 9
    converge_timeout: float = 120.0


async def run_demo(base: Settings, options: DemoOptions = DemoOptions()) -> int:
    options.workdir.mkdir(parents=True, exist_ok=True)
    database = options.workdir / "demo.db"
    for stale in options.workdir.glob("demo.db*"):
        stale.unlink()
    async with start_sandbox(time_scale=options.time_scale) as sandbox:
        settings = _demo_settings(base, sandbox, database, options)
        await asyncio.to_thread(upgrade, settings.database_url)
        engine = create_engine(settings.database_url)
        sessions = create_session_factory(engine)
        try:
            groups, users = await _seed(sessions, sandbox, options)
            log.info(
                "demo_seeded",
                groups=len(groups),
                users=len(users),
                discord=sandbox.discord_base_url,
                calendar=sandbox.calendar_endpoint,
            )
            stop = asyncio.Event()
            daemon = asyncio.create_task(run_daemon(settings, stop))
            await _until(lambda: scheduler_module._scheduler is not None, 30, daemon)
            started = time.monotonic()
            await _script(sessions, sandbox, groups, users, options)
            converged = await _converge(sessions, sandbox, options, daemon)
            calls = len(sandbox.discord.request_log) + len(sandbox.calendar.request_log)
            log.info(
                "demo_converged" if converged else "demo_not_converged",
                seconds=round(time.monotonic() - started, 1),
                external_calls=calls,
                messages=sum(
                    len(sandbox.discord.messages(g.discord_text_channel_id or "")) for g in groups
                ),
            )
            stop.set()
            code = await daemon
        finally:
            await engine.dispose()
    return code if converged else 1


def _demo_settings(
    base: Settings, sandbox: Sandbox, database: Path, options: DemoOptions
) -> Settings:
    return load_settings(
        **{
            **base.model_dump(),
            "database_url": f"sqlite+aiosqlite:///{database}",
            "enabled_services": "discord,calendar",
            "discord_bot_token": SecretStr(sandbox.discord_bot_token),
            "discord_api_base_url": sandbox.discord_base_url,
            "google_credentials_file": sandbox.write_service_account_file(
                options.workdir / "service-account.json"
            ),
            "google_impersonate_subject": sandbox.impersonate_subject,
            "google_calendar_endpoint": sandbox.calendar_endpoint,
            "time_scale": options.time_scale,
            "outbox_poll_seconds": 0.5,
            "reminder_offsets_minutes": "1440,60,1",
        }
    )


async def _seed(
    sessions: SessionFactory, sandbox: Sandbox, options: DemoOptions
) -> tuple[list[Group], list[User]]:
    discord = sandbox.discord
    discord.add_guild(GUILD, name="groupsync demo", bot_role_position=50)
    now = datetime.now(UTC).replace(microsecond=0)
    async with sessions() as session, session.begin():
        groups = []
        for n in range(1, options.groups + 1):
            text, voice = f"71000000000000000{n}", f"72000000000000000{n}"
            discord.add_channel(text, GUILD, f"cohort-{n}", type=0)
            discord.add_channel(voice, GUILD, f"cohort-{n}-voice", type=2)
            calendar_id = f"cohort-{n}@group.calendar.google.com"
            sandbox.calendar.add_calendar(calendar_id)
            group = Group(
                name=f"Cohort {n}",
                discord_guild_id=GUILD,
                discord_text_channel_id=text,
                discord_voice_channel_id=voice,
                calendar_id=calendar_id,
            )
            session.add(group)
            groups.append(group)
        await session.flush()
        for group in groups:
            # The first meeting starts soon, so its 1-minute reminder fires during the demo.
            session.add(
                Meeting(
                    group_id=group.id,
                    sequence=1,
                    duration_minutes=60,
                    starts_at=now + timedelta(seconds=75),
                )
            )
            session.add(
                Meeting(
                    group_id=group.id,
                    sequence=2,
                    duration_minutes=60,
                    starts_at=now + timedelta(days=7),
                )
            )
        users = []
        for n in range(1, options.users + 1):
            discord_id = f"73000000000000000{n}" if n % 5 else None  # some have no Discord
            if discord_id:
                discord.add_user(discord_id, f"learner{n}")
                discord.add_member(GUILD, discord_id)
            user = User(
                email=f"learner{n}@example.org",
                discord_user_id=discord_id,
                display_name=f"Learner {n}",
            )
            session.add(user)
            users.append(user)
        await session.flush()
    return groups, users


async def _script(
    sessions: SessionFactory,
    sandbox: Sandbox,
    groups: list[Group],
    users: list[User],
    options: DemoOptions,
) -> None:
    async def change(step: str, action: Change) -> None:
        log.info("demo_step", step=step)
        async with sessions() as session, session.begin():
            new, previous = await action(session)
        await sync_after_group_change(new, previous)

    for i, user in enumerate(users[:6]):
        group = groups[i % len(groups)]
        await change(
            f"{user.display_name} joins {group.name}", partial(_joined, user=user, group=group)
        )

    log.info("demo_fault", fault="Discord answers 429 (retry_after 2 s) to the next 3 requests")
    sandbox.discord.inject("429", count=3, retry_after=2.0)
    await change(
        f"{users[0].display_name} switches to {groups[1].name}",
        lambda s: _switched(s, users[0], groups[1]),
    )

    log.info("demo_fault", fault="Google Calendar answers 503 to the next 4 requests")
    sandbox.calendar.inject("5xx", count=4, status=503)
    await change(
        f"{users[6].display_name} joins {groups[2].name}", lambda s: _joined(s, users[6], groups[2])
    )

    outage = 20 * options.time_scale
    log.info("demo_fault", fault=f"Discord outage for {outage:.0f} s (connections refused)")
    handle = sandbox.discord.inject("outage")
    await change(f"{users[1].display_name} leaves", lambda s: _left(s, users[1]))
    await change(
        f"{users[7].display_name} joins {groups[0].name}", lambda s: _joined(s, users[7], groups[0])
    )
    await asyncio.sleep(outage)
    handle.clear()
    log.info("demo_fault_cleared", fault="Discord outage over")


async def _joined(session: AsyncSession, user: User, group: Group) -> tuple[int, None]:
    await join_group(session, user.id, group.id)
    return group.id, None


async def _switched(session: AsyncSession, user: User, group: Group) -> tuple[int, int | None]:
    previous = await switch_group(session, user.id, group.id)
    return group.id, previous


async def _left(session: AsyncSession, user: User) -> tuple[int, None]:
    group_id = await leave_group(session, user.id)
    assert group_id is not None
    return group_id, None


async def _converge(
    sessions: SessionFactory, sandbox: Sandbox, options: DemoOptions, daemon: asyncio.Task[int]
) -> bool:
    deadline = time.monotonic() + options.converge_timeout
    while time.monotonic() < deadline and not daemon.done():
        if (
            await _all_synced(sessions)
            and await _fakes_match(sessions, sandbox)
            and await _reminders_delivered(sessions)
        ):
            return True
        await asyncio.sleep(0.5)
    return False


async def _all_synced(sessions: SessionFactory) -> bool:
    async with sessions() as session:
        rows = (await session.execute(select(SyncState))).scalars().all()
    return bool(rows) and all(
        r.requested_generation == r.completed_generation and r.status == "ok" for r in rows
    )


async def _reminders_delivered(sessions: SessionFactory) -> bool:
    """The first meeting's 1-minute reminders have been posted, and none is overdue."""
    now = datetime.now(UTC)
    async with sessions() as session:
        rows = (await session.execute(select(ReminderDelivery))).scalars().all()
    overdue = [r for r in rows if r.status in ("scheduled", "sending") and r.fire_at <= now]
    return any(r.status == "sent" for r in rows) and not overdue


async def _fakes_match(sessions: SessionFactory, sandbox: Sandbox) -> bool:
    """Independent of our own records: what the fakes hold equals what the database says."""
    now = datetime.now(UTC)
    async with sessions() as session:
        group_ids = list((await session.execute(select(Group.id))).scalars())
        snapshots = [await load_snapshot(session, group_id, now) for group_id in group_ids]
    for group in snapshots:
        want = {m.discord_user_id for m in group.members if m.discord_user_id}
        have = {
            target
            for target, ow in sandbox.discord.overwrites(group.text_channel_id or "").items()
            if ow["type"] == 1 and int(ow["allow"]) == TEXT_ALLOW
        }
        emails = {m.email for m in group.members}
        events = sandbox.calendar.events(group.calendar_id or "")
        if want != have or any(
            {a["email"] for a in e.get("attendees", [])} != emails for e in events
        ):
            return False
    return True


async def _until(condition: Callable[[], bool], timeout: float, daemon: asyncio.Task[int]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if daemon.done():
            with contextlib.suppress(Exception):
                daemon.result()
            raise RuntimeError("the daemon stopped before it was ready")
        if time.monotonic() > deadline:
            raise TimeoutError("the daemon did not start in time")
        await asyncio.sleep(0.05)
