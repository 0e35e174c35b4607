"""Every verb that takes a group refuses an id that names no group (and no sync key a
deleted group left) with exit 1 and one line naming the id, and changes nothing: `drift
--group 999` used to report "0 drift item(s) in 1 group(s)" with exit 0, and `retry
--here` made a sync key for the group that does not exist."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from core.db.models import Group, SyncState
from core.db.session import create_engine, create_session_factory
from tests.cli.conftest import Cli, one_line

UNKNOWN = 999

VERBS = [
    ("drift", "--group", str(UNKNOWN), "--dry-run"),
    ("drift", "--group", "1", "--group", str(UNKNOWN)),
    ("retry", "discord", str(UNKNOWN)),
    ("retry", "discord", str(UNKNOWN), "--here"),
    ("resync", str(UNKNOWN), "--dry-run"),
    ("resync", str(UNKNOWN), "--yes"),
    ("ack", "discord", str(UNKNOWN), "--note", "seen"),
]


async def _with_one_group(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            session.add(Group(id=1, name="Cohort"))
    finally:
        await engine.dispose()


async def _keys(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            return int(await session.scalar(select(func.count()).select_from(SyncState)) or 0)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("argv", VERBS, ids=[" ".join(v) for v in VERBS])
def test_a_verb_refuses_an_unknown_group_with_exit_1_and_one_line_naming_it(
    cli: Cli, database_url: str, argv: tuple[str, ...]
) -> None:
    asyncio.run(_with_one_group(database_url))

    result = cli(*argv, DATABASE_URL=database_url)

    assert result.code == 1, result
    line = one_line(result.err)
    assert line.startswith("groupsync: ")
    assert f"group {UNKNOWN}" in line
    assert "drift item" not in result.out
    assert asyncio.run(_keys(database_url)) == 0  # no key made for nothing


def test_drift_of_a_known_group_still_reports(cli: Cli, database_url: str) -> None:
    asyncio.run(_with_one_group(database_url))

    result = cli("drift", "--group", "1", "--dry-run", DATABASE_URL=database_url)

    assert result.code == 0, result
    assert "0 drift item(s) in 1 group(s)" in result.out
