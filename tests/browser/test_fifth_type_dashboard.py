"""The dashboard lists a registered fifth sync type's keys like the built-in ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from selenium.webdriver.support.select import Select

from tests.admin.helpers import failing_keys
from tests.browser.chromium import Browser
from tests.browser.system import System
from tests.browser.test_dashboard import signed_in

pytestmark = pytest.mark.slow


def test_the_failing_list_shows_and_filters_a_fifth_sync_type(
    new_browser: Callable[[str], Browser], start_system: Callable[..., System], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    # The daemon registers "ledger" from SYNC_TYPE_MODULES; no core module names it.
    system = start_system(SYNC_TYPE_MODULES="tests.fifth_type",
                          GROUPSYNC_LEDGER_DIR=str(ledger))
    [ledger_group] = system.loop.run(failing_keys(system.sessions, 1, "ledger"))
    [discord_group] = system.loop.run(failing_keys(system.sessions, 1, "discord"))
    browser = signed_in(new_browser, system)

    row = f"#key-ledger-{ledger_group}"
    browser.wait_text(row, "needs attention")
    browser.wait_text(f"#key-discord-{discord_group}", "needs attention")
    Select(browser.find("#filter-service")).select_by_visible_text("The Ledger")
    browser.wait(lambda: not browser.all(f"#key-discord-{discord_group}"),
                 what="the discord key filtered out")
    assert browser.all(row)
    browser.screenshot("fifth-type")
