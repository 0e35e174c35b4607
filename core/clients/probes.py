"""One cheap call per enabled service at start-up: do its credentials work?

``groupsync run`` asks before anything starts (no admin port, no lock, no heartbeat):

- Discord: ``GET /users/@me`` with the bot token, against DISCORD_API_BASE_URL (what
  discord.py's login sends first);
- Google: one token exchange against the credentials' own ``token_uri`` (google-auth's
  ``refresh``, as the Calendar client does before its first call).

Each answer is one of three verdicts. *Rejected* (Discord 401/403, Google's
``invalid_grant`` and the like) will not get better by waiting: the daemon refuses to
start with the service's own words and the variable to fix (exit 2). *Unreachable*
(connection refused, a timeout, a 5xx, a 429) is a network blip at boot: the daemon
starts anyway and its syncs retry until the service answers. *Ok* says nothing.

The verdicts (``discord_verdict``, ``google_verdict``, ``refusal``) are pure; the two
``probe_*`` coroutines make the calls.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiohttp

from core.config import Service, Settings
from core.errors import ConfigError
from core.observability import get_logger

log = get_logger("groupsync.probes")

DISCORD_SETTING = "DISCORD_BOT_TOKEN"
GOOGLE_SETTING = "GOOGLE_CREDENTIALS_FILE"
PROBE_TIMEOUT_SECONDS = 10.0  # not scaled: a real network's answer time
MAX_WORDS = 300  # a service's own message, cut to one readable line


class Verdict(StrEnum):
    OK = "ok"
    REJECTED = "rejected"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Probe:
    service: str
    variable: str  # the setting an operator fixes when the service rejects it
    verdict: Verdict
    words: str = ""  # the service's own message (or the transport error)


# ---- decisions (pure) ---------------------------------------------------------------------
def discord_verdict(status: int, body: str) -> Probe:
    """Discord's answer to ``GET /users/@me``: 401 {"message": "401: Unauthorized"} for a
    wrong or revoked token, 403 for a token that may not do this."""
    if 200 <= status < 300:
        return Probe(Service.DISCORD, DISCORD_SETTING, Verdict.OK)
    words = _discord_words(status, body)
    verdict = Verdict.REJECTED if status in (401, 403) else Verdict.UNREACHABLE
    return Probe(Service.DISCORD, DISCORD_SETTING, verdict, words)


def google_verdict(error: Exception | None) -> Probe:
    """The outcome of a token exchange: google-auth's ``RefreshError`` that is not
    ``retryable`` is Google saying no (``invalid_grant: Token has been expired or
    revoked.``); a retryable one, or a transport error, is Google not answering."""
    if error is None:
        return Probe(Service.CALENDAR, GOOGLE_SETTING, Verdict.OK)
    from google.auth import exceptions as auth_exceptions

    refused = isinstance(error, auth_exceptions.RefreshError) and not getattr(
        error, "retryable", False)
    words = _one_line(str(error) or type(error).__name__)
    if isinstance(error, auth_exceptions.RefreshError) and error.args:
        words = _one_line(str(error.args[0]))  # args[1] is the raw response body
    return Probe(Service.CALENDAR, GOOGLE_SETTING,
                 Verdict.REJECTED if refused else Verdict.UNREACHABLE, words)


def unreachable(service: str, variable: str, error: BaseException) -> Probe:
    words = _one_line(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)
    return Probe(service, variable, Verdict.UNREACHABLE, words)


def refusal(probes: list[Probe]) -> tuple[str, str] | None:
    """(variable, problem) for the one line the daemon refuses with, or None to start."""
    rejected = [p for p in probes if p.verdict is Verdict.REJECTED]
    if not rejected:
        return None
    variable = " and ".join(p.variable for p in rejected)
    problem = "; ".join(f"{_NAMES[p.service]} rejected it: {p.words}" for p in rejected)
    return variable, f"{problem} (fix the credentials, or remove the service from " \
        "ENABLED_SERVICES)"


_NAMES: dict[str, str] = {Service.DISCORD: "Discord", Service.CALENDAR: "Google"}


def _discord_words(status: int, body: str) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        code = parsed.get("code")
        return _one_line(f"{parsed['message']}" + (f" (code {code})" if code else ""))
    return f"HTTP {status}"


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_WORDS else line[: MAX_WORDS - 3] + "..."


# ---- the calls ----------------------------------------------------------------------------
async def probe_discord(settings: Settings, timeout: float = PROBE_TIMEOUT_SECONDS) -> Probe:
    assert settings.discord_bot_token is not None
    return await probe_discord_token(settings.discord_api_base_url,
                                     settings.discord_bot_token.get_secret_value(), timeout)


async def probe_discord_token(
    base_url: str, token: str, timeout: float = PROBE_TIMEOUT_SECONDS
) -> Probe:
    """``GET /users/@me`` with ``token``: one request (the start-up check, and the running
    daemon's probe of a rejected token, core/engine/running/credentials.py)."""
    url = base_url.rstrip("/") + "/users/@me"
    headers = {"Authorization": f"Bot {token}",
               "User-Agent": "DiscordBot (https://github.com/groupsync, 1) groupsync-probe"}
    try:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout)) as session, session.get(
                url, headers=headers) as response:
            return discord_verdict(response.status, await response.text())
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return unreachable(Service.DISCORD, DISCORD_SETTING, exc)


