"""Engine and session factory. Built by whoever starts groupsync; never at import time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from core.db import aiosqlite_stop
from core.db.urls import normalize_database_url, sqlite_path
from core.errors import GroupsyncError

SessionFactory = async_sessionmaker[AsyncSession]
# The command that creates and upgrades the schema: the wheel's script, or the checkout's.
MIGRATE_COMMAND = "`groupsync migrate` (in a checkout: `python main.py migrate`)"


class DatabaseFileMissing(GroupsyncError):
    """A SQLite file that only ``migrate`` may create does not exist."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"database file {path} does not exist; run {MIGRATE_COMMAND} to create it "
            "(or set DATABASE_URL to the right file)"
        )
        self.path = path


def create_engine(database_url: str, *, create_file: bool = True, **kwargs: Any) -> AsyncEngine:
    """``create_file=False`` for anything that only reads or works on an existing database
    (status, the daemon, hand-off): a missing SQLite file is an error, not a new file."""
    database_url = normalize_database_url(database_url)  # any documented form works here too
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = sqlite_path(database_url)
        if path is not None and not create_file and not path.exists():
            raise DatabaseFileMissing(path)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        aiosqlite_stop.install()
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the daemon and application processes read while one writes; foreign keys
    # are off by default in SQLite and our cascades rely on them.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


def engine_of(session_factory: SessionFactory) -> AsyncEngine:
    """The engine a session factory is bound to: Core statements on the hot path run on
    one of its connections directly, without an ORM session around them."""
    bind = session_factory.kw["bind"]
    assert isinstance(bind, AsyncEngine)
    return bind


def dialect_name(session: AsyncSession) -> str:
    return session.get_bind().dialect.name
