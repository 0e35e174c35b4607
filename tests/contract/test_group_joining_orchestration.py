"""The orchestration contract as the application's own tests exercise it (DESIGN §2).

Written the way the application writes them: ``unittest.mock.patch`` of the five names
and ``sentry_sdk`` in ``core.group_joining``, no database, no groupsync runtime.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest.mock import AsyncMock, MagicMock, call, patch

import pytest

from core.group_joining import sync_after_group_change

SYNCS = {
    "discord": "sync_group_discord_permissions",
    "calendar": "sync_group_calendar",
    "reminders": "sync_group_reminders",
    "rsvps": "sync_group_rsvps",
}
OK = {
    "discord": {"granted": 1, "revoked": 0, "unchanged": 2, "failed": 0},
    "calendar": {"created": 1, "updated": 0, "unchanged": 0, "failed": 0},
    "reminders": {"meetings": 2},
    "rsvps": {"meetings": 2},
}


class Patched:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.results: dict[str, Any] = dict(OK)
        self.syncs: dict[str, AsyncMock] = {}
        self.schedule_sync_retry = MagicMock()
        self.sentry_sdk = MagicMock()

    def fake(self, sync_type: str) -> AsyncMock:
        async def run(group_id: int) -> Any:
            self.calls.append((sync_type, group_id))
            outcome = self.results[sync_type]
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        mock = AsyncMock(side_effect=run)
        self.syncs[sync_type] = mock
        return mock


@pytest.fixture
def patched() -> Iterator[Patched]:
    p = Patched()
    with (
        patch("core.group_joining.sync_group_discord_permissions", p.fake("discord")),
        patch("core.group_joining.sync_group_calendar", p.fake("calendar")),
        patch("core.group_joining.sync_group_reminders", p.fake("reminders")),
        patch("core.group_joining.sync_group_rsvps", p.fake("rsvps")),
        patch("core.group_joining.schedule_sync_retry", p.schedule_sync_retry),
        patch("core.group_joining.sentry_sdk", p.sentry_sdk),
    ):
        yield p


async def test_a_discord_error_result_schedules_exactly_the_discord_retry(
    patched: Patched,
) -> None:
    patched.results["discord"] = {"error": "bot_unavailable"}

    await sync_after_group_change(group_id=123)

    patched.schedule_sync_retry.assert_called_once_with(
        sync_type="discord", group_id=123, attempt=0, previous_group_id=None
    )


async def test_a_calendar_result_with_failures_schedules_the_calendar_retry(
    patched: Patched,
) -> None:
    patched.results["calendar"] = {"created": 2, "failed": 3}

    await sync_after_group_change(group_id=123)

    patched.schedule_sync_retry.assert_called_once_with(
        sync_type="calendar", group_id=123, attempt=0, previous_group_id=None
    )


async def test_all_four_succeeding_schedule_no_retry(patched: Patched) -> None:
    await sync_after_group_change(group_id=123)

    assert patched.calls == [(t, 123) for t in SYNCS]
    patched.schedule_sync_retry.assert_not_called()
    patched.sentry_sdk.capture_exception.assert_not_called()


async def test_a_discord_exception_is_reported_and_retried_never_raised(
    patched: Patched,
) -> None:
    boom = RuntimeError("gateway exploded")
    patched.results["discord"] = boom

    await sync_after_group_change(group_id=123)  # does not raise

    patched.sentry_sdk.capture_exception.assert_called_once_with(boom)
    patched.schedule_sync_retry.assert_called_once_with(
        sync_type="discord", group_id=123, attempt=0, previous_group_id=None
    )
    assert ("rsvps", 123) in patched.calls  # the other syncs still ran


async def test_a_switch_syncs_the_old_group_first_and_passes_previous_group_id(
    patched: Patched,
) -> None:
    patched.results["reminders"] = {"error": "channel missing"}

    await sync_after_group_change(group_id=123, previous_group_id=77)

    assert patched.calls == [(t, 77) for t in SYNCS] + [(t, 123) for t in SYNCS]
    assert patched.schedule_sync_retry.call_args_list == [
        call(sync_type="reminders", group_id=77, attempt=0, previous_group_id=77),
        call(sync_type="reminders", group_id=123, attempt=0, previous_group_id=77),
    ]


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((0,), {}), ((-1,), {}), (("123",), {}), ((True,), {}), ((None,), {}),
     ((123,), {"previous_group_id": 0}), ((123,), {"previous_group_id": "7"})],
)
async def test_invalid_arguments_raise_value_error_before_any_call(
    patched: Patched, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="group_id"):
        await sync_after_group_change(*args, **kwargs)

    assert patched.calls == []
    patched.schedule_sync_retry.assert_not_called()
