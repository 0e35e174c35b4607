"""Logs (one event per line, JSON with LOG_FORMAT=json) and Sentry.

Library loggers (APScheduler, discord.py, aiohttp) go through the same renderer, so an
operator tailing the stream sees one format. Secrets are kept out by construction (the
settings hold them as ``SecretStr``) and, as a second line of defence, every rendered
event is scrubbed of the secret values registered at start-up and of sensitive keys.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

SENSITIVE_KEY = re.compile(r"token|secret|password|authorization|dsn|private_key", re.I)
REDACTED = "[redacted]"


class SecretScrubber:
    """A structlog processor that removes registered secret values from every field."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = [s for s in secrets if s and len(s) >= 4]

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
        for key, value in list(event.items()):
            if SENSITIVE_KEY.search(key) and value not in (None, "set", "unset"):
                event[key] = REDACTED
            elif isinstance(value, str):
                event[key] = self.scrub(value)
        return event

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


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


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)


def init_sentry(dsn: str | None, environment: str, secrets: Iterable[str] = ()) -> bool:
    """Start Sentry when a DSN is set. Logging integration is off: the engine reports
    failures itself, once per streak, rather than once per log line."""
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.logging import LoggingIntegration

    scrubber = SecretScrubber(secrets)

    def before_send(event: Any, _hint: Any) -> Any:
        for exc in (event.get("exception") or {}).get("values", []):
            if isinstance(exc.get("value"), str):
                exc["value"] = scrubber.scrub(exc["value"])
        return event

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        send_default_pii=False,
        before_send=before_send,
        integrations=[LoggingIntegration(level=None, event_level=None)],
        default_integrations=False,
    )
    return True
