"""The needs-attention set and the operators' trail (issue 23), against a real daemon
(fake syncers) over loopback, and the CLI verbs on the database: search by error text,
user, channel and group name; an acknowledgement with a note that every caller sees and
the engine's next success clears; who paused, why and since when; the audit rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from core.admin.errors import Conflict, NotFound
from core.cli import build_parser
from core.config import Settings, load_settings
from core.db.models import AdminAction, Group, Membership, SyncState
from core.db.session import SessionFactory
from tests.admin.conftest import AdminDaemon
from tests.admin.helpers import failing_keys, key_row
from tests.engine.conftest import Fakes
from tests.factories import make_user
from tests.waiting import wait_for

Capture = pytest.CaptureFixture[str]
CHANNEL_ERROR = "Discord 404 (10003): Unknown Channel 5551234 (groups.discord_text_channel_id)"


async def three_failing(sessions: SessionFactory) -> tuple[int, int, int]:
    """a: a deleted channel; b: a group called "Evening Cohort"; c: a member 777000111."""
    a, b, c = await failing_keys(sessions, 3)
    async with sessions() as session, session.begin():
        await session.execute(update(SyncState).where(SyncState.group_id == a)
                              .values(last_error=CHANNEL_ERROR))
        await session.execute(update(Group).where(Group.id == b).values(name="Evening Cohort"))
        user = await make_user(session, discord=False)
        user.discord_user_id = "777000111"
        session.add(Membership(user_id=user.id, group_id=c, joined_at=datetime.now(UTC)))
    return a, b, c


def keys_of(answer: Any) -> list[int]:
    assert answer.status_code == 200, answer.text
    return sorted(item["group_id"] for item in answer.json()["items"])


async def test_the_set_is_searched_by_error_text_user_channel_group_name_and_id(
    daemon: AdminDaemon, admin_sessions: SessionFactory
) -> None:
    a, b, c = await three_failing(admin_sessions)
    async with daemon.client() as api:
        found = {q: keys_of(await api.get("/api/attention", params={"q": q})) for q in (
            "unknown CHANNEL", "5551234", "777000111", "evening", "discord",
            "Missing Access", "nothing like it", "100%_",
        )}
        everything = (await api.get("/api/attention")).json()
        by_id = keys_of(await api.get("/api/attention", params={"q": str(b)}))
    assert found == {
        "unknown CHANNEL": [a], "5551234": [a], "777000111": [c], "evening": [b],
        "discord": [a, b, c], "Missing Access": [b, c],
        "nothing like it": [], "100%_": [],  # LIKE's wildcards are literal characters
    }
    assert b in by_id  # a number is the group id (and a part of other ids)
    assert everything["counts"] == {"total": 3, "acknowledged": 0, "new_since": None}
    item = next(i for i in everything["items"] if i["group_id"] == b)
    assert (item["group_name"], item["acknowledged"], item["status"]) == (
        "Evening Cohort", None, "needs_attention")


async def test_an_acknowledgement_is_seen_by_every_caller_and_the_next_success_clears_it(
    daemon: AdminDaemon, admin_sessions: SessionFactory, fakes: Fakes
) -> None:
    (old,) = await failing_keys(admin_sessions, 1)  # in the set for five minutes
    (group,) = await failing_keys(admin_sessions, 1, "calendar")
    fakes.set(f"calendar:{group}", "needs_attention")
    before = datetime.now(UTC)
    async with daemon.client() as api:
        assert (await api.post(f"/api/keys/calendar/{group}/retry")).status_code == 202

        async def failed_again() -> bool:  # the engine's own needs-attention record
            row = await key_row(admin_sessions, "calendar", group)
            return row.attention_since is not None and row.status == "needs_attention"

        await wait_for(failed_again, timeout=20, message="the key failing again")
        fresh = (await api.get("/api/attention", params={"since": before.isoformat()})).json()
        acked = await api.post(f"/api/attention/calendar/{group}/ack",
                               json={"note": "calendar re-shared, ticket OPS-12", "by": "ann"})
        async with daemon.client() as second_operator:
            seen = (await second_operator.get("/api/attention",
                                              params={"q": "OPS-12"})).json()["items"]
        fakes.set(f"calendar:{group}", "ok")  # its next (scaled) retry succeeds

        async def succeeded() -> bool:
            return (await key_row(admin_sessions, "calendar", group)).status == "ok"

        await wait_for(succeeded, timeout=20, message="the key succeeding")
        after = (await api.get("/api/attention")).json()
        again = await api.post(f"/api/attention/calendar/{group}/ack", json={"note": "x"})
        audit = (await api.get("/api/audit")).json()["items"]
    assert fresh["counts"]["new_since"] == 1
    assert {i["group_id"]: i["new"] for i in fresh["items"]} == {group: True, old: False}
    assert acked.status_code == 200, acked.text
    assert [(i["group_id"], i["acknowledged"]["note"], i["acknowledged"]["by"])
            for i in seen] == [(group, "calendar re-shared, ticket OPS-12",
                                "api:ann (127.0.0.1)")]
    assert [i["group_id"] for i in after["items"]] == [old]
    row = await key_row(admin_sessions, "calendar", group)
    assert (row.ack_by, row.ack_at, row.ack_note, row.attention_since) == (None,) * 4
    assert again.status_code == 409
    assert "not in the needs-attention set" in again.json()["detail"]
    assert [(a["action"], a["outcome"], a["who"]) for a in audit] == [
        ("acknowledge", "refused", "api:127.0.0.1"),
        ("acknowledge", "accepted", "api:ann (127.0.0.1)"),
        ("retry", "accepted", "api:127.0.0.1"),
    ]
    assert audit[1]["detail"] == "note=calendar re-shared, ticket OPS-12"


async def test_acknowledging_refuses_an_unknown_group_a_missing_key_and_an_empty_note(
    daemon: AdminDaemon, admin_sessions: SessionFactory
) -> None:
    (group,) = await failing_keys(admin_sessions, 1)
    async with daemon.client() as api:
        unknown = await api.post("/api/attention/discord/999/ack", json={"note": "n"})
        no_key = await api.post(f"/api/attention/rsvps/{group}/ack", json={"note": "n"})
        empty = await api.post(f"/api/attention/discord/{group}/ack", json={"note": "  "})
        nul = await api.get("/api/attention", params={"q": "a\x00b"})
    assert unknown.status_code == 404
    assert "unknown group 999" in unknown.json()["detail"]
    assert no_key.status_code == 404
    assert (empty.status_code, nul.status_code) == (422, 422)
    assert unknown.headers["content-type"] == "application/problem+json"


async def test_the_paused_service_names_who_why_and_since_when_and_the_audit_lists_it(
    daemon: AdminDaemon, admin_sessions: SessionFactory
) -> None:
    async with admin_sessions() as session, session.begin():  # past the 90 days kept
        session.add(AdminAction(at=datetime.now(UTC) - timedelta(days=91), action="pause",
                                via="cli", who="cli:old", scope={}, outcome="accepted"))
    async with daemon.client() as api:
        paused = await api.post("/api/services/discord/pause",
                                json={"reason": "Discord incident 42"})
        view = (await api.get("/api/overview")).json()
        await api.post("/api/services/discord/resume")
        resumed = (await api.get("/api/overview")).json()
        audit = (await api.get("/api/audit")).json()["items"]
    assert paused.status_code == 200
    discord = next(s for s in view["services"] if s["name"] == "discord")
    assert (discord["paused_by"], discord["paused_reason"]) == (
        "api:127.0.0.1", "Discord incident 42")
    since = datetime.fromisoformat(discord["paused_at"])
    assert timedelta(0) <= datetime.now(UTC) - since < timedelta(minutes=1)
    again = next(s for s in resumed["services"] if s["name"] == "discord")
    assert (again["paused_by"], again["paused_at"]) == (None, None)
    assert [(a["action"], a["scope"], a["who"]) for a in audit] == [
        ("resume", {"service": "discord"}, "api:127.0.0.1"),
        ("pause", {"service": "discord"}, "api:127.0.0.1"),
    ]
    assert "reason=Discord incident 42" in (audit[1]["detail"] or "")


# ---- the CLI verbs, on the database ----------------------------------------------------------
async def cli(settings: Settings, capsys: Capture, *argv: str) -> tuple[int, str]:
    args = build_parser().parse_args(list(argv))
    code = await asyncio.to_thread(args.handler, args, settings)
    return code, capsys.readouterr().out


async def test_attention_and_ack_verbs(
    database_url: str, session_factory: SessionFactory, capsys: Capture
) -> None:
    local = load_settings(database_url=database_url, enabled_services="")
    a, b, c = await three_failing(session_factory)
    code, listed = await cli(local, capsys, "attention", "--search", "unknown channel")
    assert code == 0
    assert f"discord:{a} " in listed
    assert f"discord:{b} " not in listed
    assert CHANNEL_ERROR in listed
    code, out = await cli(local, capsys, "ack", "discord", str(c), "--note", "asked the user")
    assert code == 0
    assert f"acknowledged discord:{c} as cli:" in out
    code, listed = await cli(local, capsys, "attention", "--search", "777000111")
    assert "acknowledged by cli:" in listed
    assert ": asked the user" in listed
    code, status = await cli(local, capsys, "status")
    assert "acknowledged by cli:" in status
    with pytest.raises(NotFound, match="unknown group 999"):
        await cli(local, capsys, "ack", "discord", "999", "--note", "n")
    async with session_factory() as session, session.begin():  # a's key succeeded
        await session.execute(update(SyncState).where(SyncState.group_id == a)
                              .values(status="ok", completed_generation=1, attempt=0))
    with pytest.raises(Conflict, match="not in the needs-attention set"):
        await cli(local, capsys, "ack", "discord", str(a), "--note", "n")
