"""The gateway link and a refused token: one refused login, then no login at all until
the token is accepted again (the REST adapter's probe decides), then a session.

Measured before: the link retried its login on the restart backoff while the first run had
not yet marked Discord rejected, four 401s in half a second on a CI run, each one toward
Cloudflare's invalid-request ban.
"""

from __future__ import annotations

import asyncio

from core.clients.discord_gateway import GatewayLink, GatewayOptions
from core.clients.gateway_cache import ChannelCache, LinkState
from core.sandbox import Sandbox
from tests.waiting import wait_for


def link_for(sandbox: Sandbox, rejected: list[str]) -> GatewayLink:
    options = GatewayOptions(base_url=sandbox.discord_base_url, identify_gap=0.01,
                             restart_delays=(0.02, 0.02))
    cache = ChannelCache(1.0, asyncio.get_running_loop().time)
    return GatewayLink(sandbox.discord_bot_token, options, cache,
                       rejected=lambda: rejected[-1] if rejected else None,
                       refused=rejected.append)


def refusals(sandbox: Sandbox) -> list[str]:
    return [r.route for r in sandbox.discord.request_log if r.status == 401]


async def test_a_refused_login_is_reported_once_and_not_retried_until_accepted(
        sandbox: Sandbox) -> None:
    revoked = sandbox.discord.inject("revoked_token")
    rejected: list[str] = []
    link = link_for(sandbox, rejected)
    link.start(lambda _change: None)
    try:
        await wait_for(lambda: bool(rejected), timeout=10, message="the refusal reported")
        await asyncio.sleep(0.5)  # twenty-five restart delays: none may log in again
        assert rejected == ["401: Unauthorized"]
        assert refusals(sandbox) == ["GET /users/@me"]

        # When the token works again (the adapter's probe clears its refusal) the link
        # connects on its own.
        revoked.clear()
        rejected.clear()
        await wait_for(lambda: link.cache.state is LinkState.CONNECTED, timeout=10,
                       message="a session once the token is accepted")
        assert refusals(sandbox) == ["GET /users/@me"]
    finally:
        await link.close()
