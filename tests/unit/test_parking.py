"""Parking's bookkeeping: an open circuit parks its sync types; a half-open one admits one
probe run per service and parks the rest until that run ends."""

from __future__ import annotations

from core.clients.status import ServiceStatus
from core.db.models import SyncType
from core.engine.running.parking import Parking


def breaker(state: str, until_half_open: float = 0.0, service: str = "discord") -> ServiceStatus:
    return ServiceStatus(service=service, breaker_state=state,
                         seconds_until_half_open=until_half_open, consecutive_failures=5)


def test_an_open_circuit_parks_its_types_until_half_open() -> None:
    parking = Parking()
    statuses = [breaker("open", 12.0), breaker("closed", service="calendar")]
    assert parking.parked_for(SyncType.DISCORD, 0.0, statuses) == 12.0
    assert parking.admit(SyncType.DISCORD, 0.0, statuses).wait == 12.0
    assert parking.parked_types(0.0, statuses) == [SyncType.DISCORD]


def test_a_half_open_circuit_admits_one_probe_and_parks_the_rest_until_it_ends() -> None:
    parking = Parking()
    half_open = [breaker("half_open")]
    first = parking.admit(SyncType.DISCORD, 0.0, half_open)
    second = parking.admit(SyncType.DISCORD, 0.0, half_open)
    assert (first.wait, first.probe) == (0.0, True)
    assert second.wait > 0.0
    assert not second.probe
    assert SyncType.DISCORD in parking.parked_types(0.0, half_open)
    assert "probe" in parking.reason(SyncType.DISCORD, second.wait)
    # Types of another service are not held back by Discord's probe
    both = [*half_open, breaker("half_open", service="calendar")]
    assert parking.admit(SyncType.CALENDAR, 0.0, both).probe

    parking.probe_ended(SyncType.DISCORD)

    assert parking.admit(SyncType.DISCORD, 0.0, half_open).probe


def test_a_closed_circuit_lets_every_run_go_while_the_probe_run_goes_on() -> None:
    # The probe's first call succeeded: the breaker closed, the rest need not wait
    parking = Parking()
    assert parking.admit(SyncType.DISCORD, 0.0, [breaker("half_open")]).probe
    closed = [breaker("closed")]
    admitted = parking.admit(SyncType.DISCORD, 0.0, closed)
    assert (admitted.wait, admitted.probe) == (0.0, False)
    assert parking.parked_types(0.0, closed) == []
