"""The CLI run in-process (``core.cli.main``) with the environment it would read."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import structlog

from core.cli import main


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


Cli = Callable[..., Result]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    for name in ("DATABASE_URL", "SYNCER_FACTORY", "DISCORD_BOT_TOKEN",
                 "GOOGLE_CREDENTIALS_FILE", "SENTRY_DSN", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ENABLED_SERVICES", "")
    monkeypatch.setenv("LOG_FORMAT", "json")

    def run(*argv: str, **env: str) -> Result:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    yield run
    root.handlers[:] = handlers  # main() pointed logging at capsys's stream; put it back
    root.setLevel(level)
    structlog.reset_defaults()  # main() configured structlog for the whole process


def one_line(err: str) -> str:
    """The error line; everything else on stderr must be JSON log lines."""
    lines = [line for line in err.splitlines() if not line.startswith("{")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]
