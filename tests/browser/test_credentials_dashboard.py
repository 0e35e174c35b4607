"""A bot token revoked while groups are owed, on the dashboard in a real Chromium against a
real daemon and the sandbox: a banner names Discord's words and DISCORD_BOT_TOKEN, the
services table says CREDENTIALS REJECTED, and both go once the token works again and the
groups converge with nobody clicking anything."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.browser.chromium import Browser
from tests.browser.system import System, add_member_groups
from tests.browser.test_dashboard import signed_in
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

GROUPS = 5
BANNER = "#banner-credentials-discord"


def test_a_revoked_bot_token_shows_a_banner_naming_the_variable_until_it_works_again(
    new_browser: Callable[[str], Browser], start_system: Callable[..., System]
) -> None:
    system = start_system()
    browser = signed_in(new_browser, system)

    # Given the bot token revoked in Discord, when groups become owed
    revoked = system.call(system.sandbox.discord.inject, "revoked_token")
    groups = add_member_groups(system, GROUPS)

    # Then a banner names Discord's words, since when and the variable to fix
    text = browser.wait_text(BANNER, "DISCORD_BOT_TOKEN", timeout=60)
    assert "Discord rejected the credentials" in text
    assert '"401: Unauthorized"' in text
    assert "since" in text
    assert "parked" in text
    browser.wait_text("#service-discord .status", "CREDENTIALS REJECTED")
    browser.screenshot("credentials-rejected")
    assert system.sandbox.discord_bot_token not in browser.text("body")

    # When the token works again, the banner goes and every group converges by itself
    system.call(revoked.clear)
    browser.wait_gone(BANNER, timeout=60)
    wait_until(lambda: all(system.call(system.world.member_overwrites,
                                       g.discord_text_channel_id) for g in groups),
               timeout=60, interval=0.3, message="every group's overwrite")
    browser.wait_text("#service-discord .status", "running")
