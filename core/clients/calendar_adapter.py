"""CalendarPort over google-api-python-client (static discovery, service-account credentials).

Everything that touches the network or the disk (``build``, token refresh, ``execute``)
runs in a worker thread via ``asyncio.to_thread``; the event loop never blocks. httplib2
is not thread-safe, so each worker thread gets its own ``AuthorizedHttp`` over its own
``httplib2.Http`` and passes it to ``execute(http=...)``; the shared credentials are
refreshed under a lock.

The library's own retry (``num_retries``) sleeps up to 2**n s and ignores Retry-After, so
it is off: a 5xx or a dropped connection is retried here a couple of times with short
pauses, and a 429 / 403 rateLimitExceeded becomes ``RateLimitedError`` at once with the
server's Retry-After.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import google_auth_httplib2
import httplib2
from google.auth import exceptions as auth_exceptions
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from core import metrics, tracing
from core.clients.ports import CalendarChanges, WatchedChannel
from core.clients.probes import GOOGLE_SETTING, Probe, Verdict, probe_google_credentials
from core.clients.resilience import ResilienceConfig, ServiceGuard
from core.clients.status import ServiceStatus
from core.errors import (
    CredentialsRejectedError,
    NeedsAttentionError,
    RateLimitedError,
    SyncError,
    TransientError,
)
from core.lanes import Lane
from core.observability import get_logger

log = get_logger("core.clients.calendar")

SERVICE = "calendar"
# Quota refusals: classic errors[].reason, and google.rpc.ErrorInfo reasons in details[].
RATE_REASONS = frozenset({
    "rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED", "RESOURCE_EXHAUSTED",
})
PAGE_SIZE = 2500
# Google's token endpoint refusing the credentials themselves (RFC 6749 §5.2): a revoked
# or expired grant, an unknown or deleted OAuth client, a client not allowed this grant.
REJECTING_GRANT_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})

Make = Callable[[Any], Any]  # service resource → HttpRequest


@dataclass(frozen=True)
class CalendarOptions:
    """Already multiplied by the time scale."""

    endpoint: str
    resilience: ResilienceConfig
    http_timeout: float = 10.0  # per HTTP request, in the worker thread
    in_call_retries: int = 2  # for 5xx and dropped connections
    retry_pause: float = 0.5  # first pause; doubled for the next


def google_error(exc: HttpError) -> dict[str, Any]:
    """The ``error`` object of Google's body, read from the bytes: ``error_details`` shows
    only one of ``details`` / ``errors`` (``details`` first), so it cannot classify."""
    try:
        body = json.loads(exc.content)
    except (TypeError, ValueError):
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def error_reasons(exc: HttpError) -> list[str]:
    """Every reason Google gave: ``errors[].reason`` (classic envelope) and the
    ``reason`` of each ``google.rpc.ErrorInfo`` in ``details[]`` (newer envelope, often
    after a ``Help`` entry), in that order."""
    error = google_error(exc)
    reasons = [
        str(e["reason"]) for e in error.get("errors") or []
        if isinstance(e, dict) and e.get("reason")
    ]
    reasons += [
        str(d["reason"]) for d in error.get("details") or []
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc.ErrorInfo")
        and d.get("reason")
    ]
    return reasons


def error_reason(exc: HttpError) -> str | None:
    reasons = error_reasons(exc)
    return reasons[0] if reasons else None


def is_rate_limit(status: int, reasons: list[str]) -> bool:
    return status == 429 or (status == 403 and any(r in RATE_REASONS for r in reasons))


def status_of(exc: HttpError) -> int:
    return int(exc.resp.status)


def translate(exc: BaseException) -> SyncError | None:
    """A google client / transport exception as a ``core.errors`` type; None otherwise."""
    if isinstance(exc, HttpError):
        return _translate_http(exc)
    if isinstance(exc, auth_exceptions.RefreshError):
        if getattr(exc, "retryable", False):
            return TransientError(f"Google token refresh failed: {exc}", service=SERVICE)
        code = refresh_error_code(exc)
        if code in REJECTING_GRANT_ERRORS:
            return rejected(refresh_words(exc), code=code)
        return NeedsAttentionError(
            f"Google refused the credentials ({exc}): check GOOGLE_CREDENTIALS_FILE "
            "(and GOOGLE_IMPERSONATE_SUBJECT for a service account)",
            service=SERVICE, status=401, code="invalid_grant",
        )
    if isinstance(exc, auth_exceptions.TransportError | httplib2.HttpLib2Error | OSError):
        return TransientError(
            f"Google Calendar unreachable: {type(exc).__name__}: {exc}", service=SERVICE
        )
    return None


def refresh_error_code(exc: Exception) -> str | None:
    """The OAuth ``error`` of a refused token exchange: google-auth raises
    ``RefreshError("invalid_grant: Token has been expired or revoked.", {body})``."""
    body = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    head = str(exc.args[0]) if exc.args else ""
    code = head.split(":", 1)[0].strip()
    return code if code in REJECTING_GRANT_ERRORS else None


def refresh_words(exc: Exception) -> str:
    words = str(exc.args[0]) if exc.args else type(exc).__name__
    return " ".join(words.split())[:300]


def rejected(words: str, code: str | None = None, status: int = 401
             ) -> CredentialsRejectedError:
    return CredentialsRejectedError(words, service=SERVICE, variable=GOOGLE_SETTING,
                                    status=status, code=code, label="Google")


def _translate_http(exc: HttpError) -> SyncError:
    status, reasons = status_of(exc), error_reasons(exc)
    reason = reasons[0] if reasons else None
    message = exc.reason if isinstance(exc.reason, str) and exc.reason else f"HTTP {status}"
    if status == 401:
        # AuthorizedHttp refreshed the token on the first 401 and sent again: a 401 that
        # reaches us came after a fresh token, so the credentials themselves are refused.
        return rejected(f"401 {message}", code=reason)
    if is_rate_limit(status, reasons):
        named = next((r for r in reasons if r in RATE_REASONS), reason)
        return RateLimitedError(
            f"Google Calendar rate limit ({named or status}): {message}",
            service=SERVICE, retry_after=_retry_after(exc),
        )
    if status >= 500:
        return TransientError(f"Google Calendar {status}: {message}", service=SERVICE)
    return NeedsAttentionError(message, service=SERVICE, status=status, code=reason)


def _retry_after(exc: HttpError) -> float | None:
    value = exc.resp.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _worth_retrying_in_call(exc: BaseException) -> bool:
    if isinstance(exc, HttpError):
        return status_of(exc) >= 500
    error = translate(exc)
    return type(error) is TransientError


# What an insert's call returns when a retried insert found its event already there (409).
_DUPLICATE: Any = object()


class CalendarAdapter:
    """CalendarPort. Construct, ``await start()``, call, ``await close()``."""

    service = SERVICE

    def __init__(self, credentials: Any, options: CalendarOptions, now: Callable[[], float],
                 reload: Callable[[], Any | None] | None = None):
        self._credentials = credentials
        # New credentials when GOOGLE_CREDENTIALS_FILE changed since they were read (None:
        # unchanged): the probe of a rejection tries them, so a fixed file needs no restart.
        self._reload = reload
        self._generation = 0  # bumped when the credentials are replaced
        self.options = options
        self._now = now
        self.guard = ServiceGuard(SERVICE, options.resilience, now)
        self._service: Any = None
        self._local = threading.local()
        self._https: list[httplib2.Http] = []
        self._lock = threading.Lock()
        # Google's words once it refused the credentials: no call goes out until ``probe``
        # finds a token exchange working again.
        self._rejected: str | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._service = await asyncio.to_thread(self._build)

    def _build(self) -> Any:
        return build(
            "calendar", "v3", credentials=self._credentials, static_discovery=True,
            cache_discovery=False, client_options={"api_endpoint": self.options.endpoint},
        )

    async def close(self) -> None:
        with self._lock:
            https, self._https = self._https, []
        for http in https:
            http.close()
        if self._service is not None:
            await asyncio.to_thread(self._service.close)
            self._service = None

    # ---- CalendarPort ------------------------------------------------------------------------
    async def get_event(
        self, calendar_id: str, event_id: str, lane: Lane
    ) -> dict[str, Any] | None:
        def make(service: Any) -> Any:
            return service.events().get(calendarId=calendar_id, eventId=event_id)

        result: dict[str, Any] | None = await self._call(
            lane, make, f"get event {event_id}", none_on={404}, calendar_id=calendar_id)
        return result

    async def insert_event(
        self, calendar_id: str, body: dict[str, Any], send_updates: str, lane: Lane
    ) -> dict[str, Any]:
        def make(service: Any) -> Any:
            return service.events().insert(
                calendarId=calendar_id, body=body, sendUpdates=send_updates)

        event_id = str(body.get("id", ""))
        result: dict[str, Any] = await self._call(
            lane, make, f"insert event {event_id}", duplicate_on_409=True)
        if result is not _DUPLICATE:
            return result
        existing = await self.get_event(calendar_id, event_id, lane)
        if existing is None:
            raise TransientError(
                f"event {event_id} was reported as a duplicate but cannot be read",
                service=SERVICE,
            )
        return existing

    async def update_event(
        self,
        calendar_id: str,
        event_id: str,
        body: dict[str, Any],
        etag: str | None,
        send_updates: str,
        lane: Lane,
    ) -> dict[str, Any] | None:
        def make(service: Any) -> Any:
            request = service.events().update(
                calendarId=calendar_id, eventId=event_id, body=body, sendUpdates=send_updates)
            if etag is not None:
                request.headers["If-Match"] = etag
            return request

        result: dict[str, Any] | None = await self._call(
            lane, make, f"update event {event_id}", none_on={412})
        return result

    async def delete_event(
        self, calendar_id: str, event_id: str, send_updates: str, lane: Lane
    ) -> None:
        def make(service: Any) -> Any:
            return service.events().delete(
                calendarId=calendar_id, eventId=event_id, sendUpdates=send_updates)

        await self._call(lane, make, f"delete event {event_id}", none_on={404, 410},
                         calendar_id=calendar_id)

    async def list_events(
        self, calendar_id: str, private_property: tuple[str, str], lane: Lane,
        show_deleted: bool = False,
    ) -> list[dict[str, Any]]:
        key, value = private_property
        events: list[dict[str, Any]] = []
        page_token: str | None = None
        while True:
            def make(service: Any, token: str | None = page_token) -> Any:
                return service.events().list(
                    calendarId=calendar_id, privateExtendedProperty=f"{key}={value}",
                    maxResults=PAGE_SIZE, pageToken=token, showDeleted=show_deleted)

            page: dict[str, Any] = await self._call(lane, make, f"list events of {calendar_id}")
            events.extend(page.get("items", []))
            page_token = page.get("nextPageToken")
            if not page_token:
                return events

    async def list_changes(
        self, calendar_id: str, sync_token: str | None, lane: Lane
    ) -> CalendarChanges | None:
        events: list[dict[str, Any]] = []
        page_token: str | None = None
        while True:
            # syncToken may not be combined with the property filter (Google refuses it),
            # so a full sync lists the whole calendar too: its token covers what we filter.
            def make(service: Any, token: str | None = page_token) -> Any:
                return service.events().list(
                    calendarId=calendar_id, syncToken=sync_token, pageToken=token,
                    maxResults=PAGE_SIZE, showDeleted=True if sync_token is None else None)

            page: dict[str, Any] | None = await self._call(
                lane, make, f"list changes of {calendar_id}", none_on={410})
            if page is None:
                return None
            events.extend(page.get("items", []))
            page_token = page.get("nextPageToken")
            if not page_token:
                return CalendarChanges(events, page.get("nextSyncToken"))

    async def watch_events(self, calendar_id: str, channel_id: str, address: str, token: str,
                           ttl_seconds: float, lane: Lane) -> WatchedChannel:
        body = {"id": channel_id, "type": "web_hook", "address": address, "token": token,
                "params": {"ttl": str(int(ttl_seconds))}}

        def make(service: Any) -> Any:
            return service.events().watch(calendarId=calendar_id, body=body)

        # ``what`` names the channel, never its token (it reaches logs and errors).
        answer: dict[str, Any] = await self._call(lane, make, f"watch {calendar_id}")
        return WatchedChannel(str(answer["resourceId"]), int(answer["expiration"]))

    async def stop_channel(self, channel_id: str, resource_id: str, lane: Lane) -> None:
        def make(service: Any) -> Any:
            return service.channels().stop(body={"id": channel_id, "resourceId": resource_id})

        await self._call(lane, make, f"stop channel {channel_id}", none_on={404})

    def status(self) -> ServiceStatus:
        return self.guard.status()

    # ---- credentials -------------------------------------------------------------------------
    async def probe(self) -> Probe:
        """One token exchange of the client's own credentials: a fresh token lands in them
        when Google accepts, and lifts the refusal to call."""
        if self._reload is not None:
            fresh = await asyncio.to_thread(self._reload)
            if fresh is not None:
                self._use(fresh)
        found = await probe_google_credentials(self._credentials, self.options.http_timeout,
                                               self._lock)
        if found.verdict is Verdict.OK:
            self._rejected = None
        elif found.verdict is Verdict.REJECTED:
            self._rejected = found.words or self._rejected
        return found

    @property
    def credentials_rejected(self) -> str | None:
        return self._rejected

    def _use(self, credentials: Any) -> None:
        """From now on every request authorizes with ``credentials`` (each worker thread
        builds its AuthorizedHttp again on its next request)."""
        with self._lock:
            self._credentials = credentials
            self._generation += 1
        log.info("client.google_credentials_reloaded", service=SERVICE)

    # ---- plumbing ----------------------------------------------------------------------------
    async def _call(
        self,
        lane: Lane,
        make: Make,
        what: str,
        none_on: frozenset[int] | set[int] = frozenset(),
        duplicate_on_409: bool = False,
        calendar_id: str | None = None,
    ) -> Any:
        async def attempt() -> Any:
            try:
                return await self._execute_with_retries(make, what)
            except HttpError as exc:
                status = status_of(exc)
                if status in none_on:
                    if status == 404 and calendar_id is not None:
                        await self._require_calendar(calendar_id, exc)
                    return None
                if duplicate_on_409 and status == 409:
                    return _DUPLICATE
                raise _translate_http(exc) from exc
            except Exception as exc:
                error = translate(exc)
                if error is None:
                    raise
                raise error from exc

        if self._rejected is not None:
            raise rejected(self._rejected)  # no call: the probe finds out when it works again
        try:
            return await self.guard.call(lane, attempt, what)
        except CredentialsRejectedError as exc:
            self._rejected = exc.words
            raise

    async def _require_calendar(self, calendar_id: str, event_404: HttpError) -> None:
        """An event's 404 means "no such event" only if the calendar itself is there for
        us: a calendar no longer shared answers 404 too, and must not read as "gone"."""
        def make(service: Any) -> Any:
            return service.calendars().get(calendarId=calendar_id)

        try:
            await self._execute_with_retries(make, f"read calendar {calendar_id}")
        except HttpError as exc:
            if status_of(exc) != 404:
                raise
            google = exc.reason if isinstance(exc.reason, str) and exc.reason else "Not Found"
            raise NeedsAttentionError(
                f"calendar {calendar_id} is not shared with groupsync's Google account "
                f"(or no longer exists): Google answered 404 {google}",
                service=SERVICE, status=404, code=error_reason(exc) or "notFound",
            ) from event_404

    async def _execute_with_retries(self, make: Make, what: str) -> Any:
        pause = self.options.retry_pause
        for attempt in range(self.options.in_call_retries + 1):
            try:
                return await asyncio.to_thread(self._execute, make)
            except Exception as exc:
                if attempt >= self.options.in_call_retries or not _worth_retrying_in_call(exc):
                    raise
                log.info("client.in_call_retry", service=SERVICE, what=what,
                         attempt=attempt + 1, delay=pause, error=type(exc).__name__)
                await asyncio.sleep(pause)
                pause *= 2
        raise AssertionError("unreachable")

    def _execute(self, make: Make) -> Any:
        """In a worker thread: this thread's Http, a fresh token if needed, one request."""
        http = self._thread_http()
        with self._lock:
            if not self._credentials.valid:
                self._credentials.refresh(google_auth_httplib2.Request(http.http))
        trace = tracing.current()
        target: Any = http if trace is None else _Traced(http, trace, self.options.endpoint)
        try:
            result = make(self._service).execute(http=target, num_retries=0)
        except HttpError as exc:
            status = status_of(exc)
            metrics.external_call(SERVICE, status,
                                  rate_limited=is_rate_limit(status, error_reasons(exc)))
            raise
        except Exception:
            metrics.external_call(SERVICE, "error")
            raise
        metrics.external_call(SERVICE, 200)
        return result

    def _thread_http(self) -> google_auth_httplib2.AuthorizedHttp:
        authorized: google_auth_httplib2.AuthorizedHttp | None = getattr(
            self._local, "http", None)
        if authorized is not None and getattr(self._local, "generation", 0) != self._generation:
            authorized = None  # the credentials were replaced: wrap the new ones
        if authorized is None:
            raw = httplib2.Http(timeout=self.options.http_timeout)
            authorized = google_auth_httplib2.AuthorizedHttp(self._credentials, http=raw)
            self._local.http = authorized
            self._local.generation = self._generation
            with self._lock:
                self._https.append(raw)
        return authorized


class _Traced:
    """An operator's traced run (Sync now): this thread's Http, noting each request and
    Google's answer. Only built while a trace is on."""

    def __init__(self, http: Any, trace: tracing.Trace, endpoint: str) -> None:
        self._http = http
        self._trace = trace
        self._endpoint = endpoint.rstrip("/")

    def request(self, uri: str, method: str = "GET", *args: Any, **kwargs: Any) -> Any:
        response, content = self._http.request(uri, method, *args, **kwargs)
        path = uri[len(self._endpoint):] if uri.startswith(self._endpoint) else uri
        self._trace.call(method, path, int(getattr(response, "status", 0)))
        return response, content

    def __getattr__(self, name: str) -> Any:
        return getattr(self._http, name)
