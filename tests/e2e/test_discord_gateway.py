"""The Discord gateway with a real daemon, the real discord.py gateway client and the
sandbox's gateway, on SQLite and PostgreSQL: syncs read overwrites from the gateway's
cache (no GET /channels/{id}) while it is up; a person deleting or altering an overwrite
of ours has it restored within seconds (no drift sweep, no change in the database); a
person's own overwrite is never touched; a deleted channel is a missing target naming
it; a dropped connection RESUMEs (no new IDENTIFY) and loses no event; an invalidated
session re-identifies exactly once."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from core.db.models import DiscordGrant, SyncType
from core.db.session import create_engine, create_session_factory
from core.sandbox import Sandbox, start_sandbox
from core.syncers.discord_plan import TEXT_ALLOW
from tests.e2e.daemon_world import ANN, BOB, TEXT, bob_joins, cli, discord_env, key, seed
from tests.engine.daemon_process import spawn_run
from tests.waiting import wait_for
from tests.world import GUILD

pytestmark = pytest.mark.slow

SCALE = 0.05
READ = "GET /channels/{channel_id}"
PUT = "PUT /channels/{channel_id}/permissions/{target}"
EVE = "871000000000000010"  # in the guild, in no group: her overwrite is a person's own
OURS = {"type": 1, "allow": TEXT_ALLOW, "deny": 0}  # as the fake holds ours
ADMIN_TOKEN = "gateway-test-admin-token-" + "5c2f8e71"


@dataclass
class Running:
    sandbox: Sandbox
    group_id: int
    log: Path
    env: dict[str, str]

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text().splitlines():
            if f'"{name}"' in line:
                found.append(json.loads(line))
        return found

    def overwrite(self, user: str) -> dict[str, Any] | None:
        return self.sandbox.discord.overwrites(TEXT).get(user)

    def stats(self) -> dict[str, Any]:
        return dict(self.sandbox.discord.gateway_stats())

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The daemon's /metrics, by sample name and labels (blocking: run in a thread)."""
        (listening,) = self.events("admin_api_listening")
        response = httpx.get(f"{listening['url']}/metrics", timeout=15,
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        response.raise_for_status()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(response.text)
                for s in family.samples}


async def grants(database_url: str) -> list[tuple[str, str, str, str]]:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            rows = (await session.scalars(select(DiscordGrant))).all()
            return sorted((r.kind, r.target_id, r.discord_user_id, r.state) for r in rows)
    finally:
        await engine.dispose()


async def converged(database_url: str) -> bool:
    row = await key(database_url, SyncType.DISCORD)
    return row is not None and row.status == "ok" and (
        row.requested_generation == row.completed_generation)


@asynccontextmanager
async def daemon(database_url: str, tmp_path: Path, **extra: str) -> AsyncIterator[Running]:
    """The seeded group synced by a daemon whose gateway cache is current; stopped
    (exit 0) after."""
    async with start_sandbox(time_scale=SCALE) as sandbox:
        group_id = await seed(database_url, sandbox)
        sandbox.discord.add_user(EVE, "eve")
        sandbox.discord.add_member(GUILD, EVE)
        env = discord_env(database_url, sandbox, scale=SCALE,
                          DRIFT_SWEEP_PERIOD_SECONDS="1000000000",
                          DRIFT_SWEEP_TICK_SECONDS="1000000000", ADMIN_TOKEN=ADMIN_TOKEN,
                          **extra)
        log = tmp_path / "daemon.log"
        process = spawn_run(env, log)
        running = Running(sandbox, group_id, log, env)
        try:
            await wait_for(lambda: running.overwrite(ANN) is not None, timeout=60,
                           message="Ann's overwrite granted")
            await wait_for(lambda: converged(database_url), timeout=60, message="converged")
            if extra.get("DISCORD_GATEWAY") != "0":
                await wait_for(lambda: running.events("discord_gateway_ready"), timeout=60,
                               message="the gateway's cache current")
            yield running
            process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(process.wait, 15)
            assert process.returncode == 0, log.read_text()[-3000:]
        finally:
            process.kill()


async def delete_as_a_person(sandbox: Sandbox, channel: str, user: str) -> None:
    """A moderator deleting the overwrite in Discord: through the fake's REST API."""
    url = f"{sandbox.discord_base_url}/channels/{channel}/permissions/{user}"
    headers = {"Authorization": f"Bot {sandbox.discord_bot_token}"}
    async with aiohttp.ClientSession() as session, session.delete(url, headers=headers) as r:
        assert r.status == 204, await r.text()


def reads_since(sandbox: Sandbox, since: int) -> int:
    return sum(1 for r in sandbox.discord.request_log[since:] if r.route == READ)


