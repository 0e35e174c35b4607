"""Breaker and rate-limit state seen through the API and the database (heartbeat), and a
breaker closed by an operator, against the sandbox."""

from __future__ import annotations

from tests.admin.conftest import DiscordStorm, discord_of
from tests.e2e.conftest import sandbox  # noqa: F401 (fixture)
from tests.waiting import wait_for


async def test_an_open_breaker_is_shown_everywhere_and_an_operator_closes_it(
    discord_storm: DiscordStorm,
) -> None:
    world, group, storm = discord_storm.world, discord_storm.group, discord_storm.storm
    async with discord_storm.daemon.client() as api:
        async def opened() -> bool:
            view = (await api.get("/api/overview")).json()
            return bool(discord_of(view)["breaker"]["state"] == "open")

        await wait_for(opened, timeout=60, message="the discord breaker open")
        live = discord_of((await api.get("/api/overview")).json())

        await wait_for(discord_storm.heartbeat_says_open, timeout=10, message="the heartbeat")
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
