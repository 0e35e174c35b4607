"""The admin service layer: every operator action, for the CLI, the HTTP API and the
dashboard alike. State lives in database rows, so any process sees the same truth; the
optional live hooks (this process's clients, its sweep) only make things faster.

Every mutating action takes ``via`` (cli, api, dashboard) and, where known, ``who`` (the
caller's address, or user@host for the CLI), and leaves one audit line and one audit row
(``core.admin.audit``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from core.admin import attention, bulk, control, groups, held, keys, presence, resync
from core.admin import audit as trail
from core.admin.audit import actor, audit
from core.admin.calendar_follow import calendar_follow
from core.admin.errors import AdminError, Conflict
from core.admin.keys import KeyFilter, WaitContext
from core.admin.service_states import service_state
from core.admin.waiting import BLOCKING, KeyFacts, ServiceFacts, WaitCode, Waiting, waiting_reason
from core.clients.status import ClientBoard
from core.clock import Clock, SystemClock
from core.config import Settings
from core.db.models import HeldDecision, ServiceHealth, ServiceState
from core.db.session import SessionFactory
from core.engine.running.pauses import PauseFlags, pause_in_force
from core.reminders.status import reminder_overview
from core.syncers import types

if TYPE_CHECKING:
    from core.engine.running.context import Runtime

RETRY_HINTS = {
    WaitCode.CIRCUIT_OPEN: " (`breaker-reset SERVICE` closes the circuit, and the key runs)",
    WaitCode.HELD: " (approve or reject the held plan first)",
    WaitCode.CREDENTIALS_REJECTED: " (fix the credentials; the next probe finds out)",
}


def blocked_by(row: Any, context: WaitContext) -> Waiting | None:
    """The waiting reason of a key that a retry now could not change."""
    service = types.service_of(row.sync_type) if types.is_registered(row.sync_type) else None
    facts = context.services.get(service) if service else None
    # An owed, running or settled key: what would hold it once it is made due now.
    probe = KeyFacts.of(row, context.now)
    found = waiting_reason(KeyFacts(probe.sync_type, owed=True, attempt=probe.attempt,
                                    held=probe.held), facts, context.now)
    return found if found is not None and found.code in BLOCKING else None


def _credentials(row: ServiceState | None) -> dict[str, Any]:
    """The service's row as ``waiting`` and the faces read it: ``rejected`` holds the
    service's words while it refuses groupsync's credentials, else None."""
    if row is None or row.health != ServiceHealth.CREDENTIALS_REJECTED:
        return {"rejected": None, "healthy_since": _iso(row.health_since) if row else None}
    return {"rejected": row.health_reason or "rejected", "since": _iso(row.health_since),
            "next_probe_at": _iso(row.next_probe_at), "variable": row.health_variable}


def _iso(value: Any) -> str | None:
    from core.admin.waiting import aware

    return aware(value).isoformat() if value is not None else None


@dataclass
class LiveHooks:
    """What a daemon process adds: its clients, its sweep's wake-up, its presence."""

    board: Callable[[], ClientBoard | None] = lambda: None
    wake: Callable[[], None] = lambda: None
    presence: presence.Presence | None = None
    pauses: PauseFlags | None = None
    # The leading runtime (its syncers, clients and engine): live reads and Sync now.
    runtime: Callable[[], Runtime | None] = lambda: None


