"""GET /api/history: the rollup series kept in SQL (issue 23), over 1 h, 24 h, 14 d or 90 d."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Depends, Query, Request

from core.admin.api.auth import require_operator
from core.admin.history import history
from core.admin.service import AdminService
from core.history.series import RANGES, SERIES

RangeName = Literal["1h", "24h", "14d", "90d"]
SeriesName = Literal["runs", "calls", "rate_limit_waits", "owed", "latency"]
assert set(get_args(RangeName)) == set(RANGES)
assert set(get_args(SeriesName)) == set(SERIES)

router = APIRouter(prefix="/api", dependencies=[Depends(require_operator)])


@router.get("/history", summary="History kept in SQL: per-minute and per-hour series")
async def history_series(
    request: Request,
    range_name: Annotated[RangeName, Query(alias="range", description=(
        "1h: 60 one-minute points; 24h: 96 of 15 minutes; 14d: 336 hourly; 90d: 90 daily "
        "(scaled by TIME_SCALE)"))] = "1h",
    series: Annotated[SeriesName | None, Query(description=(
        "one series (default: all): runs by 'sync type:outcome', calls by "
        "'service:status', rate_limit_waits by 'service:lane', owed keys by sync type, "
        "latency (commit to applied, ms) as p50 and p99"))] = None,
    chart: Annotated[Literal["svg"] | None, Query(
        description="svg: each series also carries its chart as SVG markup")] = None,
) -> dict[str, Any]:
    service: AdminService = request.app.state.service
    return await history(service.session_factory, service.settings.time_scale,
                         service.clock.now(), range_name,
                         [series] if series else None, svg=chart == "svg")
