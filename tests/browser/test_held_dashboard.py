"""The deletion guard's held syncs on the dashboard, in a real Chromium against a real
daemon and the sandbox: an operator approves one and rejects another."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete

from core.db.models import Group, Membership
from core.engine.running.outbox import mark_owed
from tests.browser.chromium import Browser
from tests.browser.system import System
from tests.browser.test_dashboard import admin_actions, signed_in
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

SIZE = 12


def emptied_group(system: System) -> Group:
    """A synced group of SIZE members whose memberships then vanish upstream."""
    async def build() -> Group:
        world = system.world
        group = await world.add_group(meetings=1)
        for _ in range(SIZE):
            await world.join(await world.add_user(), group)
        return group

    group = system.run(build())
    wait_until(lambda: all(system.key(t, group.id)["status"] == "ok"
                           for t in ("discord", "calendar")),
               timeout=60, interval=0.3, message="the group synced")

    async def empty() -> None:
        async with system.sessions() as session, session.begin():
            await session.execute(delete(Membership).where(Membership.group_id == group.id))
            await mark_owed(session, [group.id], datetime.now(UTC))

    system.run(empty())
    return group


def overwrites(system: System, group: Group) -> int:
    return len(system.call(system.world.member_overwrites, group.discord_text_channel_id))


def test_a_held_sync_is_approved_and_another_rejected_from_the_dashboard(
    new_browser: Callable[[str], Browser], start_system: Callable[..., System]
) -> None:
    system = start_system()
    group = emptied_group(system)
    browser = signed_in(new_browser, system)

    row = f"#held-discord-{group.id}"
    browser.wait_text(row, f"would remove {SIZE} of {SIZE} members")
    assert f"{SIZE} of {SIZE}: U" in browser.text(f"{row} .held-users")  # named users
    browser.wait_text(f"#held-calendar-{group.id}", "would remove")
    browser.screenshot("held")
    assert overwrites(system, group) == SIZE

    browser.click(f"#reject-calendar-{group.id}")
    browser.wait_text("#toasts", "stays held until its membership changes")
    browser.wait_text(f"#held-calendar-{group.id} .held-decision", "rejected by dashboard")

    browser.click(f"#approve-discord-{group.id}")
    text = browser.wait_text("#confirm-text", f"removes {SIZE} of {SIZE} members")
    assert "discord for group" in text
    browser.screenshot("approve-confirm")
    browser.click("#confirm-yes")
    browser.wait_text("#toasts", "applies its plan now")
    browser.wait_gone(row)
    wait_until(lambda: system.key("discord", group.id)["status"] == "ok", timeout=60,
               interval=0.3, message="the approved plan applied")
    assert overwrites(system, group) == 0
    assert system.key("calendar", group.id)["status"] == "held"
    assert [(e["via"], e["who"].split(":")[0]) for e in admin_actions(system, "approve")] == [
        ("dashboard", "dashboard")]
    assert [e["via"] for e in admin_actions(system, "reject")] == ["dashboard"]
