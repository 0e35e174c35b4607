"""Periodic background work of the active daemon (DESIGN §4, background lane): the drift
sweep, and the Calendar incremental sync every CALENDAR_CHANGES_SECONDS, which imports
attendees' answers and owes repairs of people's edits (core/engine/loops/calendar_changes.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.engine.loops.calendar_changes import CALENDAR_CHANGES_JOB, calendar_changes_job
from core.engine.loops.periodic_jobs import add_periodic_job

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from core.engine.running.context import Runtime


def schedule_periodic(scheduler: BaseScheduler, rt: Runtime) -> None:
    from core.engine.loops.drift_sweep import schedule_drift_sweep

    schedule_drift_sweep(scheduler, rt)
    add_periodic_job(scheduler, calendar_changes_job, rt, CALENDAR_CHANGES_JOB,
                     rt.settings.calendar_changes_seconds)
