"""The credential watch: one streak per service across processes, parked sync types, a
probe that decides, and the row every process reads (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from core.clients.probes import Probe, Verdict
from core.clients.status import ClientBoard
from core.db.models import ServiceState, SyncType
from core.db.session import SessionFactory
from core.engine.running.credentials import CredentialWatch
from core.engine.running.state import SyncKey
from core.errors import CredentialsRejectedError
from tests.waiting import wait_for

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
KEY = SyncKey(SyncType.DISCORD, 1)


def revoked() -> CredentialsRejectedError:
    return CredentialsRejectedError("401: Unauthorized", service="discord",
                                    variable="DISCORD_BOT_TOKEN", status=401)


def board_answering(*verdicts: Verdict) -> tuple[ClientBoard, list[Verdict]]:
    asked: list[Verdict] = []
    answers = list(verdicts)

    async def probe() -> Probe:
        verdict = answers.pop(0)
        asked.append(verdict)
        return Probe("discord", "DISCORD_BOT_TOKEN", verdict,
                     "401: Unauthorized" if verdict is Verdict.REJECTED else "")

    board = ClientBoard()
    board.publish([], probes={"discord": probe})
    return board, asked


async def test_one_streak_across_processes_parks_the_services_types(
    session_factory: SessionFactory,
) -> None:
    active, other = CredentialWatch(session_factory, 60), CredentialWatch(session_factory, 60)

    began = [await active.rejected(revoked(), KEY, NOW),
             await active.rejected(revoked(), SyncKey(SyncType.DISCORD, 2), NOW),
             await other.rejected(revoked(), SyncKey(SyncType.DISCORD, 3), NOW)]

    assert began == [True, False, False]  # one log line, one Sentry event
    assert await other.parked_types() == {SyncType.DISCORD}
    parked = await other.parked(SyncType.DISCORD)
    assert parked is not None
    assert parked.words == "401: Unauthorized"
    assert parked.next_probe_at == NOW + timedelta(seconds=60)
    assert await other.parked(SyncType.CALENDAR) is None


async def test_a_standby_that_takes_over_keeps_the_keys_parked_until_its_probe_works(
    session_factory: SessionFactory,
) -> None:
    # Given a rejection the active daemon found, its next probe already due
    await CredentialWatch(session_factory, 0.0).rejected(revoked(), KEY, NOW)
    taken_over = CredentialWatch(session_factory, 0.0)  # a standby that took over
    board, asked = board_answering(Verdict.REJECTED, Verdict.OK)
    woken = asyncio.Event()

    # When the new leader's sweep probes: first still rejected, then accepted
    assert await taken_over.parked(SyncType.DISCORD) is not None
    await taken_over.tick(board, NOW, woken.set)
    await wait_for(lambda: asked == [Verdict.REJECTED], message="the first probe")
    await wait_for(lambda: taken_over._probing["discord"].done(), message="its end")
    taken_over.forget()
    assert await taken_over.parked(SyncType.DISCORD) is not None
    await taken_over.tick(board, datetime.now(UTC), woken.set)
    await asyncio.wait_for(woken.wait(), 10)

    # Then the row says healthy for every process, and nothing is parked
    async with session_factory() as session:
        row = await session.get(ServiceState, "discord")
    assert row is not None
    assert (row.health, row.health_reason, row.next_probe_at) == ("healthy", None, None)
    assert await CredentialWatch(session_factory).parked_types() == set()


async def test_a_probe_not_yet_due_is_not_made(session_factory: SessionFactory) -> None:
    watch = CredentialWatch(session_factory, 60.0)
    await watch.rejected(revoked(), KEY, NOW)
    board, asked = board_answering(Verdict.OK)

    await watch.tick(board, NOW + timedelta(seconds=59), lambda: None)
    await asyncio.sleep(0.05)

    assert asked == []


async def test_a_restarted_daemon_asks_at_once_instead_of_waiting_out_the_stored_probe(
    session_factory: SessionFactory,
) -> None:
    # Given a rejection an earlier daemon stored, its next probe a minute away
    await CredentialWatch(session_factory, 60.0).rejected(revoked(), KEY, NOW)
    restarted = CredentialWatch(session_factory, 60.0)
    board, asked = board_answering(Verdict.OK, Verdict.OK)
    woken = asyncio.Event()

    # When the restarted daemon's first sweep looks, with the token fixed meanwhile
    await restarted.tick(board, NOW, woken.set)
    await asyncio.wait_for(woken.wait(), 10)

    # Then it asked once, at once, and the service runs again
    assert asked == [Verdict.OK]
    assert await restarted.parked_types() == set()
