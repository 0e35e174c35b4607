"""The sandbox's admin-API fault injection (a middleware only test daemons load)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from core.sandbox.admin_faults import AdminFaultInjection, AdminFaults, InjectedFault


def app_with_faults(faults: AdminFaults) -> tuple[FastAPI, list[str]]:
    performed: list[str] = []
    app = FastAPI()
    app.state.admin_token = "right-token"

    @app.post("/api/keys/x/1/retry", status_code=202)
    async def retry() -> dict[str, bool]:
        performed.append("retry")
        return {"ok": True}

    app.add_middleware(AdminFaultInjection, faults=faults)
    return app, performed


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin",
                             headers={"Authorization": "Bearer right-token"})


async def test_an_injected_fault_after_the_action_performs_it_and_loses_the_answer() -> None:
    faults = AdminFaults()
    faults.add(InjectedFault(lane="actions", status=503, count=1, after=True))
    app, performed = app_with_faults(faults)
    async with client(app) as http:
        lost = await http.post("/api/keys/x/1/retry")
        second = await http.post("/api/keys/x/1/retry")
    assert lost.status_code == 503
    assert lost.headers["Retry-After"] == "1"
    assert second.status_code == 202
    assert performed == ["retry", "retry"]  # the API below decides, by Idempotency-Key
    assert faults.active() == []


async def test_the_control_routes_need_the_token_and_validate() -> None:
    app, performed = app_with_faults(AdminFaults())
    async with client(app) as http:
        added = await http.post("/_test/faults", json={"lane": "reads", "count": 2})
        bad = await http.post("/_test/faults", json={"lane": "writes"})
        listed = await http.get("/_test/faults")
        anonymous = await http.get("/_test/faults", headers={"Authorization": ""})
        cleared = await http.delete("/_test/faults")
    assert added.status_code == 201
    assert bad.status_code == 422
    assert [f["count"] for f in listed.json()] == [2]
    assert anonymous.status_code == 401
    assert cleared.json() == {"cleared": 1}
    assert performed == []
