"""Relative times beside absolute ones ("failing for 12 min", "next in 31 s"): pure, with
``now`` passed in, shared by the CLI's ``status`` (the page has the same words in JS)."""

from __future__ import annotations

import re
from datetime import datetime

MAX_PAUSE_SECONDS = 7 * 24 * 3600  # a longer window is a decision for `resume`, not a timer
_SPAN_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_SPAN = re.compile(r"^(\d+)\s*(s|m|min|h|d)$")


def span(seconds: float) -> str:
    """A duration in the largest unit that keeps it readable: 31 s, 12 min, 3 h 5 min."""
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    return f"{round(hours / 24)} d"


def relative_until(at: datetime, now: datetime) -> str:
    """'in 31 s', or 'now' when it is (or was) due."""
    seconds = (at - now).total_seconds()
    return f"in {span(seconds)}" if seconds >= 0.5 else "now"


def relative_since(at: datetime, now: datetime) -> str:
    """'12 min ago'."""
    return f"{span((now - at).total_seconds())} ago"


def stamp(at: datetime) -> str:
    """An absolute time a person reads: to the second, UTC (no microseconds)."""
    return f"{at:%Y-%m-%d %H:%M:%S}Z"


def parse_span(text: str) -> int:
    """'90s', '30m', '2h', '1d' → seconds (the CLI's ``pause --for``); ValueError names
    what is accepted."""
    found = _SPAN.match(text.strip().lower())
    seconds = int(found.group(1)) * _SPAN_UNITS[found.group(2)] if found else 0
    if not 1 <= seconds <= MAX_PAUSE_SECONDS:
        raise ValueError(f"{text!r} is not a duration from 1s to 7d: write e.g. 90s, 30m, "
                         "2h or 1d")
    return seconds
