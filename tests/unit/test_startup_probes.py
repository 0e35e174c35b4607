"""The start-up decisions as tables: what a credentials file lacks, what a service's answer
to the one probe call means, and the one line a refusal prints. No network, no disk."""

from __future__ import annotations

from typing import Any

import pytest
from google.auth import exceptions as auth_exceptions

from core.clients.google_credentials import info_problem
from core.clients.probes import Probe, Verdict, discord_verdict, google_verdict, refusal

COMPLETE_SA = {"type": "service_account", "client_email": "a@b.iam", "private_key": "k",
               "token_uri": "http://t/token"}
COMPLETE_USER = {"type": "authorized_user", "client_id": "c", "client_secret": "s",
                 "refresh_token": "r"}


@pytest.mark.parametrize(("info", "says"), [
    (COMPLETE_SA, None),
    (COMPLETE_USER, None),
    ([1, 2], "is not a JSON object"),
    ({}, 'has no "type"'),
    ({"type": "external_account"}, "has no \"type\" groupsync knows"),
    ({"type": "service_account"}, "without client_email, private_key, token_uri"),
    ({**COMPLETE_SA, "private_key": "  "}, "without private_key"),
    ({**COMPLETE_USER, "refresh_token": None}, "without refresh_token"),
])
def test_what_a_credentials_file_lacks(info: Any, says: str | None) -> None:
    problem = info_problem(info)
    if says is None:
        assert problem is None
    else:
        assert problem is not None
        assert says in problem


@pytest.mark.parametrize(("status", "body", "verdict", "words"), [
    (200, '{"id": "1"}', Verdict.OK, ""),
    (401, '{"message": "401: Unauthorized", "code": 0}', Verdict.REJECTED, "401: Unauthorized"),
    (403, '{"message": "Missing Access", "code": 50001}', Verdict.REJECTED,
     "Missing Access (code 50001)"),
    (429, '{"message": "You are being rate limited.", "retry_after": 1}',
     Verdict.UNREACHABLE, "You are being rate limited."),
    (502, "<html>Bad Gateway</html>", Verdict.UNREACHABLE, "HTTP 502"),
])
def test_discord_answers(status: int, body: str, verdict: Verdict, words: str) -> None:
    probe = discord_verdict(status, body)
    assert (probe.verdict, probe.words, probe.variable) == (verdict, words, "DISCORD_BOT_TOKEN")


@pytest.mark.parametrize(("error", "verdict"), [
    (None, Verdict.OK),
    (auth_exceptions.RefreshError("invalid_grant: Token has been expired or revoked.",
                                  {"error": "invalid_grant"}), Verdict.REJECTED),
    (auth_exceptions.RefreshError("server_error", {}, retryable=True), Verdict.UNREACHABLE),
    (auth_exceptions.TransportError("Connection refused"), Verdict.UNREACHABLE),
])
def test_google_answers(error: Exception | None, verdict: Verdict) -> None:
    probe = google_verdict(error)
    assert (probe.verdict, probe.variable) == (verdict, "GOOGLE_CREDENTIALS_FILE")


def test_the_refusal_names_each_rejected_variable_with_the_services_words() -> None:
    probes = [
        Probe("discord", "DISCORD_BOT_TOKEN", Verdict.REJECTED, "401: Unauthorized"),
        Probe("calendar", "GOOGLE_CREDENTIALS_FILE", Verdict.UNREACHABLE, "timeout"),
    ]
    refused = refusal(probes)
    assert refused is not None
    variable, problem = refused
    assert variable == "DISCORD_BOT_TOKEN"
    assert problem.startswith("Discord rejected it: 401: Unauthorized")
    assert "timeout" not in problem


def test_unreachable_services_alone_do_not_refuse() -> None:
    assert refusal([Probe("discord", "DISCORD_BOT_TOKEN", Verdict.UNREACHABLE, "x")]) is None
