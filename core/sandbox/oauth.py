"""Google OAuth for the fake: access tokens, the token endpoint, credential files.

The token endpoint accepts a service-account JWT assertion
(``urn:ietf:params:oauth:grant-type:jwt-bearer``) and an authorized user's refresh token
(``refresh_token``), and returns a bearer token. As Google does, it checks the
assertion's RS256 signature against the key named by its ``kid`` (a key some sandbox of
this process wrote into a service-account file): a file whose key was never issued, or a
tampered assertion, answers 400 ``invalid_grant: Invalid JWT Signature.``. An assertion
with ``sub`` is domain-wide delegation: the token acts for that Workspace user. Without
``sub`` the token is the service account itself, which Google does not let invite
attendees (403 forbiddenForServiceAccounts).
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.sandbox.rsa_key import generate_key, verify_rs256

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REFRESH_GRANT = "refresh_token"
DEFAULT_PROJECT = "sandbox-project"
SERVICE_ACCOUNT_EMAIL = f"groupsync@{DEFAULT_PROJECT}.iam.gserviceaccount.com"
# The Workspace user the sandbox's service account acts for (GOOGLE_IMPERSONATE_SUBJECT),
# and the consumer account of its authorized-user files.
DEFAULT_SUBJECT = "organizer@sandbox.example.org"


# private_key_id -> public modulus of every key a sandbox of this process put in a
# service-account file: "Google" knows the keys it issued (a test may write one file and
# use it with several sandboxes).
_ISSUED_KEYS: dict[str, int] = {}


@dataclass(frozen=True)
class Principal:
    """Who a token belongs to: the quota user and the quota project. ``may_invite`` is
    False for a service account acting as itself (no domain-wide delegation)."""

    user: str
    project: str
    may_invite: bool = True


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
        self._key: tuple[str, int] | None = None  # (PEM, modulus), one per sandbox
        # refresh token -> (client id, client secret, user)
        self._refresh: dict[str, tuple[str, str, str]] = {}
        self._from_refresh: set[str] = set()  # access tokens a refresh grant issued
        self.static_token = self.issue(DEFAULT_SUBJECT, DEFAULT_PROJECT)

    def issue(self, user: str, project: str = DEFAULT_PROJECT, may_invite: bool = True) -> str:
        token = "ya29.sandbox-" + secrets.token_urlsafe(24)
        self._tokens[token] = Principal(user, project, may_invite)
        return token

    def revoke_refresh_tokens(self) -> None:
        """Every refresh token now answers invalid_grant (the user revoked the grant), and,
        as at Google, the access tokens issued from them stop working at once (401)."""
        self._refresh.clear()
        for token in self._from_refresh:
            self._tokens.pop(token, None)
        self._from_refresh.clear()

    def lookup(self, authorization: str | None) -> Principal | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        return self._tokens.get(authorization.removeprefix("Bearer ").strip())

    def grant(self, form: dict[str, str]) -> dict[str, Any]:
        """Answer a token request, or raise ``OAuthError``."""
        grant_type = form.get("grant_type")
        if grant_type == REFRESH_GRANT:
            return self._refresh_grant(form)
        if grant_type != JWT_GRANT:
            raise OAuthError("unsupported_grant_type", "Invalid grant_type.")
        assertion = form.get("assertion", "")
        claims = _jwt_claims(assertion)
        _require_signature(assertion)
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise OAuthError("invalid_grant", "Invalid JWT: missing iss.")
        subject = claims.get("sub")
        if subject is not None and (not isinstance(subject, str) or "@" not in subject):
            raise OAuthError("invalid_grant", "Invalid email or User ID")
        if subject:  # domain-wide delegation: the token acts for the Workspace user
            token = self.issue(subject, _project_of(issuer), may_invite=True)
        else:
            token = self.issue(issuer, _project_of(issuer), may_invite=False)
        return {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def _refresh_grant(self, form: dict[str, str]) -> dict[str, Any]:
        known = self._refresh.get(form.get("refresh_token", ""))
        if known is None:
            raise OAuthError("invalid_grant", "Token has been expired or revoked.")
        client_id, client_secret, user = known
        if form.get("client_id") != client_id or form.get("client_secret") != client_secret:
            raise OAuthError("invalid_client", "The OAuth client was not found.")
        token = self.issue(user, DEFAULT_PROJECT, may_invite=True)
        self._from_refresh.add(token)
        return {"access_token": token, "expires_in": 3599, "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/calendar"}

    def write_authorized_user_file(self, path: str | Path, token_uri: str,
                                   user: str = DEFAULT_SUBJECT) -> Path:
        """An authorized-user OAuth file (what ``gcloud auth application-default login`` or
        an installed-app flow writes) whose refresh token this sandbox accepts."""
        refresh_token = "1//sandbox-" + secrets.token_urlsafe(32)
        client_id = f"{secrets.randbits(40)}-sandbox.apps.googleusercontent.com"
        client_secret = "GOCSPX-" + secrets.token_urlsafe(21)
        self._refresh[refresh_token] = (client_id, client_secret, user)
        info = {"type": "authorized_user", "client_id": client_id,
                "client_secret": client_secret, "refresh_token": refresh_token,
                "token_uri": token_uri, "account": user, "universe_domain": "googleapis.com"}
        target = Path(path)
        target.write_text(json.dumps(info, indent=2))
        return target

    def write_service_account_file(self, path: str | Path, token_uri: str) -> Path:
        """A service-account JSON google-auth accepts; its key is generated once per sandbox."""
        if self._key is None:
            self._key = generate_key()
        key_id = secrets.token_hex(20)
        _ISSUED_KEYS[key_id] = self._key[1]
        info = {
            "type": "service_account", "project_id": DEFAULT_PROJECT,
            "private_key_id": key_id, "private_key": self._key[0],
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


def _require_signature(assertion: str) -> None:
    header_part, payload_part, signature_part = assertion.split(".")
    try:
        header = json.loads(_b64decode(header_part))
        signature = _b64decode(signature_part)
    except ValueError:
        raise OAuthError("invalid_grant", "Invalid JWT.") from None
    modulus = _ISSUED_KEYS.get(header.get("kid", "")) if isinstance(header, dict) else None
    signed = f"{header_part}.{payload_part}".encode()
    if (modulus is None or header.get("alg") != "RS256"
            or not verify_rs256(signed, signature, modulus)):
        raise OAuthError("invalid_grant", "Invalid JWT Signature.")


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _project_of(email: str) -> str:
    domain = email.partition("@")[2]
    return domain.split(".iam.gserviceaccount.com")[0] if ".iam." in domain else DEFAULT_PROJECT
