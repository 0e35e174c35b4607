"""Polling for an outcome with a deadline: tests wait for conditions, never for fixed times.

``wait_for`` in async tests (the condition may be a coroutine function), ``wait_until``
in sync code (the browser tests, which drive a daemon from a plain thread). Both return
the condition's first truthy value.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import pytest

T = TypeVar("T")


async def wait_for(
    condition: Callable[[], Awaitable[Any]] | Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.02,
    message: str = "condition",
    *,
    evidence: Callable[[], str] | None = None,
) -> Any:
    """Poll until ``condition`` holds; fail with ``message`` after ``timeout`` seconds,
    adding what ``evidence`` returns (a daemon's log tail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            _timed_out(timeout, message, evidence() if evidence else "")
        await asyncio.sleep(interval)


def wait_until(
    condition: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.1,
    message: str = "condition",
    *,
    ignoring: tuple[type[Exception], ...] = (),
    evidence: Callable[[], str] | None = None,
) -> T:
    """``wait_for`` for sync code. An exception in ``ignoring`` counts as "not yet" (a
    page re-rendered under the condition); ``evidence`` names what to look at on a
    timeout (a screenshot)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except ignoring:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            _timed_out(timeout, message, evidence() if evidence else "")
        time.sleep(interval)


def _timed_out(timeout: float, message: str, evidence: str = "") -> NoReturn:
    pytest.fail(f"timed out after {timeout}s waiting for {message}{evidence}")
