"""A fifth sync type needs its own module and one registration, nothing else.

``tests/ledger.py`` defines "ledger" (a syncer copying members into a small fake) and
``tests/fifth_type.py`` registers it through ``core.syncers.types.register`` alone (here
the fixture registers it for each test); a real daemon with the default syncer factory
runs it through ``sync_after_group_change``, retries it with backoff, pauses and
resumes its service, prices a bulk retry with its own estimate, and `status`, the API
and the dashboard's failing list show it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db.models import SyncAttempt, SyncState
from core.db.session import SessionFactory
from core.group_joining import join_group, sync_after_group_change
from core.syncers import types
from tests import ledger as fifth_type
from tests.admin.conftest import AdminDaemon, DaemonMaker, active
from tests.admin.helpers import failing_keys
from tests.factories import make_group, make_user
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "ledger"
    folder.mkdir()
    monkeypatch.setenv(fifth_type.ENV, str(folder))
    types.register(fifth_type.SPEC)  # for this test only: the registry is per process
    yield folder
    types.unregister(fifth_type.LEDGER)


@pytest.fixture
async def daemon(start_daemon: DaemonMaker, ledger: Path) -> AdminDaemon:
    # The default factory: it builds every registered type's syncer from its spec.
    return await active(await start_daemon(syncer_factory="core.syncers.registry:build_syncers"))


def sessions_of(daemon: AdminDaemon) -> SessionFactory:
    assert daemon.face.service is not None
    return daemon.face.service.session_factory


async def group_with_members(sessions: SessionFactory, members: int) -> tuple[int, list[str]]:
    async with sessions() as session, session.begin():
        group = await make_group(session)
        emails = []
        for _ in range(members):
            user = await make_user(session)
            await join_group(session, user.id, group.id)
            emails.append(user.email)
    return group.id, sorted(emails)


async def outcomes(sessions: SessionFactory, group_id: int) -> list[str]:
    async with sessions() as session:
        rows = await session.scalars(select(SyncAttempt.outcome).where(
            SyncAttempt.sync_type == "ledger", SyncAttempt.group_id == group_id)
            .order_by(SyncAttempt.id))
        return list(rows)


async def test_a_registered_fifth_type_runs_retries_pauses_and_resumes(
    daemon: AdminDaemon, ledger: Path
) -> None:
    sessions = sessions_of(daemon)
    group_id, emails = await group_with_members(sessions, 3)
    fifth_type.steer(transient=2)

    await sync_after_group_change(group_id)

    async def converged() -> bool:
        return fifth_type.read_ledger().get(str(group_id)) == emails

    await wait_for(converged, timeout=30, message="the ledger holds the group's members")
    # Two 503s, each retried with backoff (TIME_SCALE), then the write.
    async def history() -> bool:
        return await outcomes(sessions, group_id) == ["transient", "transient", "ok"]

    await wait_for(history, timeout=30, message="the attempt history: two 503s, then ok")
    async with sessions() as session:
        state = await session.get(SyncState, ("ledger", group_id))
    assert state is not None
    assert (state.status, state.attempt) == ("ok", 0)

    async with daemon.client() as api:
        assert (await api.post("/api/services/ledger/pause")).status_code == 200
        async with sessions() as session, session.begin():
            newcomer = await make_user(session)
            await join_group(session, newcomer.id, group_id)
        calls_before = fifth_type.calls()
        await sync_after_group_change(group_id)
        key = (await api.get(f"/api/keys/ledger/{group_id}")).json()
        assert key["waiting"]["code"] == "paused"
        assert fifth_type.calls() == calls_before  # a paused service is never called
        assert fifth_type.read_ledger()[str(group_id)] == emails
        assert (await api.post("/api/services/ledger/resume")).status_code == 200

    async def caught_up() -> bool:
        return fifth_type.read_ledger().get(str(group_id)) == sorted([*emails, newcomer.email])

    await wait_for(caught_up, timeout=30, message="the resumed ledger gets the newcomer")


async def test_bulk_retry_status_api_and_dashboard_know_the_fifth_type(
    daemon: AdminDaemon, ledger: Path
) -> None:
    sessions = sessions_of(daemon)
    failing = await failing_keys(sessions, 3, "ledger")
    await failing_keys(sessions, 2, "rsvps")
    fifth_type.steer(refuse=True)
    async with daemon.client() as api:
        listed = (await api.get("/api/keys", params={"service": "ledger"})).json()
        assert sorted(i["group_id"] for i in listed["items"]) == failing
        assert {i["sync_type"] for i in listed["items"]} == {"ledger"}
        overview = (await api.get("/api/overview")).json()
        assert {"name": "ledger", "label": "The Ledger"}.items() <= next(
            s for s in overview["services"] if s["name"] == "ledger").items()

        # Its own estimate: two calls a group (an RSVP key would be priced at none).
        preview = (await api.post("/api/bulk-retry/preview", json={"service": "ledger"})).json()
        assert preview["keys"] == 3
        assert preview["estimated_calls"] == 3 * fifth_type.CALLS_PER_RUN
        rsvps = (await api.post("/api/bulk-retry/preview", json={"service": "rsvps"})).json()
        assert (rsvps["keys"], rsvps["estimated_calls"]) == (2, 0)

        async with daemon.client(token=None, cookies=await _signed_in(api)) as browser:
            page = (await browser.get("/")).text
        assert '<option value="ledger">The Ledger</option>' in page

        # `status` in another process learns the type from SYNC_TYPE_MODULES.
        shown = _status_json(daemon, {"SYNC_TYPE_MODULES": "tests.fifth_type"})
        assert "ledger" in {s["name"] for s in shown["services"]}
        assert {(i["sync_type"], i["group_id"]) for i in shown["failing"]["items"]} >= {
            ("ledger", g) for g in failing}

        fifth_type.steer()  # the ledger accepts again
        started = await api.post("/api/bulk-retry", json={"service": "ledger", "confirm": True})
        assert started.status_code == 202
        job = started.json()["job"]

        async def done() -> bool:
            view = (await api.get(f"/api/bulk-jobs/{job['id']}")).json()
            return bool(view["state"] == "done")

        await wait_for(done, timeout=30, message="the bulk retry of the ledger keys")
    assert set(fifth_type.read_ledger()) == {str(g) for g in failing}


async def _signed_in(api: object) -> dict[str, str]:
    import httpx

    from tests.admin.conftest import TOKEN

    assert isinstance(api, httpx.AsyncClient)
    answer = await api.post("/login", data={"token": TOKEN},
                            headers={"Origin": str(api.base_url).rstrip("/")})
    assert answer.status_code == 303, answer.text
    return dict(answer.cookies)


def _status_json(daemon: AdminDaemon, extra_env: dict[str, str]) -> dict[str, object]:
    env = {**os.environ, "DATABASE_URL": daemon.settings.database_url, **extra_env}
    done = subprocess.run([sys.executable, "main.py", "status", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    shown: dict[str, object] = json.loads(done.stdout)
    return shown
