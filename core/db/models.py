"""The data model: the platform's membership data, and groupsync's own bookkeeping.

Bookkeeping tables (sync_state, delivery records) key on ``group_id`` *without* a foreign
key: a deleted group must still be synced to empty, so its records outlive it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.db.types import UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class SyncType(str):
    """A sync type's name. Which names exist, and everything about each, is the sync-type
    registry's (``core.syncers.types``); the built-in four are named here so that code
    and tests can say ``SyncType.DISCORD``. Any name the registry holds may be stored."""

    __slots__ = ()

    DISCORD: ClassVar[SyncType]
    CALENDAR: ClassVar[SyncType]
    REMINDERS: ClassVar[SyncType]
    RSVPS: ClassVar[SyncType]


SyncType.DISCORD = SyncType("discord")
SyncType.CALENDAR = SyncType("calendar")
SyncType.REMINDERS = SyncType("reminders")
SyncType.RSVPS = SyncType("rsvps")


class SyncStatus(StrEnum):
    OK = "ok"
    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    NEEDS_ATTENTION = "needs_attention"
    HELD = "held"  # the deletion guard holds its plan for an operator (core.syncers.guard)


class MemberRole(StrEnum):
    PARTICIPANT = "participant"
    FACILITATOR = "facilitator"


class RsvpResponse(StrEnum):
    NEEDS_ACTION = "needsAction"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    TENTATIVE = "tentative"


def _in(values: type[StrEnum]) -> str:
    return "(" + ", ".join(f"'{v.value}'" for v in values) + ")"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    discord_user_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    discord_guild_id: Mapped[str | None] = mapped_column(String(32))
    discord_text_channel_id: Mapped[str | None] = mapped_column(String(32))
    discord_voice_channel_id: Mapped[str | None] = mapped_column(String(32))
    discord_role_id: Mapped[str | None] = mapped_column(String(32))
    calendar_id: Mapped[str | None] = mapped_column(String(255))
    archived: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (
        CheckConstraint(f"role IN {_in(MemberRole)}", name="role"),
        CheckConstraint("left_at IS NULL OR left_at >= joined_at", name="left_after_joined"),
        # A user is active in at most one group at a time: enforced by the database.
        Index(
            "uq_memberships_one_active_per_user",
            "user_id",
            unique=True,
            sqlite_where=text("left_at IS NULL"),
            postgresql_where=text("left_at IS NULL"),
        ),
        Index("ix_memberships_group_active", "group_id", "left_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16), default=MemberRole.PARTICIPANT.value)
    joined_at: Mapped[datetime]
    left_at: Mapped[datetime | None]


class Meeting(Base):
    __tablename__ = "meetings"
    __table_args__ = (
        UniqueConstraint("group_id", "sequence"),
        CheckConstraint("duration_minutes > 0", name="positive_duration"),
        Index("ix_meetings_group_start", "group_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime]
    duration_minutes: Mapped[int] = mapped_column(Integer, default=60)
    sequence: Mapped[int] = mapped_column(Integer)
    calendar_event_id: Mapped[str | None] = mapped_column(String(1024))


class Rsvp(Base):
    __tablename__ = "rsvps"
    __table_args__ = (
        UniqueConstraint("meeting_id", "user_id"),
        CheckConstraint(f"response IN {_in(RsvpResponse)}", name="response"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    response: Mapped[str] = mapped_column(String(16), default=RsvpResponse.NEEDS_ACTION.value)
    updated_at: Mapped[datetime]


class SyncState(Base):
    """The outbox and the retry record of one (sync type, group): DESIGN §3.

    A key is owed while ``requested_generation > completed_generation``. A request bumps
    the requested generation (in the caller's transaction: the outbox); a run records the
    generation it started from and completes exactly that one, so a request that arrives
    mid-run leaves the key dirty and causes one more run. ``attempt`` counts consecutive
    failures and ``next_attempt_at`` is when the retry is due: the APScheduler job is only
    the timer for it, re-armed from this row whenever a daemon starts.
    """

    __tablename__ = "sync_state"
    __table_args__ = (
        CheckConstraint(f"status IN {_in(SyncStatus)}", name="status"),
        Index("ix_sync_state_owed", "next_attempt_at"),
    )

    sync_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    group_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16), default=SyncStatus.PENDING.value)
    requested_generation: Mapped[int] = mapped_column(BigInteger, default=0)
    completed_generation: Mapped[int] = mapped_column(BigInteger, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    failing_since: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_result: Mapped[dict[str, Any] | None]
    sentry_reported_level: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    # The needs-attention set (core.admin.attention): when the key last entered it (set by
    # a needs-attention failure, cleared by any other outcome), and an operator's
    # acknowledgement of it (who, when, note), cleared by the key's next success.
    attention_since: Mapped[datetime | None]
    ack_by: Mapped[str | None] = mapped_column(String(200))
    ack_at: Mapped[datetime | None]
    ack_note: Mapped[str | None] = mapped_column(Text)
    # The oldest request the key still owes (kept while owed, NULL once applied): a success
    # times commit → applied from it (core.history). A request that arrived during the run
    # that applied the one before is timed from that run's claim (an upper bound).
    requested_at: Mapped[datetime | None]


class ServiceHealth(StrEnum):
    """What the engine found about a service as a whole and keeps for every process (the
    pause and the live breaker and rate limits are their own columns and heartbeats)."""

    HEALTHY = "healthy"
    CREDENTIALS_REJECTED = "credentials_rejected"


class ServiceState(Base):
    """Per external service: operator switches (pause/resume, breaker reset) and the
    service-level health the engine found (credentials rejected, with the service's words,
    since when, the next probe and the setting to fix), shared by every daemon and face."""

    __tablename__ = "service_state"

    service: Mapped[str] = mapped_column(String(16), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_reason: Mapped[str | None] = mapped_column(Text)
    paused_by: Mapped[str | None] = mapped_column(String(200))  # who paused it (the banner)
    paused_at: Mapped[datetime | None]  # since when it is paused
    # The pause ends by itself at this time (None: until someone resumes it).
    paused_until: Mapped[datetime | None]
    # An operator asked to close this service's circuit; each daemon resets its breaker
    # once for every request newer than the last one it applied.
    breaker_reset_requested_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    health: Mapped[str] = mapped_column(String(24), default=ServiceHealth.HEALTHY,
                                        server_default=ServiceHealth.HEALTHY.value)
    health_since: Mapped[datetime | None]
    health_reason: Mapped[str | None] = mapped_column(Text)  # the service's own words
    health_variable: Mapped[str | None] = mapped_column(String(64))  # the setting to fix
    next_probe_at: Mapped[datetime | None]


class DeliveryState(StrEnum):
    """Intent before effect: a record is written ``pending`` before its external write is
    sent and ``settled`` once the answer came back. A pending record whose outcome is
    unknown (timeout, crash, lost lease) is resolved by the next run from the live state."""

    PENDING = "pending"
    SETTLED = "settled"
    RESEND = "resend"  # ours; a force re-sync asked for it to be sent again whatever is live


class DiscordGrant(Base):
    """A permission groupsync granted (or is granting): a member overwrite or a role.

    Only what is recorded here is ever revoked, so overwrites made by people survive.
    """

    __tablename__ = "discord_grants"
    __table_args__ = (
        UniqueConstraint("group_id", "kind", "target_id", "discord_user_id"),
        CheckConstraint("kind IN ('channel_overwrite', 'role')", name="kind"),
        CheckConstraint(f"state IN {_in(DeliveryState)}", name="state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(Integer, index=True)
    guild_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(24))
    target_id: Mapped[str] = mapped_column(String(32))
    discord_user_id: Mapped[str] = mapped_column(String(32))
    granted_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(
        String(16), default=DeliveryState.SETTLED.value, server_default=DeliveryState.SETTLED.value
    )


class CalendarEventRecord(Base):
    """A calendar event groupsync created (or is creating) for a meeting.

    One row per (calendar, event): a meeting whose group moved calendars has the old
    calendar's row, still owed a cancel, beside the new one until the cancel succeeds."""

    __tablename__ = "calendar_events"
    __table_args__ = (
        UniqueConstraint("calendar_id", "event_id"),
        CheckConstraint(f"state IN {_in(DeliveryState)}", name="state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(Integer, index=True)
    meeting_id: Mapped[int] = mapped_column(Integer, index=True)
    calendar_id: Mapped[str] = mapped_column(String(255))
    event_id: Mapped[str] = mapped_column(String(1024))
    etag: Mapped[str | None] = mapped_column(String(255))
    # What we last applied: the fingerprint decides whether an update is needed, the start
    # keeps past meetings' events out of every later plan.
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    starts_at: Mapped[datetime | None]
    attendees: Mapped[list[Any]] = mapped_column(JSON, default=list)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(
        String(16), default=DeliveryState.SETTLED.value, server_default=DeliveryState.SETTLED.value
    )


class ReminderStatus(StrEnum):
    """A reminder row's life: scheduled → sending → sent; a failed post → retrying; a
    reminder the daemon could not post within the grace window → missed; one already too
    late when it was planned → skipped; its meeting or group gone → cancelled."""

    SCHEDULED = "scheduled"
    SENDING = "sending"
    RETRYING = "retrying"
    SENT = "sent"
    MISSED = "missed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class ReminderDelivery(Base):
    """One reminder per (meeting, offset), delivered at most once (docs/reminders.md).

    The row is the only record: the syncer writes it (due time, status), the active
    daemon's delivery arms its timer from it and records every attempt on it, with the
    same retry fields as a sync key (attempt, next attempt, last error, failing since).
    ``first_post_at`` is when the first post was attempted: Discord dedupes a re-post
    with the same nonce only for a few minutes after it.
    """

    __tablename__ = "reminder_deliveries"
    __table_args__ = (
        CheckConstraint(f"status IN {_in(ReminderStatus)}", name="status"),
        Index("ix_reminder_deliveries_status", "status"),
    )

    meeting_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    offset_minutes: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    group_id: Mapped[int] = mapped_column(Integer, index=True)
    fire_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default=ReminderStatus.SCHEDULED.value)
    nonce: Mapped[str] = mapped_column(String(25))
    message_id: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[datetime | None]
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    failing_since: Mapped[datetime | None]
    sentry_reported_level: Mapped[int] = mapped_column(
        Integer, default=0, server_default=text("0")
    )
    first_post_at: Mapped[datetime | None]


class SyncAttempt(Base):
    """One finished run of a key, for the operator's history view (bounded per key)."""

    __tablename__ = "sync_attempts"
    __table_args__ = (Index("ix_sync_attempts_key_at", "sync_type", "group_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sync_type: Mapped[str] = mapped_column(String(16))
    group_id: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(24))
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float | None]
    attempt: Mapped[int] = mapped_column(Integer, default=0)


class BulkJob(Base):
    """A confirmed bulk retry: its items are the durable progress, run by the active daemon."""

    __tablename__ = "bulk_jobs"
    __table_args__ = (
        CheckConstraint("state IN ('queued', 'running', 'done', 'cancelled')", name="state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="retry")
    state: Mapped[str] = mapped_column(String(16), default="queued")
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    requested_by: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class BulkJobItem(Base):
    __tablename__ = "bulk_job_items"
    __table_args__ = (
        CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed', 'cancelled')", name="state"
        ),
        Index("ix_bulk_job_items_job_state", "job_id", "state"),
    )

    job_id: Mapped[int] = mapped_column(
        ForeignKey("bulk_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    sync_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    group_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    updated_at: Mapped[datetime]


class DaemonHeartbeat(Base):
    """A daemon's liveness and its in-memory client state, published every half second."""

    __tablename__ = "daemon_heartbeats"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime]
    last_heartbeat: Mapped[datetime]
    clients: Mapped[list[Any]] = mapped_column(JSON, default=list)


class IdempotentRequest(Base):
    """The answer to a mutating API request, replayed when its Idempotency-Key comes again."""

    __tablename__ = "idempotent_requests"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class HeldDecision(StrEnum):
    PENDING = "pending"  # waiting for an operator
    APPROVED = "approved"  # an operator let exactly this plan's removals through
    REJECTED = "rejected"  # stays held until the desired membership changes


class HeldPlan(Base):
    """A sync the deletion guard held before any write: its exact plan, for an operator.

    One row per key. ``fingerprint`` is the desired membership the plan was made from: a
    rejection holds only while it is unchanged, an approval applies only to it."""

    __tablename__ = "held_plans"
    __table_args__ = (
        CheckConstraint(f"decision IN {_in(HeldDecision)}", name="decision"),
    )

    sync_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    group_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    removals: Mapped[int] = mapped_column(Integer)
    members: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    held_at: Mapped[datetime]
    decision: Mapped[str] = mapped_column(String(16), default=HeldDecision.PENDING.value)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]


class AppliedRemovals(Base):
    """Removals the guard let through, per sync type and time: the sliding window every
    daemon counts against GUARD_MAX_REMOVALS_PER_10_MIN (rows older than it are pruned)."""

    __tablename__ = "applied_removals"
    __table_args__ = (Index("ix_applied_removals_type_at", "sync_type", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sync_type: Mapped[str] = mapped_column(String(16))
    group_id: Mapped[int] = mapped_column(Integer)
    removals: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]


class AdminAction(Base):
    """One operator action (retry, pause, approve, acknowledge …): who, what, when and its
    result, for the dashboard's audit view. Written beside the ``admin_action`` log line."""

    __tablename__ = "admin_actions"
    __table_args__ = (Index("ix_admin_actions_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(32))
    via: Mapped[str] = mapped_column(String(16))
    who: Mapped[str] = mapped_column(String(200))
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)


class CalendarSyncToken(Base):
    """Where each calendar's incremental sync resumes: Google's ``nextSyncToken`` from the
    last list that was applied (answers imported, repairs owed) in the same transaction."""

    __tablename__ = "calendar_sync_tokens"

    calendar_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    sync_token: Mapped[str] = mapped_column(Text)
    synced_at: Mapped[datetime]


class CalendarPushChannel(Base):
    """A Google watch channel on a followed calendar (Calendar push, issue 22): its id,
    the resource Google named, when it expires, and the secret token every notification
    must carry (compared in constant time; never logged or shown). Google cannot list
    channels, so this table is the only record of them."""

    __tablename__ = "calendar_push_channels"

    channel_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    calendar_id: Mapped[str] = mapped_column(String(255), index=True)
    resource_id: Mapped[str] = mapped_column(String(255))  # "" until the watch answered
    token: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime]


class HistoryRollup(Base):
    """History kept in SQL (core.history): per minute and per hour, a series' label (runs
    by "sync type:outcome", calls by "service:status", rate-limit waits by "service:lane",
    owed keys by sync type, latency bucket counts) with its value and its sample count
    (a gauge is value / samples). Buckets follow TIME_SCALE; the daemon prunes them."""

    __tablename__ = "history_rollups"

    resolution: Mapped[str] = mapped_column(String(8), primary_key=True)
    at: Mapped[datetime] = mapped_column(primary_key=True)
    series: Mapped[str] = mapped_column(String(24), primary_key=True)
    label: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0.0)
    samples: Mapped[int] = mapped_column(Integer, default=0)


class WakeClock(Base):
    """SQLite's hand-off signal (core.engine.loops.wakeup): one row whose ``ticks`` the
    database's own triggers (migration 0014) bump on every write to the tables a daemon
    must notice (sync_state, service_state, bulk_jobs, held_plans, reminder_deliveries),
    by whatever process. The daemon's watcher reads it when the file changed, so its own
    heartbeats and history writes wake nothing. Unused on PostgreSQL (NOTIFY)."""

    __tablename__ = "wake_clock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ticks: Mapped[int] = mapped_column(Integer, default=0)
