"""Force re-sync of one group: each sync type that says what to forget (its spec's
``forget``: the built-in ones mark the Discord grants still desired ``resend`` and drop
the calendar events' fingerprints) forgets it and runs again, so all of it is sent
again (each calendar event as one full update, or an insert if it has no record).
Records are kept, not deleted: a sync decides what is ours from them, and an overwrite
of ours without its record would look like a person's, never to be removed.

What is no longer desired keeps its record (so it is still removed), and a reminder
already sent or skipped is final: it is never sent again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.admin.control import require_positive
from core.admin.errors import NotFound
from core.admin.estimate import Estimate, estimate_key
from core.config import Settings
from core.db.models import Group
from core.db.session import SessionFactory
from core.engine.running.outbox import mark_owed
from core.syncers import types
from core.syncers.snapshot_loader import load_snapshot
from core.syncers.spec import SyncTypeSpec


def resent() -> tuple[SyncTypeSpec, ...]:
    """The sync types a force re-sync runs again: those that say what to forget."""
    return tuple(spec for spec in types.registered() if spec.forget is not None)


class ResyncPlan(Estimate):
    def to_json(self) -> dict[str, Any]:
        return {"overwrites": self.overwrites, "events": self.events,
                "reminders": self.reminders, "calls": self.calls, "sends": list(self.sends)}


async def preview(session_factory: SessionFactory, settings: Settings, group_id: int,
                  now: datetime) -> ResyncPlan:
    group_id = require_positive(group_id)
    total = Estimate()
    async with session_factory() as session:
        if await session.get(Group, group_id) is None:
            raise NotFound(f"unknown group {group_id}")
        for spec in resent():
            total = total + await estimate_key(session, settings, spec.name, group_id, now,
                                               forget=True)
    return ResyncPlan(total.calls, total.overwrites, total.events, total.reminders,
                      total.sends)


async def run(session_factory: SessionFactory, settings: Settings, group_id: int,
              now: datetime) -> ResyncPlan:
    """Forget and mark owed in one transaction; the daemon (or a caller) runs the keys."""
    plan = await preview(session_factory, settings, group_id, now)
    async with session_factory() as session, session.begin():
        snapshot = await load_snapshot(session, group_id, now)
        specs = resent()
        for spec in specs:
            assert spec.forget is not None
            await spec.forget(session, snapshot)
        await mark_owed(session, [group_id], now, [spec.sync_type for spec in specs])
    return plan
