"""The fake token endpoint checks a service account's JWT signature as Google does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.oauth2 import service_account

from core.sandbox.oauth import JWT_GRANT, OAuthError, TokenRegistry


def assertion_for(info: dict[str, str]) -> str:
    creds = service_account.Credentials.from_service_account_info(info)
    assertion = creds._make_authorization_grant_assertion()
    return assertion.decode() if isinstance(assertion, bytes) else str(assertion)


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> tuple[TokenRegistry, dict[str, str]]:
    registry = TokenRegistry()
    path = registry.write_service_account_file(
        tmp_path_factory.mktemp("sa") / "sa.json", "http://127.0.0.1:1/token")
    info: dict[str, str] = json.loads(Path(path).read_text())
    return registry, info


def test_an_assertion_signed_with_an_issued_key_gets_a_token(
    issued: tuple[TokenRegistry, dict[str, str]]
) -> None:
    registry, info = issued
    answer = registry.grant({"grant_type": JWT_GRANT, "assertion": assertion_for(info)})
    assert answer["access_token"].startswith("ya29.")


@pytest.mark.parametrize("change", ["payload", "kid"])
def test_a_tampered_or_unknown_assertion_is_an_invalid_signature(
    issued: tuple[TokenRegistry, dict[str, str]], change: str
) -> None:
    registry, info = issued
    if change == "kid":
        assertion = assertion_for({**info, "private_key_id": "never-issued"})
    else:
        head, _payload, signature = assertion_for(info).split(".")
        other = assertion_for({**info, "client_email": "x@y.iam.gserviceaccount.com"})
        assertion = f"{head}.{other.split('.')[1]}.{signature}"
    with pytest.raises(OAuthError) as refused:
        registry.grant({"grant_type": JWT_GRANT, "assertion": assertion})
    assert str(refused.value) == "invalid_grant: Invalid JWT Signature."
