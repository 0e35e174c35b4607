"""Settings from the environment (and an optional .env), validated once at start-up.

Secrets are ``SecretStr`` so they render as ``**********`` wherever a settings object is
printed or logged. ``load_settings`` turns pydantic's errors into one ``ConfigError`` that
names the environment variable.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.db.urls import normalize_database_url
from core.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/groupsync.db"


class Service(StrEnum):
    DISCORD = "discord"
    CALENDAR = "calendar"


class Settings(BaseSettings):
    # allow_inf_nan=False: TIME_SCALE=inf (or nan) would pass "> 0" and overflow later.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True,
        allow_inf_nan=False,
    )

    database_url: str = Field(
        DEFAULT_DATABASE_URL, description="SQLAlchemy URL; SQLite file by default"
    )
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    sentry_dsn: SecretStr | None = None
    sentry_environment: str = "production"

    enabled_services: Annotated[tuple[Service, ...], NoDecode] = (Service.DISCORD, Service.CALENDAR)
    discord_bot_token: SecretStr | None = None
    discord_api_base_url: str = "https://discord.com/api/v10"
    # The active daemon's gateway connection (GUILDS intent): a cache of the guild's
    # channels that syncs read instead of GET /channels/{id}, and people's overwrite
    # edits repaired within seconds. 0: every read over REST, edits left to the sweep.
    discord_gateway: bool = True
    # A write of ours whose CHANNEL_UPDATE echo has not come by then makes its channel
    # untrusted (read over REST) until the channel's next update; nominal seconds.
    discord_gateway_echo_timeout_seconds: float = Field(10.0, gt=0)
    google_credentials_file: Path | None = None
    google_impersonate_subject: str | None = Field(
        None, description="Workspace user a service account acts for (domain-wide delegation)"
    )
    google_calendar_endpoint: str = "https://www.googleapis.com/calendar/v3/"

    admin_host: str = "127.0.0.1"
    admin_port: int = Field(8765, ge=0, le=65535)
    admin_token: SecretStr | None = None
    # The admin API limits its own clients (core/admin/api/ratelimit.py): token buckets per
    # client for reads (GET) and actions (POST…), real seconds (not scaled).
    admin_read_rate_per_second: float = Field(10.0, gt=0, description="admin API reads refill")
    admin_read_burst: int = Field(60, ge=1, description="admin API reads in a burst")
    admin_action_rate_per_second: float = Field(5.0, gt=0, description="admin API actions refill")
    admin_action_burst: int = Field(30, ge=1, description="admin API actions in a burst")
    # Requests that earned a 401 (wrong sign-in, wrong bearer token), per address.
    admin_failed_auth_rate_per_second: float = Field(
        0.2, gt=0, description="admin API failed authentications refill")
    admin_failed_auth_burst: int = Field(
        10, ge=1, description="admin API failed authentications in a burst")
    admin_max_body_bytes: int = Field(
        65536, ge=1024, description="largest request body the admin API reads (else 413)")
    admin_middleware: str | None = Field(
        None, description="tests only: module:Class of an ASGI middleware put in front of the "
        "admin API (core.sandbox.admin_faults:AdminFaultInjection injects 429/503)")

    syncer_factory: str = Field(
        "core.syncers.registry:build_syncers",
        description="module:function that builds the four syncers; tests swap in fakes",
    )
    sync_type_modules: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="modules imported at start-up (every verb, the daemon, an embedded "
        "runtime) that register sync types of their own (core.syncers.types.register)")
    time_scale: float = Field(1.0, gt=0, description="multiplies every engine delay; tests only")
    # A run renews its lease every third of this and stops calling out after two thirds
    # without a renewal: the last third (15 s) covers one client call (its timeout is
    # 15 s). A key whose holder died waits at most this long (docs/decisions.md).
    lease_seconds: float = Field(45.0, gt=0)
    outbox_poll_seconds: float = Field(1.0, gt=0)
    # In-flight syncs get this long after SIGTERM; the rest stays owed. Below 10 s so the
    # whole shutdown (close clients, release leases) fits in the 10 s operators expect.
    shutdown_timeout_seconds: float = Field(7.0, gt=0)
    coalesce_window_seconds: float = Field(
        1.0, ge=0, description="a key runs at most once per window in a process (scaled)"
    )
    sync_concurrency: int = Field(8, gt=0, description="syncs run at once by one process")
    reminder_offsets_minutes: Annotated[tuple[int, ...], NoDecode] = (1440, 60)
    reminder_grace_seconds: float = Field(
        600.0, ge=0, description="a reminder not posted this long after its time is missed"
    )
    reminder_nonce_window_seconds: float = Field(
        120.0,
        gt=0,
        description="re-post with the same nonce only this soon after the first attempt "
        "(Discord dedupes for 'a few minutes'); later, look in the channel first",
    )
    # Calendar incremental sync (background lane): how often each followed calendar is
    # listed for what changed since its sync token (answers imported, edits repaired).
    calendar_changes_seconds: float = Field(60.0, gt=0)
    # Calendar push (optional): the public HTTPS URL the operator routes to the admin
    # server's POST /calendar/push. Set, the active daemon watches each followed calendar
    # and a verified notification lists it at once (core/engine/loops/calendar_push.py).
    calendar_push_url: str | None = Field(
        None, description="https URL routed to the admin server's /calendar/push "
        "(http only for a loopback host)")
    calendar_push_ttl_seconds: float = Field(
        86400.0, gt=0, le=604800, description="channel lifetime asked of Google")
    calendar_push_renew_before_seconds: float = Field(
        3600.0, gt=0, description="a channel with less left is replaced (new one first)")
    calendar_push_check_seconds: float = Field(
        300.0, gt=0, description="how often channels are checked for renewal")
    # The drift sweep (background lane) reconciles every group with the live services once
    # per period, waking every tick, and spends at most this share of a service's limit.
    drift_sweep_period_seconds: float = Field(86400.0, gt=0)
    drift_sweep_tick_seconds: float = Field(300.0, gt=0)
    drift_sweep_rate_share: float = Field(0.1, gt=0, le=1)
    sentry_attempt_milestones: Annotated[tuple[int, ...], NoDecode] = (10, 100, 1000)
    sentry_age_milestones_seconds: Annotated[tuple[int, ...], NoDecode] = (3600, 86400)
    # Outbound clients (core/clients): the documented limits (the clients keep a small
    # safety margin under them), nominal seconds (multiplied by time_scale).
    discord_requests_per_second: float = Field(50.0, gt=0, le=50)
    discord_invalid_request_budget: int = Field(
        5000, ge=1, le=9000, description="401/403/429 per 10 min before we stop calling"
    )
    calendar_requests_per_minute_user: float = Field(600.0, gt=0, le=600)
    calendar_requests_per_minute_project: float = Field(10_000.0, gt=0, le=10_000)
    background_lane_share: float = Field(0.5, gt=0, le=1)
    breaker_failure_threshold: int = Field(5, ge=1)
    breaker_reset_seconds: float = Field(30.0, gt=0)
    client_call_timeout_seconds: float = Field(
        15.0, gt=0, description="in-call budget, library retries included"
    )
    client_max_rate_limit_wait_seconds: float = Field(
        5.0, gt=0, description="a longer server wait becomes a scheduled retry"
    )

    # The deletion guard (core/syncers/guard.py): a sync is held for an operator when it
    # would remove more than GUARD_MAX_REMOVALS members *and* more than this share of
    # the group, or take one sync type's removals past the per-10-minute limit (the
    # window scaled by TIME_SCALE). 0 disables that limit.
    guard_max_removals: int = Field(
        10, ge=0, description="members one sync may remove before the share is checked")
    guard_max_removal_share: float = Field(
        0.5, ge=0, le=1, description="share of a group's members one sync may remove")
    guard_max_removals_per_10_min: int = Field(
        500, ge=0, description="removals per sync type across all groups in 10 minutes")
    held_recheck_seconds: float = Field(
        600.0, gt=0, description="a held sync is re-planned against the live state this "
        "often (scaled by TIME_SCALE): still held unless the plan no longer trips the guard")

    # History kept in SQL (core/history): per-minute rows this long, then per-hour rows
    # this long; days on the scaled timeline (TIME_SCALE), pruned by the active daemon.
    history_minute_retention_days: float = Field(
        14.0, gt=0, description="days the one-minute history rows are kept")
    history_hour_retention_days: float = Field(
        90.0, gt=0, description="days the one-hour history rows are kept")

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("discord_bot_token", "admin_token", "sentry_dsn")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        # `DISCORD_BOT_TOKEN=` in a compose file or .env reads as "set": refuse it here
        # rather than let the first sync (or a public admin port "protected" by an empty
        # token) find out.
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is set but empty: give it a value, or unset it")
        return value

    @field_validator("google_impersonate_subject")
    @classmethod
    def _subject_is_an_email(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if "@" not in value:
            raise ValueError(
                "must be the email address of the Workspace user the service account acts for"
            )
        return value

    @field_validator("calendar_push_url")
    @classmethod
    def _push_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        problem = push_url_problem(value.strip())
        if problem is not None:
            raise ValueError(problem)
        return value.strip()

    @field_validator("sync_type_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("enabled_services", mode="before")
    @classmethod
    def _split_services(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip().lower() for part in value.split(",") if part.strip())
        return value

    @field_validator(
        "reminder_offsets_minutes",
        "sentry_attempt_milestones",
        "sentry_age_milestones_seconds",
        mode="before",
    )
    @classmethod
    def _split_ints(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            try:
                numbers = tuple(int(part) for part in parts)
            except ValueError:
                raise ValueError("must be a comma-separated list of whole numbers") from None
            if any(n <= 0 for n in numbers):
                raise ValueError("every number must be positive")
            return numbers
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def service_enabled(self, service: Service | str) -> bool:
        """ENABLED_SERVICES switches the services these settings configure (discord,
        calendar); a service only a registered sync type knows is its own business."""
        if service not in {s.value for s in Service}:
            return True
        return service in self.enabled_services

    def missing_credentials(self) -> list[str]:
        """Settings an enabled service needs but lacks, for the daemon's refusal message."""
        missing = []
        if self.service_enabled(Service.DISCORD) and self.discord_bot_token is None:
            missing.append("DISCORD_BOT_TOKEN")
        if self.service_enabled(Service.CALENDAR) and self.google_credentials_file is None:
            missing.append("GOOGLE_CREDENTIALS_FILE")
        return missing

    def secret_values(self) -> list[str]:
        """Every secret held in the settings themselves, for the scrubbers: tokens, the
        Sentry DSN (and its key), the database password."""
        values = [
            secret.get_secret_value()
            for secret in (self.discord_bot_token, self.admin_token, self.sentry_dsn)
            if secret is not None
        ]
        if self.sentry_dsn is not None:
            key = self.sentry_dsn.get_secret_value().partition("://")[2].partition("@")[0]
            values.append(key.partition(":")[0])
        password = _url_password(self.database_url)
        if password:
            values.append(password)
        return [v for v in values if v]

    def public_summary(self) -> dict[str, Any]:
        """What the daemon logs at start-up: every setting, secrets reduced to set/unset."""
        summary: dict[str, Any] = {}
        for name, value in self:
            if isinstance(value, SecretStr):
                summary[name] = "set"
            elif value is None and name in _SECRET_FIELDS:
                summary[name] = "unset"
            elif name == "database_url":
                summary[name] = redact_url(value)
            elif isinstance(value, tuple):
                summary[name] = [getattr(item, "value", item) for item in value]
            else:
                summary[name] = str(value) if isinstance(value, Path) else value
        return summary


