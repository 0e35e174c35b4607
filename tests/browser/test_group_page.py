"""The page per group (issue 23) in a real Chromium against a real daemon and the
sandbox: a group whose Discord overwrite was deleted behind our back shows it under
"live" as missing and under the difference as "will be restored"; Sync now shows its dry
run, then a step trace with the read, the plan and the PUT answered 204, and the live
column matches the desired one afterwards. The page is reached from the dashboard's
group search."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.db.models import Group, User
from tests.browser.chromium import Browser
from tests.browser.system import System
from tests.browser.test_dashboard import signed_in
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def synced_group(system: System) -> tuple[Group, User]:
    group, user = system.run(system.world.group_with_member(meetings=1))
    wait_until(lambda: all(system.key(t, group.id)["status"] == "ok"
                           for t in ("discord", "calendar", "reminders", "rsvps")),
               timeout=60, interval=0.3, message="the group synced")
    return group, user


def overwrite_row(browser: Browser, subject: str) -> str:
    """The text of the Discord items row for ``subject`` (empty until it is shown)."""
    for row in browser.all("#items-discord tr"):
        if row.text.startswith(subject):
            return str(row.text)
    return ""


def test_a_deleted_overwrite_is_missing_live_and_sync_now_restores_it_with_a_trace(
    new_browser: Callable[[str], Browser], start_system: Callable[..., System]
) -> None:
    # Without the gateway: with it, the deleted overwrite is repaired live within seconds
    # (issue 22), before the page could show it missing.
    system = start_system(DISCORD_GATEWAY="0")
    group, user = synced_group(system)
    channel, member = group.discord_text_channel_id, user.discord_user_id
    assert channel is not None
    assert member is not None
    system.call(system.sandbox.discord.state.delete_overwrite, channel, member)
    subject = f"overwrite on channel {channel} for user {member}"

    # From the dashboard: search the group by its name, open its page.
    browser = signed_in(new_browser, system)
    browser.find("#find-group").send_keys(group.name)
    browser.click("#find-group-button")
    browser.wait_text("#group-title", f"Group {group.id}: {group.name}")
    row = browser.wait(lambda: overwrite_row(browser, subject) or None, timeout=30,
                       what="the overwrite's row")
    assert "view, send, read history missing ≠ will be restored" in row
    assert "ago" in browser.text("#key-discord")  # "last success … (4 s ago)": relative too
    assert "background lane" in browser.text("#type-discord .live-read")
    assert member in browser.text("#members-body")
    assert "status: ok" in browser.text("#key-discord")
    assert "ok" in browser.text("#attempts-body")
    browser.screenshot("missing-overwrite")

    # Sync now: the dry run lists the PUT, then the trace shows read, plan, PUT → 204.
    browser.click("#sync-now")
    dry = browser.wait_text("#dry-run-items", f"PUT /channels/{channel}/permissions/{member}")
    assert "will be restored" in dry
    browser.screenshot("dry-run")
    browser.click("#dry-run-yes")
    trace = browser.wait_text("#trace-discord",
                              f"PUT /channels/{channel}/permissions/{member} → 204")
    lines = trace.splitlines()
    read = next(i for i, t in enumerate(lines) if t.startswith("read: live state read"))
    plan = next(i for i, t in enumerate(lines) if t.startswith("plan: 1 action(s) planned"))
    put = next(i for i, t in enumerate(lines) if "PUT /channels/" in t and "→ 204" in t)
    assert lines[0].startswith("membership: membership loaded: 1 active member")
    assert read < plan < put
    assert "GET /channels/" in trace
    assert lines[-1].startswith("result: ok")
    after = browser.wait(lambda: "✓ in step" in overwrite_row(browser, subject)
                         and overwrite_row(browser, subject), what="the row in step")
    assert "view, send, read history view, send, read history ✓ in step" in after
    assert system.call(system.world.member_overwrites, channel) == {member}
    browser.driver.execute_script("document.querySelector('#trace-section').scrollIntoView()")
    browser.screenshot("trace-after-sync-now")
    audit = system.api("GET", "/api/audit").json()["items"]
    assert (audit[0]["action"], audit[0]["who"]) == ("sync_now", "dashboard:127.0.0.1")
