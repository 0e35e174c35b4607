"""The discord sync: member overwrites on the group's channels (and its role) equal the
active members who have a Discord id.

Each run reads the live overwrites of the group's channels (one read per channel) and,
where the group has a role, the live roles of the members concerned; ``discord_plan``
decides from desired, recorded and live state. Every grant is recorded ``pending``
before it is sent and settled after, so a grant whose answer was lost is still ours to
remove, and a record is dropped only once Discord confirmed the removal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.clients.ports import DiscordPort, Overwrite
from core.db.models import DeliveryState, DiscordGrant, SyncType
from core.db.session import SessionFactory
from core.errors import MissingTargetError, NeedsAttentionError
from core.observability import get_logger
from core.syncers.base import Fence, SyncContext, SyncResult
from core.syncers.discord_plan import (
    CHANNEL_OVERWRITE,
    Action,
    DiscordPlan,
    Grant,
    LiveDiscord,
    Step,
    channel_columns,
    channels_to_read,
    members_to_read,
    plan_discord,
    removal_proposal,
)
from core.syncers.guard import Proposal, membership_fingerprint
from core.syncers.outcomes import Outcome, Wording
from core.syncers.planned import PlannedSyncer, Send
from core.syncers.snapshot import GroupSnapshot
from core.syncers.snapshot_loader import load_snapshot
from core.syncers.view import LiveView, discord_view

log = get_logger("groupsync.syncers.discord")
T = TypeVar("T")
SERVICE = "discord"
UNKNOWN_CHANNEL = 10003
REASON = "groupsync: group membership"
# Calls per batch: its intents are recorded in one transaction and its outcomes in another;
# about a second of Discord's global allowance, so a batch is in flight together.
BATCH = 48
CALLS = frozenset({Step.GRANT, Step.RESTORE, Step.REVOKE})
# Per step: the result counter it adds one to (a dropped record counts as nothing), and
# what it did, for the drift lines.
WORDING = Wording(SERVICE, {
    Step.GRANT: ("granted", "granted"),
    Step.RESTORE: ("granted", "restored"),
    Step.REVOKE: ("revoked", "revoked"),
    Step.SETTLE: ("unchanged", "record settled"),
    Step.FORGET: (None, "record dropped"),
})


@dataclass(frozen=True)
class _Reading:
    snapshot: GroupSnapshot
    guilds: Mapping[Grant, str]  # the guild each recorded grant was made in
    records: Mapping[Grant, str]  # each recorded grant's state
    plan: DiscordPlan
    problems: list[NeedsAttentionError]
    live: LiveDiscord


class DiscordAccessSyncer(PlannedSyncer[_Reading, Action]):
    sync_type = SyncType.DISCORD

    wording = WORDING
    batch = BATCH

    def __init__(self, session_factory: SessionFactory, discord: DiscordPort) -> None:
        super().__init__(session_factory)
        self._discord = discord

    def _counts(self, reading: _Reading) -> SyncResult:
        plan = reading.plan
        return {
            "granted": 0,
            "revoked": 0,
            "unchanged": plan.unchanged,
            "failed": plan.unreadable,
            "skipped": plan.skipped,
            "foreign": plan.foreign,
            "repaired": 0,
        }

    def _proposal(self, reading: _Reading) -> Proposal | None:
        return removal_proposal(reading.snapshot, reading.records, reading.plan,
                                membership_fingerprint(reading.snapshot))

    def _problems(self, reading: _Reading) -> list[NeedsAttentionError]:
        # Channels and members that could not be read; a deleted channel of the group's
        # first: it is what the operator must fix, and what the key's state names.
        return sorted(reading.problems, key=lambda e: not isinstance(e, MissingTargetError))

    def _view(self, reading: _Reading) -> LiveView:
        return discord_view(reading.snapshot, reading.records, reading.live, reading.plan,
                            tuple(str(p) for p in self._problems(reading)))

    def _phases(
        self, reading: _Reading, group_id: int, context: SyncContext, fence: Fence
    ) -> list[tuple[Sequence[Action], Send[Action]]]:
        return [(reading.plan.actions,
                 lambda batch: self._apply_batch(batch, reading, group_id, context, fence))]

    # ---- reading ---------------------------------------------------------------------------
    async def _read(self, group_id: int, context: SyncContext, fence: Fence) -> _Reading:
        async with self._sessions() as session:
            snapshot = await load_snapshot(session, group_id, context.now)
            rows = await recorded_grants(session, group_id)
        records = {grant: state for grant, (state, _) in rows.items()}
        guilds = {grant: guild for grant, (_, guild) in rows.items()}
        problems: list[NeedsAttentionError] = []
        overwrites = await self._read_channels(
            channels_to_read(snapshot, records), channel_columns(snapshot), context, fence,
            problems,
        )
        roles = await self._read_roles(
            members_to_read(snapshot, records), snapshot, guilds, context, fence, problems
        )
        live = LiveDiscord(overwrites, roles)
        plan = plan_discord(snapshot, records, live)
        return _Reading(snapshot, guilds, records, plan, problems, live)

    async def _read_channels(
        self,
        channels: list[str],
        columns: Mapping[str, str],
        context: SyncContext,
        fence: Fence,
        problems: list[NeedsAttentionError],
    ) -> dict[str, Mapping[str, Overwrite] | None]:
        """A deleted channel the group no longer names took its overwrites along (our
        records on it are dropped); one the group still names is a missing target: its
        grants stay undecided (no call would land) and the key names the column to fix."""
        async def read(channel: str) -> Mapping[str, Overwrite] | None:
            fence.ensure_held()
            try:
                return await self._discord.channel_overwrites(channel, context.lane)
            except NeedsAttentionError as exc:
                if exc.code == UNKNOWN_CHANNEL and channel not in columns:
                    return {}  # the channel is gone, and every overwrite with it
                if exc.code == UNKNOWN_CHANNEL:
                    problems.append(deleted_channel(channel, columns[channel], exc))
                else:
                    problems.append(exc)
                return None

        # Independent reads: in flight together, as far as the rate limiter lets them.
        found = await _all(read(channel) for channel in channels)
        return dict(zip(channels, found, strict=True))

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
        async def read(user: str) -> frozenset[str] | None:
            guild = snapshot.guild_id or recorded_guild.get(user)
            if not guild:
                return None
            fence.ensure_held()
            try:
                return await self._discord.member_role_ids(guild, user, context.lane)
            except NeedsAttentionError as exc:
                problems.append(exc)
                return None

        found = await _all(read(user) for user in users)
        return dict(zip(users, found, strict=True))

    # ---- applying --------------------------------------------------------------------------
    async def _apply_batch(
        self,
        actions: Sequence[Action],
        reading: _Reading,
        group_id: int,
        context: SyncContext,
        fence: Fence,
    ) -> list[Outcome[Action]]:
        """One transaction records the intents (and settles or drops the records that
        need no call), then the batch's calls are in flight together, then one
        transaction records their outcomes. A crash in between leaves pending records
        the next run reconciles against the live state."""
        def guild(action: Action) -> str:
            return reading.guilds.get(action.grant) or reading.snapshot.guild_id or ""

        calls = [a for a in actions if a.step in CALLS]
        await self._record_intents(fence, group_id, actions, guild, context)
        answers = await asyncio.gather(
            *(self._send(a, guild(a), context, fence) for a in calls), return_exceptions=True
        )
        errors = dict(zip(calls, answers, strict=True))
        await self._record_outcomes(fence, group_id, errors)
        return [(a, errors.get(a)) for a in actions]

    async def _send(self, action: Action, guild: str, context: SyncContext, fence: Fence) -> None:
        if action.step is Step.REVOKE:
            await self._remove(action.grant, guild, context, fence)
        else:
            await self._put(action.grant, guild, context, fence)

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
    async def _record_intents(
        self,
        fence: Fence,
        group_id: int,
        actions: Sequence[Action],
        guild: Callable[[Action], str],
        context: SyncContext,
    ) -> None:
        """Pending records for the grants about to be sent; settled or dropped records for
        the steps that need no call."""
        pending = [
            DiscordGrant(
                group_id=group_id,
                guild_id=guild(a),
                kind=a.grant.kind,
                target_id=a.grant.target_id,
                discord_user_id=a.grant.discord_user_id,
                granted_at=context.now,
                state=DeliveryState.PENDING.value,
            )
            for a in actions
            if a.step is Step.GRANT
        ]
        settle = [a.grant for a in actions if a.step is Step.SETTLE]
        forget = [a.grant for a in actions if a.step is Step.FORGET]
        if not (pending or settle or forget):
            return
        async with fence.transaction() as session:
            session.add_all(pending)
            await _settle(session, group_id, settle)
            await _forget(session, group_id, forget)

    async def _record_outcomes(
        self, fence: Fence, group_id: int, errors: Mapping[Action, BaseException | None]
    ) -> None:
        """Confirmed grants settled, confirmed removals and refused grants dropped; a call
        with no clear answer leaves its record as it was (the next run reads live state)."""
        settle: list[Grant] = []
        forget: list[Grant] = []
        for action, error in errors.items():
            if error is None:
                (forget if action.step is Step.REVOKE else settle).append(action.grant)
            elif isinstance(error, NeedsAttentionError) and action.step is Step.GRANT:
                forget.append(action.grant)  # refused, so certainly not applied: void intent
        if not (settle or forget):
            return
        async with fence.transaction() as session:
            await _settle(session, group_id, settle)
            await _forget(session, group_id, forget)


def deleted_channel(channel: str, column: str, exc: NeedsAttentionError) -> MissingTargetError:
    return MissingTargetError(
        f"Discord channel {channel} no longer exists (Discord: {exc.status} {exc}): set "
        f"{column} to an existing channel, or clear it",
        service=SERVICE, target="channel", target_id=channel, found="channel deleted",
        setting=column, status=exc.status, code=exc.code,
    )


# Core statements on the table (not the ORM entity): executed once per parameter set.
_TABLE = cast(Table, DiscordGrant.__table__)
_BY_GRANT = (
    DiscordGrant.group_id == bindparam("g_group"),
    DiscordGrant.kind == bindparam("g_kind"),
    DiscordGrant.target_id == bindparam("g_target"),
    DiscordGrant.discord_user_id == bindparam("g_user"),
)


def _grant_params(group_id: int, grants: Sequence[Grant]) -> list[dict[str, object]]:
    return [
        {"g_group": group_id, "g_kind": g.kind, "g_target": g.target_id,
         "g_user": g.discord_user_id}
        for g in grants
    ]


async def _settle(session: AsyncSession, group_id: int, grants: Sequence[Grant]) -> None:
    if grants:  # one statement, executed for every grant
        await session.execute(
            update(_TABLE).where(*_BY_GRANT)
            .values(state=DeliveryState.SETTLED.value),
            _grant_params(group_id, grants),
        )


async def _forget(session: AsyncSession, group_id: int, grants: Sequence[Grant]) -> None:
    if grants:
        await session.execute(
            delete(_TABLE).where(*_BY_GRANT), _grant_params(group_id, grants)
        )


async def _all(reads: Iterable[Awaitable[T]]) -> list[T]:
    """Every read's answer; if one failed, its error once all have ended (no read is left
    running behind a sync that already gave up)."""
    answers = await asyncio.gather(*reads, return_exceptions=True)
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    return cast(list[T], answers)


async def recorded_grants(session: AsyncSession, group_id: int
                          ) -> dict[Grant, tuple[str, str]]:
    """The group's delivery records: grant → (state, guild it was made in)."""
    rows = (
        await session.execute(select(DiscordGrant).where(DiscordGrant.group_id == group_id))
    ).scalars()
    return {Grant(r.kind, r.target_id, r.discord_user_id): (r.state, r.guild_id) for r in rows}
