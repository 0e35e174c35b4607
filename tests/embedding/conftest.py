"""Fixtures of the embedding tests: the engine tests' steerable fake syncers, and the
process-wide scheduler handle restored after every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.notifications import scheduler as scheduler_module
from tests.engine.conftest import Fakes, fakes  # noqa: F401  (fixture re-export)


@pytest.fixture(autouse=True)
def _process_handles_restored() -> Iterator[None]:
    yield
    assert scheduler_module.current_runtime() is None, "a test left a runtime installed"
    scheduler_module._scheduler = None


__all__ = ["Fakes"]
