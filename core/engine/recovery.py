"""What a daemon does when it starts or takes over: free the dead daemon's leases and
re-arm every owed retry from the rows, with the attempt count and due time they had
(an overdue one fires at once)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.engine import state
from core.observability import get_logger

if TYPE_CHECKING:
    from core.notifications.scheduler import SyncScheduler
    from core.runtime import Runtime

log = get_logger("groupsync.recovery")

DAEMON_OWNER_PREFIX = "daemon:"


async def recover(rt: Runtime, scheduler: SyncScheduler) -> int:
    now = rt.clock.now()
    freed = await state.reclaim_leases(rt.session_factory, now, owner_prefix=DAEMON_OWNER_PREFIX)
    retries = await state.owed_retries(rt.session_factory)
    for retry in retries:
        scheduler.arm_retry(retry.key, max(retry.next_attempt_at, now), retry.attempt)
    overdue = sum(r.next_attempt_at <= now for r in retries)
    log.info("retries_rearmed", count=len(retries), overdue=overdue, leases_freed=freed)
    return len(retries)
