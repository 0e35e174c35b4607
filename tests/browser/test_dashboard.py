"""The dashboard in a real Chromium against a real daemon (``python main.py run``) and
the sandbox: what an operator sees and does, and how the page copes with its own API
refusing it (429, 503)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.browser.chromium import Browser
from tests.browser.system import (
    ADMIN_TOKEN,
    System,
    add_member_groups,
    block_channel,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

StartSystem = Callable[..., System]


def signed_in(new_browser: Callable[[str], Browser], system: System) -> Browser:
    browser = new_browser("")  # Chromium starts while the daemon does
    browser.base_url = system.admin_url
    browser.open("/login")
    browser.find("#token").send_keys(ADMIN_TOKEN)
    browser.find("#login-button").click()
    browser.wait_text("#daemon-line", "Active daemon")
    return browser


def seconds_in(text: str) -> int:
    found = re.search(r"in (\d+) s", text)
    assert found, f"no countdown in {text!r}"
    return int(found.group(1))


def paused_at_least(browser: Browser, seconds: int) -> Callable[[], int | None]:
    """A condition: the "updates paused" banner shows at least ``seconds`` to go."""

    def check() -> int | None:
        text = browser.text("#banner-reads-paused")
        left = seconds_in(text) if "resuming in" in text else 0
        return left if left >= seconds else None

    return check


def next_attempt_far(
    system: System, sync_type: str, group_id: int, seconds: float
) -> datetime | None:
    """The key's next attempt time once it is at least ``seconds`` away, else None."""
    at = system.key(sync_type, group_id)["next_attempt_at"]
    due = datetime.fromisoformat(at) if at else None
    return due if due and due - datetime.now(UTC) >= timedelta(seconds=seconds) else None


def admin_actions(system: System, action: str) -> list[dict[str, Any]]:
    return [e for e in system.daemon.events("admin_action") if e.get("action") == action]


def test_sign_in_failing_table_history_retry_one_and_sign_out(
    new_browser: Callable[[str], Browser], start_system: StartSystem
) -> None:
    # Unscaled backoff (1, 2, 4, 8 … s), so the operator's retry can be told apart from
    # the engine's own next attempt.
    system = start_system(TIME_SCALE="1")
    blocked, healthy = add_member_groups(system, 2, blocked=1)
    browser = new_browser("")
    browser.base_url = system.admin_url
    browser.open("/")
    browser.wait(lambda: browser.driver.current_url.endswith("/login"), what="the sign-in page")
    browser.find("#token").send_keys(ADMIN_TOKEN)
    browser.find("#login-button").click()
    browser.wait_text("#daemon-line", "Active daemon")
    cookie = browser.driver.get_cookie("groupsync_session")
    assert cookie is not None
    assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
    assert ADMIN_TOKEN not in browser.driver.page_source + browser.driver.current_url
    # The active daemon's Discord gateway, whose cache the syncs read
    browser.wait_text("#gateway-state", "Discord gateway: connected since")
    assert "syncs read channels from it" in browser.text("#gateway-state")

    row = f"#key-discord-{blocked.id}"
    browser.wait_text(row, "needs attention")
    assert "Missing Access" in browser.text(f"{row} .error-text")  # Discord's own words
    assert not browser.all(f"#key-discord-{healthy.id}")
    browser.screenshot("failing")

    browser.click(row)
    browser.wait_text("#history-body", "Missing Access")
    browser.screenshot("history")
    browser.click("#history-close")

    scheduled = wait_until(lambda: next_attempt_far(system, "discord", blocked.id, 6.0),
                           timeout=60, interval=0.3, message="the engine's next attempt 6 s away")
    system.call(block_channel, system.sandbox, blocked, blocked=False)
    browser.click(f"#retry-discord-{blocked.id}")
    browser.wait_text("#toasts", "queued")
    browser.wait_gone(row)
    key = system.key("discord", blocked.id)
    assert key["status"] == "ok"
    assert datetime.fromisoformat(key["history"][0]["at"]) < scheduled  # ran on request
    assert [e["via"] for e in admin_actions(system, "retry")] == ["dashboard"]

    browser.click("#logout-button")
    browser.wait(lambda: browser.driver.current_url.endswith("/login"), what="signed out")
    assert browser.fetch("GET", "/api/overview") == 401  # the old session is gone
    browser.open("/")
    browser.wait(lambda: browser.driver.current_url.endswith("/login"), what="still out")
    assert ADMIN_TOKEN not in system.daemon.output()