async def probe_google(
    settings: Settings, credentials: Any, timeout: float = PROBE_TIMEOUT_SECONDS
) -> Probe:
    """One token exchange in a worker thread (google-auth is synchronous), through the
    same httplib2 transport the Calendar client uses."""
    del settings
    return await probe_google_credentials(credentials, timeout)


async def probe_google_credentials(
    credentials: Any, timeout: float = PROBE_TIMEOUT_SECONDS, lock: Any = None
) -> Probe:
    """One token exchange of ``credentials`` (a fresh token lands in them when it works).
    ``lock``: a ``threading.Lock`` the owner refreshes the same credentials under."""
    def exchange() -> None:
        import google_auth_httplib2
        import httplib2

        http = httplib2.Http(timeout=timeout)
        try:
            if lock is None:
                credentials.refresh(google_auth_httplib2.Request(http))
            else:
                with lock:
                    credentials.refresh(google_auth_httplib2.Request(http))
        finally:
            http.close()

    try:
        await asyncio.wait_for(asyncio.to_thread(exchange), timeout=timeout * 2)
    except Exception as exc:
        return google_verdict(exc)
    return google_verdict(None)


async def probe_services(settings: Settings, google_credentials: Any | None) -> list[Probe]:
    """Both enabled services at once (a dead network costs one timeout, not two)."""
    calls = []
    if settings.service_enabled(Service.DISCORD) and settings.discord_bot_token is not None:
        calls.append(probe_discord(settings))
    if settings.service_enabled(Service.CALENDAR) and google_credentials is not None:
        calls.append(probe_google(settings, google_credentials))
    return list(await asyncio.gather(*calls))


async def verify_credentials(settings: Settings) -> list[Probe]:
    """Ask each enabled service once. A rejection raises ``ConfigError`` (one line: the
    service's words and the variable to fix); an unreachable service is one warning and
    the daemon starts (its syncs retry until the service answers)."""
    credentials = None
    if settings.service_enabled(Service.CALENDAR) and settings.google_credentials_file:
        from core.clients.google_credentials import require_credentials_file

        credentials = require_credentials_file(
            settings.google_credentials_file, settings.google_impersonate_subject)
    probes = await probe_services(settings, credentials)
    refused = refusal(probes)
    if refused is not None:
        raise ConfigError(*refused)
    for probe in probes:
        if probe.verdict is Verdict.UNREACHABLE:
            log.warning("service_unreachable_at_start", service=probe.service,
                        error=probe.words, effect="starting anyway; its syncs retry "
                        "until it answers")
    return probes
