"""Alembic owns the schema: it goes up and down, and never drifts from the models."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from core.db.migrate import SchemaStatus, downgrade, schema_status, upgrade
from core.db.models import Base
from core.db.session import create_engine

OUR_TABLES = set(Base.metadata.tables)


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()
    return set(names) - {"alembic_version"}


async def _drift(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
                )
            )
    finally:
        await engine.dispose()


# Alembic's env.py runs its own event loop, so these tests are plain functions.


def test_upgrade_head_then_downgrade_base_then_upgrade_again(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    assert asyncio.run(_tables(empty_database_url)) == OUR_TABLES

    downgrade(empty_database_url, "base")
    assert asyncio.run(_tables(empty_database_url)) == set()

    upgrade(empty_database_url)
    assert asyncio.run(_tables(empty_database_url)) == OUR_TABLES


def test_migrations_do_not_drift_from_the_models(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    assert asyncio.run(_drift(empty_database_url)) == []


async def _status_before_and_after_upgrade(url: str) -> tuple[object, object]:
    engine = create_engine(url)
    try:
        before = await schema_status(engine, url)
        await asyncio.to_thread(upgrade, url)
        return before, await schema_status(engine, url)
    finally:
        await engine.dispose()


def test_schema_status_tells_empty_from_head(empty_database_url: str) -> None:
    before, after = asyncio.run(_status_before_and_after_upgrade(empty_database_url))

    assert isinstance(before, SchemaStatus)
    assert isinstance(after, SchemaStatus)
    assert not before.at_head
    assert "python main.py migrate" in before.problem()
    assert after.at_head


def test_the_recorded_head_revision_is_alembics_head() -> None:
    # The CLI's fast schema check compares against HEAD_REVISION without loading alembic.
    from alembic.script import ScriptDirectory

    from core.db.migrate import HEAD_REVISION, alembic_config

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert script.get_current_head() == HEAD_REVISION
