"""Breaker and rate-limit state seen through the API and the database (heartbeat), and a
breaker closed by an operator, against the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.admin.service import AdminService
from core.db.session import SessionFactory
from core.sandbox import Sandbox
from tests.admin.conftest import TOKEN, DaemonMaker, active
from tests.e2e.conftest import sandbox  # noqa: F401 (fixture)
from tests.waiting import wait_for
from tests.world import World, sandbox_settings


def discord_of(view: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in view["services"] if s["name"] == "discord")


async def test_an_open_breaker_is_shown_everywhere_and_an_operator_closes_it(
    sandbox: Sandbox,  # noqa: F811
    start_daemon: DaemonMaker, session_factory: SessionFactory, database_url: str,
    tmp_path: Path,
) -> None:
    settings = sandbox_settings(sandbox, database_url, tmp_path, admin_token=TOKEN,
                                admin_port=0, rsvp_refresh_seconds=1_000_000,
                                breaker_failure_threshold=2, breaker_reset_seconds=100_000)
    daemon = await active(await start_daemon(settings))
    world = World(sandbox, settings, session_factory, {})
    storm = sandbox.discord.inject("5xx", status=503)
    group = await world.add_group(meetings=0)
    await world.join(await world.add_user(), group)
    from_rows = AdminService(session_factory, settings)  # what the CLI sees: the heartbeat

    async with daemon.client() as api:
        async def opened() -> bool:
            view = (await api.get("/api/overview")).json()
            return bool(discord_of(view)["breaker"]["state"] == "open")

        await wait_for(opened, timeout=60, message="the discord breaker open")
        live = discord_of((await api.get("/api/overview")).json())

        async def heartbeat_says_open() -> bool:
            return bool(discord_of(await from_rows.overview())["breaker"]["state"] == "open")

        await wait_for(heartbeat_says_open, timeout=10, message="the heartbeat")
        metrics = (await api.get("/metrics")).text
        storm.clear()
        reset = await api.post("/api/services/discord/breaker/reset")
        after = discord_of((await api.get("/api/overview")).json())

    assert live["breaker"]["half_open_at"] is not None
    assert {lane["lane"] for lane in live["rate_limits"]} == {"interactive", "background"}
    assert all(isinstance(lane["remaining"], int) for lane in live["rate_limits"])
    assert live["invalid_requests"]["budget"] == 5000
    assert 'groupsync_circuit_breaker_state{service="discord",state="open"} 1.0' in metrics
    assert reset.status_code == 200
    assert after["breaker"]["state"] == "closed"

    async def converged() -> bool:
        return len(world.member_overwrites(group.discord_text_channel_id)) == 1

    await wait_for(converged, timeout=60, message="discord converged after the reset")
