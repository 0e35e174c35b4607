"""Every route but health needs the bearer token; a public bind without one is refused."""

from __future__ import annotations

import pytest

from core.admin.face import AdminFace
from core.config import load_settings
from core.errors import ConfigError
from tests.admin.conftest import AdminDaemon

PROTECTED = ["/api/overview", "/api/keys", "/api/bulk-jobs", "/metrics", "/openapi.json"]


@pytest.mark.parametrize("path", PROTECTED)
async def test_401_without_or_with_a_wrong_token_200_with_it(
    daemon: AdminDaemon, path: str
) -> None:
    async with daemon.client(token=None) as anonymous, daemon.client(token="wrong") as wrong, \
            daemon.client() as operator:
        missing = await anonymous.get(path)
        bad = await wrong.get(path)
        good = await operator.get(path)
    assert (missing.status_code, bad.status_code, good.status_code) == (401, 401, 200)
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 401
    assert "test-admin-token" not in bad.text


async def test_health_answers_without_a_token(daemon: AdminDaemon) -> None:
    async with daemon.client(token=None) as anonymous:
        alive = await anonymous.get("/healthz")
        ready = await anonymous.get("/readyz")
    assert alive.status_code == 200
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"
    assert ready.json()["schema"] == "head"
    assert ready.json()["role"] == "active"


def test_a_public_bind_without_a_token_refuses_to_start() -> None:
    settings = load_settings(admin_host="0.0.0.0", admin_token=None)
    with pytest.raises(ConfigError, match="ADMIN_TOKEN"):
        AdminFace(settings)


def test_a_loopback_bind_without_a_token_starts() -> None:
    AdminFace(load_settings(admin_host="127.0.0.1", admin_token=None))
