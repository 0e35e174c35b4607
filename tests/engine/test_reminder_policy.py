"""The delivery's decision for a reminder row: a table of cases (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.reminders.policy import Action, Decision, RowFacts, decide, timer_time

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=10)
WINDOW = timedelta(minutes=2)


def s(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        # settled rows are left alone
        (RowFacts("sent", s(-5), None, s(-5)), Decision(Action.NOTHING)),
        (RowFacts("missed", s(-5), None, None), Decision(Action.NOTHING)),
        (RowFacts("cancelled", s(-5), None, None), Decision(Action.NOTHING)),
        # meeting or group gone: cancelled, whatever the row said
        (RowFacts("scheduled", None, None, None), Decision(Action.CANCEL)),
        (RowFacts("retrying", None, s(5), s(-20)), Decision(Action.CANCEL)),
        # never early: a moved meeting re-arms to its new time
        (RowFacts("scheduled", s(3600), None, None), Decision(Action.WAIT, at=s(3600))),
        # ... and a post that may have landed at the old time is looked for first
        (
            RowFacts("sending", s(3600), None, s(-30)),
            Decision(Action.WAIT, at=s(3600), check_channel=True),
        ),
        # due: post
        (RowFacts("scheduled", s(0), None, None), Decision(Action.POST)),
        (RowFacts("scheduled", s(-599), None, None), Decision(Action.POST)),
        # past the grace window: missed (after a look, if a post may have landed)
        (RowFacts("scheduled", s(-601), None, None), Decision(Action.MISS)),
        (
            RowFacts("retrying", s(-601), s(-1), s(-300)),
            Decision(Action.MISS, check_channel=True),
        ),
        # backing off: wait for the retry time
        (RowFacts("retrying", s(-10), s(2), s(-10)), Decision(Action.WAIT, at=s(2))),
        # a retry within Discord's dedupe window re-posts with the same nonce ...
        (RowFacts("retrying", s(-10), s(-1), s(-60)), Decision(Action.POST)),
        (RowFacts("sending", s(-10), None, s(-119)), Decision(Action.POST)),
        # ... beyond it, looks in the channel first
        (
            RowFacts("sending", s(-10), None, s(-120)),
            Decision(Action.POST, check_channel=True),
        ),
    ],
)
def test_decide(facts: RowFacts, expected: Decision) -> None:
    assert decide(facts, NOW, GRACE, WINDOW) == expected


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (RowFacts("scheduled", s(60), None, None), s(60)),
        (RowFacts("retrying", s(-10), s(4), s(-10)), s(4)),
        (RowFacts("retrying", s(60), s(4), s(-10)), s(60)),  # moved later than the retry
        (RowFacts("sending", s(60), None, s(-1)), NOW),  # a crash's leftover: settle now
        (RowFacts("scheduled", None, None, None), NOW),  # meeting gone: cancel now
    ],
)
def test_timer_time(facts: RowFacts, expected: datetime) -> None:
    assert timer_time(facts, NOW) == expected
