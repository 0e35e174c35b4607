"""The two lanes of outbound work (DESIGN §4)."""

from __future__ import annotations

from enum import StrEnum


class Lane(StrEnum):
    INTERACTIVE = "interactive"  # caused by a membership change or an operator
    BACKGROUND = "background"  # periodic refreshes and sweeps: throttled first
