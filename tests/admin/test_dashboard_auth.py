"""The dashboard's session cookie opens the admin API alongside the bearer token, but a
mutating request also needs the session's CSRF token; the API's availability answers."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from core.admin.api.guard import availability_of
from core.admin.api.ratelimit import Availability
from tests.admin.conftest import TOKEN, AdminDaemon


async def signed_in(daemon: AdminDaemon) -> tuple[httpx.AsyncClient, str]:
    browser = daemon.client(token=None, follow_redirects=False)
    await browser.post("/login", data={"token": TOKEN})
    page = (await browser.get("/")).text
    csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    return browser, csrf


async def test_a_session_reads_but_mutates_only_with_its_csrf_token(daemon: AdminDaemon) -> None:
    browser, csrf = await signed_in(daemon)
    async with contextlib.aclosing(browser), daemon.client() as script:
        read = await browser.get("/api/overview")
        forged = await browser.post("/api/services/discord/pause")
        wrong = await browser.post("/api/services/discord/pause",
                                   headers={"X-CSRF-Token": csrf[::-1]})
        paused_after_forgery = (await script.get("/api/overview")).json()["services"]
        done = await browser.post("/api/services/discord/pause", headers={"X-CSRF-Token": csrf})
        bearer = await script.post("/api/services/discord/resume")

    assert read.status_code == 200
    assert forged.status_code == 403
    assert forged.headers["content-type"] == "application/problem+json"
    assert "X-CSRF-Token" in forged.json()["detail"]
    assert wrong.status_code == 403
    assert {s["name"]: s["paused"] for s in paused_after_forgery}["discord"] is False
    assert done.status_code == 200
    assert bearer.status_code == 200  # the bearer token needs no CSRF token


async def test_after_logout_the_cookie_opens_nothing(daemon: AdminDaemon) -> None:
    browser, csrf = await signed_in(daemon)
    async with contextlib.aclosing(browser):
        cookie = browser.cookies["groupsync_session"]
        await browser.post("/logout", data={"csrf_token": csrf})
        browser.cookies.set("groupsync_session", cookie)
        answer = await browser.get("/api/overview")
    assert answer.status_code == 401


@pytest.mark.parametrize(
    ("role", "database_ok", "expected"),
    [
        ("active", True, Availability.READY),
        ("standby", True, Availability.STANDBY),
        ("none", True, Availability.STARTING),
        ("active", False, Availability.DATABASE_AWAY),
        ("standby", False, Availability.DATABASE_AWAY),
    ],
)
def test_a_daemons_role_and_database_decide_what_its_api_serves(
    role: str, database_ok: bool, expected: Availability
) -> None:
    assert availability_of(role, database_ok) is expected
