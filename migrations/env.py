"""Alembic environment: async engine from groupsync settings, models as the target."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from core.config import load_settings
from core.db.models import Base
from core.db.session import create_engine

config = context.config
target_metadata = Base.metadata

# APScheduler's job table (if a deployment adds a SQLAlchemy job store) is not ours.
EXCLUDED_TABLES = {"apscheduler_jobs"}


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    return not (type_ == "table" and name in EXCLUDED_TABLES)


def database_url() -> str:
    return config.attributes.get("database_url") or load_settings().database_url


# Two `migrate` started together: the second waits here until the first commits, then
# finds the schema at head (without it, both create the tables and one fails).
MIGRATION_LOCK_KEY = 0x67736D6967  # "gsmig"


def run_migrations(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async() -> None:
    engine = create_engine(database_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    asyncio.run(run_async())
