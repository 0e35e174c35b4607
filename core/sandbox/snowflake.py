"""Discord snowflake ids: time-ordered 64-bit integers, strings in JSON."""

from __future__ import annotations

import itertools
import time

DISCORD_EPOCH_MS = 1_420_070_400_000
_counter = itertools.count()


def new_snowflake() -> str:
    ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
    return str((ms << 22) | (next(_counter) % (1 << 22)))


def sid(value: int | str) -> str:
    """Normalise an id given as int or str."""
    text = str(value)
    if not text.isdigit():
        raise ValueError(f"not a snowflake: {value!r}")
    return text
