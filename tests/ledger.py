"""A fifth, test-only sync type: "ledger", defined as an application would define its own.

Importing this module registers nothing (so collecting the tests changes no other test's
registry); ``tests/fifth_type.py`` is the one-line registration, and the tests register
``SPEC`` for their own duration. "ledger" copies each group's members into a small fake
service, a JSON file (``$GROUPSYNC_LEDGER_DIR/ledger.json``: group id → member emails),
so that a daemon in this process or another one writes where the test can read.
``fail.json`` steers it: ``{"transient": N}`` makes the next N calls fail with a 503,
``{"refuse": true}`` makes every call a needs-attention refusal.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.clients.factory import Clients
from core.db.models import SyncType
from core.errors import NeedsAttentionError, TransientError
from core.syncers.base import SyncContext, SyncResult
from core.syncers.deps import SyncerDeps
from core.syncers.snapshot_loader import load_snapshot
from core.syncers.spec import Estimate, EstimateInput, SyncTypeSpec

LEDGER = SyncType("ledger")
ENV = "GROUPSYNC_LEDGER_DIR"
CALLS_PER_RUN = 2  # one read of the group's entry, one write of it


def ledger_dir() -> Path:
    return Path(os.environ[ENV])


def read_ledger() -> dict[str, list[str]]:
    try:
        found: dict[str, list[str]] = json.loads((ledger_dir() / "ledger.json").read_text())
    except FileNotFoundError:
        return {}
    return found


def steer(**plan: Any) -> None:
    (ledger_dir() / "fail.json").write_text(json.dumps(plan))


def calls() -> int:
    try:
        return int((ledger_dir() / "calls").read_text())
    except FileNotFoundError:
        return 0


class LedgerSyncer:
    sync_type = LEDGER

    def __init__(self, deps: SyncerDeps) -> None:
        self._sessions = deps.session_factory

    async def sync(self, group_id: int, context: SyncContext) -> SyncResult:
        (ledger_dir() / "calls").write_text(str(calls() + 1))
        self._refuse_if_steered()
        async with self._sessions() as session:
            snapshot = await load_snapshot(session, group_id, context.now)
        ledger = read_ledger()
        emails = sorted(m.email for m in snapshot.members)
        unchanged = ledger.get(str(group_id)) == emails
        ledger[str(group_id)] = emails
        (ledger_dir() / "ledger.json").write_text(json.dumps(ledger))
        return {"written": 0 if unchanged else 1, "unchanged": int(unchanged), "failed": 0}

    def _refuse_if_steered(self) -> None:
        path = ledger_dir() / "fail.json"
        try:
            plan = json.loads(path.read_text())
        except FileNotFoundError:
            return
        if plan.get("refuse"):
            raise NeedsAttentionError("ledger refuses this group", service="ledger", status=403)
        if plan.get("transient", 0) > 0:
            path.write_text(json.dumps({**plan, "transient": plan["transient"] - 1}))
            raise TransientError("ledger 503", service="ledger")


def build_ledger(deps: SyncerDeps, clients: Clients) -> LedgerSyncer:
    return LedgerSyncer(deps)


async def estimate_ledger(given: EstimateInput) -> Estimate:
    return Estimate(calls=CALLS_PER_RUN if given.snapshot.exists else 0)


SPEC = SyncTypeSpec(
    name=LEDGER, label="Ledger", build=build_ledger, estimate=estimate_ledger,
    service="ledger", service_label="The Ledger",
    description="the group's members copied into the ledger service",
)
