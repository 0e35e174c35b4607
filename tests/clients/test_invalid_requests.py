"""Discord's invalid-request budget, with plain numbers for time."""

from __future__ import annotations

import pytest

from core.clients.invalid_requests import InvalidRequestGuard


@pytest.mark.parametrize(
    ("status", "scope", "counted"),
    [(200, None, False), (204, None, False), (404, None, False), (401, None, True),
     (403, None, True), (429, "user", True), (429, "global", True), (429, "shared", False),
     (500, None, False)],
)
def test_which_responses_count(status: int, scope: str | None, counted: bool) -> None:
    assert InvalidRequestGuard(budget=10).record(0.0, status, scope) is counted


def test_refuses_at_the_budget_until_the_oldest_ages_out() -> None:
    guard = InvalidRequestGuard(budget=3, window=600.0)
    for now in (0.0, 10.0):
        guard.record(now, 401)
    assert guard.retry_after(20.0) is None

    guard.record(20.0, 403)

    assert guard.retry_after(30.0) == pytest.approx(570.0)
    assert guard.retry_after(600.0) is None
    assert guard.count(600.0) == 2