@dataclass
class AdminService:
    session_factory: SessionFactory
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    live: LiveHooks = field(default_factory=LiveHooks)

    # ---- reads -------------------------------------------------------------------------------
    async def overview(self) -> dict[str, Any]:
        now = self.clock.now()
        counts = await keys.counts_by_type(self.session_factory)
        rows = await presence.daemons(self.session_factory)
        active = presence.active_of(rows, now)
        return {
            "now": now.isoformat(),
            "services": await self._services(now, active, counts),
            "sync_types": counts,
            # Live daemons only: a dead heartbeat (a killed or refused daemon) is no standby.
            "daemons": [presence.daemon_json(r, now) for r in presence.alive_of(rows, now)],
            "active_daemon": active.id if active else None,
            "reminders": (await reminder_overview(self.session_factory)).to_json(),
        }

    async def wait_context(self) -> WaitContext:
        """The service states a key's waiting reason reads (``core.admin.waiting``)."""
        now = self.clock.now()
        active = presence.active_of(await presence.daemons(self.session_factory), now)
        services = await self._services(now, active, {})
        return WaitContext(now, {s["name"]: ServiceFacts.from_overview(s) for s in services},
                           daemon_active=active is not None)

    async def _services(self, now: Any, active: Any, counts: dict[str, dict[str, int]]
                        ) -> list[dict[str, Any]]:
        switches = await control.service_rows(self.session_factory)
        clients = self._live_clients(now) or (active.clients if active else [])
        by_service = {c["service"]: c for c in clients}
        services = []
        for service in types.services():
            service_counts: dict[str, int] = {}
            for sync_type in types.types_of(service):
                for status, n in counts.get(sync_type, {}).items():
                    service_counts[status] = service_counts.get(status, 0) + n
            client = by_service.get(service, {})
            switch = switches.get(service)
            paused = switch is not None and pause_in_force(switch.paused, switch.paused_until,
                                                           now)
            entry: dict[str, Any] = {
                "name": service,
                "label": types.service_label(service),
                "enabled": self.settings.service_enabled(service),
                "paused": paused,
                "paused_reason": switch.paused_reason if switch and paused else None,
                # Who paused it, since when and until when: the paused banner names them.
                "paused_by": switch.paused_by if switch and paused else None,
                "paused_at": _iso(switch.paused_at) if switch and paused else None,
                "paused_until": _iso(switch.paused_until) if switch and paused else None,
                "counts": service_counts,
                "breaker": client.get("breaker", {"state": "unknown", "half_open_at": None}),
                "rate_limits": client.get("rate_limits", []),
                "invalid_requests": client.get(
                    "invalid_requests", {"used": None, "budget": None}),
                # Discord's gateway link (connected / resuming / disconnected since T)
                "gateway": client.get("gateway"),
                "credentials": _credentials(switch),
            }
            if service == "calendar":  # the incremental sync's lag (issue 22)
                entry["changes"] = await calendar_follow(self.session_factory, now)
            entry["state"] = service_state(entry, now)
            services.append(entry)
        return services

    def _live_clients(self, now: Any) -> list[dict[str, Any]]:
        board = self.live.board()
        if board is None:
            return []
        return [presence.client_json(s, now) for s in board.statuses()]

    async def list_keys(self, where: KeyFilter, limit: int = 50, offset: int = 0
                        ) -> dict[str, Any]:
        return await keys.list_keys(self.session_factory, where, limit, offset,
                                    await self.wait_context())

    async def key(self, sync_type: str, group_id: int) -> dict[str, Any]:
        return await keys.key_detail(self.session_factory, sync_type, group_id,
                                     await self.wait_context())

    def role(self) -> str:
        return self.live.presence.role if self.live.presence else "none"

    # ---- actions -----------------------------------------------------------------------------
    async def _trail(self, action: str, scope: dict[str, Any], via: str, who: str | None,
                     *, outcome: str = "accepted", **fields: Any) -> None:
        """The audit line and the audit row of one action (who, what, when, result)."""
        by = actor(via, who)
        audit(action, scope, via, who=by, outcome=outcome, **fields)
        await trail.record(self.session_factory, action=action, scope=scope, via=via, who=by,
                           at=self.clock.now(), outcome=outcome,
                           detail=trail.detail_of(fields))

    async def audit_log(self, limit: int = 50, before_id: int | None = None
                        ) -> list[dict[str, Any]]:
        return await trail.recent(self.session_factory, limit, before_id)

    async def retry(self, sync_type: str, group_id: int, *, via: str, who: str | None = None
                    ) -> dict[str, Any]:
        scope = {"sync_type": sync_type, "group_id": group_id}
        try:
            await self._refuse_blocked(sync_type, group_id)
            key = await control.retry_one(self.session_factory, sync_type, group_id,
                                          self.clock.now())
        except AdminError as exc:
            await self._trail("retry", scope, via, who, outcome="refused", reason=str(exc))
            raise
        self.live.wake()
        await self._trail("retry", scope, via, who)
        return {"sync_type": key.sync_type, "group_id": key.group_id, "queued": True}

    async def _refuse_blocked(self, sync_type: str, group_id: int) -> None:
        """A retry that nothing would run (paused, circuit open, held, credentials
        rejected) is refused with the reason, instead of "queued" while the key waits."""
        kind = keys.parse_sync_type(sync_type)
        row = await keys.state_row(self.session_factory, kind, group_id)
        if row is None:
            return
        context = await self.wait_context()
        found = blocked_by(row, context)
        if found is not None:
            raise Conflict(f"{kind}:{group_id} cannot run now: {found.detail}"
                           f"{RETRY_HINTS.get(found.code, '')}")

    async def pause(self, service: str, *, via: str, reason: str | None = None,
                    who: str | None = None, for_seconds: int | None = None
                    ) -> dict[str, Any]:
        """``for_seconds``: the pause ends by itself after that long (wall-clock seconds:
        an operator's window, never scaled by TIME_SCALE); None: until ``resume``."""
        now = self.clock.now()
        until = now + timedelta(seconds=for_seconds) if for_seconds is not None else None
        changed = await control.set_paused(
            self.session_factory, service, True, now, reason, by=actor(via, who),
            until=until)
        self._pauses_changed()
        await self._trail("pause", {"service": service}, via, who, changed=changed,
                          reason=reason, **({"until": until.isoformat()} if until else {}))
        return {"service": service, "paused": True, "changed": changed,
                "paused_until": until.isoformat() if until else None}

    async def resume(self, service: str, *, via: str, who: str | None = None
                     ) -> dict[str, Any]:
        changed = await control.set_paused(self.session_factory, service, False, self.clock.now())
        self._pauses_changed()
        self.live.wake()
        await self._trail("resume", {"service": service}, via, who, changed=changed)
        return {"service": service, "paused": False, "changed": changed}

    def _pauses_changed(self) -> None:
        if self.live.pauses is not None:
            self.live.pauses.forget()

    async def reset_breaker(self, service: str, *, via: str, who: str | None = None
                            ) -> dict[str, Any]:
        await control.request_breaker_reset(self.session_factory, service, self.clock.now())
        board = self.live.board()
        applied_here = board.reset_breaker(service) if board is not None else False
        await self._trail("breaker_reset", {"service": service}, via, who,
                          applied_here=applied_here)
        return {"service": service, "reset_requested": True}

    # ---- the deletion guard's held plans -------------------------------------------------------
    async def held(self) -> list[dict[str, Any]]:
        return await held.list_held(self.session_factory)

    async def approve(self, sync_type: str, group_id: int, *, via: str, who: str | None = None
                      ) -> dict[str, Any]:
        return await self._decide("approve", HeldDecision.APPROVED, sync_type, group_id,
                                  via, who)

    async def reject(self, sync_type: str, group_id: int, *, via: str, who: str | None = None
                     ) -> dict[str, Any]:
        return await self._decide("reject", HeldDecision.REJECTED, sync_type, group_id,
                                  via, who)

    async def _decide(self, action: str, decision: HeldDecision, sync_type: str, group_id: int,
                      via: str, who: str | None) -> dict[str, Any]:
        scope = {"sync_type": sync_type, "group_id": group_id}
        by = actor(via, who)
        now = self.clock.now()
        try:
            result = await held.decide(self.session_factory, sync_type, group_id, decision,
                                       by, now)
        except AdminError as exc:
            await self._trail(action, scope, via, who, outcome="refused", at=now.isoformat(),
                              reason=str(exc))
            raise
        if decision is HeldDecision.APPROVED:
            self.live.wake()
        await self._trail(action, scope, via, who, at=now.isoformat(),
                          removals=result["removals"])
        return result

    # ---- the needs-attention set ---------------------------------------------------------------
    async def attention(self, query: attention.AttentionQuery) -> dict[str, Any]:
        return await attention.list_attention(self.session_factory, query,
                                              await self.wait_context())

    async def acknowledge(self, sync_type: str, group_id: int, note: str, *, via: str,
                          who: str | None = None) -> dict[str, Any]:
        scope = {"sync_type": sync_type, "group_id": group_id}
        try:
            result = await attention.acknowledge(self.session_factory, sync_type, group_id,
                                                 note, actor(via, who), self.clock.now())
        except AdminError as exc:
            await self._trail("acknowledge", scope, via, who, outcome="refused",
                              reason=str(exc))
            raise
        await self._trail("acknowledge", scope, via, who, note=result["acknowledged"]["note"])
        return result

    # ---- bulk retry --------------------------------------------------------------------------
    async def bulk_preview(self, scope: bulk.BulkScope) -> dict[str, Any]:
        return await bulk.preview(self.session_factory, scope, self.clock.now(), self.settings)

    async def bulk_start(self, scope: bulk.BulkScope, *, via: str, who: str | None = None
                         ) -> dict[str, Any]:
        job = await bulk.create(self.session_factory, scope, self.clock.now(), via)
        self.live.wake()
        await self._trail("bulk_retry", scope.to_json(), via, who, job=job["id"],
                          keys=job["total"])
        return job

    async def bulk_jobs(self) -> list[dict[str, Any]]:
        return await bulk.list_jobs(self.session_factory)

    async def bulk_job(self, job_id: int) -> dict[str, Any]:
        return await bulk.get_job(self.session_factory, job_id)

    async def bulk_cancel(self, job_id: int, *, via: str, who: str | None = None
                          ) -> dict[str, Any]:
        job = await bulk.cancel(self.session_factory, job_id, self.clock.now())
        await self._trail("bulk_cancel", {"job": job_id}, via, who, cancelled=job["cancelled"])
        return job

    # ---- the group page (issue 23) ---------------------------------------------------------
    async def find_groups(self, text: str) -> list[dict[str, Any]]:
        return await groups.search(self.session_factory, groups.parse_query(text))

    async def group(self, group_id: int) -> dict[str, Any]:
        return await groups.detail(self.session_factory, group_id, await self.wait_context())

    async def group_live(self, group_id: int) -> dict[str, Any]:
        await groups.require_group(self.session_factory, group_id)
        return await groups.read_live(self.live.runtime(), group_id)

    async def sync_now_preview(self, group_id: int) -> dict[str, Any]:
        return groups.would_send(await self.group_live(group_id))

    async def sync_now(self, group_id: int, *, via: str, who: str | None = None
                       ) -> dict[str, Any]:
        scope = {"group_id": group_id}
        try:
            await groups.require_group(self.session_factory, group_id)
            result = await groups.sync_now(self.live.runtime(), group_id)
        except AdminError as exc:
            await self._trail("sync_now", scope, via, who, outcome="refused", reason=str(exc))
            raise
        outcomes = {t["sync_type"]: t["outcome"] for t in result["sync_types"]}
        await self._trail("sync_now", scope, via, who,
                          outcomes=", ".join(f"{k} {v}" for k, v in outcomes.items()))
        return result

    # ---- force re-sync -----------------------------------------------------------------------
    async def resync_preview(self, group_id: int) -> dict[str, Any]:
        return (await resync.preview(self.session_factory, self.settings, group_id,
                                     self.clock.now())).to_json()

    async def resync(self, group_id: int, *, via: str, who: str | None = None
                     ) -> dict[str, Any]:
        plan = await resync.run(self.session_factory, self.settings, group_id, self.clock.now())
        self.live.wake()
        counts: dict[str, Any] = plan.to_json()
        await self._trail("resync", {"group_id": group_id}, via, who, **counts)
        return {"group_id": group_id, **plan.to_json()}
