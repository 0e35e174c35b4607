"""Why a key waits, in a real Chromium against a real daemon and the sandbox (issue 23):
a key behind Discord's Retry-After, one behind an open circuit, one behind a paused
service and one held by the deletion guard each show their own reason on the group's
page, and ``status --json`` (straight on the database, another process) says the same.

The Retry-After and the open circuit are both Discord's, and the stronger one wins for
every Discord key, so they are shown one after the other: first the 429 storm (with the
pause and the hold), then the server errors that open the circuit. A time the key may
next run is shown for each: a hold's is its next re-check against the live state
(HELD_RECHECK_SECONDS; an operator still decides), the pause is given an end (``--for``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.db.models import Group
from tests.browser.chromium import Browser
from tests.browser.system import System, add_member_groups
from tests.browser.test_dashboard import signed_in
from tests.browser.test_held_dashboard import emptied_group
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def status_json(system: System) -> dict[str, Any]:
    """``main.py status --json`` in its own process, on the daemon's database."""
    env = {**os.environ, "DATABASE_URL": system.world.settings.database_url}
    done = subprocess.run([sys.executable, "main.py", "status", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    shown: dict[str, Any] = json.loads(done.stdout)
    return shown


def status_waiting(system: System, sync_type: str, group_id: int) -> dict[str, Any]:
    """The key's waiting reason as ``status --json`` lists it (failing, held or pending)."""
    shown = status_json(system)
    for section in ("failing", "held", "pending"):
        for item in shown[section]["items"]:
            if item["sync_type"] == sync_type and item["group_id"] == group_id:
                waiting: dict[str, Any] = item.get("waiting") or {"code": None}
                return waiting
    return {"code": None, "listed": False}


def status_shows(system: System, sync_type: str, group_id: int, code: str) -> dict[str, Any]:
    """``status_waiting`` once it says ``code``: ``status`` reads the database, where the
    daemon publishes its clients' breaker and rate-limit state every heartbeat (2 s), so
    it may lag the page by a beat."""
    def shown() -> dict[str, Any] | None:
        waiting = status_waiting(system, sync_type, group_id)
        return waiting if waiting["code"] == code else None

    return wait_until(shown, timeout=30, interval=0.5,
                      message=f"status --json to show {sync_type}:{group_id} {code}")


def api_waiting(system: System, sync_type: str, group_id: int, code: str
                ) -> dict[str, Any] | None:
    waiting: dict[str, Any] | None = system.key(sync_type, group_id).get("waiting")
    return waiting if waiting and waiting["code"] == code else None


def future(iso: str | None) -> bool:
    return iso is not None and datetime.fromisoformat(iso) > datetime.now(UTC)


def key_text(browser: Browser, system: System, group: Group, sync_type: str,
             words: str) -> str:
    """The group page's line for the key once it shows ``words`` (the page reads once
    per load, so it is reloaded until it does)."""
    def shown() -> str | None:
        browser.open(f"/groups/{group.id}")
        browser.wait_text("#group-title", f"Group {group.id}")
        text = browser.wait(lambda: browser.text(f"#key-{sync_type}") or None, timeout=30,
                            what=f"the {sync_type} key's line")
        return str(text) if words in text else None

    return str(wait_until(shown, timeout=60, interval=1,
                          message=f"{sync_type}:{group.id} to show {words!r}"))


def test_each_waiting_reason_is_named_with_its_next_run_in_the_page_and_in_status_json(
    new_browser: Callable[[str], Browser], start_system: Callable[..., System]
) -> None:
    # A long breaker reset (200 s real at the browser scale) keeps the circuit open
    # through both reads; the 429s ask for 30 s (real) each. The held key's re-check is an
    # hour away (real): what this test shows is the page and the status, not the re-check
    # (tests/e2e/test_held_recheck.py), which would run it in the 429s and the 500s.
    system = start_system(BREAKER_RESET_SECONDS="2000", HELD_RECHECK_SECONDS="36000")
    held = emptied_group(system)
    wait_until(lambda: api_waiting(system, "discord", held.id, "held"), timeout=60,
               message="the guard to hold the emptied group's Discord sync")
    assert system.api("POST", "/api/services/calendar/pause",
                      json={"reason": "Google maintenance window", "for_seconds": 900}
                      ).status_code == 200
    system.call(system.sandbox.discord.inject, "429", retry_after=300.0)
    limited = add_member_groups(system, 1)[0]
    wait_until(lambda: api_waiting(system, "discord", limited.id, "retry_after"), timeout=60,
               message="Discord's 429 to hold the new group's key")
    browser = signed_in(new_browser, system)

    # Retry-After: its reason, and a run time in the future, in both places.
    text = key_text(browser, system, limited, "discord", "waiting: retry after")
    assert "rate limited" in text or "answered 429" in text
    assert "may next run" in text
    assert "(in " in text
    browser.screenshot("retry-after")
    waiting = status_shows(system, "discord", limited.id, "retry_after")
    assert future(waiting["until"]), waiting

    # Paused: who, why, since and until when; the pause's end is its next run.
    text = key_text(browser, system, limited, "calendar", "waiting: paused")
    assert "calendar is paused by" in text
    assert "Google maintenance window" in text
    assert "since" in text
    assert "until" in text
    assert "`resume calendar` lets it run sooner" in text
    assert "may next run" in text
    assert "(in 15 min)" in text or "(in 14 min)" in text
    browser.screenshot("paused")
    waiting = status_shows(system, "calendar", limited.id, "paused")
    assert "Google maintenance window" in waiting["detail"]
    assert future(waiting["until"]), waiting

    # Held: the guard's words, its next re-check, and the operator's way out.
    text = key_text(browser, system, held, "discord", "waiting: held")
    assert "held for approval: would remove" in text
    assert "re-checked against the live state at" in text
    assert "`approve` or `reject` decides" in text
    assert "may next run" in text
    assert "(in " in text
    browser.screenshot("held")
    waiting = status_shows(system, "discord", held.id, "held")
    assert future(waiting["until"]), waiting

    # Then server errors on every call: the circuit opens and every owed Discord key
    # waits for its half-open probe, a time in the future.
    system.call(system.sandbox.discord.clear_faults)
    system.call(system.sandbox.discord.inject, "5xx")
    broken = add_member_groups(system, 1)[0]
    wait_until(lambda: api_waiting(system, "discord", broken.id, "circuit_open"),
               timeout=90, message="the circuit to open and hold the new group's key")
    text = key_text(browser, system, broken, "discord", "waiting: circuit open")
    assert "circuit is open after repeated failures; it half-opens at" in text
    assert "may next run" in text
    assert "(in " in text
    browser.screenshot("circuit-open")
    waiting = status_shows(system, "discord", broken.id, "circuit_open")
    assert future(waiting["until"]), waiting
    # The hold still outranks the circuit: it waits for a person either way.
    assert status_waiting(system, "discord", held.id)["code"] == "held"
