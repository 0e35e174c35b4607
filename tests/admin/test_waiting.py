"""The waiting-reason vocabulary (core/admin/waiting.py): one table of cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.admin.relative import relative_until, span
from core.admin.waiting import KeyFacts, ServiceFacts, WaitCode, waiting_reason

NOW = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=31)
MUCH_LATER = NOW + timedelta(minutes=5)
EARLIER = NOW - timedelta(seconds=10)

OWED = KeyFacts("discord", owed=True, attempt=3, next_attempt_at=EARLIER, error_kind="transient")
BACKED_OFF = KeyFacts("discord", owed=True, attempt=3, next_attempt_at=LATER,
                      error_kind="transient")
NEVER_RAN = KeyFacts("discord", owed=True, attempt=0, ever_ran=False)
FINE = ServiceFacts("discord")


@pytest.mark.parametrize(("key", "service", "code", "until"), [
    (BACKED_OFF, FINE, WaitCode.BACKOFF, LATER),
    (KeyFacts("discord", owed=True, next_attempt_at=LATER, error_kind="rate_limited"), FINE,
     WaitCode.RETRY_AFTER, LATER),
    (OWED, ServiceFacts("discord", limited_until=LATER), WaitCode.RETRY_AFTER, LATER),
    # An open circuit: the key is "due" in its row, but runs when the circuit half-opens.
    (OWED, ServiceFacts("discord", breaker_state="open", half_open_at=LATER),
     WaitCode.CIRCUIT_OPEN, LATER),
    (BACKED_OFF, ServiceFacts("discord", breaker_state="open", half_open_at=MUCH_LATER),
     WaitCode.CIRCUIT_OPEN, MUCH_LATER),
    (OWED, ServiceFacts("discord", paused=True, breaker_state="open", half_open_at=LATER),
     WaitCode.PAUSED, None),
    (OWED, ServiceFacts("discord", credentials_rejected="401: Unauthorized",
                        next_probe_at=LATER, paused=True), WaitCode.CREDENTIALS_REJECTED, LATER),
    (KeyFacts("discord", owed=True, held="would remove 40 of 41 members"),
     ServiceFacts("discord", paused=True), WaitCode.HELD, None),
    # A held key's next run is its re-check against the live state.
    (KeyFacts("discord", owed=True, held="would remove 40 of 41 members",
              next_attempt_at=MUCH_LATER), ServiceFacts("discord", paused=True),
     WaitCode.HELD, MUCH_LATER),
    (NEVER_RAN, FINE, WaitCode.QUEUED, NOW),
    (NEVER_RAN, None, WaitCode.QUEUED, NOW),
])
def test_each_state_gives_its_code_and_the_moment_it_may_run(
    key: KeyFacts, service: ServiceFacts | None, code: WaitCode, until: datetime | None
) -> None:
    found = waiting_reason(key, service, NOW)
    assert found is not None
    assert (found.code, found.until) == (code, until)
    assert found.detail


def test_a_key_nobody_runs_says_so() -> None:
    found = waiting_reason(NEVER_RAN, FINE, NOW, daemon_active=False)
    assert found is not None
    assert found.code is WaitCode.NO_DAEMON
    assert "no daemon" in found.detail


def test_a_pending_key_that_never_ran_says_why() -> None:
    found = waiting_reason(NEVER_RAN, ServiceFacts("discord", paused=True, paused_reason="oops"),
                           NOW)
    assert found is not None
    assert found.code is WaitCode.PAUSED
    assert "oops" in found.detail
    assert "resume discord" in found.detail
    queued = waiting_reason(NEVER_RAN, FINE, NOW)
    assert queued is not None
    assert "not run yet" in queued.detail


def test_settled_and_running_keys_are_not_waiting() -> None:
    assert waiting_reason(KeyFacts("discord", owed=False), FINE, NOW) is None
    assert waiting_reason(KeyFacts("discord", owed=True, running=True), FINE, NOW) is None


def test_a_circuit_that_already_half_opened_does_not_hold_a_key() -> None:
    found = waiting_reason(OWED, ServiceFacts("discord", breaker_state="half_open",
                                              half_open_at=None), NOW)
    assert found is not None
    assert found.code is WaitCode.QUEUED


def test_the_service_facts_come_from_the_overview_the_api_shows() -> None:
    facts = ServiceFacts.from_overview({
        "name": "discord", "paused": False,
        "breaker": {"state": "open", "half_open_at": LATER.isoformat()},
        "rate_limits": [{"lane": "interactive", "limited_until": None},
                        {"lane": "background", "limited_until": MUCH_LATER.isoformat()}],
    })
    assert facts == ServiceFacts("discord", breaker_state="open", half_open_at=LATER,
                                 limited_until=MUCH_LATER)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (31, "31 s"), (89, "89 s"), (12 * 60, "12 min"), (3 * 3600 + 300, "3 h 5 min"),
    (5 * 86400, "5 d"),
])
def test_spans_read_as_a_person_says_them(seconds: float, text: str) -> None:
    assert span(seconds) == text


def test_relative_until_says_now_for_the_past() -> None:
    assert relative_until(LATER, NOW) == "in 31 s"
    assert relative_until(EARLIER, NOW) == "now"


def test_a_paused_key_names_who_paused_it_since_when_and_why() -> None:
    paused = ServiceFacts("calendar", paused=True, paused_reason="Google maintenance",
                          paused_by="cli:ann@ops-1", paused_at=NOW - timedelta(minutes=12))
    found = waiting_reason(OWED, paused, NOW)
    assert found is not None
    assert found.code is WaitCode.PAUSED
    assert found.until is None  # until someone resumes it
    assert "paused by cli:ann@ops-1 since" in found.detail
    assert "12 min ago" in found.detail
    assert "(Google maintenance)" in found.detail



def test_a_pause_given_an_end_says_when_it_ends_and_then_no_longer_holds() -> None:
    from core.engine.running.pauses import pause_in_force

    ends = NOW + timedelta(minutes=30)
    paused = ServiceFacts("calendar", paused=True, paused_by="cli:ann@ops-1",
                          paused_at=NOW - timedelta(minutes=5), paused_until=ends)
    found = waiting_reason(OWED, paused, NOW)
    assert found is not None
    assert (found.code, found.until) == (WaitCode.PAUSED, ends)
    assert "until" in found.detail
    assert "(in 30 min)" in found.detail
    assert pause_in_force(True, ends, NOW)
    assert not pause_in_force(True, ends, ends)
    assert pause_in_force(True, None, NOW)
    assert not pause_in_force(False, None, NOW)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200),
                                               ("1d", 86400), (" 15 min ", 900)])
def test_pause_windows_read_as_people_write_them(text: str, seconds: int) -> None:
    from core.admin.relative import parse_span

    assert parse_span(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "8d", "soon", "-5m", "5"])
def test_a_pause_window_that_is_no_duration_names_what_is_accepted(text: str) -> None:
    from core.admin.relative import parse_span

    with pytest.raises(ValueError, match="1s to 7d"):
        parse_span(text)


def test_a_held_key_names_its_re_check_and_the_operators_way_out() -> None:
    held = KeyFacts("discord", owed=True, held="would remove 40 of 41 members",
                    next_attempt_at=MUCH_LATER)
    found = waiting_reason(held, FINE, NOW)
    assert found is not None
    assert "re-checked against the live state at 12:05:00Z (in 5 min)" in found.detail
    assert "`approve` or `reject` decides" in found.detail
