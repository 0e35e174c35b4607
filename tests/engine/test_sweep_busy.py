"""The outbox sweep while its own runs drain (issue 26): with more than SWEEP_BUSY of its
runs in flight it does not scan the due keys again (measured before: every wake scanned
up to 200 rows that were the very keys being drained), and the run that brings the count
back to SWEEP_BUSY wakes it."""

from __future__ import annotations

from typing import Any

import pytest

from core.db.models import SyncType
from core.engine.loops import sweeper as sweeper_module
from core.engine.loops.sweeper import SWEEP_BUSY, OutboxSweeper
from core.engine.running import state
from core.engine.running.outbox import mark_owed
from tests.engine.conftest import Fakes, RuntimeMaker
from tests.waiting import wait_for

KEYS = SWEEP_BUSY + 70


async def test_the_sweep_does_not_rescan_while_its_own_runs_are_draining(
    make_runtime: RuntimeMaker, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes.set("discord:*", "ok", sleep=0.05)  # runs stay in flight a while, 8 at a time
    rt = await make_runtime(sync_concurrency=8)
    groups = list(range(1, KEYS + 1))
    async with rt.session_factory() as session, session.begin():
        await mark_owed(session, groups, rt.clock.now(), [SyncType.DISCORD])
    scans: list[int] = []
    scan = state.due_keys

    async def counted(*args: Any, **kwargs: Any) -> list[state.SyncKey]:
        found = await scan(*args, **kwargs)
        scans.append(len(found))
        return found

    monkeypatch.setattr(sweeper_module.state, "due_keys", counted)
    sweeper = OutboxSweeper(rt)

    assert await sweeper.sweep_once() == KEYS
    sweeper.wake.clear()
    assert await sweeper.sweep_once() == 0  # woken again at once: nothing scanned
    assert await sweeper.sweep_once() == 0
    assert scans == [KEYS]

    # Once the in-flight runs are down to SWEEP_BUSY the sweep is woken to scan again.
    await wait_for(sweeper.wake.is_set, timeout=60, message="the sweep woken with room")
    await wait_for(lambda: len(fakes.runs("discord")) == KEYS, timeout=60,
                   message="every key run")
    assert sorted(r["group"] for r in fakes.runs("discord")) == groups  # each once
