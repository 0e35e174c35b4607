"""Dashboard sign-in: the admin token is exchanged for an HttpOnly, SameSite=Strict
session cookie; logout revokes it; the token never appears in a page or a log."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from core.admin.web.router import install_dashboard
from core.admin.web.sessions import SESSION_COOKIE, SessionStore

TOKEN = "unit-test-admin-token-abcdef012345"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_session_expires_and_a_revoked_one_is_gone() -> None:
    clock = Clock()
    store = SessionStore(ttl_seconds=60, monotonic=clock)
    kept, revoked = store.create(), store.create()
    store.revoke(revoked.id)
    assert store.get(kept.id) == kept
    assert store.get(revoked.id) is None
    clock.now = 61
    assert store.get(kept.id) is None


def test_the_csrf_token_must_match_the_sessions_own() -> None:
    store = SessionStore()
    one, other = store.create(), store.create()
    assert store.csrf_ok(one, one.csrf)
    assert not store.csrf_ok(one, other.csrf)
    assert not store.csrf_ok(one, None)


def dashboard(base_url: str = "http://admin") -> httpx.AsyncClient:
    app = FastAPI()
    install_dashboard(app, SecretStr(TOKEN))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


async def login(http: httpx.AsyncClient, token: str, **headers: str) -> httpx.Response:
    return await http.post("/login", data={"token": token}, headers=headers)


@pytest.mark.parametrize(("base_url", "secure"), [("http://admin", False), ("https://admin", True)])
async def test_login_answers_an_httponly_samesite_strict_cookie(
    base_url: str, secure: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async with dashboard(base_url) as http:
        answer = await login(http, TOKEN)
        page = await http.get("/")

    cookie = answer.headers["set-cookie"]
    assert answer.status_code == 303
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert ("Secure" in cookie) is secure
    assert TOKEN not in cookie
    assert page.status_code == 200
    assert 'name="csrf-token"' in page.text
    assert TOKEN not in page.text
    assert TOKEN not in caplog.text


async def test_a_wrong_token_or_another_sites_form_gets_no_session() -> None:
    async with dashboard() as http:
        wrong = await login(http, "guess")
        forged = await login(http, TOKEN, origin="https://evil.example")
        page = await http.get("/")

    assert wrong.status_code == 401
    assert "not the admin token" in wrong.text
    assert forged.status_code == 403
    assert "set-cookie" not in wrong.headers
    assert "set-cookie" not in forged.headers
    assert page.status_code == 303
    assert page.headers["location"] == "/login"


async def test_logout_needs_the_csrf_token_and_then_revokes_the_session() -> None:
    async with dashboard() as http:
        await login(http, TOKEN)
        session = http.cookies[SESSION_COOKIE]
        page = (await http.get("/")).text
        csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]

        refused = await http.post("/logout", data={"csrf_token": "wrong"})
        still_in = await http.get("/")
        done = await http.post("/logout", data={"csrf_token": csrf})
        http.cookies.set(SESSION_COOKIE, session)  # replaying the old cookie does not help
        after = await http.get("/")

    assert refused.status_code == 403
    assert still_in.status_code == 200
    assert done.status_code == 303
    assert after.status_code == 303
