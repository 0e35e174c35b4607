"""The one error tree of groupsync.

    GroupsyncError
    ├── ConfigError                 a setting is missing or malformed (names the variable)
    ├── InvalidArgument (ValueError) a caller passed a malformed id or unknown sync type
    │   └── UnknownGroupError       the group id does not exist
    └── SyncError                   an external sync failed
        ├── TransientError          retry with backoff; retry_after when the service gave one
        │   ├── RateLimitedError    the service said "slow down" (429 / rateLimitExceeded)
        │   ├── CircuitOpenError    we refused to call a service whose breaker is open
        │   └── LeaseLostError      this run no longer holds its key's lease: stop, stay owed
        └── NeedsAttentionError     401/403/404 and the like: an operator must act; still retried
            │                       at the capped interval
            ├── MissingTargetError  the group's channel or calendar is gone or not shared: names
            │                       the id and the column or setting to fix; retried at the cap
            │                       from the first failure (nothing a quick retry could change)
            └── CredentialsRejectedError  the service refused groupsync's own credentials (a
                                    revoked bot token, a refused token exchange): not a key's
                                    problem but the service's, so the engine parks every key
                                    of the service and probes once a minute instead

Client adapters translate library exceptions into this tree at the edge; nothing
above them inspects HTTP status codes.
"""

from __future__ import annotations


class GroupsyncError(Exception):
    """Root of every error groupsync raises on purpose."""


class ConfigError(GroupsyncError):
    """A setting is missing or malformed. The message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class InvalidArgument(GroupsyncError, ValueError):
    """A caller passed something that can never work (raised at once, not retried)."""


class UnknownGroupError(InvalidArgument):
    """A well-formed id that names no group (and no sync key a deleted group left)."""

    def __init__(self, group_id: int) -> None:
        super().__init__(f"group {group_id} does not exist")
        self.group_id = group_id


class SyncError(GroupsyncError):
    """An external sync failed; the engine records it and schedules a retry."""

    kind = "error"

    def __init__(self, message: str, *, service: str | None = None) -> None:
        super().__init__(message)
        self.service = service


class TransientError(SyncError):
    """Worth retrying soon. ``retry_after`` (seconds) is the service's own hint, if any."""

    kind = "transient"

    def __init__(
        self, message: str, *, service: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, service=service)
        self.retry_after = retry_after


class RateLimitedError(TransientError):
    kind = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        service: str | None = None,
        retry_after: float | None = None,
        is_global: bool = False,
    ) -> None:
        super().__init__(message, service=service, retry_after=retry_after)
        self.is_global = is_global


class CircuitOpenError(TransientError):
    kind = "circuit_open"


class LeaseLostError(TransientError):
    """The run's lease expired or was taken: it must make no further external call and
    record nothing; the key stays owed for whoever holds the lease now."""

    kind = "lease_lost"


class NeedsAttentionError(SyncError):
    """A permanent-looking failure (revoked token, missing channel, missing permission).

    Carries the service's own message so the dashboard can show it verbatim.
    """

    kind = "needs_attention"

    def __init__(
        self,
        message: str,
        *,
        service: str | None = None,
        status: int | None = None,
        code: int | str | None = None,
    ) -> None:
        super().__init__(message, service=service)
        self.status = status
        self.code = code  # the service's own error code (Discord 10003, Google "notFound")


class MissingTargetError(NeedsAttentionError):
    """The group's own target (a Discord channel, a calendar) is gone or no longer shared.

    Not an emergency: nothing changes until a person fixes ``setting`` (a column of the
    group's row, or a setting), so the key is retried at the capped interval from its first
    failure, and the service answering proves it is up (the breaker does not count it).
    """

    kind = "missing_target"

    def __init__(
        self,
        message: str,
        *,
        service: str,
        target: str,
        target_id: str,
        found: str,
        setting: str,
        status: int | None = None,
        code: int | str | None = None,
    ) -> None:
        super().__init__(message, service=service, status=status, code=code)
        self.target = target  # "channel", "calendar"
        self.target_id = target_id
        self.found = found  # for the drift report: "channel deleted", "calendar missing"
        self.setting = setting  # what to fix: "groups.discord_text_channel_id", …


class CredentialsRejectedError(NeedsAttentionError):
    """The service refused groupsync's credentials: Discord's 401 to the bot token, Google's
    refused token exchange (``invalid_grant``, ``invalid_client``, ``unauthorized_client``)
    or a Calendar 401 after a fresh token. Every call of the service would get the same
    answer, so the service is parked (``core.engine.running.credentials``); ``words`` are
    the service's own, ``variable`` the setting an operator fixes. Never a 429."""

    kind = "credentials_rejected"

    def __init__(
        self,
        words: str,
        *,
        service: str,
        variable: str,
        status: int | None = None,
        code: int | str | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(
            f"{label or service} rejected the credentials: {words} (fix {variable})",
            service=service, status=status, code=code,
        )
        self.words = words
        self.variable = variable
