"""How a planned syncer (discord, calendar) applies its plan and tallies what happened.

Both syncers read, plan, then apply the plan's actions in batches whose calls are in
flight together. ``SyncRun`` is that skeleton written once: each batch's outcomes are
tallied into the result dict (a permanent error for one action is counted and the rest
still converge; anything else stops the run), each repair of drift is reported, and the
first problem is raised once everything that could be applied was. ``Wording`` is how a
syncer names its steps, for the result counters and the drift lines.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from core.errors import CredentialsRejectedError, MissingTargetError, NeedsAttentionError
from core.syncers.base import SyncResult
from core.syncers.drift import DriftItem, report_repair

A = TypeVar("A")

Outcome = tuple[A, BaseException | None]


class PlannedAction(Protocol):
    """An action of a plan, as the tally and the drift report read it."""

    @property
    def step(self) -> Hashable: ...

    @property
    def subject(self) -> str: ...  # which overwrite, role or event

    @property
    def found(self) -> str: ...  # what the live state showed

    @property
    def drift(self) -> bool: ...  # found behind our back


P = TypeVar("P", bound=PlannedAction)


def tally_batch(
    outcomes: Sequence[Outcome[A]],
    result: SyncResult,
    problems: list[NeedsAttentionError],
    done: Callable[[A], None],
) -> None:
    """``done`` counts each action that succeeded. A permanent error for one action is
    counted and the others still converge; anything else (transient, lease lost) stops
    the run once the batch's outcomes are recorded, and the retry redoes the rest."""
    for action, error in outcomes:
        if error is None:
            done(action)
        elif isinstance(error, NeedsAttentionError) and not _service_wide(error):
            result["failed"] += 1
            problems.append(error)
    # Rejected credentials are the whole service's, not one action's: stop at once.
    stop = next((e for _, e in outcomes
                 if e is not None and (not isinstance(e, NeedsAttentionError)
                                       or _service_wide(e))), None)
    if stop is not None:
        raise stop


def _service_wide(error: BaseException) -> bool:
    return isinstance(error, CredentialsRejectedError)


def first_problem(problems: Sequence[NeedsAttentionError]) -> NeedsAttentionError:
    """The problem a run ends with: the service's refusal of the credentials before any
    one target's (it parks the whole service), else the first met."""
    return next((p for p in problems if _service_wide(p)), problems[0])


@dataclass(frozen=True)
class Wording:
    """How one syncer names its steps: per step, the result counter a done one adds one
    to (None: none) and what it does, for the drift lines."""

    service: str
    steps: Mapping[Hashable, tuple[str | None, str]]

    def counter(self, step: Hashable) -> str | None:
        return self.steps[step][0]

    def done(self, step: Hashable) -> str:
        return self.steps[step][1]

    def item(self, group_id: int, action: PlannedAction, done: str) -> DriftItem:
        return DriftItem(group_id, self.service, action.subject, action.found, done)

    def missing(self, group_id: int, error: MissingTargetError) -> DriftItem:
        """A deleted channel or calendar: no sync restores it, a person fixes the setting."""
        return DriftItem(group_id, self.service, f"{error.target} {error.target_id}",
                         error.found, f"needs attention: fix {error.setting}",
                         repairable=False)

    def would(self, group_id: int, drift: Iterable[PlannedAction]) -> list[DriftItem]:
        """``drift()``'s answer: what a sync would do about each difference found."""
        return [self.item(group_id, a, f"would be {self.done(a.step)}") for a in drift]


@dataclass
class SyncRun(Generic[P]):
    """One run's result dict and problems, filled batch by batch."""

    wording: Wording
    group_id: int
    result: SyncResult
    problems: list[NeedsAttentionError]

    async def apply(
        self,
        actions: Sequence[P],
        batch: int,
        send: Callable[[Sequence[P]], Awaitable[Sequence[Outcome[P]]]],
    ) -> None:
        """``send`` applies one batch of at most ``batch`` actions and returns each one's
        outcome; a batch is tallied before the next is sent."""
        for start in range(0, len(actions), batch):
            outcomes = await send(actions[start:start + batch])
            tally_batch(outcomes, self.result, self.problems, self._done)

    def finish(self) -> SyncResult:
        if self.problems:
            # Everything that could be applied was; the first problem names what needs fixing.
            raise first_problem(self.problems)
        return self.result

    def _done(self, action: P) -> None:
        counter = self.wording.counter(action.step)
        if counter is not None:
            self.result[counter] += 1
        if action.drift:
            self.result["repaired"] += 1
            report_repair(self.wording.item(self.group_id, action, self.wording.done(action.step)))
