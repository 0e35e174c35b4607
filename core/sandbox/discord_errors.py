"""Discord's JSON error codes and the error body shape."""

from __future__ import annotations

from typing import Any

UNKNOWN_CHANNEL = 10003
UNKNOWN_GUILD = 10004
UNKNOWN_MEMBER = 10007
UNKNOWN_MESSAGE = 10008
UNKNOWN_OVERWRITE = 10009
UNKNOWN_ROLE = 10011
UNKNOWN_USER = 10013
MISSING_ACCESS = 50001
CANNOT_MESSAGE_USER = 50007
MISSING_PERMISSIONS = 50013
INVALID_FORM_BODY = 50035

_MESSAGES = {
    UNKNOWN_CHANNEL: (404, "Unknown Channel"),
    UNKNOWN_GUILD: (404, "Unknown Guild"),
    UNKNOWN_MEMBER: (404, "Unknown Member"),
    UNKNOWN_MESSAGE: (404, "Unknown Message"),
    UNKNOWN_OVERWRITE: (404, "Unknown Overwrite"),
    UNKNOWN_ROLE: (404, "Unknown Role"),
    UNKNOWN_USER: (404, "Unknown User"),
    MISSING_ACCESS: (403, "Missing Access"),
    CANNOT_MESSAGE_USER: (403, "Cannot send messages to this user"),
    MISSING_PERMISSIONS: (403, "Missing Permissions"),
    INVALID_FORM_BODY: (400, "Invalid Form Body"),
}


class DiscordError(Exception):
    """An API error: HTTP status plus Discord's ``{code, message, errors?}`` body."""

    def __init__(self, code: int, errors: dict[str, Any] | None = None) -> None:
        self.status, self.message = _MESSAGES[code]
        self.code = code
        self.errors = errors
        super().__init__(f"{self.status} {code} {self.message}")

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def invalid_field(field: str, code: str, message: str) -> DiscordError:
    """A 50035 with the nested ``errors`` tree Discord uses."""
    return DiscordError(
        INVALID_FORM_BODY, {field: {"_errors": [{"code": code, "message": message}]}}
    )


def unauthorized_body() -> dict[str, Any]:
    return {"message": "401: Unauthorized", "code": 0}
