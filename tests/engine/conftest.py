"""Fixtures of the engine tests: a steerable fake syncer set, a runtime installed in the
process slot with the real APScheduler as ``_scheduler``, a Sentry transport that records events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport
from sqlalchemy import select

from core.config import Settings, load_settings
from core.db.models import SyncState
from core.db.session import SessionFactory
from core.notifications import scheduler as scheduler_module
from core.notifications.scheduler import SyncScheduler
from core.runtime import Runtime, open_runtime
from core.syncers.types import names
from tests.engine import fake_syncers

FAKE_FACTORY = "tests.engine.fake_syncers:build_fake_syncers"
SCALE = 0.001  # 1 backoff second = 1 ms


class Fakes:
    """Steer the fake syncers and read what they did."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.plan: dict[str, dict[str, Any]] = {}

    def set(self, target: str, mode: str = "ok", **extra: Any) -> None:
        self.plan[target] = {"mode": mode, **extra}
        tmp = self.root / "plan.json.tmp"
        tmp.write_text(json.dumps(self.plan))
        tmp.replace(self.root / "plan.json")  # atomic for readers in other processes

    def runs(self, sync_type: str | None = None, group: int | None = None) -> list[dict[str, Any]]:
        path = self.root / "runs.jsonl"
        if not path.exists():
            return []
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [
            r for r in rows
            if sync_type in (None, r["type"]) and group in (None, r["group"])
        ]


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fakes:
    root = tmp_path / "fakes"
    monkeypatch.setenv(fake_syncers.ENV, str(root))
    return Fakes(root)


def engine_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "syncer_factory": FAKE_FACTORY,
        "time_scale": SCALE,
        "outbox_poll_seconds": 0.2,
        "shutdown_timeout_seconds": 2.0,
        "sentry_dsn": None,
    }
    return load_settings(**{**values, **overrides})


RuntimeMaker = Callable[..., Awaitable[Runtime]]


@pytest.fixture
async def make_runtime(
    database_url: str, fakes: Fakes
) -> AsyncIterator[RuntimeMaker]:
    """Build a runtime installed in the process slot, its started SyncScheduler the
    process's ``_scheduler``; both undone after the test."""
    async with AsyncExitStack() as stack:

        async def make(*, paused: bool = False, **overrides: Any) -> Runtime:
            scheduler = SyncScheduler()
            rt = await open_runtime(engine_settings(database_url, **overrides), stack,
                                    scheduler=scheduler)
            scheduler.start(paused=paused)

            async def close() -> None:
                scheduler.shutdown(wait=False)
                await rt.coordinator.drain(2.0)

            stack.push_async_callback(close)
            # The process slot holds the runtime, ``scheduler`` is the public handle.
            stack.enter_context(scheduler_module.installed(rt, scheduler))
            return rt

        yield make


@pytest.fixture
async def runtime(make_runtime: RuntimeMaker) -> Runtime:
    return await make_runtime()


async def status_of(session_factory: SessionFactory, sync_type: str, group_id: int) -> str | None:
    async with session_factory() as session:
        return await session.scalar(
            select(SyncState.status).where(SyncState.sync_type == sync_type,
                                           SyncState.group_id == group_id)
        )


async def row(session_factory: SessionFactory, sync_type: str, group_id: int) -> SyncState:
    async with session_factory() as session:
        found = await session.scalar(
            select(SyncState).where(SyncState.sync_type == sync_type,
                                    SyncState.group_id == group_id)
        )
    assert found is not None, f"no sync_state row for {sync_type}:{group_id}"
    return found


class RecordingTransport(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        event = envelope.get_event()
        if event is not None:
            self.events.append(event)


@pytest.fixture
def sentry_events() -> Iterator[list[dict[str, Any]]]:
    transport = RecordingTransport()
    sentry_sdk.init(dsn="https://public@sentry.example/1", transport=transport,
                    default_integrations=False, auto_enabling_integrations=False)
    try:
        yield transport.events
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()


ALL_TYPES = list(names())
