"""One log line per operator action: what, on which scope, through which interface."""

from __future__ import annotations

from typing import Any

from core.observability import get_logger

log = get_logger("groupsync.admin")


def audit(action: str, scope: dict[str, Any], via: str, **outcome: Any) -> None:
    log.info("admin_action", action=action, scope=scope, via=via, **outcome)
