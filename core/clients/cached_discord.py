"""DiscordPort with the gateway cache in front of the channel reads (DESIGN §4).

The syncers keep the port they know. ``channel_overwrites`` answers from the gateway's
cache when it is trustworthy (``ChannelCache.overwrites``: connected, READY, no echo of
ours outstanding on the channel) and reads over REST otherwise; each overwrite write is
announced to the cache before it is sent (the channel is untrusted until its echo) and
its answer told after. Every other call goes straight to the REST adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from core import metrics
from core.clients.gateway_cache import ChannelCache
from core.clients.ports import MEMBER_OVERWRITE, DiscordPort, Overwrite, PostedMessage
from core.errors import NeedsAttentionError
from core.lanes import Lane


class CachedDiscord:
    """DiscordPort: ``rest`` for every call, ``cache`` for the channel reads it can answer."""

    def __init__(self, rest: DiscordPort, cache: ChannelCache) -> None:
        self.rest = rest
        self.cache = cache

    async def channel_overwrites(self, channel_id: str, lane: Lane) -> dict[str, Overwrite]:
        cached = self.cache.overwrites(channel_id)
        if cached is not None:
            metrics.CHANNEL_READS.labels(source="gateway").inc()
            return cached
        metrics.CHANNEL_READS.labels(source="rest").inc()
        return await self.rest.channel_overwrites(channel_id, lane)

    async def set_member_overwrite(
        self, channel_id: str, user_id: str, allow: int, deny: int, lane: Lane, reason: str
    ) -> None:
        token = self.cache.expect(channel_id, user_id,
                                  Overwrite(user_id, MEMBER_OVERWRITE, allow, deny))
        try:
            await self.rest.set_member_overwrite(channel_id, user_id, allow, deny, lane, reason)
        except NeedsAttentionError:
            self.cache.write_done(token, applied=False)  # refused: nothing changed
            raise
        except BaseException:
            self.cache.write_done(token, applied=None)  # may have landed: await the echo
            raise
        self.cache.write_done(token, applied=True)

    async def delete_member_overwrite(
        self, channel_id: str, user_id: str, lane: Lane, reason: str
    ) -> None:
        token = self.cache.expect(channel_id, user_id, None)
        try:
            await self.rest.delete_member_overwrite(channel_id, user_id, lane, reason)
        except NeedsAttentionError:
            self.cache.write_done(token, applied=False)
            raise
        except BaseException:
            self.cache.write_done(token, applied=None)
            raise
        self.cache.write_done(token, applied=True)

    async def member_role_ids(self, guild_id: str, user_id: str, lane: Lane) -> frozenset[str]:
        return await self.rest.member_role_ids(guild_id, user_id, lane)

    async def add_member_role(
        self, guild_id: str, user_id: str, role_id: str, lane: Lane, reason: str
    ) -> None:
        await self.rest.add_member_role(guild_id, user_id, role_id, lane, reason)

    async def remove_member_role(
        self, guild_id: str, user_id: str, role_id: str, lane: Lane, reason: str
    ) -> None:
        await self.rest.remove_member_role(guild_id, user_id, role_id, lane, reason)

    async def send_message(
        self,
        channel_id: str,
        content: str,
        nonce: str,
        lane: Lane,
        mention_user_ids: Sequence[str] = (),
    ) -> str:
        return await self.rest.send_message(channel_id, content, nonce, lane, mention_user_ids)

    async def own_messages_since(
        self, channel_id: str, since: datetime, lane: Lane, limit: int = 100
    ) -> list[PostedMessage]:
        return await self.rest.own_messages_since(channel_id, since, lane, limit)
