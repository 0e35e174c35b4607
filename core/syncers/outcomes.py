"""How a syncer tallies one batch of calls that were in flight together."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from core.errors import NeedsAttentionError
from core.syncers.base import SyncResult

A = TypeVar("A")

Outcome = tuple[A, BaseException | None]


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
        elif isinstance(error, NeedsAttentionError):
            result["failed"] += 1
            problems.append(error)
    stop = next((e for _, e in outcomes
                 if e is not None and not isinstance(e, NeedsAttentionError)), None)
    if stop is not None:
        raise stop
