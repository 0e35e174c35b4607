"""One Sentry event per database outage, however many loops and keys meet it."""

from __future__ import annotations

from typing import Any

from core.engine.health.outage import DatabaseOutage


def test_an_outage_is_one_sentry_event(sentry_events: list[dict[str, Any]]) -> None:
    outage = DatabaseOutage()

    for where in ["outbox_sweep", "run", "lease_renewal", "record"] * 25:
        outage.failed(ConnectionRefusedError(111, "Connect call failed"), where=where)
    outage.reachable()
    outage.failed(ConnectionResetError(104, "reset by peer"), where="leadership")

    messages = [e.get("message") or e.get("logentry", {}).get("message") for e in sentry_events]
    assert len(messages) == 2
    assert all("database unavailable" in str(m) for m in messages)
