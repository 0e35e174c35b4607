"""Debian's Chromium driven by Selenium through Debian's chromedriver.

Both come from the OS packages (``scripts/install-chromium.sh``); Selenium Manager is
never asked to download a browser or a driver. Every browser gets a fresh profile, so
cookies and sessionStorage never leak from one test to the next.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from tests.waiting import wait_until

CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--disable-extensions", "--window-size=1280,1000",
)

T = TypeVar("T")


def missing() -> list[str]:
    return [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).is_file()]


class Browser:
    """A headless Chromium with the few helpers the dashboard tests use."""

    def __init__(self, artifacts: Path, test_name: str, base_url: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.artifacts = artifacts
        self.test_name = test_name
        self._profile = tempfile.mkdtemp(prefix="gs-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self._profile}")
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self._shots = 0

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        found = self.all(css)
        return found[0].text if found else ""

    def wait(self, condition: Callable[[], T | None], timeout: float = 30, what: str = "") -> T:
        """Poll ``condition`` until it returns something truthy; fail with a screenshot. A
        stale element means the page re-rendered under us: look again."""
        name = what or "condition"
        return wait_until(
            condition, timeout, 0.1, name,
            ignoring=(StaleElementReferenceException, WebDriverException),
            evidence=lambda: f"; see {self.screenshot(f'timeout-{name}')}",
        )

    def wait_text(self, css: str, contains: str, timeout: float = 30) -> str:
        def present() -> str | None:
            text = self.text(css)
            return text if contains in text else None

        return self.wait(present, timeout, f"{css} to contain {contains!r}")

    def wait_gone(self, css: str, timeout: float = 30) -> None:
        self.wait(lambda: not self.all(css), timeout, f"{css} to go away")

    def click(self, css: str) -> None:
        """Click the first match once it is enabled (again if the page re-rendered it)."""

        def clicked() -> bool:
            found = self.all(css)
            if not found or not found[0].is_enabled():
                return False
            found[0].click()  # a stale element raises, and wait() looks again
            return True

        self.wait(clicked, what=f"{css} to be clickable")

    def fetch(self, method: str, path: str, headers: dict[str, str] | None = None) -> int:
        """A request from inside the page (its cookies, its origin); returns the status."""
        status: int = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[1], {method: arguments[0], headers: arguments[2],"
            " credentials: 'same-origin'}).then(r => done(r.status), () => done(0));",
            method, path, headers or {},
        )
        return status

    def screenshot(self, label: str = "") -> Path:
        self._shots += 1
        name = f"{self.test_name}-{self._shots:02d}{'-' + label if label else ''}.png"
        path = self.artifacts / name.replace("/", "_")
        self.driver.save_screenshot(str(path))
        return path

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)
