"""Pure: what the delivery does with a reminder row when its timer fires.

Inputs are plain values read in one transaction (the row, its meeting, its group); the
answer is one decision. docs/reminders.md states the policy in prose:

- never early: the due time is read from the meeting now (a moved meeting is re-armed to
  its new time), never from a stale timer;
- none for a meeting or group that is gone (cancelled), none later than the grace window
  (missed);
- at most once: a row that may already have been posted (``first_post_at`` is set) is
  re-posted with the same nonce only within the nonce window Discord dedupes in; beyond it
  the channel is searched for our own message first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from core.db.models import ReminderStatus

PENDING = frozenset({ReminderStatus.SCHEDULED, ReminderStatus.RETRYING, ReminderStatus.SENDING})


class Action(StrEnum):
    NOTHING = "nothing"  # already settled (sent, missed, skipped, cancelled)
    CANCEL = "cancel"  # meeting or group gone, or no text channel any more
    WAIT = "wait"  # not due yet (or backing off): re-arm at ``at``
    MISS = "miss"  # past the grace window
    POST = "post"


@dataclass(frozen=True)
class RowFacts:
    status: str
    due_at: datetime | None  # meeting start - offset, read now; None: meeting/group gone
    next_attempt_at: datetime | None
    first_post_at: datetime | None


@dataclass(frozen=True)
class Decision:
    action: Action
    at: datetime | None = None  # WAIT: when to look again
    # Look for our own message in the channel before acting: a post may have landed.
    check_channel: bool = False


def decide(facts: RowFacts, now: datetime, grace: timedelta, nonce_window: timedelta) -> Decision:
    if facts.status not in PENDING:
        return Decision(Action.NOTHING)
    if facts.due_at is None:
        return Decision(Action.CANCEL)
    maybe_posted = facts.first_post_at is not None
    if now < facts.due_at:
        # Never early. A row that may have been posted at its old time is checked once.
        return Decision(Action.WAIT, at=facts.due_at, check_channel=maybe_posted)
    if now - facts.due_at > grace:
        return Decision(Action.MISS, check_channel=maybe_posted)
    if (
        facts.status == ReminderStatus.RETRYING
        and facts.next_attempt_at is not None
        and now < facts.next_attempt_at
    ):
        return Decision(Action.WAIT, at=facts.next_attempt_at)
    beyond_dedupe = maybe_posted and now - facts.first_post_at >= nonce_window  # type: ignore[operator]
    return Decision(Action.POST, check_channel=beyond_dedupe)


def timer_time(facts: RowFacts, now: datetime) -> datetime:
    """When to fire a pending row's timer: its due time, or its retry time if later; a row
    left ``sending`` (a crash) or whose meeting is gone is looked at at once."""
    if facts.status == ReminderStatus.SENDING or facts.due_at is None:
        return now
    at = facts.due_at
    if facts.status == ReminderStatus.RETRYING and facts.next_attempt_at is not None:
        at = max(at, facts.next_attempt_at)
    return at
