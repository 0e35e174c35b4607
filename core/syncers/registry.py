"""The default SYNCER_FACTORY: the four syncers over the outbound clients.

A service missing from ENABLED_SERVICES gets a syncer that records "disabled" and
succeeds: nothing is called, nothing is owed for ever.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

from core.clients.factory import open_clients
from core.db.models import SyncType
from core.reminders.sync import RemindersSyncer
from core.syncers.base import SyncContext, Syncer, SyncResult
from core.syncers.calendar_events import CalendarEventsSyncer
from core.syncers.discord_access import DiscordAccessSyncer
from core.syncers.rsvps import RsvpsSyncer

if TYPE_CHECKING:
    from core.syncers.deps import SyncerDeps


class DisabledServiceSyncer:
    def __init__(self, sync_type: SyncType, service: str) -> None:
        self.sync_type = sync_type
        self._service = service

    async def sync(self, group_id: int, context: SyncContext) -> SyncResult:
        return {"disabled": self._service, "failed": 0}


async def build_syncers(deps: SyncerDeps) -> Mapping[SyncType, Syncer]:
    settings = deps.settings
    clients = await open_clients(settings, deps.exit_stack, deps.clock, deps.time_scale)
    deps.client_board.publish(clients.status_sources, clients.breaker_resets)
    grace = timedelta(seconds=settings.reminder_grace_seconds)
    discord: Syncer = (
        DiscordAccessSyncer(deps.session_factory, clients.discord)
        if clients.discord is not None
        else DisabledServiceSyncer(SyncType.DISCORD, "discord")
    )
    calendar: Syncer = (
        CalendarEventsSyncer(deps.session_factory, clients.calendar)
        if clients.calendar is not None
        else DisabledServiceSyncer(SyncType.CALENDAR, "calendar")
    )
    return {
        SyncType.DISCORD: discord,
        SyncType.CALENDAR: calendar,
        SyncType.REMINDERS: RemindersSyncer(
            deps.session_factory, settings.reminder_offsets_minutes, grace, clients.discord
        ),
        SyncType.RSVPS: RsvpsSyncer(deps.session_factory, clients.calendar),
    }