def test_bulk_retry_states_its_cost_shows_progress_and_cancels_the_rest(
    new_browser: Callable[[str], Browser], start_system: StartSystem
) -> None:
    # Unscaled backoff keeps the failing keys waiting (not due) while the job runs; the
    # bulk worker runs one key at a time.
    system = start_system(TIME_SCALE="1", SYNC_CONCURRENCY="2")
    add_member_groups(system, 8, blocked=8)
    browser = signed_in(new_browser, system)
    browser.wait(lambda: len(browser.all("#failing-body .key-row")) == 8, what="8 failing rows")
    # Each Discord call now takes about a second: the job is slow enough to cancel.
    system.call(system.sandbox.discord.inject, "latency", latency=10.0)

    browser.click("#bulk-retry-button")
    text = browser.wait_text("#confirm-text", "failing syncs")
    stated = re.search(r"retries (\d+) failing syncs in (\d+) groups, about (\d+) calls", text)
    assert stated, text
    keys, groups, calls = map(int, stated.groups())
    assert 3 <= keys <= 8
    assert groups == keys  # one Discord key per group
    assert calls >= keys
    browser.screenshot("confirm")
    browser.click("#confirm-yes")

    browser.wait(lambda: browser.find("#bulk-bar").get_attribute("value") not in ("0", None),
                 timeout=60, what="progress")
    browser.screenshot("progress")
    browser.click("#bulk-cancel-button")
    browser.wait_text("#bulk-text", "Cancelled")

    job = system.api("GET", "/api/bulk-jobs").json()["items"][0]
    assert job["state"] == "cancelled"
    assert 1 <= job["total"] <= keys  # keys that started running meanwhile are left out
    assert job["done"] + job["failed"] >= 1
    assert job["cancelled"] >= 1
    assert [e["via"] for e in admin_actions(system, "bulk_cancel")] == ["dashboard"]


def test_rate_limit_banner_counts_down_during_a_429_storm_and_goes_away_then_a_breaker_reset(
    new_browser: Callable[[str], Browser], start_system: StartSystem
) -> None:
    system = start_system(BREAKER_RESET_SECONDS="400")  # an open circuit waits 40 s (real)
    browser = signed_in(new_browser, system)
    # Discord answers 429 with a 12 s (real) Retry-After to every call for a while.
    system.call(system.sandbox.discord.inject, "429", retry_after=120.0, count=50)
    add_member_groups(system, 1)

    banner = "[id^='banner-ratelimit-discord']"
    first = seconds_in(browser.wait_text(banner, "calls resume in", timeout=60))
    browser.screenshot("rate-limited")
    browser.wait(lambda: seconds_in(browser.text(banner) or "in 0 s") < first,
                 what="the countdown to go down")
    system.call(system.sandbox.discord.clear_faults)
    browser.wait_gone(banner, timeout=60)

    # Server errors on every call: the circuit opens, the banner counts to the probe.
    system.call(system.sandbox.discord.inject, "5xx")
    add_member_groups(system, 1)
    opened = browser.wait_text("#banner-breaker-discord", "next probe is in", timeout=60)
    assert seconds_in(opened) > 10
    browser.screenshot("circuit-open")
    system.call(system.sandbox.discord.clear_faults)
    browser.click("#reset-breaker-discord")
    browser.wait_text("#toasts", "breaker reset")
    browser.wait_gone("#banner-breaker-discord", timeout=30)
    assert [e["via"] for e in admin_actions(system, "breaker_reset")] == ["dashboard"]


def test_pause_resume_force_resync_and_a_request_without_csrf_is_refused(
    new_browser: Callable[[str], Browser], start_system: StartSystem
) -> None:
    system = start_system()
    group, = add_member_groups(system, 1)
    browser = signed_in(new_browser, system)

    browser.click("#pause-discord")
    browser.wait_text("#banner-paused-discord", "paused")
    browser.wait_text("#service-discord", "PAUSED")
    browser.screenshot("paused")

    # The session cookie alone does not make a mutating request: the CSRF header is needed.
    assert browser.fetch("POST", "/api/services/discord/resume") == 403
    assert browser.fetch("POST", "/api/services/discord/resume", {"X-CSRF-Token": "x"}) == 403
    assert system.api("GET", "/api/overview").json()["services"][0]["paused"] is True

    browser.click("#resume-discord")
    browser.wait_gone("#banner-paused-discord")
    assert system.api("GET", "/api/overview").json()["services"][0]["paused"] is False

    browser.find("#resync-group").send_keys(str(group.id))
    browser.click("#resync-preview-button")
    text = browser.wait_text("#confirm-text", "sends everything again")
    assert re.search(r"about \d+ calls", text)
    browser.screenshot("resync-preview")
    browser.click("#confirm-yes")
    browser.wait_text("#toasts", f"Re-sync of group {group.id} started")
    assert [e["action"] for e in system.daemon.events("admin_action")] == [
        "pause", "resume", "resync",
    ]


