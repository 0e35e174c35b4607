"""The admin API against an attacker, over loopback with a real daemon: limits keyed on
what a client cannot choose, one log line per failure streak, bounded bodies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from core.admin.web.sessions import SESSION_COOKIE
from tests.admin.conftest import TOKEN, AdminDaemon

TEN_MB = 10 * 1024 * 1024
CHUNK = b"x" * 65536


def made_up_cookie(i: int) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}=x{secrets.token_hex(8)}{i}"}


async def signed_in(daemon: AdminDaemon) -> tuple[httpx.AsyncClient, str]:
    """A browser's session: the cookie the daemon issued and the page's CSRF token."""
    browser = httpx.AsyncClient(base_url=daemon.url, timeout=10)
    answer = await browser.post("/login", data={"token": TOKEN})
    assert answer.status_code == 303
    page = (await browser.get("/")).text
    csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    return browser, csrf


def auth_failures(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The daemon's log lines (its handler writes to the captured stream)."""
    captured = capsys.readouterr()
    return [line for line in (captured.out + captured.err).splitlines()
            if "admin_auth_failed" in line]


async def test_wrong_sign_ins_with_made_up_cookies_are_slowed_and_logged_once(
    daemon: AdminDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    browser, csrf = await signed_in(daemon)
    guesses = [f"guess-{secrets.token_hex(6)}" for _ in range(60)]
    async with httpx.AsyncClient(base_url=daemon.url, timeout=10) as attacker:
        answers = [await attacker.post("/login", data={"token": guess},
                                       headers=made_up_cookie(i))
                   for i, guess in enumerate(guesses)]
    try:
        read = await browser.get("/api/overview")
        action = await browser.post("/api/services/discord/pause", json={},
                                    headers={"X-CSRF-Token": csrf})
    finally:
        await browser.aclose()

    statuses = [a.status_code for a in answers]
    assert statuses[:10] == [401] * 10  # the failed-auth bucket's burst
    assert statuses.count(429) >= 45  # then slowed, whatever cookie is made up
    limited = next(a for a in answers if a.status_code == 429)
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["content-type"].startswith("text/html")  # a page, not JSON
    assert "try again in" in limited.text
    # Someone else's failures on the same address do not slow a signed-in operator.
    assert (read.status_code, action.status_code) == (200, 200)
    lines = auth_failures(capsys)
    assert len(lines) == 1
    assert "127.0.0.1" in lines[0]
    assert not any(guess in lines[0] for guess in guesses)


async def test_wrong_bearer_tokens_with_rotating_cookies_get_429_and_the_right_one_works(
    daemon: AdminDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = [f"wrong-{secrets.token_hex(8)}" for _ in range(40)]
    async with httpx.AsyncClient(base_url=daemon.url, timeout=10) as attacker:
        answers = [await attacker.get("/api/overview", headers={
            "Authorization": f"Bearer {token}", **made_up_cookie(i)})
            for i, token in enumerate(wrong)]
        anonymous = await attacker.get("/api/overview")
    async with daemon.client() as operator:
        fine = [(await operator.get("/api/overview")).status_code for _ in range(5)]

    statuses = [a.status_code for a in answers]
    assert statuses[:10] == [401] * 10
    assert statuses.count(429) >= 25
    assert anonymous.status_code == 429
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert anonymous.json()["lane"] == "failed_auth"
    assert fine == [200] * 5
    lines = auth_failures(capsys)
    assert len(lines) == 1
    assert not any(token in lines[0] for token in wrong)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


async def post_big(daemon: AdminDaemon, path: str, content_type: str, *,
                   declared: bool) -> Answer:
    """POST 10 MB as a client that keeps sending while it reads: the server may answer
    (and close) long before the body is through, which an HTTP library reports as an
    error instead of the answer. The same 64 KiB chunk each time: no 10 MB in this
    process either."""
    parts = urlsplit(daemon.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    framing = f"Content-Length: {TEN_MB}" if declared else "Transfer-Encoding: chunked"
    writer.write((f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: "
                  f"{content_type}\r\nAuthorization: Bearer {TOKEN}\r\n{framing}\r\n"
                  "Connection: close\r\n\r\n").encode())

    async def send_body() -> None:
        chunk = CHUNK if declared else b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)
        with contextlib.suppress(ConnectionError):
            for _ in range(TEN_MB // len(CHUNK)):
                writer.write(chunk)
                await writer.drain()
            if not declared:
                writer.write(b"0\r\n\r\n")
                await writer.drain()

    sending = asyncio.create_task(send_body())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=20)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:] if line)}
        body = await asyncio.wait_for(
            reader.readexactly(int(headers.get("content-length", "0"))), timeout=20)
    finally:
        sending.cancel()
        with contextlib.suppress(BaseException):
            await sending
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return Answer(int(lines[0].split()[1]), headers, body.decode())


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_10_mb_body_is_refused_with_413_before_it_is_read(
    daemon: AdminDaemon, declared: bool
) -> None:
    # Both routes once before the reading: their first answer warms caches of its own
    # (a first problem body, a first JSON route) that are no body being read.
    for path, kind in (("/login", "application/x-www-form-urlencoded"),
                       ("/api/resync/preview", "application/json")):
        await post_big(daemon, path, kind, declared=declared)
    before = rss_kib()
    answers = []
    for _ in range(3):
        for path, kind in (("/login", "application/x-www-form-urlencoded"),
                           ("/api/resync/preview", "application/json")):
            answers.append(await post_big(daemon, path, kind, declared=declared))
    await asyncio.sleep(0.2)
    grown = rss_kib() - before

    assert {a.status_code for a in answers} == {413}
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers)
    assert "ADMIN_MAX_BODY_BYTES" in answers[0].json()["detail"]
    assert grown < 2048, f"RSS grew by {grown} KiB"


async def test_every_answer_names_the_role_and_is_not_cached(daemon: AdminDaemon) -> None:
    """Answers of routes, of the auth guard and of the router itself carry both headers
    (set by a plain ASGI layer outside every other: ``core/admin/api/headers.py``)."""
    async with daemon.client() as api, daemon.client(token=None) as anonymous:
        answers = [await api.get("/api/overview"), await api.get("/api/no-such-route"),
                   await anonymous.get("/api/overview"), await anonymous.get("/healthz")]

    assert [a.status_code for a in answers] == [200, 404, 401, 200]
    assert {(a.headers["X-Groupsync-Role"], a.headers["Cache-Control"]) for a in answers} == {
        ("active", "no-store")}
