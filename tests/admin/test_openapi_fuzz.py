"""schemathesis against the daemon's /openapi.json: no 500 anywhere, and no route but
health answering without the token. Bounded examples keep it fast."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from tests.admin.conftest import TOKEN, AdminDaemon, DaemonMaker, active

EXAMPLES = 6
OPEN = {"/healthz", "/readyz"}


def fuzz(url: str, document: dict[str, Any]) -> list[str]:
    """Runs in a thread: schemathesis calls synchronously while the daemon serves."""
    schema = schemathesis.openapi.from_dict(document)
    problems: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        _fuzz_one(url, operation, problems)
    assert len(operations) >= 15
    return problems


def _fuzz_one(url: str, operation: Any, problems: list[str]) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        answer = case.call(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"})
        if answer.status_code >= 500:
            problems.append(f"{case.method} {case.formatted_path}: {answer.status_code}")
        anonymous = case.call(base_url=url, headers={"Authorization": ""})
        if operation.path not in OPEN and anonymous.status_code != 401:
            problems.append(f"{case.method} {case.formatted_path} answered "
                            f"{anonymous.status_code} without the token")

    check()


async def test_schemathesis_finds_no_500_and_no_open_route(start_daemon: DaemonMaker) -> None:
    # Buckets big enough for a fuzzer: its requests are answered by the routes, not 429.
    daemon = await active(await start_daemon(admin_read_burst=100_000,
                                             admin_action_burst=100_000,
                                             admin_failed_auth_burst=100_000))
    async with daemon.client() as api:
        document = (await api.get("/openapi.json")).json()
    problems = await asyncio.to_thread(fuzz, daemon.url, document)
    assert problems == []


async def test_the_openapi_document_lists_the_contract(daemon: AdminDaemon) -> None:
    async with daemon.client() as api:
        paths = set((await api.get("/openapi.json")).json()["paths"])
    assert {"/api/overview", "/api/keys", "/api/keys/{sync_type}/{group_id}",
            "/api/keys/{sync_type}/{group_id}/retry", "/api/bulk-retry/preview",
            "/api/bulk-retry", "/api/bulk-jobs", "/api/bulk-jobs/{job_id}",
            "/api/bulk-jobs/{job_id}/cancel", "/api/resync/preview", "/api/resync",
            "/api/services/{name}/pause", "/api/services/{name}/resume",
            "/api/services/{name}/breaker/reset", "/healthz", "/readyz", "/metrics"} <= paths
    assert httpx.__version__
