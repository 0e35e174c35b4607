"""Google credentials from GOOGLE_CREDENTIALS_FILE: a service account acting for a
Workspace user, or an authorized user's OAuth refresh token.

A service account may only put attendees on an event through domain-wide delegation
(Calendar v3 discovery document, ``Event.attendees``): without it Google answers 403
``forbiddenForServiceAccounts`` to every write that invites someone. ``with_subject``
is that delegation, so a service-account file needs GOOGLE_IMPERSONATE_SUBJECT.
Accounts without Workspace use an authorized-user file (``"type": "authorized_user"``,
with ``client_id``, ``client_secret`` and ``refresh_token``) instead.

Messages name the file and the setting, never the file's content.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from core.errors import ConfigError, NeedsAttentionError

SCOPES = ["https://www.googleapis.com/auth/calendar"]
SERVICE_ACCOUNT = "service_account"
AUTHORIZED_USER = "authorized_user"
SUBJECT_SETTING = "GOOGLE_IMPERSONATE_SUBJECT"
FILE_SETTING = "GOOGLE_CREDENTIALS_FILE"


def credentials_type(path: Path) -> str | None:
    """The file's ``type`` field, or None when the file cannot be read as JSON."""
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    kind = info.get("type") if isinstance(info, dict) else None
    return kind if isinstance(kind, str) else None


SECRET_FIELDS = ("private_key", "private_key_id", "client_secret", "refresh_token")


def file_secrets(path: Path | None) -> list[str]:
    """The secret values inside the credentials file (private key, refresh token, client
    secret), for the log and Sentry scrubbers; [] when there is no readable file."""
    if path is None:
        return []
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(info, dict):
        return []
    return [str(info[k]) for k in SECRET_FIELDS if isinstance(info.get(k), str) and info[k]]


# What google-auth needs to build each kind of credentials (and to find the token
# endpoint); a file lacking one fails at the first sync, so the daemon refuses it at start.
REQUIRED_FIELDS = {
    SERVICE_ACCOUNT: ("type", "client_email", "private_key", "token_uri"),
    AUTHORIZED_USER: ("type", "client_id", "client_secret", "refresh_token"),
}


def info_problem(info: object) -> str | None:
    """What is wrong with a parsed credentials file, or None (pure: no disk, no network)."""
    if not isinstance(info, dict):
        return "is not a JSON object"
    kind = info.get("type")
    if kind not in REQUIRED_FIELDS:  # the file's values are never echoed, not even this one
        return (f'has no "type" groupsync knows; expected "{SERVICE_ACCOUNT}" (a '
                f'service-account key) or "{AUTHORIZED_USER}" (an OAuth refresh token)')
    missing = [name for name in REQUIRED_FIELDS[kind]
               if not isinstance(info.get(name), str) or not info[name].strip()]
    if missing:
        return f"is a{_KINDS[kind]} file without {', '.join(missing)}"
    return None


_KINDS = {SERVICE_ACCOUNT: " service-account key", AUTHORIZED_USER: "n authorized-user"}


def require_credentials_file(path: Path, subject: str | None = None) -> Any:
    """The credentials of GOOGLE_CREDENTIALS_FILE, or ``ConfigError`` naming the setting,
    the file and what is wrong with it: missing, unreadable, not JSON, incomplete, or a key
    google-auth cannot read. Reads the disk only; no token is fetched."""
    def refuse(problem: str) -> ConfigError:
        return ConfigError(FILE_SETTING, f"{path} {problem}")

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise refuse("does not exist") from None
    except IsADirectoryError:
        raise refuse("is a directory, not a credentials file") from None
    except OSError as exc:
        raise refuse(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    except UnicodeDecodeError:
        raise refuse("is not a JSON credentials file (not text)") from None
    try:
        info = json.loads(text)
    except ValueError as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise refuse(f"is not JSON{where}") from None
    problem = info_problem(info)
    if problem is not None:
        raise refuse(problem)
    try:
        return load_google_credentials(path, subject)
    except NeedsAttentionError:  # the fields are there, google-auth still refuses them
        raise refuse("is not a key google-auth can read (is private_key a PEM key?)") from None


def require_delegation(path: Path, subject: str | None) -> None:
    """A service-account file without GOOGLE_IMPERSONATE_SUBJECT cannot invite anyone:
    refuse to start (``ConfigError``, one line) rather than fail every calendar sync."""
    if subject is None and credentials_type(path) == SERVICE_ACCOUNT:
        raise ConfigError(
            SUBJECT_SETTING,
            f"not set, but {FILE_SETTING} is a service account, and Google refuses "
            "(403 forbiddenForServiceAccounts) to let a service account invite attendees "
            "without domain-wide delegation; set it to the Workspace user the service "
            "account acts for, or use an authorized-user OAuth file",
        )


def load_google_credentials(path: Path, subject: str | None = None) -> Any:
    """Credentials for the Calendar client; an unreadable or malformed file is
    ``NeedsAttentionError`` naming the file and the setting."""
    try:
        info = json.loads(path.read_text())
        if not isinstance(info, dict):
            raise ValueError("not a JSON object")
        kind = info.get("type")
        if kind == AUTHORIZED_USER:
            if subject is not None:
                raise ConfigError(
                    SUBJECT_SETTING, f"only applies to a service-account {FILE_SETTING}; "
                    f"{path} is an authorized-user file: unset it")
            return _authorized_user(info)
        return _service_account(info, subject)
    except (OSError, ValueError, KeyError) as exc:
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise NeedsAttentionError(
            f"{FILE_SETTING} {path} is not a readable service-account key or authorized-user "
            f"file ({problem})",
            service="calendar",
        ) from None


def _service_account(info: dict[str, Any], subject: str | None) -> Any:
    creds = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
    return creds.with_subject(subject) if subject else creds


def _authorized_user(info: dict[str, Any]) -> Any:
    creds = user_credentials.Credentials.from_authorized_user_info(info, scopes=SCOPES)
    # from_authorized_user_info always uses Google's token endpoint; a file that names
    # its own (as the sandbox's do) is honoured.
    token_uri = info.get("token_uri")
    return creds.with_token_uri(token_uri) if isinstance(token_uri, str) else creds


def credentials_reloader(path: Path, subject: str | None = None) -> Callable[[], Any | None]:
    """For the Calendar client's probe of a rejection: new credentials once the file's
    content changed since the last read, else None (unchanged, unreadable or incomplete:
    the old credentials stay and the probe says what Google thinks of them)."""
    seen = _digest(path)

    def reload() -> Any | None:
        nonlocal seen
        digest = _digest(path)
        if digest is None or digest == seen:
            return None
        try:
            credentials = require_credentials_file(path, subject)
        except ConfigError:
            return None
        seen = digest
        return credentials

    return reload


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
