"""Registering the daemon's background interval jobs (calendar changes, drift sweep) one way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from core.engine.running.context import Runtime


def add_periodic_job(
    scheduler: BaseScheduler,
    job: Callable[[Runtime], Awaitable[None]],
    rt: Runtime,
    job_id: str,
    every_seconds: float,
) -> None:
    scheduler.add_job(
        job,
        "interval",
        args=[rt],
        seconds=rt.time_scale.seconds(every_seconds),
        id=job_id,
        replace_existing=True,
        coalesce=True,  # a tick that could not run on time runs once, not many times
        max_instances=1,
        misfire_grace_time=None,
    )
