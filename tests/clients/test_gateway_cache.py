"""The gateway cache decides when a sync may read it instead of GET /channels/{id}:
connected, READY and the guild in, the channel known, no echo of ours outstanding.
Anything else is None (read over REST): never a wrong answer."""

from __future__ import annotations

from typing import Any

from core.clients.gateway_cache import ChannelCache, LinkState
from core.clients.ports import MEMBER_OVERWRITE, ROLE_OVERWRITE, Overwrite

GUILD, TEXT, ANN, BOB = "900", "500", "11", "12"
OURS = Overwrite(ANN, MEMBER_OVERWRITE, 3072, 0)
EVERYONE = Overwrite(GUILD, ROLE_OVERWRITE, 0, 1024)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def payload(*overwrites: Overwrite, channel: str = TEXT) -> dict[str, Any]:
    return {"id": channel, "guild_id": GUILD, "type": 0, "permission_overwrites": [
        {"id": o.target_id, "type": o.type, "allow": str(o.allow), "deny": str(o.deny)}
        for o in overwrites]}


def connected(clock: Clock, *overwrites: Overwrite) -> ChannelCache:
    cache = ChannelCache(echo_timeout=5.0, now=clock, wall=clock)
    cache.session_started([GUILD])
    assert cache.overwrites(TEXT) is None  # READY, but the guild is not in yet
    cache.guild_available(GUILD, [payload(*overwrites)])
    return cache


def test_a_connected_cache_answers_with_the_overwrites_rest_would_return() -> None:
    cache = connected(Clock(), EVERYONE, OURS)

    assert cache.state is LinkState.CONNECTED
    assert cache.overwrites(TEXT) == {GUILD: EVERYONE, ANN: OURS}
    assert cache.overwrites("999") is None  # a channel it never saw: REST


def test_a_lost_connection_distrusts_everything_until_resumed() -> None:
    cache = connected(Clock(), OURS)

    cache.connection_lost()
    assert cache.state is LinkState.RESUMING
    assert cache.overwrites(TEXT) is None

    cache.resumed()
    assert cache.overwrites(TEXT) == {ANN: OURS}


def test_a_new_session_reports_what_changed_while_disconnected() -> None:
    cache = connected(Clock(), OURS)
    cache.connection_lost(resumable=False)
    assert cache.state is LinkState.DISCONNECTED

    cache.session_started([GUILD])
    assert cache.overwrites(TEXT) is None  # the old picture is not trusted
    changes = cache.guild_available(GUILD, [payload()])

    assert [(c.channel_id, c.before, c.after, c.how) for c in changes] == [
        (TEXT, {ANN: OURS}, {}, "resync")]
    assert cache.overwrites(TEXT) == {}


def test_a_channel_gone_from_the_new_session_comes_back_as_a_deletion() -> None:
    cache = connected(Clock(), OURS)
    cache.session_started([GUILD])
    (change,) = cache.guild_available(GUILD, [])

    assert (change.channel_id, change.after, change.how) == (TEXT, None, "resync")
    assert cache.overwrites(TEXT) is None  # deleted: REST, whose 404 names the target


def test_a_persons_update_is_a_change_and_is_not_an_echo() -> None:
    cache = connected(Clock(), OURS)

    change = cache.channel_updated(payload())

    assert change is not None
    assert (change.before, change.after, change.echo) == ({ANN: OURS}, {}, False)
    assert change.changed_targets == [ANN]
    assert cache.overwrites(TEXT) == {}


def test_our_write_is_untrusted_until_its_echo_then_the_echo_is_flagged() -> None:
    cache = connected(Clock(), EVERYONE)

    token = cache.expect(TEXT, ANN, OURS)
    assert cache.overwrites(TEXT) is None  # in flight
    change = cache.channel_updated(payload(EVERYONE, OURS))
    cache.write_done(token, applied=True)

    assert change is not None
    assert change.echo
    assert cache.overwrites(TEXT) == {GUILD: EVERYONE, ANN: OURS}


def test_an_answer_before_its_echo_keeps_the_channel_untrusted() -> None:
    cache = connected(Clock())

    token = cache.expect(TEXT, ANN, OURS)
    cache.write_done(token, applied=True)  # answered; the echo has not arrived

    assert cache.overwrites(TEXT) is None
    cache.channel_updated(payload(OURS))
    assert cache.overwrites(TEXT) == {ANN: OURS}


def test_an_echo_that_never_comes_distrusts_the_channel_until_its_next_update() -> None:
    clock = Clock()
    cache = connected(clock)
    token = cache.expect(TEXT, ANN, OURS)
    cache.write_done(token, applied=None)  # no clear answer

    clock.t += 6.0  # past the echo timeout
    assert cache.overwrites(TEXT) is None
    assert cache.overwrites(TEXT) is None  # still: the picture may miss our write

    cache.channel_updated(payload(BOB_OVERWRITE := Overwrite(BOB, MEMBER_OVERWRITE, 1024, 0)))
    assert cache.overwrites(TEXT) == {BOB: BOB_OVERWRITE}


def test_a_refused_write_or_a_no_op_settles_at_once() -> None:
    cache = connected(Clock(), OURS)

    refused = cache.expect(TEXT, BOB, Overwrite(BOB, MEMBER_OVERWRITE, 3072, 0))
    cache.write_done(refused, applied=False)
    no_op = cache.expect(TEXT, ANN, OURS)  # already so: Discord sends no update
    cache.write_done(no_op, applied=True)

    assert cache.overwrites(TEXT) == {ANN: OURS}


def test_a_removal_echo_with_a_persons_change_in_it_is_not_an_echo() -> None:
    cache = connected(Clock(), OURS, EVERYONE)
    cache.expect(TEXT, ANN, None)

    change = cache.channel_updated(payload())  # ours removed, and @everyone's too

    assert change is not None
    assert not change.echo
    assert change.changed_targets == [ANN, GUILD]


def test_a_deleted_channel_is_a_change_and_is_read_over_rest() -> None:
    cache = connected(Clock(), OURS)

    change = cache.channel_deleted({"id": TEXT, "guild_id": GUILD})

    assert change is not None
    assert change.after is None
    assert change.how == "delete"
    assert cache.overwrites(TEXT) is None


def test_cache_age_counts_from_the_last_event() -> None:
    clock = Clock()
    cache = connected(clock)
    clock.t += 2.5
    assert cache.age() == 2.5
    cache.channel_updated(payload(OURS))
    assert cache.age() == 0.0


def test_expectations_without_echoes_stay_bounded_and_distrust_their_channel() -> None:
    clock = Clock()
    cache = connected(clock)
    for n in range(1500):
        cache.expect(TEXT, str(n), None)
        clock.t += 0.01  # 15 s in all: the first ones expire

    assert cache.awaiting_echo < 1100
    assert cache.overwrites(TEXT) is None
