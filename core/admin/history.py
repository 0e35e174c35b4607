"""History for the faces (issue 23): the rollup series over a range, from SQL.

The same answer for the API (``GET /api/history``) and the dashboard's charts; the SVG
of each series is rendered here too when asked (``core.admin.charts``), so the page
needs no charting code and no network.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.admin.charts import render_svg, summary
from core.db.session import SessionFactory
from core.history import store
from core.history.grid import Grid
from core.history.series import RANGES, SERIES, build, step_starts


async def history(
    session_factory: SessionFactory,
    time_scale: float,
    now: datetime,
    range_name: str,
    names: list[str] | None = None,
    *,
    svg: bool = False,
) -> dict[str, Any]:
    chosen = RANGES[range_name]
    grid = Grid(time_scale)
    specs = [SERIES[n] for n in (names or list(SERIES))]
    starts = step_starts(now, grid, chosen)
    step = grid.width("minute") * chosen.step_minutes
    rows = await store.read(session_factory, chosen.resolution, [s.name for s in specs],
                            starts[0], starts[-1] + step)
    series = []
    for spec in specs:
        built = build(spec, rows, starts, step)
        if svg:
            built["svg"] = render_svg(built, range_name)
            built["summary"] = summary(built, range_name)  # the chart's text alternative
        series.append(built)
    return {
        "range": chosen.name,
        "resolution": chosen.resolution,
        "time_scale": time_scale,
        "step_seconds": step.total_seconds(),
        "from": starts[0].isoformat(),
        "to": (starts[-1] + step).isoformat(),
        "series": series,
    }
