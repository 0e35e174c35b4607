"""The discord sync: member overwrites on the group's channels (and its role) equal the
active members who have a Discord id. Applies the plan from ``discord_plan`` through a
``DiscordPort`` and records every grant, so only our own grants are ever revoked."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clients.ports import MEMBER_OVERWRITE, DiscordPort, Overwrite
from core.db.models import DiscordGrant, SyncType
from core.db.session import SessionFactory
from core.errors import NeedsAttentionError
from core.observability import get_logger
from core.syncers.base import Fence, SyncContext, SyncResult
from core.syncers.discord_plan import CHANNEL_OVERWRITE, ROLE, Grant, plan_discord
from core.syncers.snapshot_loader import load_snapshot

log = get_logger("groupsync.syncers.discord")
UNKNOWN_CHANNEL = 10003
REASON = "groupsync: group membership"


class DiscordAccessSyncer:
    sync_type = SyncType.DISCORD

    def __init__(self, session_factory: SessionFactory, discord: DiscordPort) -> None:
        self._sessions = session_factory
        self._discord = discord

    async def sync(self, group_id: int, context: SyncContext) -> SyncResult:
        async with self._sessions() as session:
            snapshot = await load_snapshot(session, group_id, context.now)
            applied = await _applied(session, group_id)
        plan = plan_discord(snapshot, applied)
        result: SyncResult = {
            "granted": 0,
            "revoked": 0,
            "unchanged": plan.unchanged,
            "failed": 0,
            "skipped": plan.skipped,
            "foreign": 0,
        }
        problems: list[NeedsAttentionError] = []
        fence = context.fence_or(self._sessions)
        current = await self._current_overwrites(plan.grant, context, fence, problems)
        for grant in plan.grant:
            await self._grant(
                grant, group_id, snapshot.guild_id or "", current, context, fence, result, problems
            )
        for grant in plan.revoke:
            await self._revoke(grant, group_id, context, fence, result, problems)
        if problems:
            # Everything that could be applied was; the first problem names what needs fixing.
            raise problems[0]
        return result

    async def _current_overwrites(
        self,
        grants: tuple[Grant, ...],
        context: SyncContext,
        fence: Fence,
        problems: list[NeedsAttentionError],
    ) -> dict[str, dict[str, Overwrite] | None]:
        """One read per channel we are about to grant on, to leave people's overwrites be."""
        channels = sorted({g.target_id for g in grants if g.kind == CHANNEL_OVERWRITE})
        current: dict[str, dict[str, Overwrite] | None] = {}
        for channel in channels:
            fence.ensure_held()
            try:
                current[channel] = await self._discord.channel_overwrites(channel, context.lane)
            except NeedsAttentionError as exc:
                problems.append(exc)
                current[channel] = None
        return current

    async def _grant(
        self,
        grant: Grant,
        group_id: int,
        guild_id: str,
        current: dict[str, dict[str, Overwrite] | None],
        context: SyncContext,
        fence: Fence,
        result: SyncResult,
        problems: list[NeedsAttentionError],
    ) -> None:
        try:
            if grant.kind == CHANNEL_OVERWRITE:
                overwrites = current.get(grant.target_id)
                if overwrites is None:
                    result["failed"] += 1  # the channel could not be read: already reported
                    return
                existing = overwrites.get(grant.discord_user_id)
                if existing is not None and not _is_ours(existing, grant):
                    result["foreign"] += 1  # a person's overwrite: never changed
                    return
                if existing is None:
                    fence.ensure_held()
                    await self._discord.set_member_overwrite(
                        grant.target_id, grant.discord_user_id, grant.allow, 0, context.lane, REASON
                    )
            else:
                fence.ensure_held()
                await self._discord.add_member_role(
                    guild_id, grant.discord_user_id, grant.target_id, context.lane, REASON
                )
        except NeedsAttentionError as exc:
            result["failed"] += 1
            problems.append(exc)
            return
        await self._record(fence, grant, guild_id, context.now, group_id)
        result["granted"] += 1

    async def _revoke(
        self,
        grant: Grant,
        group_id: int,
        context: SyncContext,
        fence: Fence,
        result: SyncResult,
        problems: list[NeedsAttentionError],
    ) -> None:
        try:
            if grant.kind == CHANNEL_OVERWRITE:
                fence.ensure_held()
                await self._discord.delete_member_overwrite(
                    grant.target_id, grant.discord_user_id, context.lane, REASON
                )
            else:
                guild_id = await self._guild_of(group_id, grant)
                fence.ensure_held()
                await self._discord.remove_member_role(
                    guild_id, grant.discord_user_id, grant.target_id, context.lane, REASON
                )
        except NeedsAttentionError as exc:
            if exc.code != UNKNOWN_CHANNEL:
                result["failed"] += 1
                problems.append(exc)
                return
            # The channel itself is gone, and with it every overwrite on it.
        await self._forget(fence, group_id, grant)
        result["revoked"] += 1

    async def _record(
        self, fence: Fence, grant: Grant, guild_id: str, now: datetime, group_id: int
    ) -> None:
        async with fence.transaction() as session:
            session.add(
                DiscordGrant(
                    group_id=group_id,
                    guild_id=guild_id,
                    kind=grant.kind,
                    target_id=grant.target_id,
                    discord_user_id=grant.discord_user_id,
                    granted_at=now,
                )
            )

    async def _forget(self, fence: Fence, group_id: int, grant: Grant) -> None:
        async with fence.transaction() as session:
            await session.execute(
                delete(DiscordGrant).where(
                    DiscordGrant.group_id == group_id,
                    DiscordGrant.kind == grant.kind,
                    DiscordGrant.target_id == grant.target_id,
                    DiscordGrant.discord_user_id == grant.discord_user_id,
                )
            )

    async def _guild_of(self, group_id: int, grant: Grant) -> str:
        async with self._sessions() as session:
            guild = await session.scalar(
                select(DiscordGrant.guild_id).where(
                    DiscordGrant.group_id == group_id,
                    DiscordGrant.kind == ROLE,
                    DiscordGrant.target_id == grant.target_id,
                    DiscordGrant.discord_user_id == grant.discord_user_id,
                )
            )
        return guild or ""


async def _applied(session: AsyncSession, group_id: int) -> set[Grant]:
    rows = (
        await session.execute(select(DiscordGrant).where(DiscordGrant.group_id == group_id))
    ).scalars()
    return {Grant(r.kind, r.target_id, r.discord_user_id) for r in rows}


def _is_ours(existing: Overwrite, grant: Grant) -> bool:
    """An overwrite identical to the one we set is ours (adopted after a crash between
    the call and the record); anything else on that member was made by a person."""
    return existing.type == MEMBER_OVERWRITE and existing.allow == grant.allow and not existing.deny
