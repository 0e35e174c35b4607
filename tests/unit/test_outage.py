"""Which errors are a database outage, and how an outage is reported: pure, no I/O."""

from __future__ import annotations

import errno

import asyncpg
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from core.engine.health.leadership import AnotherDaemonRunning
from core.engine.health.outage import DatabaseOutage, is_database_unavailable, reconnect_delay


def _refusal_raised_while_handling_an_os_error() -> BaseException:
    try:
        try:
            raise BlockingIOError(errno.EAGAIN, "lock held")
        except BlockingIOError:
            raise AnotherDaemonRunning("another daemon") from None
    except AnotherDaemonRunning as exc:
        return exc


def _wrapped(orig: Exception, invalidated: bool = False) -> OperationalError:
    return OperationalError("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"), True),
        (ConnectionResetError(errno.ECONNRESET, "reset by peer"), True),
        (OSError(errno.EHOSTUNREACH, "No route to host"), True),
        (TimeoutError(), True),
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), True),
        (asyncpg.exceptions.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"), True),
        (_wrapped(Exception("server closed the connection"), invalidated=True), True),
        (_wrapped(ConnectionResetError()), True),
        (IntegrityError("INSERT", {}, Exception("duplicate key")), False),
        (FileNotFoundError(errno.ENOENT, "no such file"), False),
        (_refusal_raised_while_handling_an_os_error(), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_unreachable_databases_count_as_outages(error: BaseException, outage: bool) -> None:
    assert is_database_unavailable(error) is outage


def test_one_line_pair_and_one_report_per_outage(capsys: pytest.CaptureFixture[str]) -> None:
    clock = iter([100.0, 130.5, 200.0, 201.0])
    reports: list[str] = []
    outage = DatabaseOutage(monotonic=lambda: next(clock), report=reports.append)

    for _ in range(50):  # every loop and key meets the same outage
        outage.failed(ConnectionRefusedError(), where="outbox_sweep")
    outage.reachable()
    outage.reachable()
    outage.failed(ConnectionResetError(), where="leadership")
    outage.reachable()

    assert len(reports) == 2
    assert outage.count == 2
    assert not outage.down
    out = capsys.readouterr().out
    assert out.count("database_unavailable") == 2
    assert out.count("database_available") == 2
    assert "outage_seconds=30.5" in out


def test_reconnects_back_off_to_a_cap() -> None:
    assert [reconnect_delay(n) for n in range(7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert reconnect_delay(100) == 5.0
    assert reconnect_delay(0, time_scale=0.001) == 0.05  # never a busy loop
