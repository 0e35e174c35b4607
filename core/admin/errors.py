"""What an admin action refuses with; each face maps these to its own form (HTTP status,
CLI exit code and message)."""

from __future__ import annotations

from core.errors import GroupsyncError


class AdminError(GroupsyncError):
    status = 400
    title = "Bad request"


class NotFound(AdminError):
    status = 404
    title = "Not found"


class Conflict(AdminError):
    status = 409
    title = "Conflict"


class Invalid(AdminError):
    status = 422
    title = "Invalid request"
