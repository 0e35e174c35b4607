"""The four public sync entry points (DESIGN §2): run one key through the engine.

In a process whose runtime leads (the daemon, or an embedded ``core.embed`` runtime)
each marks its key owed (so a direct call is a request plus a run), runs it under the
lease, records the outcome and arms the retry on failure, and returns the result dict.
In a process with no runtime it hands the key off to the daemon and returns
``{"handed_off": "daemon"}`` (or ``{"error": …}`` if even that write failed).
A failure is recorded and returned, never raised; bad arguments raise ValueError.
"""

from __future__ import annotations

import asyncio

from core.db.models import SyncType
from core.db.problems import describe_database_error
from core.engine.running import runner, state
from core.engine.running.context import Runtime
from core.engine.running.outbox import mark_owed
from core.engine.running.state import SyncKey
from core.lanes import Lane
from core.notifications.scheduler import current_runtime, on_runtime_loop
from core.observability import get_logger
from core.process import handoff
from core.syncers.base import SyncResult
from core.validation import parse_sync_type, require_group_id

log = get_logger("groupsync.lifecycle")


async def mark_and_run(
    rt: Runtime, keys: list[SyncKey], *, lane: Lane = Lane.INTERACTIVE
) -> list[SyncResult]:
    """Mark the keys owed in one transaction, then run them side by side.

    The runs start in the order given, but none waits for another: a key whose service is
    slow, rate limited or down never delays the others of the same change (each has its
    own lease, record and retry).

    Keys already owed and not running are left as they are: the caller usually wrote the
    outbox row itself (request_group_sync), and a second write per caller only lengthens
    a burst that coalescing must absorb."""
    uncovered = await state.not_yet_covered(rt.session_factory, keys, rt.clock.now())
    if uncovered:
        async with rt.session_factory() as session, session.begin():
            for key in uncovered:
                await mark_owed(session, [key.group_id], rt.clock.now(), [key.sync_type])
    return list(await asyncio.gather(*(runner.run_key(rt, key, lane=lane) for key in keys)))


async def sync_group(sync_type: str, group_id: int) -> SyncResult:
    """Run one (type, group) now. Unknown types are refused with the list of valid ones."""
    key = SyncKey(parse_sync_type(sync_type), require_group_id(group_id))
    rt = current_runtime()
    if rt is None:
        if await handoff.hand_off([key.group_id], [key.sync_type]):
            return {"handed_off": "daemon"}
        return {"error": "could not mark the sync owed; see the log line handoff_failed"}
    try:
        (result,) = await on_runtime_loop(rt, mark_and_run(rt, [key]))
    except Exception as exc:  # the database, not the sync: the run never started
        error = describe_database_error(exc)
        log.error("sync_not_started", sync_type=key.sync_type, group_id=key.group_id,
                  error=error)
        return {"error": error}
    return result


async def sync_group_discord_permissions(group_id: int) -> SyncResult:
    return await sync_group(SyncType.DISCORD, group_id)


async def sync_group_calendar(group_id: int) -> SyncResult:
    return await sync_group(SyncType.CALENDAR, group_id)


async def sync_group_reminders(group_id: int) -> SyncResult:
    return await sync_group(SyncType.REMINDERS, group_id)


async def sync_group_rsvps(group_id: int) -> SyncResult:
    return await sync_group(SyncType.RSVPS, group_id)
