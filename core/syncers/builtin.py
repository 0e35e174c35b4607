"""The four built-in sync types, registered the way any other would be.

A service missing from ENABLED_SERVICES gets a syncer that records "disabled" and
succeeds: nothing is called, nothing is owed for ever.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import update

from core.db.models import CalendarEventRecord, DeliveryState, DiscordGrant, SyncType
from core.syncers.base import SyncContext, Syncer, SyncResult
from core.syncers.calendar_plan import desired_events
from core.syncers.discord_plan import desired_grants
from core.syncers.estimates import (
    calendar_estimate,
    discord_estimate,
    reminders_estimate,
    rsvps_estimate,
)
from core.syncers.spec import SyncTypeSpec

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from core.clients.factory import Clients
    from core.syncers.deps import SyncerDeps
    from core.syncers.snapshot import GroupSnapshot


class DisabledServiceSyncer:
    def __init__(self, sync_type: SyncType, service: str) -> None:
        self.sync_type = sync_type
        self._service = service

    async def sync(self, group_id: int, context: SyncContext) -> SyncResult:
        return {"disabled": self._service, "failed": 0}


# The syncer modules load when a runtime builds them: every CLI verb reads this registry
# (names, services, labels), and `status` should not pay for the syncers' imports.


def _discord(deps: SyncerDeps, clients: Clients) -> Syncer:
    from core.syncers.discord_access import DiscordAccessSyncer

    if clients.discord is None:
        return DisabledServiceSyncer(SyncType.DISCORD, "discord")
    return DiscordAccessSyncer(deps.session_factory, clients.discord)


def _calendar(deps: SyncerDeps, clients: Clients) -> Syncer:
    from core.syncers.calendar_events import CalendarEventsSyncer

    if clients.calendar is None:
        return DisabledServiceSyncer(SyncType.CALENDAR, "calendar")
    return CalendarEventsSyncer(deps.session_factory, clients.calendar)


def _reminders(deps: SyncerDeps, clients: Clients) -> Syncer:
    from core.reminders.sync import RemindersSyncer

    settings = deps.settings
    grace = timedelta(seconds=settings.reminder_grace_seconds)
    return RemindersSyncer(deps.session_factory, settings.reminder_offsets_minutes, grace,
                           clients.discord)


def _rsvps(deps: SyncerDeps, clients: Clients) -> Syncer:
    from core.syncers.rsvps import RsvpsSyncer

    return RsvpsSyncer(deps.session_factory, clients.calendar)


async def _resend_grants(session: AsyncSession, snapshot: GroupSnapshot) -> None:
    """Grants still desired are sent again; the records stay (they say what is ours)."""
    grants, _ = desired_grants(snapshot)
    for grant in grants:
        await session.execute(update(DiscordGrant).where(
            DiscordGrant.group_id == snapshot.group_id, DiscordGrant.kind == grant.kind,
            DiscordGrant.target_id == grant.target_id,
            DiscordGrant.discord_user_id == grant.discord_user_id,
        ).values(state=DeliveryState.RESEND.value))


async def _rewrite_events(session: AsyncSession, snapshot: GroupSnapshot) -> None:
    """Keep each record and its etag; a missing fingerprint forces a full write."""
    meetings = [spec.meeting_id for spec in desired_events(snapshot)]
    if meetings:
        await session.execute(update(CalendarEventRecord).where(
            CalendarEventRecord.group_id == snapshot.group_id,
            CalendarEventRecord.meeting_id.in_(meetings)).values(fingerprint=None))


async def _nothing_to_forget(session: AsyncSession, snapshot: GroupSnapshot) -> None:
    """Reminders are planned again; one already sent or skipped is final."""


def register_builtins(register: Callable[[SyncTypeSpec], SyncTypeSpec]) -> None:
    register(SyncTypeSpec(
        name=SyncType.DISCORD, label="Discord access", build=_discord,
        estimate=discord_estimate, service="discord", service_label="Discord", drift=True,
        forget=_resend_grants,
        description="channel overwrites and roles for the group's members"))
    register(SyncTypeSpec(
        name=SyncType.CALENDAR, label="Calendar events", build=_calendar,
        estimate=calendar_estimate, service="calendar",
        service_label="Google Calendar", drift=True, forget=_rewrite_events,
        description="the group's meetings with its members invited"))
    register(SyncTypeSpec(
        name=SyncType.REMINDERS, label="Reminders", build=_reminders,
        estimate=reminders_estimate, service=None, forget=_nothing_to_forget,
        description="reminder rows for upcoming meetings (delivery posts them)"))
    register(SyncTypeSpec(
        name=SyncType.RSVPS, label="RSVPs", build=_rsvps, estimate=rsvps_estimate,
        service="calendar", description="attendees' responses read back from the calendar"))