_SECRET_FIELDS = {"sentry_dsn", "discord_bot_token", "admin_token"}


def _url_password(url: str) -> str | None:
    rest = url.partition("://")[2]
    if "@" not in rest:
        return None
    credentials = rest.rpartition("@")[0]
    return credentials.partition(":")[2] or None


def redact_url(url: str) -> str:
    """Hide the password of a database URL (postgresql://user:pw@host → user:***@host)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def push_url_problem(url: str) -> str | None:
    """Why CALENDAR_PUSH_URL cannot be used, or None: Google posts only to https; plain http
    is allowed for a loopback host (tests and a local sandbox)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an absolute https URL (https://host/path)"
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return "must be https (Google delivers notifications only to https; " \
            "http is accepted for a loopback host only)"
    if parts.username or parts.password:
        return "must not carry credentials (the channel token authenticates notifications)"
    return None


def is_loopback(host: str | None) -> bool:
    """localhost or a loopback address: what may go unencrypted or unauthenticated."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        variable = str(first["loc"][0]).upper() if first["loc"] else "settings"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(variable, f"{message} (got {_shown_input(variable, first)})") from None


def _shown_input(variable: str, error: Any) -> str:
    if variable.lower() in _SECRET_FIELDS:
        return "a value that is not shown"
    value = error.get("input")
    if variable == "DATABASE_URL" and isinstance(value, str):
        value = redact_url(value)
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."
