"""Pure: one group's state item by item, for the operator's group page (issue 23): what
groupsync wants, what the service holds (as the sync's own read found it), and what a
sync would do about the difference. Built from the same reading and plan a sync applies,
so the page shows what the next run will really send.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from core.clients.ports import Overwrite
from core.syncers.calendar_plan import CalendarAction, CalendarPlan, EventSpec, LiveEvent
from core.syncers.calendar_plan import Step as CalendarStep
from core.syncers.discord_plan import (
    CHANNEL_OVERWRITE,
    ROLE,
    TEXT_ALLOW,
    VOICE_ALLOW,
    Action,
    DiscordPlan,
    Grant,
    LiveDiscord,
    Step,
    desired_grants,
    looks_ours,
)
from core.syncers.snapshot import GroupSnapshot

IN_STEP = "in step"


@dataclass(frozen=True)
class ViewItem:
    subject: str  # which overwrite, role or event
    desired: str  # what groupsync wants ("not wanted": ours, to be removed)
    live: str  # what the service holds now ("missing" when nothing is there)
    difference: str  # IN_STEP, or what a sync does: "will be restored", …
    sends: str | None = None  # the call the plan makes for it, if any

    @property
    def in_step(self) -> bool:
        return self.difference == IN_STEP


@dataclass(frozen=True)
class LiveView:
    """One sync type's items for a group; ``problems`` are what kept parts unread."""

    items: tuple[ViewItem, ...]
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "items": [{**asdict(i), "in_step": i.in_step} for i in self.items],
            "problems": list(self.problems),
            "differences": sum(1 for i in self.items if not i.in_step),
        }


# ---- discord -------------------------------------------------------------------------------
_DISCORD_WILL = {Step.GRANT: "will be granted", Step.RESTORE: "will be restored",
                 Step.REVOKE: "will be revoked", Step.SETTLE: "record will be settled (no call)",
                 Step.FORGET: "record will be dropped (no call)"}
_ALLOW_WORDS = {TEXT_ALLOW: "view, send, read history", VOICE_ALLOW: "view, connect, speak"}


def _allow(allow: int) -> str:
    return _ALLOW_WORDS.get(allow, f"allow {allow}")


def _discord_subject(grant: Grant) -> str:
    if grant.kind == ROLE:
        return f"role {grant.target_id} for user {grant.discord_user_id}"
    return f"overwrite on channel {grant.target_id} for user {grant.discord_user_id}"


def discord_call(action: Action) -> str | None:
    """The request a planned Discord action sends (None: a record change only)."""
    grant = action.grant
    if action.step in (Step.SETTLE, Step.FORGET):
        return None
    verb = "DELETE" if action.step is Step.REVOKE else "PUT"
    if grant.kind == CHANNEL_OVERWRITE:
        return f"{verb} /channels/{grant.target_id}/permissions/{grant.discord_user_id}"
    return f"{verb} /guilds/…/members/{grant.discord_user_id}/roles/{grant.target_id}"


def _discord_live(grant: Grant, live: LiveDiscord) -> str:
    if grant.kind == ROLE:
        roles = live.roles.get(grant.discord_user_id)
        if roles is None:
            return "not read"
        return "held" if grant.target_id in roles else "missing"
    overwrites: Mapping[str, Overwrite] | None = live.overwrites.get(grant.target_id)
    if overwrites is None:
        return "not read"
    found = overwrites.get(grant.discord_user_id)
    if found is None:
        return "missing"
    if looks_ours(found, grant.allow):
        return _allow(found.allow)
    return f"a different overwrite (allow {found.allow}, deny {found.deny})"


def discord_view(snapshot: GroupSnapshot, records: Mapping[Grant, str], live: LiveDiscord,
                 plan: DiscordPlan, problems: tuple[str, ...] = ()) -> LiveView:
    desired, _ = desired_grants(snapshot)
    wanted = {g: g for g in desired}
    actions = {a.grant: a for a in plan.actions}
    items = []
    for key in sorted(set(wanted) | set(records)):
        grant = wanted.get(key) or next((a.grant for a in plan.actions if a.grant == key), key)
        action = actions.get(key)
        seen = _discord_live(grant, live)
        if action is not None:
            difference = f"{_DISCORD_WILL[action.step]} ({action.found})"
        elif seen == "not read":
            difference = "unknown: not read"
        elif key in wanted and key not in records:
            difference = "left alone: a person's overwrite or role"
        else:
            difference = IN_STEP
        items.append(ViewItem(
            _discord_subject(grant),
            (_allow(grant.allow) if grant.kind == CHANNEL_OVERWRITE else "held")
            if key in wanted else "not wanted (ours: to remove)",
            seen, difference, discord_call(action) if action is not None else None))
    return LiveView(tuple(items), problems)


# ---- calendar ------------------------------------------------------------------------------
_CALENDAR_WILL = {CalendarStep.INSERT: "will be created", CalendarStep.UPDATE: "will be updated",
                  CalendarStep.SETTLE: "record will be settled (no call)",
                  CalendarStep.CANCEL: "will be cancelled",
                  CalendarStep.CLOSE: "record will be closed (no call)"}


def _event_words(spec: EventSpec) -> str:
    return (f"“{spec.body.get('summary', '')}” at {spec.starts_at.isoformat()}, "
            f"{len(spec.attendees)} attendee(s)")


def _live_event_words(event: LiveEvent | None) -> str:
    if event is None:
        return "missing"
    if event.status == "cancelled":
        return "cancelled"
    start = event.start.isoformat() if event.start else "no start"
    return f"“{event.summary}” at {start}, {len(event.attendees)} attendee(s)"


def calendar_call(action: CalendarAction) -> str | None:
    """The request a planned calendar action sends (None: a record change only)."""
    where = action.spec or action.record
    if where is None:
        return None
    calendar, event = where.calendar_id, where.event_id
    return {CalendarStep.INSERT: f"POST /calendars/{calendar}/events",
            CalendarStep.UPDATE: f"PUT /calendars/{calendar}/events/{event}",
            CalendarStep.CANCEL: f"DELETE /calendars/{calendar}/events/{event}"}.get(action.step)


def calendar_view(desired: list[EventSpec], plan: CalendarPlan,
                  live: Mapping[str, LiveEvent] | None, problems: tuple[str, ...] = ()
                  ) -> LiveView:
    by_event: dict[str, CalendarAction] = {}
    for planned in plan.actions:
        where = planned.spec or planned.record
        if where is not None:
            by_event[where.event_id] = planned
    items = []
    for spec in desired:
        action: CalendarAction | None = by_event.pop(spec.event_id, None)
        seen = (live or {}).get(spec.event_id)
        if action is not None:
            will = _CALENDAR_WILL[action.step]
            if action.drift and action.step in (CalendarStep.INSERT, CalendarStep.UPDATE):
                will = "will be restored"
            difference = f"{will} ({action.found})"
        else:
            difference = IN_STEP
        items.append(ViewItem(f"event {spec.event_id} on {spec.calendar_id}",
                              _event_words(spec),
                              _live_event_words(seen) if live is not None else "not read",
                              difference, calendar_call(action) if action else None))
    for gone in by_event.values():  # ours, no longer wanted
        items.append(ViewItem(gone.subject, "not wanted (ours: to cancel)",
                              _live_event_words(gone.live),
                              f"{_CALENDAR_WILL[gone.step]} ({gone.found})",
                              calendar_call(gone)))
    return LiveView(tuple(items), problems)
