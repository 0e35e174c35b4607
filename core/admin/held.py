"""Plans the deletion guard holds, and an operator's decision on one (issue 25).

``approve``: the key runs again at once; its run applies the held plan if the desired
membership is still the one it was made from and it removes no one the plan did not
(else it is planned, and judged, afresh). ``reject``: the key stays held until the
membership changes. Both are rows (``held_plans``), so any daemon acts on them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update

from core.admin.control import _notify, require_positive
from core.admin.errors import NotFound
from core.admin.keys import parse_sync_type
from core.db.models import HeldDecision, HeldPlan, SyncState, SyncStatus, User
from core.db.session import SessionFactory
from core.engine.running.state import HELD_KIND


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def list_held(session_factory: SessionFactory) -> list[dict[str, Any]]:
    """Every held plan whose key is still held, oldest first, with the users it removes."""
    async with session_factory() as session:
        rows = (await session.execute(
            select(HeldPlan).join(SyncState, (SyncState.sync_type == HeldPlan.sync_type)
                                  & (SyncState.group_id == HeldPlan.group_id))
            .where(SyncState.status == SyncStatus.HELD.value)
            .order_by(HeldPlan.held_at, HeldPlan.sync_type, HeldPlan.group_id)
        )).scalars().all()
        removed = {who for r in rows for who in r.plan.get("removed", [])}
        names = await _names(session, removed)
    return [held_item(r, names) for r in rows]


async def _names(session: Any, identities: set[str]) -> dict[str, str]:
    """Display names of the removed (a Discord user id or an e-mail), where known."""
    if not identities:
        return {}
    found: dict[str, str] = {}
    chunk = sorted(identities)
    for start in range(0, len(chunk), 500):
        part = chunk[start:start + 500]
        users = (await session.execute(select(User).where(
            or_(User.discord_user_id.in_(part), User.email.in_(part))))).scalars()
        for user in users:
            for key in (user.discord_user_id, user.email.lower()):
                if key in identities:
                    found[key] = user.display_name
    return found


def held_item(row: HeldPlan, names: dict[str, str]) -> dict[str, Any]:
    removed = list(row.plan.get("removed", []))
    return {
        "sync_type": row.sync_type,
        "group_id": row.group_id,
        "reason": row.reason,
        "removals": row.removals,
        "members": row.members,
        "held_at": _iso(row.held_at),
        "decision": row.decision,
        "decided_by": row.decided_by,
        "decided_at": _iso(row.decided_at),
        "users": [{"id": who, "name": names.get(who)} for who in removed],
        "plan": {k: v for k, v in row.plan.items() if k not in ("removed", "counted")},
    }


async def decide(session_factory: SessionFactory, sync_type: str, group_id: int,
                 decision: HeldDecision, who: str, now: datetime) -> dict[str, Any]:
    """Record an operator's decision on a held key; an approval makes the key due now."""
    kind = parse_sync_type(sync_type)
    require_positive(group_id)
    async with session_factory() as session, session.begin():
        row = await session.get(HeldPlan, (kind, group_id))
        state = await session.get(SyncState, (kind, group_id))
        if row is None or state is None or not _held(state):
            raise NotFound(f"{kind}:{group_id} is not held")
        row.decision = decision.value
        row.decided_by = who[:200]
        row.decided_at = now
        if decision is HeldDecision.APPROVED:
            await session.execute(
                update(SyncState)
                .where(SyncState.sync_type == kind, SyncState.group_id == group_id)
                # Due now, and its run is the approved plan's, not a re-check of a hold;
                # a new request, so a re-check in flight records "pending", not "held".
                .values(status=SyncStatus.PENDING.value, next_attempt_at=None, error_kind=None,
                        requested_generation=SyncState.requested_generation + 1,
                        updated_at=now)
                .execution_options(synchronize_session=False))
            await _notify(session)
        else:
            state.last_error = "rejected by an operator; held until the membership changes"
            state.updated_at = now
        return {"sync_type": kind, "group_id": group_id, "decision": decision.value,
                "removals": row.removals, "decided_by": row.decided_by,
                "decided_at": now.isoformat()}


def _held(state: SyncState) -> bool:
    """Held, or running its re-check (the claim keeps the hold's error kind): a decision
    then is the operator's all the same."""
    return state.status == SyncStatus.HELD.value or (
        state.status == SyncStatus.RUNNING.value and state.error_kind == HELD_KIND)
