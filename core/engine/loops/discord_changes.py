"""The active daemon's Discord gateway (DESIGN §4): its link is started for the term and
closed with it (a standby keeps no connection), and every change the gateway sees to a
channel's overwrites is judged: a person's edit of ours on an active group's channel
owes that group's Discord key a run at once (background lane, reason ``live_change``,
one ``discord_live_change`` line naming what changed); a deleted channel of a group the
same, whose run names the missing target. Our own writes' echoes are not judged at all.

Changes are handled one channel at a time in arrival order, each in its own
transaction; a burst on one channel while another is judged is judged once (before:
the first, after: the latest).
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clients.discord_gateway import GatewayLink
from core.clients.gateway_cache import ChannelChange
from core.db.models import DiscordGrant, Group, SyncType
from core.engine.health.outage import is_database_unavailable
from core.engine.loops.live_changes import not_already_owed, run_repairs
from core.engine.running.outbox import mark_owed
from core.observability import get_logger
from core.syncers.discord_access import recorded_grants
from core.syncers.discord_changes import GroupView, Verdict, judge
from core.syncers.discord_plan import CHANNEL_OVERWRITE
from core.syncers.snapshot_loader import load_snapshot

if TYPE_CHECKING:
    from core.engine.running.context import Runtime

log = get_logger("groupsync.discord_changes")


class GatewayFollower:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._queue: dict[str, ChannelChange] = {}
        self._wake = asyncio.Event()
        self._runs: set[asyncio.Task[None]] = set()

    def take(self, change: ChannelChange) -> None:
        """From the gateway, in the event loop: queue the change (never blocks)."""
        if change.echo:
            return  # exactly what our own write expected
        earlier = self._queue.pop(change.channel_id, None)
        if earlier is not None:
            change = ChannelChange(change.channel_id, change.guild_id, earlier.before,
                                   change.after, how=change.how)
        self._queue[change.channel_id] = change
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                channel = next(iter(self._queue))
                change = self._queue.pop(channel)
                try:
                    await self.handle(change)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not is_database_unavailable(exc):
                        log.exception("discord_change_failed", channel_id=channel)
                    else:  # the drift sweep is the safety net; the row is not yet owed
                        self._rt.outage.failed(exc, where="discord_changes")

    async def handle(self, change: ChannelChange) -> Verdict:
        rt = self._rt
        now = rt.clock.now()
        async with rt.session_factory() as session, session.begin():
            views = await _groups_on(session, change.channel_id, now)
            verdict = judge(change, views)
            repairs = await not_already_owed(session, SyncType.DISCORD, verdict.repairs,
                                             running_too=True)
            await mark_owed(session, repairs, now, [SyncType.DISCORD])
        if repairs:
            task = asyncio.get_running_loop().create_task(run_repairs(
                rt, SyncType.DISCORD, {g: verdict.repairs[g] for g in repairs},
                "discord_live_change", channel_id=change.channel_id, how=change.how))
            self._runs.add(task)
            task.add_done_callback(self._runs.discard)
        return verdict

    async def close(self) -> None:
        for task in list(self._runs):
            task.cancel()
        for task in list(self._runs):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _groups_on(session: AsyncSession, channel_id: str, now: datetime
                     ) -> dict[int, GroupView]:
    """Active groups naming the channel, and any group holding records of ours on it."""
    named = select(Group.id).where(
        Group.archived.is_(False),
        or_(Group.discord_text_channel_id == channel_id,
            Group.discord_voice_channel_id == channel_id))
    holding = select(DiscordGrant.group_id).where(
        DiscordGrant.kind == CHANNEL_OVERWRITE, DiscordGrant.target_id == channel_id)
    ids = set(await session.scalars(named)) | set(await session.scalars(holding))
    views = {}
    for group_id in sorted(ids):
        rows = await recorded_grants(session, group_id)
        views[group_id] = GroupView(await load_snapshot(session, group_id, now),
                                    {grant: state for grant, (state, _) in rows.items()})
    return views


async def follow_gateway(rt: Runtime, stack: AsyncExitStack) -> GatewayLink | None:
    """Connect this term's gateway link (if the clients have one) and judge its changes
    until ``stack`` closes; the link closes with the term's clients."""
    link = rt.client_board.gateway
    if not isinstance(link, GatewayLink):
        return None
    follower = GatewayFollower(rt)
    task = asyncio.get_running_loop().create_task(follower.run())

    async def stop() -> None:
        await link.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await follower.close()

    stack.push_async_callback(stop)
    link.start(follower.take)
    log.info("discord_gateway_following")
    return link
