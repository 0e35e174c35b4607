"""A SYNCER_FACTORY for tests, steered by files so subprocess daemons can be steered too.

``$GROUPSYNC_FAKE_DIR/plan.json`` maps "type:group" (or "type:*", "*:group", "*") to a
behaviour: {"mode": "ok" | "raise" | "error" | "failed" | "needs_attention" |
"rate_limited", "retry_after": seconds, "sleep": seconds}. Every run appends one JSON
line to ``runs.jsonl`` (type, group, pid, start, end, mode), the evidence tests read.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.db.models import SyncType
from core.errors import NeedsAttentionError, RateLimitedError, TransientError
from core.runtime import SyncerDeps
from core.syncers.base import SyncContext, Syncer, SyncResult
from core.syncers.types import names

ENV = "GROUPSYNC_FAKE_DIR"


def fake_dir() -> Path:
    return Path(os.environ[ENV])


def behaviour(sync_type: str, group_id: int) -> dict[str, Any]:
    try:
        plan = json.loads((fake_dir() / "plan.json").read_text())
    except FileNotFoundError:
        return {"mode": "ok"}
    for name in (f"{sync_type}:{group_id}", f"{sync_type}:*", f"*:{group_id}", "*"):
        if name in plan:
            return dict(plan[name])
    return {"mode": "ok"}


@dataclass
class FakeSyncer:
    sync_type: SyncType

    async def sync(self, group_id: int, context: SyncContext) -> SyncResult:
        start = time.time()
        plan = behaviour(self.sync_type, group_id)
        if plan.get("sleep"):
            await asyncio.sleep(float(plan["sleep"]))
        mode = plan.get("mode", "ok")
        record = {"type": self.sync_type, "group": group_id, "pid": os.getpid(),
                  "start": start, "end": time.time(), "mode": mode, "attempt": context.attempt,
                  "lane": context.lane.value}
        with (fake_dir() / "runs.jsonl").open("a") as log:
            log.write(json.dumps(record) + "\n")
        return _outcome(mode, plan)


def _outcome(mode: str, plan: dict[str, Any]) -> SyncResult:
    retry_after = plan.get("retry_after")
    if mode == "raise":
        raise TransientError("fake upstream 503", service="fake", retry_after=retry_after)
    if mode == "rate_limited":
        raise RateLimitedError("fake 429", service="fake", retry_after=retry_after)
    if mode == "needs_attention":
        raise NeedsAttentionError("Missing Access", service="fake", status=403, code=50001)
    if mode == "crash":
        raise RuntimeError("unexpected bug in a syncer")
    if mode == "error":
        return {"error": "fake says no"}
    if mode == "failed":
        return {"granted": 1, "revoked": 0, "unchanged": 0, "failed": 3}
    return {"granted": 0, "revoked": 0, "unchanged": 2, "failed": 0}


async def build_fake_syncers(deps: SyncerDeps) -> Mapping[SyncType, Syncer]:
    return {t: FakeSyncer(t) for t in names()}
