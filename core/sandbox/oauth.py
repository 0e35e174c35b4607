"""Google OAuth for the fake: access tokens, the service-account token endpoint, key files.

The token endpoint accepts a service-account JWT assertion
(``urn:ietf:params:oauth:grant-type:jwt-bearer``) and returns a bearer token.
It reads the claims but does not verify the signature.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.sandbox.rsa_key import generate_private_key_pem

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_PROJECT = "sandbox-project"
SERVICE_ACCOUNT_EMAIL = f"groupsync@{DEFAULT_PROJECT}.iam.gserviceaccount.com"


@dataclass(frozen=True)
class Principal:
    """Who a token belongs to: the quota user and the quota project."""

    user: str
    project: str


class OAuthError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class TokenRegistry:
    def __init__(self) -> None:
        self._tokens: dict[str, Principal] = {}
        self._key_pem: str | None = None
        self.static_token = self.issue(SERVICE_ACCOUNT_EMAIL, DEFAULT_PROJECT)

    def issue(self, user: str, project: str = DEFAULT_PROJECT) -> str:
        token = "ya29.sandbox-" + secrets.token_urlsafe(24)
        self._tokens[token] = Principal(user, project)
        return token

    def lookup(self, authorization: str | None) -> Principal | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        return self._tokens.get(authorization.removeprefix("Bearer ").strip())

    def grant(self, form: dict[str, str]) -> dict[str, Any]:
        """Answer a token request, or raise ``OAuthError``."""
        if form.get("grant_type") != JWT_GRANT:
            raise OAuthError("unsupported_grant_type", "Invalid grant_type.")
        claims = _jwt_claims(form.get("assertion", ""))
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise OAuthError("invalid_grant", "Invalid JWT: missing iss.")
        user = claims.get("sub") or issuer
        token = self.issue(str(user), _project_of(issuer))
        return {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def write_service_account_file(self, path: str | Path, token_uri: str) -> Path:
        """A service-account JSON google-auth accepts; its key is generated once per sandbox."""
        if self._key_pem is None:
            self._key_pem = generate_private_key_pem()
        info = {
            "type": "service_account", "project_id": DEFAULT_PROJECT,
            "private_key_id": secrets.token_hex(20), "private_key": self._key_pem,
            "client_email": SERVICE_ACCOUNT_EMAIL, "client_id": str(secrets.randbits(64)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        }
        target = Path(path)
        target.write_text(json.dumps(info, indent=2))
        return target


def _jwt_claims(assertion: str) -> dict[str, Any]:
    parts = assertion.split(".")
    if len(parts) != 3:
        raise OAuthError("invalid_grant", "Invalid JWT.")
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except ValueError:
        raise OAuthError("invalid_grant", "Invalid JWT payload.") from None
    if not isinstance(claims, dict):
        raise OAuthError("invalid_grant", "Invalid JWT payload.")
    return claims


def _project_of(email: str) -> str:
    domain = email.partition("@")[2]
    return domain.split(".iam.gserviceaccount.com")[0] if ".iam." in domain else DEFAULT_PROJECT
