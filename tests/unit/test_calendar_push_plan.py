"""Which watch channels to open and stop: one fresh channel per followed calendar, the new
one opened before the old one is stopped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.engine.loops.calendar_push import Channel, plan_channels

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
RENEW = timedelta(minutes=10)


def channel(channel_id: str, calendar_id: str, minutes_left: float) -> Channel:
    return Channel(channel_id, calendar_id, "res", NOW + timedelta(minutes=minutes_left))


def test_a_followed_calendar_without_a_channel_is_watched() -> None:
    plan = plan_channels(["a", "b"], [channel("1", "a", 60)], NOW, RENEW)
    assert (plan.watch, plan.stop) == (["b"], [])


def test_a_channel_close_to_expiry_is_replaced_but_kept_until_then() -> None:
    old = channel("1", "a", 5)
    plan = plan_channels(["a"], [old], NOW, RENEW)
    assert (plan.watch, plan.stop) == (["a"], [])  # the overlap: old stays for now
    new = channel("2", "a", 60)
    plan = plan_channels(["a"], [old, new], NOW, RENEW)
    assert (plan.watch, plan.stop) == ([], [old])


def test_an_expired_channel_is_forgotten_while_its_calendar_is_watched_again() -> None:
    dead = channel("1", "a", -1)
    plan = plan_channels(["a"], [dead], NOW, RENEW)
    assert (plan.watch, plan.stop) == (["a"], [dead])


def test_only_the_newest_fresh_channel_is_kept() -> None:
    older, newer = channel("1", "a", 30), channel("2", "a", 90)
    assert plan_channels(["a"], [older, newer], NOW, RENEW).stop == [older]


def test_channels_of_calendars_no_longer_followed_are_stopped() -> None:
    gone = channel("1", "x", 60)
    assert plan_channels([], [gone], NOW, RENEW).stop == [gone]
