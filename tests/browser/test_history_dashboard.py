"""History kept in SQL on the dashboard (issue 23), in a real Chromium against a real
daemon and the sandbox: after scaled minutes of syncs the charts show non-empty series
whose totals are the database's attempt rows, and a reload shows them again."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from core.db.models import SyncAttempt
from tests.browser.chromium import Browser
from tests.browser.system import System, add_member_groups
from tests.browser.test_dashboard import signed_in
from tests.browser.test_trail_dashboard import shown
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def discord_ok_in_db(system: System) -> int:
    async def count() -> int:
        async with system.sessions() as session:
            return int(await session.scalar(select(func.count()).where(
                SyncAttempt.sync_type == "discord", SyncAttempt.outcome == "ok")) or 0)

    return system.run(count())


def total_in(text: str, label: str) -> int | None:
    found = re.search(rf"{re.escape(label)} (\d+)", text)
    return int(found.group(1)) if found else None


def test_the_charts_show_the_runs_the_database_holds_and_a_reload_keeps_them(
    new_browser: Callable[[str], Browser], start_system: Callable[..., System]
) -> None:
    # A minute is 0.6 s: the page's charts cover "an hour" of 36 s.
    system = start_system(TIME_SCALE="0.01")
    add_member_groups(system, 3, blocked=1)
    wait_until(lambda: discord_ok_in_db(system) >= 2, timeout=60, interval=0.3,
               message="two groups' Discord syncs applied")
    browser = signed_in(new_browser, system)

    def charted() -> str | None:
        browser.click("#range-1h")  # a fresh read (the page reads charts every few polls)
        alt = browser.find("#chart-runs").get_attribute("alt") or ""
        ok = total_in(alt, "discord:ok")
        return alt if ok is not None and ok == discord_ok_in_db(system) else None

    alt = browser.wait(charted, timeout=60, what="the runs chart at the database's count")
    assert "Sync runs" in alt
    assert re.search(r"discord:\w+ \d+", alt.replace("discord:ok", ""))  # the 403s too
    # (the page re-renders a chart when a poll reads it again: look it up afresh)
    browser.wait(lambda: browser.find("#chart-runs").is_displayed(), what="the runs chart shown")
    browser.driver.execute_script(
        "document.querySelectorAll('#charts details').forEach((d) => { d.open = true; })")
    assert browser.all("#chart-runs-table tbody tr th")  # the points with data, as text
    browser.wait(lambda: "keys" in (browser.find("#chart-owed").get_attribute("alt") or ""),
                 what="the owed-keys chart")
    shown(browser, "#charts-section", "history-1h")

    browser.driver.refresh()
    browser.wait_text("#daemon-line", "Active daemon")
    browser.wait(lambda: total_in(browser.find("#chart-runs").get_attribute("alt") or "",
                                  "discord:ok"), what="the chart after a reload")
    browser.click("#range-24h")
    browser.wait(lambda: browser.find("#range-24h").get_attribute("aria-pressed") == "true"
                 and "over 24h" in (browser.find("#chart-runs").get_attribute("alt") or ""),
                 what="the 24 h chart")

    # Runs are rolled up once a scaled minute, so a run that lands after the database is
    # counted shows on a later read: read again until the day's chart holds the count.
    def day_charted() -> str | None:
        browser.click("#range-24h")
        alt = browser.find("#chart-runs").get_attribute("alt") or ""
        ok = total_in(alt, "discord:ok")
        return alt if "over 24h" in alt and ok == discord_ok_in_db(system) else None

    browser.wait(day_charted, timeout=60, what="the 24 h chart at the database's count")
    shown(browser, "#charts-section", "history-24h")
