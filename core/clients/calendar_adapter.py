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
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_auth_httplib2
import httplib2
from google.auth import exceptions as auth_exceptions
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from core import metrics
from core.clients.resilience import ResilienceConfig, ServiceGuard
from core.clients.status import ServiceStatus
from core.errors import NeedsAttentionError, RateLimitedError, SyncError, TransientError
from core.lanes import Lane
from core.observability import get_logger

log = get_logger("core.clients.calendar")

SERVICE = "calendar"
SCOPES = ["https://www.googleapis.com/auth/calendar"]
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
PAGE_SIZE = 2500

Make = Callable[[Any], Any]  # service resource → HttpRequest


@dataclass(frozen=True)
class CalendarOptions:
    """Already multiplied by the time scale."""

    endpoint: str
    resilience: ResilienceConfig
    http_timeout: float = 10.0  # per HTTP request, in the worker thread
    in_call_retries: int = 2  # for 5xx and dropped connections
    retry_pause: float = 0.5  # first pause; doubled for the next


def load_service_account(path: Path) -> service_account.Credentials:
    """The key file as credentials; an unreadable or malformed file is NeedsAttentionError.

    The message names the file and the setting, never the file's content.
    """
    try:
        return service_account.Credentials.from_service_account_file(str(path), scopes=SCOPES)
    except (OSError, ValueError, KeyError) as exc:
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise NeedsAttentionError(
            f"GOOGLE_CREDENTIALS_FILE {path} is not a readable service-account key "
            f"({problem})",
            service=SERVICE,
        ) from None


def error_reason(exc: HttpError) -> str | None:
    details = getattr(exc, "error_details", None)
    if isinstance(details, list) and details and isinstance(details[0], dict):
        reason = details[0].get("reason")
        return str(reason) if reason else None
    return None


def status_of(exc: HttpError) -> int:
    return int(exc.resp.status)


def translate(exc: BaseException) -> SyncError | None:
    """A google client / transport exception as a ``core.errors`` type; None otherwise."""
    if isinstance(exc, HttpError):
        return _translate_http(exc)
    if isinstance(exc, auth_exceptions.RefreshError):
        if getattr(exc, "retryable", False):
            return TransientError(f"Google token refresh failed: {exc}", service=SERVICE)
        return NeedsAttentionError(
            f"Google refused the service-account credentials ({exc}): check "
            "GOOGLE_CREDENTIALS_FILE",
            service=SERVICE, status=401, code="invalid_grant",
        )
    if isinstance(exc, auth_exceptions.TransportError | httplib2.HttpLib2Error | OSError):
        return TransientError(
            f"Google Calendar unreachable: {type(exc).__name__}: {exc}", service=SERVICE
        )
    return None


def _translate_http(exc: HttpError) -> SyncError:
    status, reason = status_of(exc), error_reason(exc)
    message = exc.reason if isinstance(exc.reason, str) and exc.reason else f"HTTP {status}"
    if status == 429 or (status == 403 and reason in RATE_REASONS):
        return RateLimitedError(
            f"Google Calendar rate limit ({reason or status}): {message}",
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

    def __init__(self, credentials: Any, options: CalendarOptions, now: Callable[[], float]):
        self._credentials = credentials
        self.options = options
        self._now = now
        self.guard = ServiceGuard(SERVICE, options.resilience, now)
        self._service: Any = None
        self._local = threading.local()
        self._https: list[httplib2.Http] = []
        self._lock = threading.Lock()

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
            lane, make, f"get event {event_id}", none_on={404})
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

        await self._call(lane, make, f"delete event {event_id}", none_on={404, 410})

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

    def status(self) -> ServiceStatus:
        return self.guard.status()

    # ---- plumbing ----------------------------------------------------------------------------
    async def _call(
        self,
        lane: Lane,
        make: Make,
        what: str,
        none_on: frozenset[int] | set[int] = frozenset(),
        duplicate_on_409: bool = False,
    ) -> Any:
        async def attempt() -> Any:
            try:
                return await self._execute_with_retries(make, what)
            except HttpError as exc:
                status = status_of(exc)
                if status in none_on:
                    return None
                if duplicate_on_409 and status == 409:
                    return _DUPLICATE
                raise _translate_http(exc) from exc
            except Exception as exc:
                error = translate(exc)
                if error is None:
                    raise
                raise error from exc

        return await self.guard.call(lane, attempt, what)

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
        try:
            result = make(self._service).execute(http=http, num_retries=0)
        except HttpError as exc:
            metrics.external_call(SERVICE, status_of(exc))
            raise
        except Exception:
            metrics.external_call(SERVICE, "error")
            raise
        metrics.external_call(SERVICE, 200)
        return result

    def _thread_http(self) -> google_auth_httplib2.AuthorizedHttp:
        authorized: google_auth_httplib2.AuthorizedHttp | None = getattr(
            self._local, "http", None)
        if authorized is None:
            raw = httplib2.Http(timeout=self.options.http_timeout)
            authorized = google_auth_httplib2.AuthorizedHttp(self._credentials, http=raw)
            self._local.http = authorized
            with self._lock:
                self._https.append(raw)
        return authorized
