"""GET /api/history over loopback (issue 23): the rollup rows as series, every range,
the SVG on request, problem+json for what it refuses."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.db.session import SessionFactory
from core.history import store
from core.history.grid import HOUR, MINUTE, Grid
from core.history.tally import Entry
from tests.admin.conftest import AdminDaemon

LABEL = "apitest:ok"  # no run of the daemon itself counts under it


async def test_the_rows_of_the_last_minutes_are_the_series_points(
    daemon: AdminDaemon, admin_sessions: SessionFactory
) -> None:
    grid = Grid(daemon.settings.time_scale)
    assert daemon.face.service is not None
    minute = grid.start(daemon.face.service.clock.now()) - grid.width("minute") * 3
    await store.flush(admin_sessions, [Entry(minute, "runs", LABEL, 7, 7),
                                       Entry(minute, "owed", "apitest", 9, 3)], grid)
    async with daemon.client() as api:
        answer = await api.get("/api/history", params={"range": "1h"})
        month = await api.get("/api/history", params={"range": "14d", "series": "runs"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [s["name"] for s in body["series"]] == [
        "runs", "calls", "rate_limit_waits", "owed", "latency"]
    runs, owed = body["series"][0], body["series"][3]
    assert len(runs["points"]) == 60
    point = next(p for p in runs["points"] if datetime.fromisoformat(p["at"]) == minute)
    assert point["values"][LABEL] == 7
    assert next(p for p in owed["points"]
                if datetime.fromisoformat(p["at"]) == minute)["values"]["apitest"] == 3
    hourly = month.json()["series"][0]
    assert len(hourly["points"]) == 336
    assert hourly["totals"][LABEL] == 7  # the hour row holds the same count
    assert body["step_seconds"] == grid.width("minute").total_seconds()


async def test_the_chart_comes_as_svg_when_asked(daemon: AdminDaemon) -> None:
    async with daemon.client() as api:
        answer = await api.get("/api/history", params={"series": "owed", "chart": "svg"})
    (owed,) = answer.json()["series"]
    assert owed["svg"].startswith("<svg")
    assert "Owed keys" in owed["svg"]


async def test_a_range_or_series_it_does_not_know_is_a_problem_and_no_token_401(
    daemon: AdminDaemon,
) -> None:
    async with daemon.client() as api:
        bad_range = await api.get("/api/history", params={"range": "2h"})
        bad_series = await api.get("/api/history", params={"series": "nope"})
    async with daemon.client(token=None) as anonymous:
        refused = await anonymous.get("/api/history")
    for answer, status in ((bad_range, 422), (bad_series, 422), (refused, 401)):
        assert answer.status_code == status
        assert answer.headers["content-type"].startswith("application/problem+json")


async def test_the_daemon_prunes_rows_past_their_retention(
    daemon: AdminDaemon, admin_sessions: SessionFactory
) -> None:
    grid = Grid(daemon.settings.time_scale)
    now = datetime.now().astimezone()
    old = grid.start(now - grid.scaled(15 * 86400))
    await store.flush(admin_sessions, [Entry(old, "runs", LABEL, 1, 1)], grid)
    await store.prune(admin_sessions, now, grid, 14, 90)  # (or the daemon's own, first)
    since = old - timedelta(days=1)
    minutes = await store.read(admin_sessions, MINUTE, ["runs"], since, now)
    hours = await store.read(admin_sessions, HOUR, ["runs"], since, now)
    assert [r.label for r in minutes if r.label == LABEL] == []
    assert [r.label for r in hours if r.label == LABEL] == [LABEL]  # kept for 90 days
