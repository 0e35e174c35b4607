"""Google's error bodies.

The classic envelope is ``{"error": {code, message, errors: [{domain, reason, message}],
status}}``. Newer Google front ends answer quota errors with ``status`` and
``details[]`` of ``google.rpc`` messages (a ``Help`` entry, then an ``ErrorInfo`` whose
``reason`` is ``RATE_LIMIT_EXCEEDED``), with or without the classic ``errors[]``;
googleapiclient's ``HttpError.error_details`` then shows ``details`` first.
"""

from __future__ import annotations

from typing import Any

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
    404: "NOT_FOUND", 409: "ALREADY_EXISTS", 410: "FAILED_PRECONDITION",
    412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
    503: "UNAVAILABLE",
}


ENVELOPES = frozenset({"errors", "details", "both"})
QUOTA_MESSAGE = (
    "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of "
    "service 'calendar-json.googleapis.com' for consumer 'project_number:424242424242'."
)


class CalendarError(Exception):
    def __init__(self, status: int, reason: str, message: str, domain: str = "global",
                 **extra: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.domain = domain
        self.extra = extra
        self.details: list[dict[str, Any]] | None = None  # google.rpc details, if any
        self.classic = True  # whether errors[] is sent

    def body(self) -> dict[str, Any]:
        detail = {"domain": self.domain, "reason": self.reason, "message": self.message,
                  **self.extra}
        error: dict[str, Any] = {"code": self.status, "message": self.message}
        if self.classic:
            error["errors"] = [detail]
        if self.status in _STATUS_NAMES:
            error["status"] = _STATUS_NAMES[self.status]
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


def not_found() -> CalendarError:
    return CalendarError(404, "notFound", "Not Found")


def bad_request(reason: str, message: str) -> CalendarError:
    return CalendarError(400, reason, message)


def auth_error() -> CalendarError:
    return CalendarError(401, "authError", "Invalid Credentials",
                         location="Authorization", locationType="header")


def rate_limited(status: int, reason: str = "rateLimitExceeded",
                 envelope: str = "errors") -> CalendarError:
    """A quota refusal in the classic envelope, the newer ``details[]`` one, or both."""
    if envelope == "errors":
        return CalendarError(status, reason, "Rate Limit Exceeded", domain="usageLimits")
    error = CalendarError(status, reason, QUOTA_MESSAGE, domain="usageLimits")
    error.classic = envelope == "both"
    error.details = [
        {"@type": "type.googleapis.com/google.rpc.Help",
         "links": [{"description": "Request a higher quota limit.",
                    "url": "https://cloud.google.com/docs/quotas/help/request_increase"}]},
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED",
         "domain": "googleapis.com",
         "metadata": {"service": "calendar-json.googleapis.com",
                      "quota_metric": "calendar-json.googleapis.com/default",
                      "quota_limit": "defaultPerMinutePerUser",
                      "consumer": "projects/424242424242"}},
    ]
    return error


def forbidden_for_service_accounts() -> CalendarError:
    """What Google answers a service account (no delegation) that sets attendees."""
    return CalendarError(403, "forbiddenForServiceAccounts", "Service accounts cannot invite "
                         "attendees without Domain-Wide Delegation of Authority.",
                         domain="calendar")


def required_access_level() -> CalendarError:
    """A write to a calendar shared with the caller read-only."""
    return CalendarError(403, "requiredAccessLevel",
                         "You need to have writer access to this calendar.", domain="calendar")


def quota_exceeded() -> CalendarError:
    return CalendarError(403, "quotaExceeded", "Calendar usage limits exceeded.",
                         domain="usageLimits")


def backend_error(status: int) -> CalendarError:
    return CalendarError(status, "backendError", "Backend Error")
