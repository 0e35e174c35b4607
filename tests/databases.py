"""Per-test databases cloned from a migrated template, for SQLite and PostgreSQL alike.

PostgreSQL comes from GROUPSYNC_TEST_POSTGRES_URL (an admin URL; `scripts/start-postgres.sh`
prints one). Without it the PostgreSQL half is skipped locally and fails under CI=true,
so CI can never go green by silently testing only SQLite.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from core.db.migrate import upgrade

POSTGRES_ENV = "GROUPSYNC_TEST_POSTGRES_URL"


def _template_name() -> str:
    """One template per pytest process: parallel workers (pytest-xdist) and parallel runs
    against one server each build and drop their own, never another's mid-clone. The
    process id is unique among live processes, so a stale one of a dead run is simply
    replaced."""
    return f"groupsync_test_template_{os.getpid()}"


def postgres_admin_url() -> str | None:
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"{POSTGRES_ENV} is not set: CI must run the PostgreSQL half of the suite")
    return None


def _plain(url: str) -> str:
    """asyncpg wants postgresql://, SQLAlchemy wants postgresql+asyncpg://."""
    return str(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))


def _with_database(url: str, database: str, driver: str = "postgresql+asyncpg") -> str:
    return (
        make_url(url)
        .set(database=database, drivername=driver)
        .render_as_string(hide_password=False)
    )


async def _admin(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(_plain(url), timeout=10)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


class PostgresDatabases:
    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.template = _template_name()

    def prepare_template(self) -> None:
        try:
            asyncio.run(
                _admin(
                    self.admin_url,
                    f"DROP DATABASE IF EXISTS {self.template} WITH (FORCE)",
                    f"CREATE DATABASE {self.template}",
                )
            )
        except (OSError, asyncpg.PostgresError) as exc:
            pytest.fail(f"cannot reach PostgreSQL at {POSTGRES_ENV}: {exc}")
        upgrade(_with_database(self.admin_url, self.template))

    def drop_template(self) -> None:
        asyncio.run(
            _admin(self.admin_url, f"DROP DATABASE IF EXISTS {self.template} WITH (FORCE)")
        )

    def create(self, migrated: bool = True) -> str:
        name = f"gs_{uuid.uuid4().hex[:12]}"
        template = f" TEMPLATE {self.template}" if migrated else ""
        asyncio.run(_admin(self.admin_url, f"CREATE DATABASE {name}{template}"))
        return _with_database(self.admin_url, name)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        asyncio.run(_admin(self.admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


class SqliteDatabases:
    def __init__(self, root: Path) -> None:
        self.template = root / "template.db"

    def prepare_template(self) -> None:
        upgrade(f"sqlite+aiosqlite:///{self.template}")

    def create(self, directory: Path, migrated: bool = True) -> str:
        path = directory / "groupsync.db"
        if migrated:
            shutil.copyfile(self.template, path)
        return f"sqlite+aiosqlite:///{path}"
