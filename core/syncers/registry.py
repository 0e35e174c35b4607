"""The default SYNCER_FACTORY: builds one syncer per type.

A factory is ``async def factory(deps: SyncerDeps) -> Mapping[SyncType, Syncer]``; it may
register clean-up (HTTP sessions, thread pools) on ``deps.exit_stack``. For now the four
are stand-ins; the integration work builds the real ones here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from core.db.models import SyncType
from core.syncers.base import Syncer
from core.syncers.standins import StandInSyncer

if TYPE_CHECKING:
    from core.runtime import SyncerDeps


async def build_syncers(deps: SyncerDeps) -> Mapping[SyncType, Syncer]:
    return {t: StandInSyncer(t, deps.session_factory) for t in SyncType}
