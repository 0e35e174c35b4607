"""Signing in to a standby daemon: its page reads, says it stands by and who leads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.browser.chromium import Browser
from tests.browser.system import ADMIN_TOKEN, _admin_url
from tests.engine.daemon_process import Daemon
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


# A standby needs PostgreSQL: SQLite refuses a second daemon.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_sign_in_to_a_standby_shows_its_read_only_view(
    new_browser: Callable[[str], Browser], database_url: str, tmp_path: Path
) -> None:
    shared_postgres = database_url
    env = {"ADMIN_TOKEN": ADMIN_TOKEN, "LOG_FORMAT": "json"}
    (tmp_path / "fake").mkdir()
    active = Daemon(shared_postgres, tmp_path / "fake", tmp_path / "active.log", **env)
    standby: Daemon | None = None
    try:
        wait_until(lambda: active.events("leadership_acquired"), 60,
                   message="the first daemon leads")
        standby = Daemon(shared_postgres, tmp_path / "fake", tmp_path / "standby.log", **env)
        browser = new_browser("")
        browser.base_url = _admin_url(standby)
        browser.open("/login")
        browser.find("#token").send_keys(ADMIN_TOKEN)
        browser.find("#login-button").click()
        banner = browser.wait_text("#banner-standby", "stands by", timeout=60)
        assert f"pid {active.pid}" in banner  # and it names the daemon that leads
        browser.wait_text("#daemon-line", "1 standby", timeout=60)
        assert not standby.events("leadership_acquired")
        browser.screenshot("standby")
    finally:
        for daemon in (standby, active):
            if daemon is not None:
                daemon.terminate()
                daemon.close()
