"""The fake gateway, driven by discord.py's real gateway client (and raw sockets for errors)."""

from __future__ import annotations

import json
import zlib
from typing import Any

import aiohttp
import discord
import pytest

from core.sandbox import DiscordLimits, Sandbox, SandboxLimits
from core.sandbox.options import GatewayLimits
from tests.sandbox.conftest import Seeded, seeded_sandbox
from tests.sandbox.gateway_client import gateway_client
from tests.waiting import wait_for

VIEW = 1 << 10


def cached_overwrite(client: discord.Client, ids: Seeded, channel_id: int,
                     target_id: int) -> discord.PermissionOverwrite | None:
    guild = client.get_guild(ids.guild)
    channel = None if guild is None else guild.get_channel(channel_id)
    if not isinstance(channel, discord.abc.GuildChannel):
        return None
    for target, overwrite in channel.overwrites.items():
        if target.id == target_id:
            return overwrite
    return None


async def gateway_bot(sb: Sandbox, token: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bot {token}"}
    async with aiohttp.ClientSession() as http, \
            http.get(sb.discord_base_url + "/gateway/bot", headers=headers) as response:
        return response.status, await response.json()


async def test_gateway_bot_gives_the_url_and_the_session_start_limit(sb: Sandbox) -> None:
    status, body = await gateway_bot(sb, sb.discord_bot_token)
    assert status == 200
    assert body["url"].startswith("ws://127.0.0.1:")
    assert body["url"].endswith("/gateway")
    assert body["shards"] == 1
    limit = body["session_start_limit"]
    assert (limit["total"], limit["remaining"], limit["max_concurrency"]) == (1000, 1000, 1)
    assert limit["reset_after"] == 864_000  # one nominal day at time scale 0.01, in ms


async def test_gateway_bot_refuses_a_bad_token_as_rest_does(sb: Sandbox) -> None:
    assert await gateway_bot(sb, "not-the-token") == (
        401, {"message": "401: Unauthorized", "code": 0})


async def test_ready_caches_the_guild_with_channels_and_overwrites(
        sb: Sandbox, ids: Seeded) -> None:
    sb.discord.set_foreign_overwrite(ids.text, ids.low_role, type=0, allow=VIEW)
    async with gateway_client(sb) as client:
        guild = client.get_guild(ids.guild)
        assert guild is not None
        assert not guild.unavailable
        assert {c.id for c in guild.channels} == {ids.text, ids.voice, ids.hidden}
        overwrite = cached_overwrite(client, ids, ids.text, ids.low_role)
        assert overwrite is not None
        assert overwrite.view_channel is True
        assert guild.me is not None
        assert str(guild.me.id) == sb.discord.bot_user_id
    stats = sb.discord.gateway_stats()
    assert stats["identifies"] == 1
    assert stats["session_start_limit"]["remaining"] == 999


async def test_a_rest_overwrite_arrives_as_channel_update_in_the_cache(
        sb: Sandbox, ids: Seeded) -> None:
    async with gateway_client(sb) as client:
        await client.http.edit_channel_permissions(ids.text, ids.low_role, str(VIEW), "0", 0)
        await wait_for(lambda: cached_overwrite(client, ids, ids.text, ids.low_role),
                       timeout=5, message="the overwrite in the cache")
        await client.http.delete_channel_permissions(ids.text, ids.low_role)
        await wait_for(lambda: cached_overwrite(client, ids, ids.text, ids.low_role) is None,
                       timeout=5, message="the overwrite gone from the cache")
    assert sb.discord.gateway_stats()["dispatched"]["CHANNEL_UPDATE"] == 2


async def test_control_changes_dispatch_create_update_and_delete(
        sb: Sandbox, ids: Seeded) -> None:
    async with gateway_client(sb) as client:
        sb.discord.add_channel(555555555555555551, ids.guild, "new-group", type=0)
        sb.discord.set_foreign_overwrite(555555555555555551, ids.bob, type=1, deny=VIEW)
        await wait_for(lambda: cached_overwrite(client, ids, 555555555555555551, ids.bob),
                       timeout=5, message="the new channel and its overwrite")
        sb.discord.delete_channel(ids.voice)
        guild = client.get_guild(ids.guild)
        assert guild is not None
        await wait_for(lambda: guild.get_channel(ids.voice) is None, timeout=5,
                       message="the deleted channel gone from the cache")
    assert client.events.count("CHANNEL_DELETE") == 1


async def test_a_dropped_connection_resumes_and_replays_what_it_missed(
        sb: Sandbox, ids: Seeded) -> None:
    async with gateway_client(sb) as client:
        assert sb.discord.drop_gateway_connections() == 1
        # Changed while the client is cut off: only the resume's replay can bring it.
        sb.discord.set_foreign_overwrite(ids.text, ids.bob, type=1, allow=VIEW)
        await wait_for(lambda: "RESUMED" in client.events, timeout=10, message="RESUMED")
        await wait_for(lambda: cached_overwrite(client, ids, ids.text, ids.bob), timeout=5,
                       message="the missed CHANNEL_UPDATE, replayed")
        stats = sb.discord.gateway_stats()
        assert (stats["identifies"], stats["resumes"], stats["connections"]) == (1, 1, 2)
        assert client.identifies == [True]


@pytest.mark.parametrize("connected", [True, False], ids=["connected", "while-dropped"])
async def test_an_invalidated_session_identifies_once_more(
        sb: Sandbox, ids: Seeded, connected: bool) -> None:
    async with gateway_client(sb) as client:
        # Told at once, or told only when the dropped client tries to RESUME.
        sb.discord.invalidate_gateway_sessions(notify=connected)
        if not connected:
            sb.discord.drop_gateway_connections()
        await wait_for(lambda: len(client.identifies) == 2 and client.is_ready(), timeout=10,
                       message="a second IDENTIFY")
        sb.discord.set_foreign_overwrite(ids.text, ids.bob, type=1, allow=VIEW)
        await wait_for(lambda: cached_overwrite(client, ids, ids.text, ids.bob), timeout=5,
                       message="events on the new session")
        stats = sb.discord.gateway_stats()
        assert stats["identifies"] == 2
        assert stats["invalid_sessions"] == 1
        assert stats["resumes"] == 0
        assert client.identifies == [True, False]


async def test_an_identify_without_session_starts_left_resets_the_token(sb: Sandbox) -> None:
    sb.discord.set_session_start_limit(remaining=0)
    old_token = sb.discord_bot_token
    async with gateway_client(sb, wait_ready=False) as client:
        assert client.connect_task is not None
        await wait_for(client.connect_task.done, timeout=10, message="the client gives up")
        with pytest.raises(discord.ConnectionClosed) as closed:
            client.connect_task.result()
        assert closed.value.code == 4004
    assert sb.discord_bot_token != old_token
    assert (await gateway_bot(sb, old_token))[0] == 401
    stats = sb.discord.gateway_stats()
    assert (stats["identifies"], stats["refused_identifies"]) == (0, 1)


async def test_privileged_intents_not_enabled_close_4014(sb: Sandbox) -> None:
    intents = discord.Intents.none()
    intents.guilds = intents.members = True
    async with gateway_client(sb, wait_ready=False, intents=intents) as client:
        assert client.connect_task is not None
        await wait_for(client.connect_task.done, timeout=10, message="the client gives up")
        with pytest.raises(discord.PrivilegedIntentsRequired):
            client.connect_task.result()
    assert sb.discord.gateway_stats()["closes"] == {"4014": 1}


async def test_heartbeats_are_acknowledged(sb: Sandbox) -> None:
    async with gateway_client(sb) as client:
        await wait_for(lambda: client.latency != float("inf"), timeout=5,
                       message="a HEARTBEAT_ACK")
    assert sb.discord.gateway_stats()["heartbeats"] >= 1


# ---- the wire, with a raw socket -------------------------------------------------------------
async def open_socket(http: aiohttp.ClientSession, sb: Sandbox,
                      query: str = "v=10&encoding=json") -> aiohttp.ClientWebSocketResponse:
    _status, body = await gateway_bot(sb, sb.discord_bot_token)
    return await http.ws_connect(f"{body['url']}?{query}")


def identify(sb: Sandbox, **fields: Any) -> str:
    d = {"token": sb.discord_bot_token, "intents": 1, "properties": {}, **fields}
    return json.dumps({"op": 2, "d": d})


async def test_zlib_stream_frames_are_one_sync_flushed_stream(sb: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await open_socket(http, sb, "v=10&encoding=json&compress=zlib-stream")
        inflate = zlib.decompressobj()
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.BINARY
        assert msg.data.endswith(b"\x00\x00\xff\xff")
        hello = json.loads(inflate.decompress(msg.data))
        assert hello["op"] == 10
        assert hello["d"]["heartbeat_interval"] == 412
        await ws.send_str(identify(sb))
        ready = json.loads(inflate.decompress((await ws.receive(timeout=5)).data))
        assert (ready["t"], ready["s"]) == ("READY", 1)
        assert ready["d"]["guilds"] == [{"id": str(Seeded.guild), "unavailable": True}]
        await ws.close()


@pytest.mark.parametrize(("query", "first", "code"), [
    ("v=10&encoding=json", {"op": 2, "d": {"token": "wrong", "intents": 1}}, 4004),
    ("v=10&encoding=json", {"op": 2, "d": {"intents": 1 << 30}}, 4013),
    ("v=10&encoding=json", {"op": 3, "d": {}}, 4003),
    ("v=10&encoding=json", {"op": 99, "d": {}}, 4001),
    ("v=9&encoding=json", None, 4012),
    ("v=10&encoding=etf", None, 4002),
], ids=["bad-token", "invalid-intents", "not-authenticated", "unknown-op", "old-version",
        "etf"])
async def test_protocol_errors_close_with_discords_codes(
        sb: Sandbox, query: str, first: dict[str, Any] | None, code: int) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await open_socket(http, sb, query)
        if first is not None:
            await ws.receive(timeout=5)  # HELLO
            if first["op"] == 2 and "token" not in first["d"]:
                first["d"]["token"] = sb.discord_bot_token
            await ws.send_str(json.dumps(first))
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert msg.data == code
        await ws.close()


async def test_a_silent_connection_is_cut_as_a_zombie() -> None:
    limits = SandboxLimits(discord=DiscordLimits(
        gateway=GatewayLimits(zombie_after_intervals=1.0, zombie_floor=0.2)))
    async with seeded_sandbox(limits) as sb, aiohttp.ClientSession() as http:
        ws = await open_socket(http, sb)
        await ws.receive(timeout=5)  # HELLO, then silence
        await ws.send_str(identify(sb))
        seen = [await ws.receive(timeout=5) for _ in range(3)]  # READY, GUILD_CREATE, end
        assert seen[-1].type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        await ws.close()
        stats = sb.discord.gateway_stats()
    assert (stats["zombies"], stats["sessions"]) == (1, 1)  # still resumable


async def test_gateway_controls_over_http(sb: Sandbox) -> None:
    assert sb.control_url is not None
    async with aiohttp.ClientSession() as http:
        async with http.post(sb.control_url + "/discord/set_session_start_limit",
                             json={"remaining": 3}) as response:
            assert (await response.json())["result"]["remaining"] == 3
        async with http.get(sb.control_url + "/discord/gateway_stats") as response:
            body = await response.json()
    assert body["result"]["session_start_limit"]["remaining"] == 3
    assert body["result"]["connections"] == 0
