"""Fixtures for the dashboard's browser tests: a real Chromium, screenshots kept.

Without Chromium the tests are skipped locally with the reason, and fail under CI=true
(CI installs it: .ci/run → scripts/install-chromium.sh). The sandbox is shared by the
session (faults cleared after each test); each test gets its own database and daemon.
Each test leaves at least one screenshot in artifacts/browser/ (its final state), which
CI keeps.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.browser.chromium import Browser, missing
from tests.browser.system import Services, System, running_system, started_services

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "browser"


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """The sandbox, a migrated database template and service-account credentials."""
    with started_services(tmp_path_factory.mktemp("dashboard-services")) as started:
        yield started


@pytest.fixture
def start_system(services: Services, tmp_path: Path) -> Iterator[Callable[..., System]]:
    """``start_system(**env)``: a daemon with these extra settings, stopped after the test."""
    with ExitStack() as stack:
        yield lambda **env: stack.enter_context(running_system(services, tmp_path, **env))


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """artifacts/browser/, emptied once per run so it holds this run's screenshots only.

    Under pytest-xdist the controller empties it before any worker starts
    (tests/conftest.py), so one worker never deletes another's screenshots."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def new_browser(
    request: pytest.FixtureRequest, artifacts: Path
) -> Iterator[Callable[[str], Browser]]:
    absent = missing()
    if absent:
        reason = f"browser tests need Debian's chromium and chromium-driver: missing {absent}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " (CI installs them with scripts/install-chromium.sh)")
        pytest.skip(reason + "; run scripts/install-chromium.sh as root")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    browsers: list[Browser] = []

    def start(base_url: str = "") -> Browser:
        browser = Browser(artifacts, name, base_url)
        browsers.append(browser)
        return browser

    yield start
    for browser in browsers:
        try:
            browser.screenshot("final")
        finally:
            browser.close()
