"""Each database problem ends in one line naming the fix, exit status 2, no traceback;
read-only verbs create nothing; every documented URL form works."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from core.db.problems import database_problem
from tests.cli.conftest import Cli, one_line
from tests.databases import PostgresDatabases

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def sqlite_url(path: Path, scheme: str = "sqlite") -> str:
    return f"{scheme}:///{path}"


def test_status_on_a_missing_sqlite_file_says_migrate_and_creates_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    database = tmp_path / "var" / "groupsync.db"
    result = cli("status", DATABASE_URL=sqlite_url(database))
    assert result.code == 2
    line = one_line(result.err)
    assert "does not exist" in line
    assert "groupsync migrate" in line
    assert not database.parent.exists()


@pytest.mark.parametrize("verb", [["status"], ["run"], ["retry", "discord", "1"]])
def test_a_database_without_schema_is_one_line_naming_migrate(
    cli: Cli, tmp_path: Path, verb: list[str]
) -> None:
    database = tmp_path / "empty.db"
    sqlite3.connect(database).close()
    result = cli(*verb, DATABASE_URL=sqlite_url(database))
    assert result.code == 2
    assert "migrate" in one_line(result.err)


def test_an_unreachable_server_is_one_line(cli: Cli) -> None:
    result = cli("status", DATABASE_URL="postgresql://gs@127.0.0.1:1/gs")
    assert result.code == 2
    line = one_line(result.err)
    assert "cannot reach the database server" in line
    assert "DATABASE_URL" in line


def test_an_unknown_host_is_one_line(cli: Cli) -> None:
    result = cli("migrate", DATABASE_URL="postgresql://gs@no-such-host.invalid/gs")
    assert result.code == 2
    assert "cannot resolve the database host" in one_line(result.err)


def test_a_database_at_a_revision_this_version_does_not_know(cli: Cli, tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "gs.db")
    assert cli("migrate", DATABASE_URL=url).code == 0
    with sqlite3.connect(tmp_path / "gs.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")

    for verb in (["status"], ["run"], ["migrate"]):
        result = cli(*verb)
        assert result.code == 2, verb
        line = one_line(result.err)
        assert "0099_from_the_future" in line
        assert "version" in line


def test_migrate_to_an_unknown_target_names_the_newest(cli: Cli, tmp_path: Path) -> None:
    result = cli("migrate", "nonsense", DATABASE_URL=sqlite_url(tmp_path / "gs.db"))
    assert result.code == 2
    assert "unknown revision 'nonsense'" in one_line(result.err)


def test_debug_level_shows_the_traceback_too(cli: Cli, tmp_path: Path) -> None:
    result = cli("status", DATABASE_URL=sqlite_url(tmp_path / "none.db"), LOG_LEVEL="DEBUG")
    assert result.code == 2
    assert "Traceback" in result.err
    assert result.err.strip().splitlines()[-1].startswith("groupsync: database file")


def test_a_refused_password_is_named_as_such() -> None:
    refused = asyncpg.exceptions.InvalidPasswordError(
        'password authentication failed for user "gs"')
    line = database_problem(RuntimeError("wrapped")) or ""
    assert line == ""
    problem = database_problem(refused)
    assert problem is not None
    assert "refused the credentials" in problem
    assert "DATABASE_URL" in problem


# ---- PostgreSQL ----------------------------------------------------------------------------
@pytest.fixture
def postgres(postgres_databases: PostgresDatabases | None) -> PostgresDatabases:
    if postgres_databases is None:
        pytest.skip("PostgreSQL half: set GROUPSYNC_TEST_POSTGRES_URL")
    return postgres_databases


@pytest.fixture
def fresh_postgres(postgres: PostgresDatabases) -> Iterator[str]:
    url = postgres.create(migrated=False)
    yield url
    postgres.drop(url)


def test_a_wrong_password_is_one_line(cli: Cli, postgres: PostgresDatabases) -> None:
    role = f"gs_pw_{uuid.uuid4().hex[:8]}"
    admin = postgres.admin_url
    # scripts/start-postgres.sh checks passwords for members of gs_password_checked
    asyncio.run(_sql(admin, "DO $$ BEGIN CREATE ROLE gs_password_checked NOLOGIN; "
                            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"))
    asyncio.run(_sql(admin, f"CREATE ROLE {role} LOGIN PASSWORD 'right' "
                            "IN ROLE gs_password_checked"))
    try:
        url = make_url(admin).set(username=role, password="wrong")
        if asyncio.run(_accepts(url.render_as_string(hide_password=False))):
            pytest.skip("this server trusts every password (pg_hba.conf trust)")
        result = cli("status", DATABASE_URL=url.render_as_string(hide_password=False))
        assert result.code == 2
        line = one_line(result.err)
        assert "refused the credentials" in line
        assert "wrong" not in line  # the password is never echoed
    finally:
        asyncio.run(_sql(admin, f"DROP ROLE IF EXISTS {role}"))


def test_an_unknown_database_is_one_line(cli: Cli, postgres: PostgresDatabases) -> None:
    url = make_url(postgres.admin_url).set(database="gs_does_not_exist")
    result = cli("status", DATABASE_URL=url.render_as_string(hide_password=False))
    assert result.code == 2
    assert 'database "gs_does_not_exist" does not exist' in one_line(result.err)


@pytest.mark.parametrize(
    "scheme", ["postgresql", "postgres", "postgresql+asyncpg", "postgresql?sslmode=disable"])
def test_every_postgres_url_form_migrates_and_reads(
    cli: Cli, fresh_postgres: str, scheme: str
) -> None:
    url = make_url(fresh_postgres).set(drivername="postgresql").render_as_string(
        hide_password=False)
    base, _, query = scheme.partition("?")
    url = base + "://" + url.split("://", 1)[1] + (f"?{query}" if query else "")
    assert cli("migrate", DATABASE_URL=url).code == 0
    result = cli("status", "--json")
    assert result.code == 0, result.err


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+aiosqlite"])
def test_every_sqlite_url_form_migrates_and_reads(cli: Cli, tmp_path: Path, scheme: str) -> None:
    url = sqlite_url(tmp_path / "sub" / "gs.db", scheme)
    assert cli("migrate", DATABASE_URL=url).code == 0
    result = cli("status", "--json")
    assert result.code == 0, result.err


async def _sql(url: str, statement: str) -> None:
    connection = await asyncpg.connect(make_url(url).set(drivername="postgresql")
                                       .render_as_string(hide_password=False))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _accepts(url: str) -> bool:
    try:
        connection = await asyncpg.connect(make_url(url).set(drivername="postgresql")
                                           .render_as_string(hide_password=False), timeout=10)
    except asyncpg.InvalidPasswordError:
        return False
    await connection.close()
    return True


def balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0 and text.count("`") % 2 == 0


def test_the_database_messages_are_proof_read(tmp_path: Path) -> None:
    from core.db.problems import unknown_revision
    from core.db.session import DatabaseFileMissing

    missing_table = sqlite3.OperationalError("no such table: sync_state")
    messages = [
        database_problem(missing_table) or "",
        unknown_revision("00ff_future", "0042_head"),
        str(DatabaseFileMissing(tmp_path / "groupsync.db")),
    ]
    for message in messages:
        assert balanced(message), message
        assert "migrate" in message
