"""The four public sync entry points (DESIGN §2): run one key through the engine.

Each marks its key owed (so a direct call is a request plus a run), runs it under the
lease, records the outcome and arms the retry on failure, and returns the result dict.
A failure is recorded and returned, never raised; bad arguments raise ValueError.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from core.config import load_settings
from core.db.models import SyncType
from core.engine import runner, state
from core.engine.outbox import mark_owed
from core.engine.state import SyncKey
from core.lanes import Lane
from core.notifications import scheduler as scheduler_module
from core.runtime import Runtime, open_runtime
from core.syncers.base import SyncResult
from core.validation import parse_sync_type, require_group_id


@asynccontextmanager
async def current_runtime() -> AsyncIterator[Runtime]:
    """The running scheduler's runtime, or a temporary one from the environment when no
    daemon lives in this process (its failures are recorded; the daemon retries them)."""
    running = scheduler_module._scheduler
    if running is not None and running.runtime is not None:
        yield running.runtime
        return
    async with AsyncExitStack() as stack:
        yield await open_runtime(load_settings(), stack)


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
    async with current_runtime() as rt:
        (result,) = await mark_and_run(rt, [key])
    return result


async def sync_group_discord_permissions(group_id: int) -> SyncResult:
    return await sync_group(SyncType.DISCORD, group_id)


async def sync_group_calendar(group_id: int) -> SyncResult:
    return await sync_group(SyncType.CALENDAR, group_id)


async def sync_group_reminders(group_id: int) -> SyncResult:
    return await sync_group(SyncType.REMINDERS, group_id)


async def sync_group_rsvps(group_id: int) -> SyncResult:
    return await sync_group(SyncType.RSVPS, group_id)
