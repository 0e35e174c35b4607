"""Which answers are the service rejecting groupsync's credentials (the whole service is
parked) and which are not: a table per service, pure."""

from __future__ import annotations

import discord
import pytest
from google.auth import exceptions as auth_exceptions

from core.clients import calendar_adapter, discord_adapter
from core.errors import CredentialsRejectedError, NeedsAttentionError, TransientError


class _Response:
    def __init__(self, status: int) -> None:
        self.status = status
        self.reason = "Unauthorized" if status == 401 else "Error"


def http(status: int, message: str) -> discord.HTTPException:
    return discord.HTTPException(_Response(status), {"message": message, "code": 0})  # type: ignore[arg-type]


@pytest.mark.parametrize(("error", "rejected"), [
    (http(401, "401: Unauthorized"), True),
    (http(403, "Missing Access"), False),  # one channel's permission, not the token
    (http(404, "Unknown Channel"), False),
])
def test_discord_rejects_the_token_only_with_a_401(
    error: discord.HTTPException, rejected: bool
) -> None:
    translated = discord_adapter.translate(error)

    assert isinstance(translated, NeedsAttentionError)
    assert isinstance(translated, CredentialsRejectedError) is rejected


def refresh(code: str, description: str, retryable: bool = False) -> auth_exceptions.RefreshError:
    return auth_exceptions.RefreshError(f"{code}: {description}",
                                        {"error": code, "error_description": description},
                                        retryable=retryable)


@pytest.mark.parametrize(("error", "kind"), [
    (refresh("invalid_grant", "Token has been expired or revoked."), "credentials_rejected"),
    (refresh("invalid_client", "The OAuth client was not found."), "credentials_rejected"),
    (refresh("unauthorized_client", "Client is unauthorized."), "credentials_rejected"),
    (refresh("invalid_scope", "Bad scope."), "needs_attention"),
    (refresh("internal_failure", "Try again.", retryable=True), "transient"),
])
def test_google_rejects_the_credentials_when_the_token_exchange_is_refused(
    error: auth_exceptions.RefreshError, kind: str
) -> None:
    translated = calendar_adapter.translate(error)

    assert translated is not None
    assert translated.kind == kind
    if kind == "credentials_rejected":
        assert isinstance(translated, CredentialsRejectedError)
        assert translated.variable == "GOOGLE_CREDENTIALS_FILE"
        assert translated.words == str(error.args[0])
    if kind == "transient":
        assert isinstance(translated, TransientError)
