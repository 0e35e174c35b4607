"""schemathesis over the daemon's whole /openapi.json, against a real daemon on loopback:
every operation (the dashboard's /, /login, /logout and static files included), at least
100 examples each, checked for server errors, status codes, content types and response
schemas; then the stateful links bulk-retry → its job → cancel. Every route but health
refuses a caller without the token.

Bounded for CI: derandomized (the same examples every run), no shrinking phase, no
deadline. Its cost is the requests themselves (issue 26: over four minutes of a CI
worker per database), so the token refusal is asked on an operation's first examples,
not on all of them (it does not depend on the rest of the request). Each request opens
its own connection: a kept-alive one waited out the client's delayed ACK, 40 ms a
request.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.admin.conftest import TOKEN, AdminDaemon, DaemonMaker, active
from tests.admin.helpers import failing_keys

EXAMPLES = 100
ANONYMOUS_EXAMPLES = 10  # per operation: each asked again without the token
# About 2,500 requests per database: a minute on a quiet machine, more on a loaded one.
pytestmark = pytest.mark.timeout(600)
OPEN = {"/healthz", "/readyz", "/", "/login", "/logout", "/dashboard/static/{path}",
        "/groups/{group_id}"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
BOUNDED = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                   phases=[Phase.explicit, Phase.generate],
                   suppress_health_check=list(HealthCheck))


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def fuzz(url: str, document: dict[str, Any]) -> tuple[list[str], dict[str, int]]:
    """Runs in a thread: schemathesis calls synchronously while the daemon serves."""
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    counts: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        counts[operation.label] = _fuzz_one(url, operation, failures)
    return failures, counts


def _fuzz_one(url: str, operation: Any, failures: list[str]) -> int:
    calls = 0

    @BOUNDED
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        nonlocal calls
        calls += 1
        answer = case.call(base_url=url, headers=bearer(), allow_redirects=False)
        try:
            case.validate_response(answer, checks=CHECKS)
        except Exception as exc:  # every failure, not only the first: one line each
            failures.append(f"{operation.label} {answer.status_code}: {str(exc)[:300]}")
        if operation.path not in OPEN and calls <= ANONYMOUS_EXAMPLES:
            anonymous = case.call(base_url=url, headers={"Authorization": ""},
                                  allow_redirects=False)
            if anonymous.status_code != 401:
                failures.append(f"{operation.label} answered {anonymous.status_code} "
                                "without the token")

    check()
    # An operation with no inputs (or two enum values) has fewer distinct examples than
    # EXAMPLES: hypothesis stops when they are exhausted. Its examples are sent again, so
    # every operation answers at least EXAMPLES requests.
    replay = operation.as_strategy()
    while calls < EXAMPLES:
        _replay_one(url, operation, replay, failures)
        calls += 1
    return calls


def _replay_one(url: str, operation: Any, strategy: Any, failures: list[str]) -> None:
    @settings(BOUNDED, max_examples=1)
    @given(case=strategy)
    def once(case: Any) -> None:
        answer = case.call(base_url=url, headers=bearer(), allow_redirects=False)
        try:
            case.validate_response(answer, checks=CHECKS)
        except Exception as exc:
            failures.append(f"{operation.label} {answer.status_code}: {str(exc)[:300]}")

    once()


def stateful(url: str, document: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_dict(document)
    machine = schema.as_state_machine()

    class BulkJobs(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": url, "headers": bearer(), "allow_redirects": False}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None,
                              **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    BulkJobs.run(settings=settings(max_examples=25, stateful_step_count=6, deadline=None,
                                   database=None, derandomize=True,
                                   phases=[Phase.explicit, Phase.generate],
                                   suppress_health_check=list(HealthCheck)))


async def fuzzed_daemon(start_daemon: DaemonMaker) -> AdminDaemon:
    # Buckets big enough for a fuzzer: its requests are answered by the routes, not 429
    # (the limits have tests of their own).
    return await active(await start_daemon(
        admin_read_burst=1_000_000, admin_action_burst=1_000_000,
        admin_failed_auth_burst=1_000_000))


async def test_schemathesis_finds_no_contract_failure_in_any_operation(
    start_daemon: DaemonMaker,
) -> None:
    daemon = await fuzzed_daemon(start_daemon)
    assert daemon.face.service is not None
    await failing_keys(daemon.face.service.session_factory, 5)  # bulk jobs to follow
    async with daemon.client() as api:
        document = (await api.get("/openapi.json")).json()
    failures, counts = await asyncio.to_thread(fuzz, daemon.url, document)
    assert failures == []
    assert len(counts) >= 22
    assert {"POST /login", "POST /logout", "GET /", "GET /dashboard/static/{path}"} <= set(
        counts)
    assert min(counts.values()) >= EXAMPLES


async def test_the_bulk_job_links_hold_in_a_stateful_run(start_daemon: DaemonMaker) -> None:
    daemon = await fuzzed_daemon(start_daemon)
    assert daemon.face.service is not None
    await failing_keys(daemon.face.service.session_factory, 5)
    async with daemon.client() as api:
        document = (await api.get("/openapi.json")).json()
    links = document["paths"]["/api/bulk-retry"]["post"]["responses"]["202"]["links"]
    assert {link["operationId"] for link in links.values()} == {"bulk_job", "bulk_cancel"}
    await asyncio.to_thread(stateful, daemon.url, document)


async def test_the_openapi_document_lists_the_contract(daemon: AdminDaemon) -> None:
    async with daemon.client() as api:
        document = (await api.get("/openapi.json")).json()
    paths = set(document["paths"])
    assert {"/api/overview", "/api/keys", "/api/keys/{sync_type}/{group_id}",
            "/api/keys/{sync_type}/{group_id}/retry", "/api/bulk-retry/preview",
            "/api/bulk-retry", "/api/bulk-jobs", "/api/bulk-jobs/{job_id}",
            "/api/bulk-jobs/{job_id}/cancel", "/api/resync/preview", "/api/resync",
            "/api/services/{name}/pause", "/api/services/{name}/resume",
            "/api/services/{name}/breaker/reset", "/healthz", "/readyz", "/metrics",
            "/", "/login", "/logout", "/dashboard/static/{path}"} <= paths
    cancel = document["paths"]["/api/bulk-jobs/{job_id}/cancel"]["post"]["responses"]
    assert "409" in cancel
    assert set(cancel["409"]["content"]) == {"application/problem+json"}
    name = next(p for p in document["paths"]["/api/services/{name}/pause"]["post"]["parameters"]
                if p["name"] == "name")
    # The registry's services, sync types and scopes, listed where the routes take them.
    assert set(name["schema"]["enum"]) == {"discord", "calendar"}
    key = document["paths"]["/api/keys/{sync_type}/{group_id}"]["get"]["parameters"]
    sync_type = next(p for p in key if p["name"] == "sync_type")
    assert sync_type["schema"]["enum"] == ["discord", "calendar", "reminders", "rsvps"]
    scope = document["components"]["schemas"]["ScopeIn"]["properties"]["service"]
    assert {"discord", "calendar", "reminders", "rsvps"} == {
        *next(b for b in scope["anyOf"] if b.get("type") == "string")["enum"]}
    bulk = document["components"]["schemas"]["BulkIn"]["properties"]["confirm"]
    assert bulk.get("const") is True or bulk.get("enum") == [True]
