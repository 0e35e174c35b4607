"""A close in flight when its aiosqlite connection is stopped still returns (the order
SQLAlchemy's terminate produces: graceful close, then force close when cancelled)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite

from core.db.session import create_engine


async def test_a_close_in_flight_returns_when_the_connection_is_stopped(tmp_path: Path) -> None:
    # Given the engine factory (it installs the fix) and a connection being closed
    await create_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}").dispose()
    connection = await aiosqlite.connect(tmp_path / "a.db")
    closing = asyncio.ensure_future(connection.close())
    await asyncio.sleep(0)  # the close is queued on the connection's thread

    # When it is force-closed meanwhile
    connection.stop()

    # Then the close returns (it waited forever for a second stop no thread would run)
    await asyncio.wait_for(closing, timeout=10)
    assert closing.exception() is None
