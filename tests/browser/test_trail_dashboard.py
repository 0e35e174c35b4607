"""The needs-attention set and the operators' trail on the dashboard (issue 23), in a real
Chromium against a real daemon and the sandbox: search by part of an error and by a user
id, an acknowledgement with a note seen from a second session and gone once the key
succeeds, the paused banner naming who, why and since when, and the audit view listing
the pause, the retry and the bulk job just done."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from selenium.webdriver.support.ui import Select
from sqlalchemy import select

from core.db.models import Group, Membership, User
from tests.browser.chromium import Browser
from tests.browser.system import System, add_member_groups, block_channel
from tests.browser.test_dashboard import signed_in
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def deleted_channel_group(system: System) -> Group:
    """A group whose text channel is gone before its first sync: a missing target."""
    async def build() -> Group:
        group = await system.world.add_group(meetings=0)
        assert group.discord_text_channel_id is not None
        system.sandbox.discord.delete_channel(group.discord_text_channel_id)
        await system.world.join(await system.world.add_user(), group)
        return group

    return system.run(build())


def member_of(system: System, group: Group) -> User:
    async def find() -> User:
        async with system.sessions() as session:
            user = await session.scalar(select(User).join(Membership).where(
                Membership.group_id == group.id))
        assert user is not None
        return user

    return system.run(find())


def shown(browser: Browser, css: str, label: str) -> None:
    """A screenshot with ``css`` scrolled into view (the views are below the fold)."""
    browser.driver.execute_script(
        "document.querySelector(arguments[0]).scrollIntoView()", css)
    browser.screenshot(label)


def search(browser: Browser, text: str) -> list[str]:
    """Search the set from the page; the ids of the rows it then shows."""
    field = browser.find("#attention-search")
    field.clear()
    field.send_keys(text)
    browser.click("#attention-search-button")
    browser.wait_text("#attention-summary", f"match “{text}”")
    rows = browser.all("#attention-body tr.attention-row")
    return [row.get_attribute("id") or "" for row in rows]


def test_search_acknowledge_pause_banner_and_audit_of_the_actions_just_done(
    new_browser: Callable[[str], Browser], start_system: Callable[..., System]
) -> None:
    # Unscaled backoff: the missing target waits 60 s between tries, so the operator's
    # retry is not met by one of the engine's own.
    system = start_system(TIME_SCALE="1")
    blocked, = add_member_groups(system, 1, blocked=1)  # Discord: 403 Missing Access
    gone = deleted_channel_group(system)  # Discord: the channel no longer exists
    user = member_of(system, blocked)
    browser = signed_in(new_browser, system)
    for group in (blocked, gone):
        browser.wait(lambda g=group: browser.all(f"#attention-discord-{g.id}"), timeout=60,
                     what=f"group {group.id} in needs attention")
    shown(browser, "#attention-section", "needs-attention")

    # Search: part of an error message, then a member's Discord user id.
    assert search(browser, "no longer EXISTS") == [f"attention-discord-{gone.id}"]
    shown(browser, "#attention-section", "search-error-text")
    assert user.discord_user_id is not None
    assert search(browser, user.discord_user_id) == [f"attention-discord-{blocked.id}"]
    shown(browser, "#attention-section", "search-user-id")
    browser.click("#attention-clear")

    # Acknowledge with a note; a second operator's session sees it.
    browser.click(f"#ack-discord-{blocked.id}")
    browser.find("#ack-note").send_keys("Asked the guild admin to let the bot see the channel")
    browser.screenshot("acknowledge-dialog")
    browser.click("#ack-save")
    browser.wait_text("#toasts", "Acknowledged")
    second = signed_in(new_browser, system)
    second.test_name += "-second-session"
    ack = f"#attention-discord-{blocked.id} .ack-text"
    seen = second.wait_text(ack, "Asked the guild admin to let the bot see the channel")
    assert "by dashboard:127.0.0.1" in seen
    assert "ago" in seen  # relative beside absolute
    shown(second, "#attention-section", "acknowledged-seen-by-another-operator")

    # The retry, the bulk job, then the pause, from the first session.
    browser.click(f"#retry-discord-{gone.id}")
    browser.wait_text("#toasts", "queued")
    browser.click("#bulk-retry-button")
    browser.wait_text("#confirm-text", "failing syncs")
    browser.click("#confirm-yes")
    browser.wait_text("#toasts", "Bulk retry started")
    job = system.api("GET", "/api/bulk-jobs").json()["items"][0]
    browser.wait_text(f"#finished-job-{job['id']}", "Finished", timeout=60)
    browser.find("#pause-reason").send_keys("Discord maintenance window")
    Select(browser.find("#pause-for")).select_by_visible_text("1 h")
    browser.click("#pause-discord")
    banner = browser.wait_text("#banner-paused-discord", "Discord maintenance window")
    assert "paused by dashboard:127.0.0.1 since" in banner
    assert "ago" in banner
    assert "when the pause ends by itself, or until it is resumed" in banner
    assert "(in 59 min" in banner or "(in 1 h 0 min)" in banner
    browser.screenshot("paused-banner")

    audit = browser.wait_text("#audit-body", "Pause")
    for words in ("Retry now", f"discord for group {gone.id}", "Retry all failing",
                  f"job={job['id']}", "Discord maintenance window", "Acknowledge",
                  "dashboard:127.0.0.1"):
        assert words in audit, words
    assert "Finished" in browser.text(f"#finished-job-{job['id']}")
    shown(browser, "#audit-section", "audit-and-bulk-jobs")

    # The key succeeds: its acknowledgement goes away, in the other session too.
    browser.click("#resume-discord")
    browser.wait_gone("#banner-paused-discord")
    system.call(block_channel, system.sandbox, blocked, blocked=False)
    retried = system.api("POST", f"/api/keys/discord/{blocked.id}/retry")
    assert retried.status_code in (202, 409), retried.text  # 409: already due or running
    second.wait_gone(f"#attention-discord-{blocked.id}", timeout=60)
    shown(second, "#attention-section", "acknowledgement-gone-after-success")
    wait_until(lambda: system.key("discord", blocked.id)["status"] == "ok", timeout=30,
               interval=0.3, message="the key succeeded")
    left = system.api("GET", "/api/attention").json()["items"]
    assert [(i["group_id"], i["acknowledged"]) for i in left] == [(gone.id, None)]
