"""Fixtures for the dashboard's browser tests: a real Chromium, screenshots kept.

Without Chromium the tests are skipped locally with the reason, and fail under CI=true
(CI installs it: .ci/run → scripts/install-chromium.sh). Each test leaves at least one
screenshot in artifacts/browser/ (its final state), which CI keeps.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.browser.chromium import Browser, missing

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "browser"


@pytest.fixture
def new_browser(request: pytest.FixtureRequest) -> Iterator[Callable[[str], Browser]]:
    absent = missing()
    if absent:
        reason = f"browser tests need Debian's chromium and chromium-driver: missing {absent}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " (CI installs them with scripts/install-chromium.sh)")
        pytest.skip(reason + "; run scripts/install-chromium.sh as root")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    browsers: list[Browser] = []

    def start(base_url: str) -> Browser:
        browser = Browser(base_url, ARTIFACTS, name)
        browsers.append(browser)
        return browser

    yield start
    for browser in browsers:
        try:
            browser.screenshot("final")
        finally:
            browser.close()
