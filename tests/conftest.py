"""Fixtures shared by every test folder.

`database_url` is parametrized over SQLite and PostgreSQL: a test that takes it (or
`engine` / `session_factory`) runs once per backend, each on a fresh migrated database.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from discord.http import Route
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db.session import SessionFactory, create_engine, create_session_factory
from tests.databases import PostgresDatabases, SqliteDatabases, postgres_admin_url

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def sqlite_databases(tmp_path_factory: pytest.TempPathFactory) -> SqliteDatabases:
    databases = SqliteDatabases(tmp_path_factory.mktemp("sqlite-template"))
    databases.prepare_template()
    return databases


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases | None]:
    admin_url = postgres_admin_url()
    if admin_url is None:
        yield None
        return
    databases = PostgresDatabases(admin_url)
    databases.prepare_template()
    yield databases
    databases.drop_template()


def _database(request: pytest.FixtureRequest, tmp_path: Path, migrated: bool) -> Iterator[str]:
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_databases").create(tmp_path, migrated)
        return
    postgres: PostgresDatabases | None = request.getfixturevalue("postgres_databases")
    if postgres is None:
        pytest.skip("PostgreSQL half: set GROUPSYNC_TEST_POSTGRES_URL (scripts/start-postgres.sh)")
    url = postgres.create(migrated)
    try:
        yield url
    finally:
        postgres.drop(url)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database at the head revision."""
    yield from _database(request, tmp_path, migrated=True)


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database with no schema at all (for migration and start-up tests)."""
    yield from _database(request, tmp_path, migrated=False)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> SessionFactory:
    return create_session_factory(engine)


@pytest.fixture(autouse=True)
def _admin_api_on_a_free_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """Daemons started by tests (in process or as subprocesses) bind their admin API to a
    free port, never the default 8765 that parallel test runs would fight over."""
    monkeypatch.setenv("ADMIN_PORT", "0")


@pytest.fixture(autouse=True)
def _discord_route_base_restored() -> Iterator[None]:
    """discord.py's base URL is a class attribute the Discord adapter sets: undo it."""
    before = Route.BASE
    yield
    Route.BASE = before


@pytest.fixture(autouse=True)
def _only_the_built_in_sync_types() -> Iterator[None]:
    """A test that registers a sync type of its own takes it out again: every other test
    counts on the built-in four (the registry is per process, shared by an xdist worker)."""
    from core.syncers import types

    built_in = ["discord", "calendar", "reminders", "rsvps"]
    assert list(types.names()) == built_in, "a sync type leaked in from an earlier test"
    yield
    assert list(types.names()) == built_in, "this test left a sync type registered"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, the controller empties artifacts/browser/ once, before its
    workers start: each worker's session fixture only adds to it."""
    parallel = getattr(config.option, "numprocesses", None)
    if parallel and not hasattr(config, "workerinput"):
        artifacts = Path(__file__).resolve().parents[1] / "artifacts" / "browser"
        shutil.rmtree(artifacts, ignore_errors=True)