def test_polling_429_pauses_updates_across_a_reload_and_a_retry_still_goes_through(
    new_browser: Callable[[str], Browser], start_system: StartSystem
) -> None:
    # Reads: 6 at once, then three every 8 s; the page polls three reads every 2 s
    # (overview, keys, held) and, every third poll, three more (needs attention, audit,
    # bulk jobs), so an early poll meets a 429 telling it to wait until 3 reads are
    # back (8 s).
    system = start_system(
        TIME_SCALE="1", ADMIN_READ_BURST="6", ADMIN_READ_RATE_PER_SECOND="0.375"
    )
    blocked, = add_member_groups(system, 1, blocked=1)
    browser = signed_in(new_browser, system)
    row = f"#key-discord-{blocked.id}"
    browser.wait(lambda: browser.all(f"#retry-discord-{blocked.id}"), what="the failing row")

    paused_for = paused_at_least(browser, 1)
    browser.wait(paused_for, what="updates paused")
    browser.screenshot("updates-paused")
    wait_until(lambda: next_attempt_far(system, "discord", blocked.id, 5.0),
               timeout=60, interval=0.3, message="the engine's next attempt 5 s away")
    system.call(block_channel, system.sandbox, blocked, blocked=False)
    browser.wait(paused_at_least(browser, 2), what="updates paused (again)")
    browser.click(f"#retry-discord-{blocked.id}")  # actions have their own bucket
    browser.wait_text("#toasts", "queued")

    before = browser.wait(paused_at_least(browser, 4), what="a pause with 4 s to go")
    # The keys the page shows now are the last data it received (the row, unless a read
    # between the retry and this pause already saw the key succeed: on a busy machine it
    # may). The "retry requested" note beside a button is this page's memory, not data.
    shown = key_rows(browser)
    browser.driver.refresh()
    after = seconds_in(browser.wait_text("#banner-reads-paused", "resuming in", timeout=3))
    assert after <= before  # the same pause, not a new one
    assert key_rows(browser) == shown  # the last data received is shown meanwhile
    browser.screenshot("still-paused-after-reload")

    browser.wait_gone(row, timeout=60)  # reads came back and show the retry's outcome
    assert system.key("discord", blocked.id)["status"] == "ok"
    limited = [e for e in system.daemon.events() if e.get("status") == 429]
    assert limited == []  # the API's own 429s are answers, not log noise


def key_rows(browser: Browser) -> list[str]:
    return [element.get_attribute("id") or "" for element in browser.all("tr.key-row")]


def test_503_shows_connection_issues_and_an_action_retried_through_503_runs_once(
    new_browser: Callable[[str], Browser], start_system: StartSystem
) -> None:
    system = start_system(TIME_SCALE="1")  # the engine's own retries stay seconds apart
    blocked, = add_member_groups(system, 1, blocked=1)
    browser = signed_in(new_browser, system)
    browser.wait(lambda: browser.all(f"#retry-discord-{blocked.id}"), what="the failing row")

    system.api("POST", "/_test/faults", json={"lane": "reads", "status": 503, "count": 6})
    browser.wait_text("#banner-connection", "Connection issues")
    browser.screenshot("connection-issues")
    browser.wait_gone("#banner-connection")

    # The first try is carried out but its answer is lost; the next two meet a plain 503.
    system.api("POST", "/_test/faults",
               json={"lane": "actions", "status": 503, "count": 1, "after": True})
    system.api("POST", "/_test/faults", json={"lane": "actions", "status": 503, "count": 2})
    wait_until(lambda: next_attempt_far(system, "discord", blocked.id, 6.0),
               timeout=60, interval=0.3, message="the engine's next attempt 6 s away")
    system.call(block_channel, system.sandbox, blocked, blocked=False)
    browser.click(f"#retry-discord-{blocked.id}")
    browser.wait_text("#blocking-text", "Retrying")
    browser.screenshot("retrying")
    browser.wait_text("#toasts", "queued")
    assert not browser.find("#blocking").is_displayed()
    assert system.api("GET", "/_test/faults").json() == []

    retries = admin_actions(system, "retry")
    assert [(e["outcome"], e["via"]) for e in retries] == [("accepted", "dashboard")]
    wait_until(lambda: system.key("discord", blocked.id)["status"] == "ok", interval=0.3,
               message="ok")
