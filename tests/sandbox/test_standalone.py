"""``python -m core.sandbox`` starts, serves, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
async def test_process_prints_urls_serves_and_exits_zero_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core.sandbox", "--time-scale", "0.01", "--seed-demo",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        ready = json.loads(await asyncio.wait_for(process.stdout.readline(), timeout=30))
        headers = {"Authorization": f"Bot {ready['discord_bot_token']}"}
        channel_id = ready["demo"]["channel_ids"][0]
        async with aiohttp.ClientSession(headers=headers) as http, \
                http.get(f"{ready['discord_base_url']}/channels/{channel_id}") as response:
            assert response.status == 200
            assert (await response.json())["name"] == "group-1-text"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
