"""Google's error body: {"error": {code, message, errors: [{domain, reason, message}], status}}."""

from __future__ import annotations

from typing import Any

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
    404: "NOT_FOUND", 409: "ALREADY_EXISTS", 410: "FAILED_PRECONDITION",
    412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
    503: "UNAVAILABLE",
}


class CalendarError(Exception):
    def __init__(self, status: int, reason: str, message: str, domain: str = "global",
                 **extra: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.domain = domain
        self.extra = extra

    def body(self) -> dict[str, Any]:
        detail = {"domain": self.domain, "reason": self.reason, "message": self.message,
                  **self.extra}
        error = {"code": self.status, "message": self.message, "errors": [detail]}
        if self.status in _STATUS_NAMES:
            error["status"] = _STATUS_NAMES[self.status]
        return {"error": error}


def not_found() -> CalendarError:
    return CalendarError(404, "notFound", "Not Found")


def bad_request(reason: str, message: str) -> CalendarError:
    return CalendarError(400, reason, message)


def auth_error() -> CalendarError:
    return CalendarError(401, "authError", "Invalid Credentials",
                         location="Authorization", locationType="header")


def rate_limited(status: int, reason: str = "rateLimitExceeded") -> CalendarError:
    return CalendarError(status, reason, "Rate Limit Exceeded", domain="usageLimits")


def quota_exceeded() -> CalendarError:
    return CalendarError(403, "quotaExceeded", "Calendar usage limits exceeded.",
                         domain="usageLimits")


def backend_error(status: int) -> CalendarError:
    return CalendarError(status, "backendError", "Backend Error")
