"""The deletion guard's policy (core.syncers.guard): tables of cases, no I/O."""

from __future__ import annotations

import pytest

from core.syncers.guard import Limits, Proposal, Stored, Verdict, decide, judge

DEFAULTS = Limits(max_removals=10, max_share=0.5, max_per_window=500)


@pytest.mark.parametrize(("removals", "members", "in_window", "limits", "hold"), [
    (40, 40, 0, DEFAULTS, True),  # a group emptied
    (11, 21, 0, DEFAULTS, True),  # more than 10 and more than half
    (11, 22, 0, DEFAULTS, False),  # exactly half is not more than half
    (10, 10, 0, DEFAULTS, False),  # ten is not more than ten
    (3, 40, 0, DEFAULTS, False),  # a few leave
    (30, 100, 0, DEFAULTS, False),  # many, but a minority of a large group
    (0, 40, 499, DEFAULTS, False),  # nothing removed: never held
    (1, 40, 499, DEFAULTS, False),  # the window's 500th removal goes
    (1, 40, 500, DEFAULTS, True),  # its 501st is held
    (1, 40, 20, Limits(10, 0.5, 20), True),  # the cross-group limit set to 20: the 21st
    (20, 40, 0, Limits(10, 0.5, 20), False),  # ... and the first 20 go
    (40, 40, 0, Limits(0, 0.5, 500), False),  # GUARD_MAX_REMOVALS=0 disables the group rule
    (40, 40, 0, Limits(10, 0.0, 500), False),  # so does GUARD_MAX_REMOVAL_SHARE=0
    (1, 40, 10_000, Limits(10, 0.5, 0), False),  # GUARD_MAX_REMOVALS_PER_10_MIN=0: no window
    (12, 0, 0, DEFAULTS, True),  # members unknown: every removal is the whole group
])
def test_decide(removals: int, members: int, in_window: int, limits: Limits,
                hold: bool) -> None:
    verdict = decide(removals, members, in_window, limits)
    assert verdict.hold is hold
    assert bool(verdict.reason) is hold


def test_the_reason_names_the_counts_and_the_limit() -> None:
    assert decide(40, 40, 0, DEFAULTS).reason == (
        "would remove 40 of 40 members (100%); limit: more than 10 and more than 50%")
    assert "to 21 (20 already, 1 here); limit 20" in decide(1, 5, 20, Limits(10, 0.5, 20)).reason


def proposal(*removed: str, fingerprint: str = "f1") -> Proposal:
    return Proposal(frozenset(removed), members=40, plan={}, fingerprint=fingerprint)


HOLD = Verdict(True, "too many")
GO = Verdict(False)


@pytest.mark.parametrize(("case", "verdict", "stored", "go", "store", "approved", "forget"), [
    ("fresh hold", HOLD, None, False, True, False, False),
    ("fresh go", GO, None, True, False, False, False),
    ("approved, same plan", HOLD, Stored("f1", frozenset("abc"), "approved"),
     True, False, True, False),
    ("approved, membership changed", HOLD, Stored("f0", frozenset("abc"), "approved"),
     False, True, False, False),
    ("approved, would now remove someone more", HOLD,
     Stored("f1", frozenset("ab"), "approved"), False, True, False, False),
    ("rejected, unchanged", GO, Stored("f1", frozenset("abc"), "rejected"),
     False, False, False, False),
    ("rejected, membership changed and under the limits", GO,
     Stored("f0", frozenset("abc"), "rejected"), True, False, False, True),
    ("rejected, membership changed, still too many", HOLD,
     Stored("f0", frozenset("abc"), "rejected"), False, True, False, False),
    ("pending, re-planned the same", HOLD, Stored("f1", frozenset("abc"), "pending"),
     False, True, False, False),
    # A re-check: the window that held it has room again, but only a person lets the
    # same removals through.
    ("pending, re-checked, the window has room again", GO,
     Stored("f1", frozenset("abc"), "pending", "window full"), False, True, False, False),
    ("pending, membership changed and under the limits", GO,
     Stored("f0", frozenset("abc"), "pending"), True, False, False, True),
])
def test_judge(case: str, verdict: Verdict, stored: Stored | None, go: bool, store: bool,
               approved: bool, forget: bool) -> None:
    found = judge(proposal("a", "b", "c"), verdict, stored)
    assert (found.go, found.store, found.approved, found.forget) == (go, store, approved, forget)


def test_a_re_checked_hold_keeps_its_reason_and_goes_once_nobody_is_left_to_remove() -> None:
    stored = Stored("f1", frozenset("abc"), "pending", "would take removals past 500")
    kept = judge(proposal("a", "b"), GO, stored)
    assert (kept.go, kept.reason) == (False, "would take removals past 500")
    assert judge(proposal(), GO, stored).go  # people removed the access themselves
