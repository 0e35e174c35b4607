"""The admin service layer seen through a remote daemon's HTTP API (``--api URL``).

Same method names and results as ``AdminService`` for what the CLI uses; problem details
come back as the same ``AdminError`` types the local layer raises.
"""

from __future__ import annotations

from typing import Any

import httpx

from core.admin.attention import AttentionQuery
from core.admin.bulk import BulkScope
from core.admin.errors import AdminError, Conflict, Invalid, NotFound
from core.admin.keys import KeyFilter

ERRORS: dict[int, type[AdminError]] = {404: NotFound, 409: Conflict, 422: Invalid}


class ApiError(AdminError):
    """The API refused or failed for a reason the local layer has no type for."""


class ApiClient:
    def __init__(self, base_url: str, token: str | None, *, timeout: float = 15.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers,
                                       timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach the admin API at {self._http.base_url}: "
                           f"{type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            raise _problem(response)
        return response.json()

    # ---- the AdminService surface the CLI uses -----------------------------------------------
    async def overview(self) -> dict[str, Any]:
        return dict(await self._call("GET", "/api/overview"))

    async def list_keys(self, where: KeyFilter, limit: int = 50, offset: int = 0
                        ) -> dict[str, Any]:
        params: dict[str, Any] = {**where.to_json(), "limit": limit, "offset": offset}
        return dict(await self._call("GET", "/api/keys", params=params))

    async def retry(self, sync_type: str, group_id: int, *, via: str, who: str | None = None
                    ) -> dict[str, Any]:
        return dict(await self._call("POST", f"/api/keys/{sync_type}/{group_id}/retry"))

    async def bulk_preview(self, scope: BulkScope) -> dict[str, Any]:
        return dict(await self._call("POST", "/api/bulk-retry/preview", json=scope.to_json()))

    async def bulk_start(self, scope: BulkScope, *, via: str, who: str | None = None
                         ) -> dict[str, Any]:
        body = await self._call("POST", "/api/bulk-retry", json={**scope.to_json(),
                                                                  "confirm": True})
        return dict(body["job"])

    async def bulk_jobs(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/api/bulk-jobs"))["items"])

    async def bulk_job(self, job_id: int) -> dict[str, Any]:
        return dict(await self._call("GET", f"/api/bulk-jobs/{job_id}"))

    async def bulk_cancel(self, job_id: int, *, via: str, who: str | None = None
                          ) -> dict[str, Any]:
        return dict(await self._call("POST", f"/api/bulk-jobs/{job_id}/cancel"))

    async def resync_preview(self, group_id: int) -> dict[str, Any]:
        return dict(await self._call("POST", "/api/resync/preview", json={"group_id": group_id}))

    async def resync(self, group_id: int, *, via: str, who: str | None = None
                     ) -> dict[str, Any]:
        return dict(await self._call("POST", "/api/resync",
                                     json={"group_id": group_id, "confirm": True}))

    async def pause(self, service: str, *, via: str, reason: str | None = None,
                    who: str | None = None, for_seconds: int | None = None
                    ) -> dict[str, Any]:
        fields = {"reason": reason, "for_seconds": for_seconds}
        body = {k: v for k, v in fields.items() if v is not None} or None
        return dict(await self._call("POST", f"/api/services/{service}/pause", json=body))

    async def resume(self, service: str, *, via: str, who: str | None = None
                     ) -> dict[str, Any]:
        return dict(await self._call("POST", f"/api/services/{service}/resume"))

    async def reset_breaker(self, service: str, *, via: str, who: str | None = None
                            ) -> dict[str, Any]:
        return dict(await self._call("POST", f"/api/services/{service}/breaker/reset"))

    async def held(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/api/held"))["items"])

    async def attention(self, query: AttentionQuery) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": query.limit, "offset": query.offset}
        if query.text:
            params["q"] = query.text
        if query.since is not None:
            params["since"] = query.since.isoformat()
        return dict(await self._call("GET", "/api/attention", params=params))

    async def acknowledge(self, sync_type: str, group_id: int, note: str, *, via: str,
                          who: str | None = None) -> dict[str, Any]:
        # The daemon names the caller by its address; ``who`` (user@host) goes as ``by``.
        body = {"note": note, **({"by": who[:80]} if who else {})}
        return dict(await self._call("POST", f"/api/attention/{sync_type}/{group_id}/ack",
                                     json=body))

    async def approve(self, sync_type: str, group_id: int, *, via: str, who: str | None = None
                      ) -> dict[str, Any]:
        return dict(await self._call("POST", f"/api/held/{sync_type}/{group_id}/approve"))

    async def reject(self, sync_type: str, group_id: int, *, via: str, who: str | None = None
                     ) -> dict[str, Any]:
        return dict(await self._call("POST", f"/api/held/{sync_type}/{group_id}/reject"))


def _problem(response: httpx.Response) -> AdminError:
    try:
        detail = str(response.json().get("detail") or response.reason_phrase)
    except ValueError:
        detail = response.reason_phrase
    if response.status_code == 401:
        return ApiError(f"the admin API refused the token (401): {detail}; set ADMIN_TOKEN")
    kind = ERRORS.get(response.status_code, ApiError)
    return kind(f"{detail} (HTTP {response.status_code})")
