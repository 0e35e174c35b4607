"""The discord sync: member overwrites on the group's channels (and its role) equal the
active members who have a Discord id.

Each run reads the live overwrites of the group's channels (one read per channel) and,
where the group has a role, the live roles of the members concerned; ``discord_plan``
decides from desired, recorded and live state. Every grant is recorded ``pending``
before it is sent and settled after, so a grant whose answer was lost is still ours to
remove, and a record is dropped only once Discord confirmed the removal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from core.clients.ports import DiscordPort, Overwrite
from core.db.models import DeliveryState, DiscordGrant, SyncType
from core.db.session import SessionFactory
from core.errors import NeedsAttentionError
from core.observability import get_logger
from core.syncers.base import Fence, SyncContext, SyncResult
from core.syncers.discord_plan import (
    CHANNEL_OVERWRITE,
    Action,
    DiscordPlan,
    Grant,
    LiveDiscord,
    Step,
    channels_to_read,
    members_to_read,
    plan_discord,
)
from core.syncers.drift import DriftItem, report_repair
from core.syncers.snapshot import GroupSnapshot
from core.syncers.snapshot_loader import load_snapshot

log = get_logger("groupsync.syncers.discord")
SERVICE = "discord"
UNKNOWN_CHANNEL = 10003
REASON = "groupsync: group membership"
DONE = {
    Step.GRANT: "granted",
    Step.RESTORE: "restored",
    Step.REVOKE: "revoked",
    Step.SETTLE: "record settled",
    Step.FORGET: "record dropped",
}


@dataclass(frozen=True)
class _Reading:
    snapshot: GroupSnapshot
    guilds: Mapping[Grant, str]  # the guild each recorded grant was made in
    plan: DiscordPlan
    problems: list[NeedsAttentionError]


class DiscordAccessSyncer:
    sync_type = SyncType.DISCORD

    def __init__(self, session_factory: SessionFactory, discord: DiscordPort) -> None:
        self._sessions = session_factory
        self._discord = discord

    async def sync(self, group_id: int, context: SyncContext) -> SyncResult:
        fence = context.fence_or(self._sessions)
        reading = await self._read(group_id, context, fence)
        plan = reading.plan
        result: SyncResult = {
            "granted": 0,
            "revoked": 0,
            "unchanged": plan.unchanged,
            "failed": plan.unreadable,
            "skipped": plan.skipped,
            "foreign": plan.foreign,
            "repaired": 0,
        }
        problems = reading.problems
        for action in plan.actions:
            guild = reading.guilds.get(action.grant) or reading.snapshot.guild_id or ""
            try:
                await self._apply(action, group_id, guild, context, fence, result)
            except NeedsAttentionError as exc:
                result["failed"] += 1
                problems.append(exc)
                continue
            if action.drift:
                result["repaired"] += 1
                report_repair(_item(group_id, action, DONE[action.step]))
        if problems:
            # Everything that could be applied was; the first problem names what needs fixing.
            raise problems[0]
        return result

    async def drift(self, group_id: int, context: SyncContext) -> list[DriftItem]:
        """What differs from the live state and what a sync would do; changes nothing."""
        reading = await self._read(group_id, context, context.fence_or(self._sessions))
        return [_item(group_id, a, f"would be {DONE[a.step]}") for a in reading.plan.drift]

    # ---- reading ---------------------------------------------------------------------------
    async def _read(self, group_id: int, context: SyncContext, fence: Fence) -> _Reading:
        async with self._sessions() as session:
            snapshot = await load_snapshot(session, group_id, context.now)
            rows = await _records(session, group_id)
        records = {grant: state for grant, (state, _) in rows.items()}
        guilds = {grant: guild for grant, (_, guild) in rows.items()}
        problems: list[NeedsAttentionError] = []
        overwrites = await self._read_channels(
            channels_to_read(snapshot, records), context, fence, problems
        )
        roles = await self._read_roles(
            members_to_read(snapshot, records), snapshot, guilds, context, fence, problems
        )
        plan = plan_discord(snapshot, records, LiveDiscord(overwrites, roles))
        return _Reading(snapshot, guilds, plan, problems)

    async def _read_channels(
        self,
        channels: list[str],
        context: SyncContext,
        fence: Fence,
        problems: list[NeedsAttentionError],
    ) -> dict[str, Mapping[str, Overwrite] | None]:
        live: dict[str, Mapping[str, Overwrite] | None] = {}
        for channel in channels:
            fence.ensure_held()
            try:
                live[channel] = await self._discord.channel_overwrites(channel, context.lane)
            except NeedsAttentionError as exc:
                if exc.code == UNKNOWN_CHANNEL:
                    live[channel] = {}  # the channel is gone, and every overwrite with it
                else:
                    live[channel] = None
                    problems.append(exc)
        return live

    async def _read_roles(
        self,
        users: list[str],
        snapshot: GroupSnapshot,
        guilds: Mapping[Grant, str],
        context: SyncContext,
        fence: Fence,
        problems: list[NeedsAttentionError],
    ) -> dict[str, frozenset[str] | None]:
        recorded_guild = {
            g.discord_user_id: guild for g, guild in guilds.items() if g.kind != CHANNEL_OVERWRITE
        }
        live: dict[str, frozenset[str] | None] = {}
        for user in users:
            guild = snapshot.guild_id or recorded_guild.get(user)
            if not guild:
                live[user] = None
                continue
            fence.ensure_held()
            try:
                live[user] = await self._discord.member_role_ids(guild, user, context.lane)
            except NeedsAttentionError as exc:
                live[user] = None
                problems.append(exc)
        return live

    # ---- applying --------------------------------------------------------------------------
    async def _apply(
        self,
        action: Action,
        group_id: int,
        guild: str,
        context: SyncContext,
        fence: Fence,
        result: SyncResult,
    ) -> None:
        grant = action.grant
        if action.step is Step.GRANT:
            await self._record_pending(fence, group_id, guild, grant, context)
            try:
                await self._put(grant, guild, context, fence)
            except NeedsAttentionError:
                # Refused, so certainly not applied: the intent is void.
                await self._forget(fence, group_id, grant)
                raise
            await self._settle(fence, group_id, grant)
            result["granted"] += 1
        elif action.step is Step.RESTORE:
            await self._put(grant, guild, context, fence)
            await self._settle(fence, group_id, grant)
            result["granted"] += 1
        elif action.step is Step.REVOKE:
            await self._remove(grant, guild, context, fence)
            await self._forget(fence, group_id, grant)
            result["revoked"] += 1
        elif action.step is Step.SETTLE:
            await self._settle(fence, group_id, grant)
            result["unchanged"] += 1
        else:
            await self._forget(fence, group_id, grant)

    async def _put(self, grant: Grant, guild: str, context: SyncContext, fence: Fence) -> None:
        fence.ensure_held()
        if grant.kind == CHANNEL_OVERWRITE:
            await self._discord.set_member_overwrite(
                grant.target_id, grant.discord_user_id, grant.allow, 0, context.lane, REASON
            )
        else:
            await self._discord.add_member_role(
                guild, grant.discord_user_id, grant.target_id, context.lane, REASON
            )

    async def _remove(self, grant: Grant, guild: str, context: SyncContext, fence: Fence) -> None:
        fence.ensure_held()
        try:
            if grant.kind == CHANNEL_OVERWRITE:
                await self._discord.delete_member_overwrite(
                    grant.target_id, grant.discord_user_id, context.lane, REASON
                )
            else:
                await self._discord.remove_member_role(
                    guild, grant.discord_user_id, grant.target_id, context.lane, REASON
                )
        except NeedsAttentionError as exc:
            if exc.code != UNKNOWN_CHANNEL:
                raise
            # The channel itself is gone, and with it every overwrite on it.

    # ---- records (through the fence) -------------------------------------------------------
    async def _record_pending(
        self, fence: Fence, group_id: int, guild: str, grant: Grant, context: SyncContext
    ) -> None:
        async with fence.transaction() as session:
            session.add(
                DiscordGrant(
                    group_id=group_id,
                    guild_id=guild,
                    kind=grant.kind,
                    target_id=grant.target_id,
                    discord_user_id=grant.discord_user_id,
                    granted_at=context.now,
                    state=DeliveryState.PENDING.value,
                )
            )

    async def _settle(self, fence: Fence, group_id: int, grant: Grant) -> None:
        async with fence.transaction() as session:
            await session.execute(
                update(DiscordGrant)
                .where(*_matching(group_id, grant))
                .values(state=DeliveryState.SETTLED.value)
            )

    async def _forget(self, fence: Fence, group_id: int, grant: Grant) -> None:
        async with fence.transaction() as session:
            await session.execute(delete(DiscordGrant).where(*_matching(group_id, grant)))


def _matching(group_id: int, grant: Grant) -> tuple[ColumnElement[bool], ...]:
    return (
        DiscordGrant.group_id == group_id,
        DiscordGrant.kind == grant.kind,
        DiscordGrant.target_id == grant.target_id,
        DiscordGrant.discord_user_id == grant.discord_user_id,
    )


def _item(group_id: int, action: Action, done: str) -> DriftItem:
    grant = action.grant
    subject = f"{grant.kind} {grant.target_id} user {grant.discord_user_id}"
    return DriftItem(group_id, SERVICE, subject, action.found, done)


async def _records(session: AsyncSession, group_id: int) -> dict[Grant, tuple[str, str]]:
    rows = (
        await session.execute(select(DiscordGrant).where(DiscordGrant.group_id == group_id))
    ).scalars()
    return {Grant(r.kind, r.target_id, r.discord_user_id): (r.state, r.guild_id) for r in rows}
