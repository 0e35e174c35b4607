"""Argument checks shared by the public functions: fail at once, with a specific message."""

from __future__ import annotations

from core.db.models import SyncType
from core.errors import InvalidArgument
from core.syncers import types


def require_group_id(value: object, name: str = "group_id") -> int:
    # bool is an int subclass; True as a group id is always a caller bug.
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidArgument(f"{name} must be a positive int, got {value!r}")
    return value


def optional_group_id(value: object, name: str = "previous_group_id") -> int | None:
    return None if value is None else require_group_id(value, name)


def parse_sync_type(value: object) -> SyncType:
    """A registered sync type's name (core.syncers.types), else ``InvalidArgument``."""
    return types.parse(value)
