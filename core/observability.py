"""Logs (one event per line, JSON with LOG_FORMAT=json) and Sentry.

Library loggers (APScheduler, discord.py, aiohttp) go through the same renderer, so an
operator tailing the stream sees one format. Secrets are kept out by construction (the
settings hold them as ``SecretStr``) and, as a second line of defence, every rendered
event is scrubbed of the secret values registered at start-up and of sensitive keys.

Sentry gets the same treatment and more, because by default it ships what the code
held, not what it logged: the local variables of every stack frame (discord.py's
``login(token)`` holds the bot token, google-auth's refresh the refresh token). So frame
locals are off, no request bodies or PII are sent, and ``before_send`` /
``before_breadcrumb`` scrub every string of the event (message, exception values, tags,
extra, contexts, breadcrumbs) of the registered secrets before it leaves the process.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import urllib.parse
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

SENSITIVE_KEY = re.compile(r"token|secret|password|authorization|dsn|private_key", re.I)
REDACTED = "[redacted]"


class SecretScrubber:
    """A structlog processor that removes registered secret values from every field."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted(set(_variants(secrets)), key=len, reverse=True)

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
        for key, value in list(event.items()):
            if SENSITIVE_KEY.search(key) and value not in (None, "set", "unset"):
                event[key] = REDACTED
            elif isinstance(value, str):
                event[key] = self.scrub(value)
        return event

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def scrub_tree(self, value: Any) -> Any:
        """Every string in nested dicts / lists scrubbed; values under sensitive keys
        dropped (a Sentry event, a breadcrumb)."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {
                key: REDACTED
                if isinstance(key, str) and SENSITIVE_KEY.search(key) and item is not None
                else self.scrub_tree(item)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.scrub_tree(item) for item in value]
        return value


def _variants(secrets: Iterable[str]) -> Iterable[str]:
    """Each secret as it may appear in text: itself, JSON-escaped, URL-quoted, and for a
    multi-line one (a PEM key) every long line, so a partial repr is caught too."""
    for secret in secrets:
        if not secret or len(secret) < 4:
            continue
        yield secret
        yield json.dumps(secret)[1:-1]
        yield urllib.parse.quote(secret, safe="")
        for line in secret.splitlines():
            if len(line.strip()) >= 16:
                yield line.strip()


def configure_logging(
    log_format: str = "console",
    level: str = "INFO",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    scrubber = SecretScrubber(secrets)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        scrubber,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Chatty libraries: their INFO lines repeat what our own events already say.
    for name in (
        "alembic",
        "apscheduler.executors",
        "apscheduler.scheduler",
        "discord.client",
        "discord.http",
    ):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # Libraries' DEBUG lines (aiosqlite logs every statement) would drown ours even at
    # LOG_LEVEL=DEBUG: they get INFO at most; our own loggers keep the level asked for.
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLevelName(level)))


QUIET_LIBRARIES = (
    # Not sqlalchemy: it sets its own logger to WARNING, and INFO there means echo-all-SQL.
    "aiosqlite", "asyncio", "asyncpg", "aiohttp", "discord", "googleapiclient",
    "google", "google_auth_httplib2", "httplib2", "urllib3", "httpx", "httpcore", "hpack",
    "uvicorn", "fastapi", "multipart", "python_multipart", "apscheduler", "tzlocal", "sentry_sdk",
)


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)


def init_sentry(dsn: str | None, environment: str, secrets: Iterable[str] = ()) -> bool:
    """Start Sentry when a DSN is set. Logging integration is off: the engine reports
    failures itself, once per streak, rather than once per log line. Nothing configured
    as a secret leaves the process (module docstring)."""
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.atexit import AtexitIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration

    scrubber = SecretScrubber([*secrets, dsn])

    def before_send(event: Any, _hint: Any) -> Any:
        return scrubbed_event(event, scrubber)

    def before_breadcrumb(crumb: Any, _hint: Any) -> Any:
        return scrubber.scrub_tree(crumb)

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        send_default_pii=False,
        include_local_variables=False,  # frames' locals held the bot token
        max_request_body_size="never",
        before_send=before_send,
        before_breadcrumb=before_breadcrumb,
        transport=quiet_transport(),
        integrations=[
            LoggingIntegration(level=None, event_level=None),
            # Queued events are sent at exit (quietly: stderr is the operator's log).
            AtexitIntegration(callback=lambda _pending, _timeout: None),
        ],
        default_integrations=False,
    )
    return True


def quiet_transport() -> Any:
    """Sentry's HTTP transport, with one warning per streak of failed sends.

    Stock, an unreachable Sentry costs every event three urllib3 retry warnings and an
    "Internal error in sentry_sdk" traceback; here a send is tried once, the first
    failure of a streak is one ``sentry_unreachable`` line, the rest are silent (the
    event is counted as lost, as before), and the first success after it says so once.
    Built on first use: importing sentry_sdk costs a CLI verb time it does not need.
    """
    from sentry_sdk.transport import HttpTransport

    class QuietTransport(HttpTransport):
        failing = 0  # sends failed in the current streak

        def _get_pool_options(self) -> Any:
            options = super()._get_pool_options()
            options["retries"] = 0  # the retries' warnings were two of the three lines
            return options

        def _send_request(self, *args: Any, **kwargs: Any) -> None:
            try:
                super()._send_request(*args, **kwargs)
            except Exception as exc:
                if not self.failing:
                    get_logger("groupsync.sentry").warning(
                        "sentry_unreachable", error=f"{type(exc).__name__}: {exc}",
                        note="events are dropped until it answers; logged once per streak")
                self.failing += 1
                return
            if self.failing:
                get_logger("groupsync.sentry").info("sentry_reachable_again",
                                                    events_lost=self.failing)
                self.failing = 0

    return QuietTransport


def scrubbed_event(event: dict[str, Any], scrubber: SecretScrubber) -> dict[str, Any]:
    """An event with no frame locals, no request data, and every string scrubbed."""
    event.pop("request", None)
    for exception in (event.get("exception") or {}).get("values") or []:
        for frame in (exception.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
    for thread in (event.get("threads") or {}).get("values") or []:
        for frame in (thread.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
    scrubbed: dict[str, Any] = scrubber.scrub_tree(event)
    return scrubbed
