"""The default SYNCER_FACTORY: every registered sync type's syncer over the outbound
clients (the built-in four, and any type registered before the runtime starts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from core.clients.factory import open_clients
from core.db.models import SyncType
from core.syncers import types
from core.syncers.base import Syncer

if TYPE_CHECKING:
    from core.syncers.deps import SyncerDeps


async def build_syncers(deps: SyncerDeps) -> Mapping[SyncType, Syncer]:
    settings = deps.settings
    clients = await open_clients(settings, deps.exit_stack, deps.clock, deps.time_scale)
    deps.client_board.publish(clients.status_sources, clients.breaker_resets,
                              discord=clients.discord, calendar=clients.calendar,
                              probes=clients.probes, gateway=clients.gateway)
    return {spec.sync_type: spec.build(deps, clients) for spec in types.registered()}
