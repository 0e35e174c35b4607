"""Third-party DEBUG chatter stays out of the log; our own DEBUG lines do not."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import structlog

from core.observability import configure_logging, get_logger


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()  # main() configured structlog for the whole process


@pytest.mark.usefixtures("restored_logging")
@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_library_debug_lines_are_dropped_at_every_level(level: str) -> None:
    stream = io.StringIO()
    configure_logging("json", level, stream=stream)

    logging.getLogger("aiosqlite").debug("executing <function connect>")
    logging.getLogger("sqlalchemy.engine.Engine").info("SELECT 1")  # echo stays off
    logging.getLogger("aiosqlite").warning("a library warning still shows")
    get_logger("groupsync.test").debug("our_debug_event")

    text = stream.getvalue()
    assert "executing" not in text
    assert "SELECT 1" not in text
    assert "a library warning still shows" in text
    assert ("our_debug_event" in text) == (level == "DEBUG")
