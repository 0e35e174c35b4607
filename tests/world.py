"""A world for tests that drive real syncers: the sandbox, a database and helpers to
change membership and read what the fakes hold."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import select

from core.config import Settings, load_settings
from core.db.models import CalendarEventRecord, DiscordGrant, Group, Meeting, SyncType, User
from core.db.session import SessionFactory
from core.group_joining import join_group, leave_group, switch_group
from core.lanes import Lane
from core.sandbox import Sandbox
from core.syncers.base import SyncContext, Syncer, SyncResult
from core.syncers.types import names

SCALE = 0.01
GUILD = "800000000000000001"
LOGIN_ROUTES = {"GET /users/@me", "GET /oauth2/applications/@me", "POST /token"}


@dataclass
class World:
    sandbox: Sandbox
    settings: Settings
    sessions: SessionFactory
    syncers: Mapping[SyncType, Syncer]
    _ids: count[int] = field(default_factory=lambda: count(1))

    async def add_group(self, meetings: int = 2, role: bool = False) -> Group:
        n = next(self._ids)
        text, voice = f"8100000000000{n:05d}", f"8200000000000{n:05d}"
        role_id = f"8300000000000{n:05d}" if role else None
        d = self.sandbox.discord
        d.add_channel(text, GUILD, f"group-{n}-text", type=0)
        d.add_channel(voice, GUILD, f"group-{n}-voice", type=2)
        if role_id:
            d.add_role(GUILD, role_id, 1, name=f"group-{n}")
        calendar_id = f"group-{n}@group.calendar.google.com"
        self.sandbox.calendar.add_calendar(calendar_id)
        async with self.sessions() as session, session.begin():
            group = Group(
                name=f"Group {n}",
                discord_guild_id=GUILD,
                discord_text_channel_id=text,
                discord_voice_channel_id=voice,
                discord_role_id=role_id,
                calendar_id=calendar_id,
            )
            session.add(group)
            await session.flush()
            start = datetime.now(UTC).replace(microsecond=0)
            for i in range(meetings):
                session.add(
                    Meeting(
                        group_id=group.id,
                        starts_at=start + timedelta(days=7 * (i + 1)),
                        duration_minutes=60,
                        sequence=i + 1,
                    )
                )
        return group

    async def add_user(self, discord: bool = True) -> User:
        n = next(self._ids)
        discord_id = f"8400000000000{n:05d}" if discord else None
        if discord_id:
            self.sandbox.discord.add_user(discord_id, f"user{n}")
            self.sandbox.discord.add_member(GUILD, discord_id)
        async with self.sessions() as session, session.begin():
            user = User(
                email=f"user{n}@example.org", discord_user_id=discord_id, display_name=f"U{n}"
            )
            session.add(user)
        return user

    async def group_with_member(self, meetings: int = 1) -> tuple[Group, User]:
        group, user = await self.add_group(meetings=meetings), await self.add_user()
        await self.join(user, group)
        return group, user

    async def join(self, user: User, group: Group) -> None:
        async with self.sessions() as session, session.begin():
            await join_group(session, user.id, group.id)

    async def leave(self, user: User) -> None:
        async with self.sessions() as session, session.begin():
            await leave_group(session, user.id)

    async def switch(self, user: User, group: Group) -> None:
        async with self.sessions() as session, session.begin():
            await switch_group(session, user.id, group.id)

    async def sync(
        self, sync_type: SyncType, group_id: int, lane: Lane = Lane.INTERACTIVE
    ) -> SyncResult:
        context = SyncContext(lane=lane, now=datetime.now(UTC))
        return await self.syncers[sync_type].sync(group_id, context)

    async def sync_all(self, *group_ids: int) -> None:
        for group_id in group_ids:
            for sync_type in names():
                await self.sync(sync_type, group_id)

    def calls(self) -> Counter[str]:
        """Requests per route to both fakes, logins and token fetches left out."""
        records = [*self.sandbox.discord.request_log, *self.sandbox.calendar.request_log]
        return Counter(r.route for r in records if r.route not in LOGIN_ROUTES)

    def clear_calls(self) -> None:
        self.sandbox.discord.clear_log()
        self.sandbox.calendar.clear_log()

    def member_overwrites(self, channel_id: str | None) -> set[str]:
        assert channel_id is not None
        return {
            target
            for target, overwrite in self.sandbox.discord.overwrites(channel_id).items()
            if overwrite["type"] == 1
        }

    def attendees(self, group: Group) -> dict[str, frozenset[str]]:
        assert group.calendar_id is not None
        return {
            event["id"]: frozenset(a["email"] for a in event.get("attendees", []))
            for event in self.sandbox.calendar.events(group.calendar_id)
        }

    async def grants(self, group_id: int) -> set[tuple[str, str, str]]:
        async with self.sessions() as session:
            rows = (
                await session.execute(select(DiscordGrant).where(DiscordGrant.group_id == group_id))
            ).scalars()
            return {(r.kind, r.target_id, r.discord_user_id) for r in rows}

    async def event_records(self, group_id: int) -> list[CalendarEventRecord]:
        async with self.sessions() as session:
            return list(
                (
                    await session.execute(
                        select(CalendarEventRecord).where(CalendarEventRecord.group_id == group_id)
                    )
                ).scalars()
            )


def sandbox_settings(sandbox: Sandbox, database_url: str, tmp_path: Path, **extra: Any) -> Settings:
    """Settings that point groupsync at the sandbox, with time scaled for tests."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "discord_bot_token": SecretStr(sandbox.discord_bot_token),
        "discord_api_base_url": sandbox.discord_base_url,
        "google_credentials_file": sandbox.write_service_account_file(tmp_path / "sa.json"),
        "google_impersonate_subject": sandbox.impersonate_subject,
        "google_calendar_endpoint": sandbox.calendar_endpoint,
        "time_scale": SCALE,
        "outbox_poll_seconds": 0.1,
        "shutdown_timeout_seconds": 2.0,
        # The drift sweep's reads would add calls to tests that count them; sweep tests
        # call it directly (or pass a shorter tick).
        "drift_sweep_tick_seconds": 1_000_000.0,
    }
    return load_settings(**{**values, **extra})
