"""The dashboard's routes: the page, login, logout and its static files.

``install_dashboard(app, admin_token)`` is the one call the admin API's app factory makes:
it keeps a ``SessionStore`` on ``app.state.sessions`` (which the auth dependency reads to
accept a session cookie alongside the bearer token), adds these routes and serves the
static files. No Node build step: a Jinja2 template and one vanilla JavaScript file.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import SecretStr

from core.admin.web.sessions import SESSION_COOKIE, Session, SessionStore, token_matches
from core.observability import get_logger
from core.syncers import types

HERE = Path(__file__).resolve().parent
STATIC_PATH = "/dashboard/static"
# Scripts and styles only from this origin; no inline script, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
MAX_FORM_BYTES = 8192

log = get_logger("groupsync.admin.web")
templates = Jinja2Templates(directory=str(HERE / "templates"))


def install_dashboard(
    app: FastAPI, admin_token: SecretStr | None, sessions: SessionStore | None = None
) -> SessionStore:
    store = sessions or SessionStore()
    app.state.sessions = store
    app.include_router(dashboard_router(admin_token, store))
    app.mount(STATIC_PATH, StaticFiles(directory=str(HERE / "static")), name="dashboard-static")
    return store


def current_session(request: Request) -> Session | None:
    store: SessionStore | None = getattr(request.app.state, "sessions", None)
    if store is None:
        return None
    return store.get(request.cookies.get(SESSION_COOKIE))


def dashboard_router(admin_token: SecretStr | None, store: SessionStore) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    async def page(request: Request) -> Response:
        session = current_session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        return _page(request, "dashboard.html", {"csrf_token": session.csrf,
                                                 "scopes": types.filter_choices()})

    @router.get("/groups/{group_id}", response_class=HTMLResponse)
    async def group_page(request: Request, group_id: str) -> Response:
        # The page reads everything through the API (group.js); an id that names no group
        # is said there, as the API's 404 says it.
        session = current_session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        shown = group_id if group_id.isdigit() and len(group_id) < 11 else "?"
        return _page(request, "group.html", {"csrf_token": session.csrf, "group_id": shown})

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> Response:
        if current_session(request) is not None:
            return RedirectResponse("/", status_code=303)
        return _page(request, "login.html", {"error": None})

    @router.post("/login")
    async def login(request: Request) -> Response:
        if not _same_origin(request):
            return _page(request, "login.html", {"error": "Sign-in from another site refused."},
                         status_code=403)
        form = await _form(request)
        if form is None or not token_matches(admin_token, form.get("token")):
            # Logged once per streak of failures by the rate limiter (with the address).
            message = (
                "No ADMIN_TOKEN is configured, so the dashboard cannot be used."
                if admin_token is None else "That token is not the admin token."
            )
            return _page(request, "login.html", {"error": message}, status_code=401)
        session = store.create()
        log.info("dashboard_login", client=_client(request))
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE, session.id, httponly=True, samesite="strict",
            secure=request.url.scheme == "https", path="/",
            max_age=int(store.ttl_seconds),
        )
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        session = current_session(request)
        form = await _form(request) or {}
        if session is not None:
            if not _same_origin(request) or not store.csrf_ok(session, form.get("csrf_token")):
                return Response("CSRF token missing or wrong", status_code=403,
                                media_type="text/plain")
            store.revoke(session.id)
            log.info("dashboard_logout", client=_client(request))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    return router


def _page(request: Request, name: str, context: dict[str, object],
          status_code: int = 200) -> Response:
    response = templates.TemplateResponse(
        request, name, {"static": STATIC_PATH, **context}, status_code=status_code
    )
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


async def _form(request: Request) -> dict[str, str] | None:
    """A urlencoded form body (no multipart parser needed for two small forms)."""
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        return None
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return None
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


def _same_origin(request: Request) -> bool:
    """Browsers send Origin on a POST; when they do it must be this server."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host", request.url.netloc)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"
