"""Google lets a service account invite attendees only through domain-wide delegation
(GOOGLE_IMPERSONATE_SUBJECT); an authorized-user OAuth file is the alternative."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from core.clients.calendar_adapter import CalendarAdapter
from core.clients.google_credentials import credentials_reloader, load_google_credentials
from core.clients.limits import ClientLimits
from core.clients.probes import Verdict
from core.errors import (
    ConfigError,
    CredentialsRejectedError,
    NeedsAttentionError,
    RateLimitedError,
)
from core.lanes import Lane
from core.sandbox import Sandbox
from tests.clients.conftest import CALENDAR, SCALE

ROOT = Path(__file__).resolve().parents[2]
INVITE = {
    "id": "gsdeleg00001", "summary": "Week 1",
    "start": {"dateTime": "2026-06-01T17:00:00+00:00"},
    "end": {"dateTime": "2026-06-01T18:00:00+00:00"},
    "attendees": [{"email": "ann@example.org", "responseStatus": "needsAction"}],
}


async def _insert(sandbox: Sandbox, credentials: Any) -> dict[str, Any]:
    options = ClientLimits().calendar(sandbox.calendar_endpoint, SCALE)
    adapter = CalendarAdapter(credentials, options, time.monotonic)
    await adapter.start()
    try:
        return await adapter.insert_event(CALENDAR, INVITE, "all", Lane.INTERACTIVE)
    finally:
        await adapter.close()


async def test_a_service_account_without_a_subject_cannot_invite(
    sandbox: Sandbox, key_file: Path
) -> None:
    with pytest.raises(NeedsAttentionError) as caught:
        await _insert(sandbox, load_google_credentials(key_file))

    assert (caught.value.status, caught.value.code) == (403, "forbiddenForServiceAccounts")
    assert "Domain-Wide Delegation" in str(caught.value)
    assert sandbox.calendar.events(CALENDAR) == []


async def test_with_a_subject_the_invitation_succeeds_as_that_user(
    sandbox: Sandbox, key_file: Path
) -> None:
    subject = "teacher@school.example.org"

    event = await _insert(sandbox, load_google_credentials(key_file, subject))

    assert [a["email"] for a in event["attendees"]] == ["ann@example.org"]
    assert sandbox.calendar.user_units(subject) == 1  # the token acts for the subject


async def test_an_authorized_user_file_works(sandbox: Sandbox, tmp_path: Path) -> None:
    path = sandbox.write_authorized_user_file(tmp_path / "user.json", "me@gmail.example")

    event = await _insert(sandbox, load_google_credentials(path))

    assert event["attendees"][0]["email"] == "ann@example.org"
    assert sandbox.calendar.counts()[("POST /token", 200)] == 1
    assert sandbox.calendar.user_units("me@gmail.example") == 1


async def test_a_revoked_refresh_token_needs_attention(sandbox: Sandbox, tmp_path: Path) -> None:
    path = sandbox.write_authorized_user_file(tmp_path / "user.json")
    sandbox.calendar.revoke_refresh_tokens()

    with pytest.raises(NeedsAttentionError) as caught:
        await _insert(sandbox, load_google_credentials(path))

    assert "GOOGLE_CREDENTIALS_FILE" in str(caught.value)
    assert json.loads(path.read_text())["refresh_token"] not in str(caught.value)


def test_a_subject_with_an_authorized_user_file_is_a_config_error(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    path = sandbox.write_authorized_user_file(tmp_path / "user.json")
    with pytest.raises(ConfigError) as caught:
        load_google_credentials(path, "someone@example.org")
    assert caught.value.variable == "GOOGLE_IMPERSONATE_SUBJECT"


@pytest.mark.slow
def test_run_refuses_a_service_account_without_a_subject(key_file: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "GOOGLE_"))}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'gs.db'}", ENABLED_SERVICES="calendar",
               GOOGLE_CREDENTIALS_FILE=str(key_file))

    done = subprocess.run([sys.executable, "main.py", "run"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "GOOGLE_IMPERSONATE_SUBJECT" in lines[0]
    assert "forbiddenForServiceAccounts" in lines[0]
    assert done.stdout == ""


async def test_a_grant_revoked_while_running_is_rejected_with_googles_words_until_a_probe_works(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # Given a client working on an authorized user's refresh token
    path = sandbox.write_authorized_user_file(tmp_path / "user.json")
    options = ClientLimits().calendar(sandbox.calendar_endpoint, SCALE)
    adapter = CalendarAdapter(load_google_credentials(path), options, time.monotonic)
    await adapter.start()
    try:
        await adapter.insert_event(CALENDAR, INVITE, "all", Lane.INTERACTIVE)
        # When the user revokes the grant (its access token stops working too, as at Google)
        sandbox.calendar.revoke_refresh_tokens()
        with pytest.raises(CredentialsRejectedError) as caught:
            await adapter.get_event(CALENDAR, INVITE["id"], Lane.INTERACTIVE)
        sent = len(sandbox.calendar.request_log)
        with pytest.raises(CredentialsRejectedError):
            await adapter.get_event(CALENDAR, INVITE["id"], Lane.INTERACTIVE)
        probe = await adapter.probe()
    finally:
        await adapter.close()

    # Then Google's own words and the variable to fix; no call until a probe works
    assert caught.value.words == "invalid_grant: Token has been expired or revoked."
    assert caught.value.variable == "GOOGLE_CREDENTIALS_FILE"
    assert json.loads(path.read_text())["refresh_token"] not in str(caught.value)
    assert len(sandbox.calendar.request_log) == sent + 1  # the probe's one token exchange
    assert probe.verdict is Verdict.REJECTED


async def test_a_refused_token_exchange_clears_once_the_probe_works(
    calendar_client: CalendarAdapter, sandbox: Sandbox
) -> None:
    fault = sandbox.calendar.inject("revoked_token")
    with pytest.raises(CredentialsRejectedError) as caught:
        await calendar_client.insert_event(CALENDAR, INVITE, "all", Lane.INTERACTIVE)
    fault.clear()

    assert (await calendar_client.probe()).verdict is Verdict.OK
    event = await calendar_client.insert_event(CALENDAR, INVITE, "all", Lane.INTERACTIVE)

    assert caught.value.code == "invalid_grant"
    assert event["id"] == INVITE["id"]


async def test_a_429_storm_is_never_a_rejection(
    calendar_client: CalendarAdapter, sandbox: Sandbox
) -> None:
    sandbox.calendar.inject("429", retry_after=500.0)

    for _ in range(3):
        with pytest.raises(RateLimitedError):
            await calendar_client.insert_event(CALENDAR, INVITE, "all", Lane.INTERACTIVE)

    assert calendar_client.credentials_rejected is None


async def test_a_fixed_credentials_file_is_picked_up_by_the_probe_without_a_restart(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # Given a client whose grant was revoked: Google rejects it, and so does a probe
    path = sandbox.write_authorized_user_file(tmp_path / "user.json")
    options = ClientLimits().calendar(sandbox.calendar_endpoint, SCALE)
    adapter = CalendarAdapter(load_google_credentials(path), options, time.monotonic,
                              reload=credentials_reloader(path))
    await adapter.start()
    try:
        await adapter.insert_event(CALENDAR, INVITE, "all", Lane.INTERACTIVE)
        sandbox.calendar.revoke_refresh_tokens()
        with pytest.raises(CredentialsRejectedError):
            await adapter.get_event(CALENDAR, INVITE["id"], Lane.INTERACTIVE)
        still = await adapter.probe()  # the file is unchanged: the same refusal
        # When the operator writes a new authorized-user file in its place
        sandbox.write_authorized_user_file(path)
        fixed = await adapter.probe()
        event = await adapter.get_event(CALENDAR, INVITE["id"], Lane.INTERACTIVE)
    finally:
        await adapter.close()

    # Then the next probe reads it, Google accepts it, and calls go out again
    assert still.verdict is Verdict.REJECTED
    assert fixed.verdict is Verdict.OK
    assert event is not None
    assert event["id"] == INVITE["id"]
