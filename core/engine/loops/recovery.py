"""What a daemon does when it starts or takes over: free leases that expired by
heartbeat and re-arm every owed retry from the rows, with the attempt count and due time
they had (an overdue one fires at once).

Winning the advisory lock does not prove the previous leader dead: its lock connection
may only have dropped while its runs go on renewing their leases. Those leases are left
alone; their keys run here once their runs end or their leases expire (see
docs/decisions.md, "How long a key may wait after failover").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.engine.running import state
from core.observability import get_logger

if TYPE_CHECKING:
    from core.engine.running.context import RetryTimers, Runtime

log = get_logger("groupsync.recovery")


async def recover(rt: Runtime, scheduler: RetryTimers) -> int:
    now = rt.clock.now()
    freed = await state.reclaim_leases(rt.session_factory, now)
    retries = await state.owed_retries(rt.session_factory)
    for retry in retries:
        scheduler.arm_retry(retry.key, max(retry.next_attempt_at, now), retry.attempt)
    overdue = sum(r.next_attempt_at <= now for r in retries)
    log.info("retries_rearmed", count=len(retries), overdue=overdue, leases_freed=freed)
    return len(retries)
