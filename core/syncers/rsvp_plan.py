"""Pure: the RSVP rows a group's upcoming meetings should have.

Every active member has a row per upcoming meeting; rows of people who left go; answers
read from the calendar (when a refresh read them) replace what we stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.syncers.snapshot import GroupSnapshot

VALID_RESPONSES = frozenset({"needsAction", "accepted", "declined", "tentative"})


@dataclass(frozen=True)
class RsvpPlan:
    insert: tuple[tuple[int, int, str], ...]  # (meeting, user, response)
    update: tuple[tuple[int, int, str], ...]
    delete: tuple[tuple[int, int], ...]
    unchanged: int


def plan_rsvps(
    snapshot: GroupSnapshot,
    existing: dict[tuple[int, int], str],
    calendar_answers: dict[int, dict[str, str]] | None,
) -> RsvpPlan:
    """``existing``: (meeting, user) → response for the group's upcoming meetings.
    ``calendar_answers``: meeting → email → responseStatus, or None when not read."""
    desired: dict[tuple[int, int], str] = {}
    if snapshot.exists:
        for meeting in snapshot.upcoming:
            answers = (calendar_answers or {}).get(meeting.meeting_id, {})
            for member in snapshot.members:
                key = (meeting.meeting_id, member.user_id)
                answer = answers.get(member.email.lower())
                if answer not in VALID_RESPONSES:
                    answer = existing.get(key, "needsAction")
                desired[key] = answer
    insert = [(m, u, r) for (m, u), r in sorted(desired.items()) if (m, u) not in existing]
    update = [
        (m, u, r)
        for (m, u), r in sorted(desired.items())
        if (m, u) in existing and existing[(m, u)] != r
    ]
    delete = sorted(key for key in existing if key not in desired)
    unchanged = len(desired) - len(insert) - len(update)
    return RsvpPlan(tuple(insert), tuple(update), tuple(delete), unchanged)
