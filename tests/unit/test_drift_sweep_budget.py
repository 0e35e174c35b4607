"""How many groups one drift-sweep tick takes: every group once per period, capped by
the configured share of the slower service's rate limit."""

from __future__ import annotations

from core.config import load_settings
from core.engine.loops.drift_sweep import Budget


def test_a_tick_covers_its_share_of_the_period() -> None:
    settings = load_settings(drift_sweep_period_seconds=86400, drift_sweep_tick_seconds=300)
    assert Budget.for_tick(settings, 1000).groups == 4  # 288 ticks a day: ceil(1000/288)
    assert Budget.for_tick(settings, 1).groups == 1


def test_the_rate_share_caps_a_tick() -> None:
    # 500 calendar requests a minute x 1 % x 60 s = 5 calls: one group of 3 reads.
    settings = load_settings(drift_sweep_period_seconds=60, drift_sweep_tick_seconds=60,
                             drift_sweep_rate_share=0.01, calendar_requests_per_minute_user=500)
    assert Budget.for_tick(settings, 1000).groups == 1
