"""The skeleton of a planned syncer (discord, calendar), written once.

``sync``: read the group (snapshot, our records, the live state) and plan; apply the
plan's actions phase by phase, in batches whose calls are in flight together, each
batch tallied before the next is sent (``core.syncers.outcomes.SyncRun``); then raise
the first problem, once everything that could be applied was. ``drift``: the same read
and plan, nothing applied. A subclass says how it reads, what its result dict starts
from and which phases it applies.

Between plan and apply the deletion guard (``core.syncers.guard``) sees what the plan
removes, when the subclass says (``_proposal``): a held plan applies nothing and the
run returns ``{"held": reason}`` (the engine records the key ``held``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar, Generic, Protocol, TypeVar

from core import tracing
from core.db.session import SessionFactory
from core.errors import CredentialsRejectedError, MissingTargetError, NeedsAttentionError
from core.syncers.base import Fence, SyncContext, SyncResult
from core.syncers.drift import DriftItem
from core.syncers.guard import Check, Proposal
from core.syncers.outcomes import Outcome, PlannedAction, SyncRun, Wording
from core.syncers.view import LiveView

P = TypeVar("P", bound=PlannedAction)
P_co = TypeVar("P_co", bound=PlannedAction, covariant=True)


class Plan(Protocol[P_co]):
    @property
    def drift(self) -> Sequence[P_co]: ...  # the actions that repair what was found


class Reading(Protocol[P_co]):
    @property
    def plan(self) -> Plan[P_co]: ...


R = TypeVar("R", bound=Reading[PlannedAction])

# One batch of actions in, each one's outcome out.
Send = Callable[[Sequence[P]], Awaitable[Sequence[Outcome[P]]]]


class PlannedSyncer(ABC, Generic[R, P]):
    wording: ClassVar[Wording]
    batch: ClassVar[int]  # actions per batch: its intents in one transaction, outcomes in one

    def __init__(self, session_factory: SessionFactory) -> None:
        self._sessions = session_factory

    async def sync(self, group_id: int, context: SyncContext) -> SyncResult:
        fence = context.fence_or(self._sessions)
        reading = await self._read(group_id, context, fence)
        if tracing.current() is not None:
            self._trace_reading(reading)
        for problem in self._problems(reading):
            if isinstance(problem, CredentialsRejectedError):
                raise problem  # the service refused us: nothing of the plan could land
        proposal = self._proposal(reading)
        approved = False
        if context.guard is not None and proposal is not None:
            judgement = await context.guard.check(
                Check(str(getattr(self, "sync_type", "")), group_id, proposal, context.now))
            if not judgement.go:
                return {"held": judgement.reason, "removals": proposal.removals,
                        "members": proposal.members, "failed": 0}
            approved = judgement.approved
        run: SyncRun[P] = SyncRun(
            self.wording, group_id, self._counts(reading), self._problems(reading)
        )
        for actions, send in self._phases(reading, group_id, context, fence):
            await run.apply(actions, self.batch, send)
        result = run.finish()
        if approved and context.guard is not None and not int(result.get("failed", 0) or 0):
            await context.guard.applied(str(getattr(self, "sync_type", "")), group_id)
        return result

    async def drift(self, group_id: int, context: SyncContext) -> list[DriftItem]:
        """What differs from the live state and what a sync would do; changes nothing. A
        missing channel or calendar is reported as such, not as things to restore."""
        try:
            reading = await self._read(group_id, context, context.fence_or(self._sessions))
        except MissingTargetError as exc:
            return [self.wording.missing(group_id, exc)]
        missing = [self.wording.missing(group_id, p) for p in self._problems(reading)
                   if isinstance(p, MissingTargetError)]
        return missing + self.wording.would(group_id, reading.plan.drift)

    async def inspect(self, group_id: int, context: SyncContext) -> LiveView:
        """The group item by item (desired, live, what a sync would do), from the same
        read and plan a sync makes; changes nothing. A missing target is a problem."""
        try:
            reading = await self._read(group_id, context, context.fence_or(self._sessions))
        except MissingTargetError as exc:
            return LiveView((), (str(exc),))
        return self._view(reading)

    def _view(self, reading: R) -> LiveView:
        del reading
        return LiveView((), ("no item-by-item view for this sync type",))

    def _trace_reading(self, reading: R) -> None:
        """A traced run (Sync now): what the read found, and the plan."""
        problems = self._problems(reading)
        view = self._view(reading)
        tracing.note("read", f"live state read: {len(view.items)} item(s), "
                     f"{sum(1 for i in view.items if not i.in_step)} differ"
                     + (f"; {len(problems)} problem(s): {problems[0]}" if problems else ""))
        actions = list(reading.plan.actions) if hasattr(reading.plan, "actions") else []
        words = [f"{a.step} {a.subject} ({a.found})" for a in actions]
        tracing.note("plan", f"{len(actions)} action(s) planned"
                     + (": " + "; ".join(words[:20]) if words else ": nothing to send")
                     + (f"; … {len(words) - 20} more" if len(words) > 20 else ""))

    @abstractmethod
    async def _read(self, group_id: int, context: SyncContext, fence: Fence) -> R: ...

    @abstractmethod
    def _counts(self, reading: R) -> SyncResult:
        """The result dict before anything is applied ("failed" and "repaired" among it)."""

    def _proposal(self, reading: R) -> Proposal | None:
        """What the plan removes, for the deletion guard; None: it removes no one."""
        del reading
        return None

    def _problems(self, reading: R) -> list[NeedsAttentionError]:
        """Problems the read already met (they are raised after everything else)."""
        del reading
        return []

    @abstractmethod
    def _phases(
        self, reading: R, group_id: int, context: SyncContext, fence: Fence
    ) -> Sequence[tuple[Sequence[P], Send[P]]]:
        """The actions to apply, phase after phase, each with how one batch is sent."""
