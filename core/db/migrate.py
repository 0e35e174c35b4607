"""Alembic from code: upgrade to head, and the start-up check that the schema is current.

Concurrent ``migrate`` runs are safe: on PostgreSQL the migration transaction first takes
an advisory lock (``migrations/env.py``), on SQLite an exclusive file lock next to
the database serialises them; the second finds the schema at head and does nothing.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db.problems import SchemaNotCurrent, unknown_revision
from core.db.session import MIGRATE_COMMAND
from core.db.urls import sqlite_path

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

# The newest migration's revision. Every CLI verb checks the schema before it reads, and
# importing alembic and loading its script directory cost a quarter of `status`'s second;
# a database at this revision needs neither. tests/integration/test_migrations.py holds
# it equal to alembic's head, so a new migration cannot forget it.
HEAD_REVISION = "0014"


def _migrations_folder() -> Path:
    """The wheel's copy (``core/migrations``, see setup.py), else the checkout's top-level
    ``migrations/``: either way no alembic.ini is needed."""
    package = Path(__file__).resolve().parents[1]
    shipped = package / "migrations"
    return shipped if shipped.is_dir() else package.parent / "migrations"


MIGRATIONS = _migrations_folder()


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command

    with _sqlite_migration_lock(database_url):
        command.upgrade(alembic_config(database_url), revision)


@contextmanager
def _sqlite_migration_lock(database_url: str) -> Iterator[None]:
    path = sqlite_path(database_url)
    if path is None:
        yield  # PostgreSQL: env.py's advisory lock
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".migrate.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the handle closes
        yield


def downgrade(database_url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)


def unknown_target(database_url: str, revision: str) -> str | None:
    """Why ``migrate REVISION`` cannot work (a revision these migrations do not contain)."""
    if revision in ("head", "heads"):
        return None
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(database_url))
    if _known(script, revision):
        return None
    return (
        f"unknown revision {revision!r}; `groupsync migrate` without an argument upgrades "
        f"to the newest, {script.get_current_head()}"
    )


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None
    head: str
    known: bool = True  # False: a revision this version's migrations do not contain

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    def problem(self) -> str:
        if not self.known and self.current is not None:
            return unknown_revision(self.current, self.head)
        found = "an empty database" if self.current is None else f"revision {self.current}"
        return (
            f"database schema is not at head (found {found}, need {self.head}); "
            f"run {MIGRATE_COMMAND} first"
        )


async def schema_status(engine: AsyncEngine, database_url: str) -> SchemaStatus:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(database_url))
    head = script.get_current_head()
    assert head is not None
    async with engine.connect() as connection:
        current = await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
    return SchemaStatus(current=current, head=head, known=_known(script, current))


def _known(script: ScriptDirectory, revision: str | None) -> bool:
    if revision is None:
        return True
    try:
        return script.get_revision(revision) is not None
    except Exception:  # alembic raises ResolutionError / CommandError for unknown ids
        return False


async def require_current_schema(engine: AsyncEngine, database_url: str) -> None:
    """Raise ``SchemaNotCurrent`` (one line naming the fix) unless the schema is at head."""
    if await _recorded_revision(engine) == HEAD_REVISION:
        return
    status = await schema_status(engine, database_url)
    if not status.at_head:
        raise SchemaNotCurrent(status.problem())


async def _recorded_revision(engine: AsyncEngine) -> str | None:
    """The revision alembic recorded, read without alembic; None when there is none yet
    (the slow path then says precisely what is wrong)."""
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
    except DBAPIError:
        return None  # no table yet: an empty database
    return str(rows[0][0]) if len(rows) == 1 else None
