"""The OpenAPI document as the API really answers: ``truthful(document)``.

FastAPI describes what the route functions return; around them the admin API answers
more, and this adds it: every error is ``application/problem+json`` (the auth check, the
body cap, the rate limiter, the service layer, validation); each operation lists every
status it can return; the dashboard's own routes (``/``, ``/login``, ``/logout`` and the
static files) are described with their HTML and form bodies; and the bulk job links
(bulk-retry → its job → cancel) let a stateful client follow one into the next.
"""

from __future__ import annotations

import copy
from typing import Any

from core.syncers import types

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
}
WHY = {
    400: "the body could not be parsed (not JSON)",
    401: "no token, or a wrong one (a session cookie the daemon holds counts too)",
    403: "a signed-in page's request without its CSRF token",
    404: "no such key, group or bulk job",
    405: "method not allowed",
    409: "busy: the key runs or is due, the service holds it back, or the Idempotency-Key "
         "is in use",
    413: "the request body is larger than ADMIN_MAX_BODY_BYTES",
    422: "the request is not valid",
    429: "this client's bucket (reads, actions or failed authentications) is empty",
    503: "starting or standby (actions only), or the database does not answer",
}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
HTML = {"text/html": {"schema": {"type": "string"}}}
REDIRECT = {"description": "see Location", "headers": {
    "Location": {"schema": {"type": "string"}}}}


def problem(status: int, extra_headers: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": WHY.get(status, "error"),
        "content": {"application/problem+json": {"schema": PROBLEM_REF}},
    }
    if extra_headers:
        answer["headers"] = RETRY_AFTER
    return answer


def _errors(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    if path in ("/healthz", "/readyz"):
        return [413]
    codes = [401, 413]
    if path.startswith("/api/"):
        codes += [429, 503]
        if method == "post":
            codes += [400, 403, 404, 409, 422]
        elif operation.get("parameters"):
            codes += [404, 422]
    return codes


def truthful(document: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(document)
    document.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            for status in _errors(path, method, operation):
                responses[str(status)] = problem(status, extra_headers=status == 429)
    paths = document.setdefault("paths", {})
    paths.update(_dashboard_paths())
    _link_bulk_jobs(paths)
    _media_types(paths)
    _registry_enums(document)
    return document


def _registry_enums(document: dict[str, Any]) -> None:
    """The routes take sync types, services and scopes as strings the service layer
    checks against the registry (a type registered at start-up is valid): list them."""
    enums: dict[str, list[str]] = {"sync_type": list(types.names()), "name": list(types.services()),
             "service": list(types.scopes())}
    for item in document.get("paths", {}).values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") in ("path", "query") and parameter["name"] in enums:
                    _set_enum(parameter["schema"], enums[parameter["name"]])
    for schema in document.get("components", {}).get("schemas", {}).values():
        scope = schema.get("properties", {}).get("service")
        if scope is not None:
            _set_enum(scope, enums["service"])


def _set_enum(schema: dict[str, Any], values: list[str]) -> None:
    # A nullable field is anyOf [string, null]: the enum goes on its string branch.
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "string":
            branch["enum"] = values
            branch.pop("maxLength", None)


def _media_types(paths: dict[str, Any]) -> None:
    metrics = paths.get("/metrics", {}).get("get")
    if metrics is not None:
        metrics["responses"]["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
    readyz = paths.get("/readyz", {}).get("get")
    if readyz is not None:
        readyz["responses"]["503"] = {"description": "not ready", "content": {
            "application/json": {"schema": {"type": "object"}}}}


def _form(fields: dict[str, int]) -> dict[str, Any]:
    return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "required": list(fields),
        "properties": {name: {"type": "string", "maxLength": n} for name, n in fields.items()},
    }}}}


def _dashboard_paths() -> dict[str, Any]:
    page = {"description": "the page", "content": HTML}
    limited_page = {"description": WHY[429], "content": HTML, "headers": RETRY_AFTER}
    return {
        "/": {"get": {
            "operationId": "page", "tags": ["dashboard"], "summary": "The dashboard",
            "responses": {"200": page, "303": REDIRECT, "413": problem(413)},
        }},
        "/groups/{group_id}": {"get": {
            "operationId": "group_page", "tags": ["dashboard"],
            "summary": "One group's page (its data comes from /api/groups/{group_id})",
            "parameters": [{"name": "group_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": page, "303": REDIRECT, "413": problem(413)},
        }},
        "/login": {
            "get": {
                "operationId": "login_form", "tags": ["dashboard"], "summary": "Sign-in form",
                "responses": {"200": page, "303": REDIRECT, "413": problem(413),
                              "429": limited_page},
            },
            "post": {
                "operationId": "login", "tags": ["dashboard"],
                "summary": "Exchange the admin token for a session cookie",
                "requestBody": _form({"token": 512}),
                "responses": {
                    "303": REDIRECT,
                    "401": {"description": "not the admin token", "content": HTML},
                    "403": {"description": "a form posted from another site", "content": HTML},
                    "413": problem(413),
                    "429": limited_page,
                },
            },
        },
        "/logout": {"post": {
            "operationId": "logout", "tags": ["dashboard"], "summary": "End the session",
            "requestBody": _form({"csrf_token": 128}),
            "responses": {
                "303": REDIRECT,
                "403": {"description": WHY[403], "content": {
                    "text/plain": {"schema": {"type": "string"}}}},
                "413": problem(413),
            },
        }},
        "/dashboard/static/{path}": {"get": {
            "operationId": "static", "tags": ["dashboard"], "summary": "The page's files",
            "parameters": [{"name": "path", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "a file", "content": {
                    "text/css": {"schema": {"type": "string"}},
                    "text/javascript": {"schema": {"type": "string"}},
                }},
                "404": problem(404),
                "413": problem(413),
            },
        }},
    }


def _link_bulk_jobs(paths: dict[str, Any]) -> None:
    """bulk-retry → its job → cancel, for clients (and schemathesis) that follow links."""
    job_from_start = {"job_id": "$response.body#/job/id"}
    job_from_read = {"job_id": "$response.body#/id"}
    start = paths.get("/api/bulk-retry", {}).get("post")
    if start is not None:
        start["responses"]["202"]["links"] = {
            "ReadTheJob": {"operationId": "bulk_job", "parameters": job_from_start},
            "CancelTheJob": {"operationId": "bulk_cancel", "parameters": job_from_start},
        }
    read = paths.get("/api/bulk-jobs/{job_id}", {}).get("get")
    if read is not None:
        read["responses"]["200"]["links"] = {
            "CancelTheJob": {"operationId": "bulk_cancel", "parameters": job_from_read},
        }
