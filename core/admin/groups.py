"""One group's page (issue 23): its members, each sync type's key with its waiting
reason, the attempt timeline (stored parts, from the rows any process reads), the live
state read on demand through the syncers' own read and plan (background lane, on the
active daemon, which holds the clients and their rate limits), and "Sync now": every
sync type of the group run through the engine with a step trace.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sqlalchemy import func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from core import tracing
from core.admin.errors import AdminError, Invalid, NotFound
from core.admin.keys import WaitContext, key_item
from core.db.groups import unknown_groups
from core.db.models import Group, Membership, SyncAttempt, SyncState, User
from core.db.session import SessionFactory
from core.engine.running import runner, state
from core.engine.running.outbox import mark_owed
from core.engine.running.state import SyncKey
from core.lanes import Lane
from core.syncers import types
from core.syncers.base import SyncContext, is_failure
from core.syncers.view import LiveView

if TYPE_CHECKING:
    from core.engine.running.context import Runtime

TIMELINE = 50
SEARCH_LIMIT = 20


class Unavailable(AdminError):
    status = 503
    title = "Service unavailable"


@runtime_checkable
class Inspector(Protocol):
    """A syncer that lists a group item by item without changing anything."""

    async def inspect(self, group_id: int, context: SyncContext) -> LiveView: ...


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def search(sessions: SessionFactory, text: str, limit: int = SEARCH_LIMIT
                 ) -> list[dict[str, Any]]:
    """Groups whose id is the text, or whose name (any case) contains it."""
    needle = text.strip()
    if not needle:
        return []
    like = "%" + needle.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    conditions: list[ColumnElement[bool]] = [func.lower(Group.name).like(like, escape="\\")]
    if needle.isdigit() and len(needle) < 10:
        conditions.append(Group.id == int(needle))
    async with sessions() as session:
        rows = (await session.scalars(
            select(Group).where(or_(*conditions)).order_by(Group.id).limit(limit))).all()
    return [{"id": g.id, "name": g.name, "archived": bool(g.archived)} for g in rows]


async def detail(sessions: SessionFactory, group_id: int, context: WaitContext
                 ) -> dict[str, Any]:
    async with sessions() as session:
        if await unknown_groups(session, [group_id]):
            raise NotFound(f"unknown group {group_id}: no such group and no sync key")
        group = await session.get(Group, group_id)
        members = (await session.execute(
            select(User, Membership.joined_at).join(Membership, Membership.user_id == User.id)
            .where(Membership.group_id == group_id, Membership.left_at.is_(None))
            .order_by(User.id))).all()
        rows = {r.sync_type: r for r in (await session.scalars(
            select(SyncState).where(SyncState.group_id == group_id))).all()}
        attempts = (await session.scalars(
            select(SyncAttempt).where(SyncAttempt.group_id == group_id)
            .order_by(SyncAttempt.id.desc()).limit(TIMELINE))).all()
    return {
        "now": context.now.isoformat(),
        "group": None if group is None else {
            "id": group.id, "name": group.name, "archived": bool(group.archived),
            "discord_guild_id": group.discord_guild_id,
            "discord_text_channel_id": group.discord_text_channel_id,
            "discord_voice_channel_id": group.discord_voice_channel_id,
            "discord_role_id": group.discord_role_id, "calendar_id": group.calendar_id,
        },
        "members": [{"user_id": u.id, "display_name": u.display_name, "email": u.email,
                     "discord_user_id": u.discord_user_id, "joined_at": _iso(joined)}
                    for u, joined in members],
        "sync_types": [{
            "sync_type": spec.name, "label": spec.label, "service": spec.service,
            "live_readable": spec.drift,
            "key": key_item(rows[spec.name], context) if spec.name in rows else None,
        } for spec in types.registered()],
        "attempts": [{"sync_type": a.sync_type, "at": a.at.isoformat(), "outcome": a.outcome,
                      "duration_ms": a.duration_ms, "attempt": a.attempt, "error": a.error}
                     for a in attempts],
    }


async def require_group(sessions: SessionFactory, group_id: int) -> None:
    async with sessions() as session:
        if await unknown_groups(session, [group_id]):
            raise NotFound(f"unknown group {group_id}: no such group and no sync key")


def _runtime(runtime: Runtime | None, what: str) -> Runtime:
    if runtime is None:
        raise Unavailable(f"{what} runs on the active daemon (it holds the clients and their "
                          "rate limits); this process is not leading now")
    return runtime


async def read_live(runtime: Runtime | None, group_id: int) -> dict[str, Any]:
    """Each live-readable sync type, read as its sync reads (the drift path: its syncer's
    own read and plan, nothing written) in the background lane, with the calls made."""
    rt = _runtime(runtime, "a live read")
    found: list[dict[str, Any]] = []
    for spec in types.registered():
        syncer = rt.syncers.get(spec.sync_type)
        if not spec.drift or not isinstance(syncer, Inspector):
            continue
        trace = tracing.Trace()
        context = SyncContext(lane=Lane.BACKGROUND, now=rt.clock.now())
        entry: dict[str, Any] = {"sync_type": spec.name, "label": spec.label,
                                 "service": spec.service, "lane": Lane.BACKGROUND.value}
        try:
            with tracing.tracing(trace):
                view = await syncer.inspect(group_id, context)
            entry.update(view.to_json())
        except Exception as exc:  # the service's words: one type unread, the others go on
            entry.update({"items": [], "differences": 0, "problems": [str(exc)[:500]]})
        entry["read_at"] = rt.clock.now().isoformat()
        entry["calls"] = [s["text"] for s in trace.steps if s["kind"] == "call"]
        found.append(entry)
    return {"group_id": group_id, "sync_types": found}


def would_send(live: dict[str, Any]) -> dict[str, Any]:
    """The dry run of Sync now: per sync type, the items it would send (and their calls)."""
    types_found = []
    for entry in live["sync_types"]:
        items = [i for i in entry["items"] if not i["in_step"]]
        types_found.append({"sync_type": entry["sync_type"], "label": entry["label"],
                            "read_at": entry["read_at"], "problems": entry["problems"],
                            "items": items,
                            "calls": sum(1 for i in items if i["sends"])})
    return {"group_id": live["group_id"], "dry_run": True, "sync_types": types_found,
            "calls": sum(t["calls"] for t in types_found)}


async def sync_now(runtime: Runtime | None, group_id: int) -> dict[str, Any]:
    """Every sync type of the group, owed now and run through the engine (lease, fence,
    record, history as any run), interactive, each with its own step trace."""
    rt = _runtime(runtime, "Sync now")
    keys = [SyncKey(t, group_id) for t in types.names()]
    uncovered = await state.not_yet_covered(rt.session_factory, keys, rt.clock.now())
    if uncovered:
        async with rt.session_factory() as session, session.begin():
            await mark_owed(session, [group_id], rt.clock.now(), [k.sync_type for k in uncovered])
    started = rt.clock.now()
    runs = await asyncio.gather(*(_traced_run(rt, key) for key in keys))
    return {"group_id": group_id, "started_at": started.isoformat(),
            "finished_at": rt.clock.now().isoformat(), "sync_types": list(runs)}


async def _traced_run(rt: Runtime, key: SyncKey) -> dict[str, Any]:
    trace = tracing.Trace()
    with tracing.tracing(trace):  # the run's tasks inherit it (see core.tracing)
        result = await runner.run_key(rt, key, lane=Lane.INTERACTIVE, reason="sync_now")
    outcome = ("skipped" if result.get("skipped") else
               "held" if result.get("held") else
               "failed" if is_failure(result) else "ok")
    if not trace.steps and outcome not in ("skipped",):
        trace.add("note", "this run was shared with one already queued: its steps were not "
                  "traced here")
    words = result.get("error") or result.get("skipped") or result.get("held")
    trace.add("result", f"{outcome}: {words}" if words else f"{outcome}: "
              + ", ".join(f"{k} {v}" for k, v in result.items() if isinstance(v, int | float)))
    return {"sync_type": key.sync_type, "outcome": outcome,
            "result": {k: v for k, v in result.items() if isinstance(v, str | int | float)},
            **trace.to_json()}


def parse_query(text: str | None) -> str:
    if text is None or not text.strip():
        raise Invalid("q: give a group id or part of a group's name")
    return text
