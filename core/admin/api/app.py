"""The admin API application: ``create_app(service, settings, ...)``.

Everything but /healthz and /readyz needs an operator (``auth.require_operator``);
errors are problem details; /openapi.json describes it (and needs the token too).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from core.admin.api import health, history_routes, problems, push_routes, routes
from core.admin.api import metrics as metrics_route
from core.admin.api.auth import AuthCheck, require_operator
from core.admin.api.document import truthful
from core.admin.api.guard import availability_for, install_guard
from core.admin.api.headers import AnswerHeaders
from core.admin.service import AdminService
from core.admin.web.router import install_dashboard
from core.admin.web.sessions import session_operator
from core.config import Settings

TITLE = "groupsync admin API"


def create_app(
    service: AdminService,
    settings: Settings,
    *,
    engine: AsyncEngine | None = None,
    auth_checks: Sequence[AuthCheck] = (),
) -> FastAPI:
    app = FastAPI(title=TITLE, version="1", openapi_url=None, docs_url=None, redoc_url=None,
                  generate_unique_id_function=lambda route: route.name)
    app.state.service = service
    app.state.settings = settings
    app.state.admin_token = (
        settings.admin_token.get_secret_value() if settings.admin_token else None
    )
    app.state.auth_checks = [*auth_checks, session_operator]
    bound: Any = engine if engine is not None else service.session_factory.kw["bind"]
    problems.install(app)
    app.include_router(routes.router)
    app.include_router(history_routes.router)
    app.include_router(push_routes.router)
    install_dashboard(app, settings.admin_token)
    install_guard(app, settings, lambda: availability_for(service))

    app.add_middleware(AnswerHeaders, role=service.role)  # outermost of ours

    @app.get("/healthz", tags=["health"], summary="The process answers")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "role": service.role()}

    @app.get("/readyz", tags=["health"], summary="Database reachable, schema at head, role",
             responses={503: {"description": "not ready"}})
    async def readyz() -> JSONResponse:
        ready, report = await health.readiness(bound, settings.database_url, service)
        return JSONResponse({"status": "ready" if ready else "not ready", **report},
                            status_code=200 if ready else 503)

    @app.get("/metrics", tags=["metrics"], summary="Prometheus metrics",
             dependencies=[Depends(require_operator)],
             response_class=Response)
    async def metrics() -> Response:
        return Response(await metrics_route.render(service),
                        media_type=metrics_route.content_type())

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_operator)])
    async def openapi() -> JSONResponse:
        return JSONResponse(truthful(app.openapi()))

    return app
