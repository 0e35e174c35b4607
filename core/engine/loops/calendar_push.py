"""Calendar push (issue 22, optional): with CALENDAR_PUSH_URL set, the active daemon keeps
one Google watch channel per followed calendar, and a verified notification lists that
calendar at once instead of at the next CALENDAR_CHANGES_SECONDS tick.

- A channel gets a random id and a random secret token, stored (``calendar_push_channels``)
  *before* the watch call, so the ``sync`` message Google sends as the channel opens is
  already verifiable. The token never reaches a log or the admin API.
- Channels expire (CALENDAR_PUSH_TTL_SECONDS asked; Google may give less) and Google never
  renews them: once one has less than CALENDAR_PUSH_RENEW_BEFORE_SECONDS left a new one is
  watched first, then the old one is stopped, so a notification is never missed between.
- Calendars no longer followed have their channels stopped; on shutdown (or a lost
  leadership) every channel is stopped. A daemon killed without stopping leaves rows the
  next leader adopts (the tokens are in the database) and renews or stops.
- Verified notifications (core/admin/push.py) call ``runtime.calendar_wakes.wake``; the
  worker here lists each woken calendar under the same per-calendar lock the periodic pass
  takes (core/engine/loops/calendar_changes.py).

Durations are nominal seconds: the TTL is asked of Google as is (the sandbox scales it by
its own time scale), the renewal margin and the check period are scaled by TIME_SCALE.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from core.clients.ports import CalendarPushPort
from core.db.models import CalendarPushChannel
from core.engine.health.outage import is_database_unavailable
from core.engine.loops.calendar_changes import follow_calendar, followed_calendars
from core.errors import SyncError
from core.lanes import Lane
from core.observability import get_logger

if TYPE_CHECKING:
    from core.engine.running.context import Runtime

log = get_logger("groupsync.calendar_push")
STOP_ALL_TIMEOUT = 5.0  # real seconds the shutdown spends stopping channels


@dataclass(frozen=True)
class Channel:
    """What the plan needs of a stored channel."""

    channel_id: str
    calendar_id: str
    resource_id: str
    expires_at: datetime


@dataclass(frozen=True)
class Plan:
    watch: list[str] = field(default_factory=list)  # calendars that need a new channel
    stop: list[Channel] = field(default_factory=list)  # channels to end (old, unfollowed)


def plan_channels(followed: Iterable[str], channels: Iterable[Channel], now: datetime,
                  renew_before: timedelta) -> Plan:
    """Per followed calendar keep its newest channel with more than ``renew_before`` left;
    without one, watch anew (and keep the old ones until then: the overlap). Every other
    channel is stopped."""
    by_calendar: dict[str, list[Channel]] = {}
    for channel in channels:
        by_calendar.setdefault(channel.calendar_id, []).append(channel)
    wanted = set(followed)
    plan = Plan()
    for calendar_id in sorted(wanted):
        mine = by_calendar.get(calendar_id, [])
        fresh = [c for c in mine if c.expires_at - now > renew_before]
        if not fresh:
            plan.watch.append(calendar_id)
            plan.stop.extend(c for c in mine if c.expires_at <= now)  # already silent
            continue
        keep = max(fresh, key=lambda c: c.expires_at)
        plan.stop.extend(c for c in mine if c is not keep)
    for calendar_id in sorted(set(by_calendar) - wanted):
        plan.stop.extend(by_calendar[calendar_id])
    return plan


class CalendarPush:
    """The push loop of one leading term: watch, renew, stop; and the woken lists."""

    def __init__(self, rt: Runtime, calendar: CalendarPushPort, address: str) -> None:
        self.rt = rt
        self.calendar = calendar
        self.address = address
        settings = rt.settings
        self.ttl = settings.calendar_push_ttl_seconds
        self.renew_before = timedelta(
            seconds=rt.time_scale.seconds(settings.calendar_push_renew_before_seconds))
        self.check_every = rt.time_scale.seconds(settings.calendar_push_check_seconds)

    # ---- channels ------------------------------------------------------------------------
    async def tick(self) -> Plan:
        """Watch what needs a channel, then stop what the new ones replace."""
        now = self.rt.clock.now()
        async with self.rt.session_factory() as session:
            followed = await followed_calendars(session)
        plan = plan_channels(followed, await self._channels(), now, self.renew_before)
        for calendar_id in plan.watch:
            await self._watch(calendar_id)
            # What changed before the channel opened was never notified: list it now.
            self.rt.calendar_wakes.wake(calendar_id)
        if plan.watch:  # the new channels are live: what they replace can go
            plan = plan_channels(followed, await self._channels(), self.rt.clock.now(),
                                 self.renew_before)
        for channel in plan.stop:
            await self._stop(channel, now)
        return plan

    async def stop_all(self) -> int:
        channels = await self._channels()
        now = self.rt.clock.now()
        for channel in channels:
            await self._stop(channel, now)
        if channels:
            log.info("calendar_push_stopped", channels=len(channels))
        return len(channels)

    async def _channels(self) -> list[Channel]:
        async with self.rt.session_factory() as session:
            rows = await session.scalars(select(CalendarPushChannel))
            return [Channel(r.channel_id, r.calendar_id, r.resource_id, r.expires_at)
                    for r in rows]

    async def _watch(self, calendar_id: str) -> None:
        channel_id, token = uuid.uuid4().hex, secrets.token_urlsafe(32)
        now = self.rt.clock.now()
        placeholder = now + timedelta(seconds=self.rt.time_scale.seconds(self.ttl))
        async with self.rt.session_factory() as session, session.begin():
            # Stored first: Google's "sync" message may arrive before the answer does.
            session.add(CalendarPushChannel(
                channel_id=channel_id, calendar_id=calendar_id, resource_id="",
                token=token, expires_at=placeholder, created_at=now))
        try:
            watched = await self.calendar.watch_events(
                calendar_id, channel_id, self.address, token, self.ttl, Lane.BACKGROUND)
        except BaseException:
            await self._forget(channel_id)
            raise
        async with self.rt.session_factory() as session, session.begin():
            row = await session.get(CalendarPushChannel, channel_id)
            if row is not None:
                row.resource_id = watched.resource_id
                row.expires_at = datetime.fromtimestamp(watched.expiration_ms / 1000, UTC)
        log.info("calendar_push_watching", calendar_id=calendar_id, channel_id=channel_id,
                 expires_at=datetime.fromtimestamp(watched.expiration_ms / 1000,
                                                   UTC).isoformat())

    async def _stop(self, channel: Channel, now: datetime) -> None:
        # An expired channel is silent already, and one whose watch never answered has no
        # resource to name: forget those without a call.
        if channel.expires_at > now and channel.resource_id:
            await self.calendar.stop_channel(channel.channel_id, channel.resource_id,
                                             Lane.BACKGROUND)
        await self._forget(channel.channel_id)

    async def _forget(self, channel_id: str) -> None:
        async with self.rt.session_factory() as session, session.begin():
            await session.execute(delete(CalendarPushChannel)
                                  .where(CalendarPushChannel.channel_id == channel_id))

    # ---- loops -----------------------------------------------------------------------------
    async def keep_channels(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except SyncError as exc:
                log.warning("calendar_push_failed", error=str(exc), kind=exc.kind)
            except Exception as exc:
                if not is_database_unavailable(exc):
                    raise
                self.rt.outage.failed(exc, where="calendar_push")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.check_every)

    async def list_woken(self, stop: asyncio.Event) -> None:
        """Each woken calendar listed at once (under its lock), until ``stop``."""
        wakes = self.rt.calendar_wakes
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                woken = asyncio.ensure_future(wakes.woken())
                await asyncio.wait([woken, stopping], return_when=asyncio.FIRST_COMPLETED)
                if not woken.done():
                    woken.cancel()
                    break
                for calendar_id in woken.result():
                    await self._list(calendar_id)
        finally:
            stopping.cancel()

    async def _list(self, calendar_id: str) -> None:
        calendar = self.rt.client_board.calendar
        if calendar is None:
            return
        try:
            async with self.rt.calendar_wakes.lock(calendar_id):
                await follow_calendar(self.rt, calendar, calendar_id)
        except SyncError as exc:
            log.warning("calendar_changes_failed", calendar_id=calendar_id, error=str(exc),
                        kind=exc.kind, woken_by="push")
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            self.rt.outage.failed(exc, where="calendar_push")


async def start_calendar_push(rt: Runtime, stack: AsyncExitStack) -> CalendarPush | None:
    """Run the push loops for this term when CALENDAR_PUSH_URL is set and the calendar
    client can watch; their channels are stopped when ``stack`` unwinds."""
    address = rt.settings.calendar_push_url
    calendar = rt.client_board.calendar
    if address is None or not isinstance(calendar, CalendarPushPort):
        return None
    push = CalendarPush(rt, calendar, address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(push.keep_channels(stop)), loop.create_task(push.list_woken(stop))]

    async def finish() -> None:
        stop.set()
        for task in tasks:
            try:
                await asyncio.wait_for(task, timeout=5)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception:
                log.exception("calendar_push_crashed")
        try:
            await asyncio.wait_for(push.stop_all(), timeout=STOP_ALL_TIMEOUT)
        except (TimeoutError, SyncError) as exc:
            log.warning("calendar_push_not_stopped", error=str(exc) or type(exc).__name__,
                        effect="the channels expire by themselves")

    stack.push_async_callback(finish)
    return push