async def test_people_edits_are_repaired_live_and_syncs_read_no_channel(
    database_url: str, tmp_path: Path
) -> None:
    async with daemon(database_url, tmp_path) as world:
        sandbox = world.sandbox
        log = sandbox.discord.request_log
        # A membership change: its sync reads the channel from the cache, not over REST
        before = len(log)
        await bob_joins(database_url, world.group_id)
        await wait_for(lambda: world.overwrite(BOB) is not None, timeout=30,
                       message="Bob's overwrite granted")
        await wait_for(lambda: converged(database_url), timeout=30, message="converged")
        assert reads_since(sandbox, before) == 0
        recorded = await grants(database_url)

        # A person's own overwrite, then one of ours deleted: only ours is written, and
        # it is back within 3 s of real time (the follower judges changes in order, so
        # Eve's was judged, and left alone, before ours was repaired)
        before = len(log)
        sandbox.discord.set_foreign_overwrite(TEXT, EVE, 1, allow=1024, deny=0)
        started = time.monotonic()
        await delete_as_a_person(sandbox, TEXT, ANN)
        await wait_for(lambda: world.overwrite(ANN) is not None, timeout=10,
                       message="Ann's overwrite restored")
        took = time.monotonic() - started
        assert took < 3.0, took
        puts = [r for r in log[before:] if r.route == PUT]
        assert [r.path.rsplit("/", 1)[-1] for r in puts] == [ANN]
        assert world.overwrite(EVE) == {"type": 1, "allow": 1024, "deny": 0}
        assert world.overwrite(ANN) == OURS
        await wait_for(lambda: converged(database_url), timeout=30, message="converged")
        assert await grants(database_url) == recorded
        assert reads_since(sandbox, before) == 0
        (change,) = world.events("discord_live_change")
        assert change["found"] == f"channel {TEXT} user {ANN}: overwrite of ours missing"
        assert not world.events("drift_sweep_started")

        # The channel deleted: the key names it as a missing target
        sandbox.discord.delete_channel(TEXT)

        async def missing() -> bool:
            row = await key(database_url, SyncType.DISCORD)
            return row is not None and row.error_kind == "missing_target"

        await wait_for(missing, timeout=30, message="the key a missing target")
        row = await key(database_url, SyncType.DISCORD)
        assert row is not None
        assert TEXT in (row.last_error or "")
        assert "groups.discord_text_channel_id" in (row.last_error or "")


async def test_a_dropped_connection_resumes_and_an_invalid_session_identifies_once(
    database_url: str, tmp_path: Path
) -> None:
    async with daemon(database_url, tmp_path) as world:
        sandbox = world.sandbox
        assert world.stats()["identifies"] == 1
        # Dropped, and one of ours altered while the socket is down: the RESUME replays
        # it and it is put right; no new IDENTIFY
        sandbox.discord.drop_gateway_connections()
        sandbox.discord.set_foreign_overwrite(TEXT, ANN, 1, allow=1024, deny=2048)
        await wait_for(lambda: world.stats()["resumes"] == 1, timeout=30, message="resumed")
        await wait_for(lambda: world.overwrite(ANN) == OURS, timeout=10,
                       message="Ann's overwrite put right")
        assert world.stats()["identifies"] == 1
        (change,) = world.events("discord_live_change")
        assert change["found"] == f"channel {TEXT} user {ANN}: overwrite of ours altered"

        # `status` shows the active daemon's gateway, resumed once
        async def gateway_shown() -> dict[str, Any] | None:
            # In a thread: the sandbox serving the daemon runs in this event loop
            answer = await asyncio.to_thread(cli, world.env, "status", "--json")
            view = json.loads(answer.stdout)
            (discord,) = [s for s in view["services"] if s["name"] == "discord"]
            gateway: dict[str, Any] | None = discord["gateway"]
            return gateway if gateway and gateway["resumes"] == 1 else None

        shown = await wait_for(gateway_shown, timeout=30, interval=0.5,
                               message="status showing the resumed gateway")
        assert (shown["state"], shown["identifies"], shown["channels"]) == ("connected", 1, 1)
        text = await asyncio.to_thread(cli, world.env, "status")
        assert "gateway connected since" in text.stdout, text.stdout
        # and /metrics: connected, one identify, one resume, the repair's read from the cache
        scraped = await asyncio.to_thread(world.metrics)
        assert scraped[("groupsync_discord_gateway_connected", ())] == 1
        assert scraped[("groupsync_discord_gateway_identifies_total", ())] == 1
        assert scraped[("groupsync_discord_gateway_resumes_total", ())] == 1
        assert scraped[("groupsync_discord_gateway_latency_seconds", ())] >= 0
        assert scraped[("groupsync_discord_channel_reads_total", (("source", "gateway"),))] >= 1

        # Invalidated: exactly one new IDENTIFY, and the cache is read again after it
        sandbox.discord.invalidate_gateway_sessions()
        # (ready: the first session, its resume, and now the new session)
        await wait_for(lambda: len(world.events("discord_gateway_ready")) == 3, timeout=30,
                       message="a new session's cache current")
        log = sandbox.discord.request_log
        before = len(log)
        await bob_joins(database_url, world.group_id)
        await wait_for(lambda: world.overwrite(BOB) is not None, timeout=30,
                       message="Bob's overwrite granted")
        await wait_for(lambda: converged(database_url), timeout=30, message="converged")
        assert reads_since(sandbox, before) == 0
        assert world.stats()["identifies"] == 2
        assert world.stats()["resumes"] == 1


async def test_with_the_gateway_off_syncs_read_over_rest(
    database_url: str, tmp_path: Path
) -> None:
    async with daemon(database_url, tmp_path, DISCORD_GATEWAY="0") as world:
        sandbox = world.sandbox
        before = len(sandbox.discord.request_log)
        await bob_joins(database_url, world.group_id)
        await wait_for(lambda: world.overwrite(BOB) is not None, timeout=30,
                       message="Bob's overwrite granted")
        assert reads_since(sandbox, before) == 1
        assert world.stats()["connections"] == 0
