"""The deletion guard's rows: held plans and the window of removals let through.

``GuardStore`` is the ``core.syncers.guard.GuardPort`` the engine hands every run: one
short transaction per check reads the key's held plan and its sync type's removals in
the window, asks the pure policy, and stores the outcome (a go's removals enter the
window, a hold's plan replaces the key's held plan). On PostgreSQL the check takes a
transaction-level advisory lock, so two daemons cannot both spend the window's last
removals; SQLite serialises writers by itself.

The operators' side (list, approve, reject) is ``core.admin.held``, on the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import AppliedRemovals, HeldDecision, HeldPlan
from core.db.session import SessionFactory, dialect_name
from core.engine.running.state import Statement, SyncKey
from core.syncers.guard import (
    WINDOW_SECONDS,
    Check,
    Judgement,
    Limits,
    Proposal,
    Stored,
    decide,
    judge,
)

# pg_advisory_xact_lock key of the window ("gsguard1"); leadership and migrations use others.
WINDOW_LOCK_KEY = 0x6773677561726431


@dataclass
class GuardStore:
    session_factory: SessionFactory
    limits: Limits
    window_seconds: float = WINDOW_SECONDS  # already multiplied by the time scale

    async def check(self, check: Check) -> Judgement:
        proposal, now = check.proposal, check.now
        async with self.session_factory() as session, session.begin():
            if dialect_name(session) == "postgresql":
                await session.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                                      {"k": WINDOW_LOCK_KEY})
            in_window = await _in_window(session, check.sync_type, now, self.window_seconds)
            row = await session.get(HeldPlan, (check.sync_type, check.group_id))
            verdict = decide(proposal.removals, proposal.members, in_window, self.limits)
            judgement = judge(proposal, verdict, _stored(row))
            if judgement.go:
                counted = row is not None and bool(row.plan.get("counted"))
                if proposal.removals and not counted:
                    session.add(AppliedRemovals(sync_type=check.sync_type,
                                                group_id=check.group_id,
                                                removals=proposal.removals, at=now))
                if row is not None and judgement.forget:
                    await session.delete(row)
                elif row is not None and judgement.approved:
                    row.plan = {**row.plan, "counted": True}  # a retry is not counted twice
            elif judgement.store:
                _hold(session, row, check, judgement.reason)
        return judgement

    async def applied(self, sync_type: str, group_id: int) -> None:
        async with self.session_factory() as session, session.begin():
            await session.execute(delete(HeldPlan).where(
                HeldPlan.sync_type == sync_type, HeldPlan.group_id == group_id,
                HeldPlan.decision == HeldDecision.APPROVED.value))


def held_plan_done(key: SyncKey) -> tuple[Statement, ...]:
    """The statement that deletes the key's held plan, for a success record's transaction."""
    return ((_DELETE_PLAN, {"p_type": key.sync_type, "p_group": key.group_id}),)


_PLANS: Table = HeldPlan.__table__  # type: ignore[assignment]
_DELETE_PLAN = delete(_PLANS).where(_PLANS.c.sync_type == bindparam("p_type"),
                                    _PLANS.c.group_id == bindparam("p_group"))


def plan_json(proposal: Proposal) -> dict[str, Any]:
    return {"removed": sorted(proposal.removed), **proposal.plan}


def _stored(row: HeldPlan | None) -> Stored | None:
    if row is None:
        return None
    return Stored(row.fingerprint, frozenset(row.plan.get("removed", [])), row.decision,
                  row.reason)


def _hold(session: AsyncSession, row: HeldPlan | None, check: Check, reason: str) -> None:
    proposal = check.proposal
    if row is None:
        row = HeldPlan(sync_type=check.sync_type, group_id=check.group_id, held_at=check.now)
        session.add(row)
    elif row.fingerprint != proposal.fingerprint:
        row.held_at = check.now  # a new membership: a new plan to decide on
    row.plan = plan_json(proposal)
    row.removals = proposal.removals
    row.members = proposal.members
    row.reason = reason
    row.fingerprint = proposal.fingerprint
    row.decision = HeldDecision.PENDING.value
    row.decided_by = None
    row.decided_at = None


async def _in_window(session: AsyncSession, sync_type: str, now: datetime,
                     window_seconds: float) -> int:
    """Removals of ``sync_type`` let through within the window; older rows are pruned."""
    cutoff = now - timedelta(seconds=window_seconds)
    await session.execute(delete(AppliedRemovals).where(AppliedRemovals.at < cutoff))
    total = await session.scalar(
        select(func.coalesce(func.sum(AppliedRemovals.removals), 0))
        .where(AppliedRemovals.sync_type == sync_type, AppliedRemovals.at >= cutoff))
    return int(total or 0)

