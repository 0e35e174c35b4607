"""The operator verbs of the CLI, on the admin service layer: straight on the database,
or through a remote daemon's API with ``--api URL`` (token from ADMIN_TOKEN)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from core.admin.calendar_follow import follow_words
from core.admin.relative import relative_since, relative_until, span, stamp
from core.admin.waiting import parse_time
from core.config import Settings

if TYPE_CHECKING:  # imported where a verb needs them: a verb loads only its own parts
    from core.admin.attention import AttentionQuery
    from core.admin.bulk import BulkScope
    from core.admin.keys import KeyFilter

VIA = "cli"
POLL_SECONDS = 0.5


class Admin(Protocol):
    """What the verbs need: ``AdminService`` locally, ``ApiClient`` remotely."""

    async def overview(self) -> dict[str, Any]: ...
    async def list_keys(self, where: KeyFilter, limit: int = 50, offset: int = 0
                        ) -> dict[str, Any]: ...
    async def retry(self, sync_type: str, group_id: int, *, via: str, who: str | None = None
                    ) -> dict[str, Any]: ...
    async def bulk_preview(self, scope: BulkScope) -> dict[str, Any]: ...
    async def bulk_start(self, scope: BulkScope, *, via: str, who: str | None = None
                         ) -> dict[str, Any]: ...
    async def bulk_jobs(self) -> list[dict[str, Any]]: ...
    async def bulk_job(self, job_id: int) -> dict[str, Any]: ...
    async def bulk_cancel(self, job_id: int, *, via: str, who: str | None = None
                          ) -> dict[str, Any]: ...
    async def resync_preview(self, group_id: int) -> dict[str, Any]: ...
    async def resync(self, group_id: int, *, via: str, who: str | None = None
                     ) -> dict[str, Any]: ...
    async def pause(self, service: str, *, via: str, reason: str | None = None,
                    who: str | None = None, for_seconds: int | None = None
                    ) -> dict[str, Any]: ...
    async def resume(self, service: str, *, via: str, who: str | None = None
                     ) -> dict[str, Any]: ...
    async def reset_breaker(self, service: str, *, via: str, who: str | None = None
                            ) -> dict[str, Any]: ...
    async def held(self) -> list[dict[str, Any]]: ...
    async def approve(self, sync_type: str, group_id: int, *, via: str, who: str | None = None
                      ) -> dict[str, Any]: ...
    async def reject(self, sync_type: str, group_id: int, *, via: str, who: str | None = None
                     ) -> dict[str, Any]: ...
    async def attention(self, query: AttentionQuery) -> dict[str, Any]: ...
    async def acknowledge(self, sync_type: str, group_id: int, note: str, *, via: str,
                          who: str | None = None) -> dict[str, Any]: ...


@asynccontextmanager
async def open_admin(settings: Settings, api: str | None) -> AsyncIterator[Admin]:
    if api:
        from core.admin.client import ApiClient

        token = settings.admin_token.get_secret_value() if settings.admin_token else None
        client = ApiClient(api, token)
        try:
            yield client
        finally:
            await client.aclose()
        return
    from core.admin.service import AdminService
    from core.db.migrate import require_current_schema
    from core.db.session import create_engine, create_session_factory

    engine = create_engine(settings.database_url, create_file=False)  # creates nothing
    try:
        await require_current_schema(engine, settings.database_url)  # one line naming the fix
        yield AdminService(create_session_factory(engine), settings)
    finally:
        await engine.dispose()


Verb = Callable[[Admin, argparse.Namespace, TextIO], Awaitable[int]]


def runner(verb: Verb) -> Callable[[argparse.Namespace, Settings], int]:
    def handler(args: argparse.Namespace, settings: Settings) -> int:
        async def main() -> int:
            async with open_admin(settings, args.api) as admin:
                return await verb(admin, args, sys.stdout)
        return asyncio.run(main())
    return handler


def _print_json(value: Any, out: TextIO) -> None:
    print(json.dumps(value, indent=2, default=str), file=out)


def _confirmed(args: argparse.Namespace, question: str, out: TextIO) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        print(f"{question}\nnot confirmed: add --yes to run it (or --dry-run to only look)",
              file=out)
        return False
    answer = input(f"{question} [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _health(s: dict[str, Any], now: datetime) -> str:
    """The service-level state beside enabled/paused: a rejection in full (the service's
    words, since when, the variable to fix, the next probe), another state by its name."""
    health = s.get("state") or {}
    if health.get("state") == "credentials_rejected":
        probe = _at(health.get("next_probe_at"), now) if health.get("next_probe_at") else "soon"
        return (f", CREDENTIALS REJECTED since {_at(health['since'], now, past=True)}: "
                f"{health['reason']} (fix {health['variable']}; its keys are parked, "
                f"next probe {probe})")
    if health.get("state") not in (None, "healthy", "paused"):
        return f", {health['state']}"
    return ""


def _service_line(s: dict[str, Any], now: datetime) -> str:
    state = ("enabled" if s["enabled"] else "disabled") + _health(s, now)
    if s["paused"]:
        state += ", PAUSED" + (f" ({s['paused_reason']})" if s.get("paused_reason") else "")
        if s.get("paused_by"):
            state += f" by {s['paused_by']}"
        if s.get("paused_at"):
            state += f" since {_at(s['paused_at'], now, past=True)}"
        if s.get("paused_until"):
            state += f" until {_at(s['paused_until'], now)}"
    breaker = s["breaker"]
    parts = [f"{s['name']}: {state}", f"breaker {breaker.get('state')}"]
    if breaker.get("half_open_at"):
        parts[-1] += f" until {_at(breaker['half_open_at'], now)}"
    if breaker.get("rate_limited"):
        parts[-1] += f", {breaker['rate_limited']} rate-limit answers since the last success"
    for lane in s["rate_limits"]:
        text = f"{lane['lane']} {lane['remaining']} left"
        if lane.get("limited_until"):
            text += f", limited until {_at(lane['limited_until'], now)}"
        parts.append(text)
    invalid = s["invalid_requests"]
    if invalid.get("used") is not None:
        parts.append(f"invalid requests {invalid['used']}/{invalid['budget']}")
    parts.extend(gateway_parts(s.get("gateway"), now))
    parts.extend(follow_words(s.get("changes")))
    counts = ", ".join(f"{n} {k}" for k, n in sorted(s["counts"].items()))
    parts.append(f"keys: {counts or 'none'}")
    return " | ".join(parts)


def gateway_parts(gateway: dict[str, Any] | None, now: datetime) -> list[str]:
    return [gateway_words(gateway, now)] if gateway else []


def gateway_words(gateway: dict[str, Any], now: datetime) -> str:
    """"gateway connected since … (latency 12 ms, cache 0.4 s old, 1 resume)"."""
    text = f"gateway {gateway['state']} since {_at(gateway['since'], now, past=True)}"
    details = []
    if gateway.get("latency") is not None:
        details.append(f"latency {gateway['latency'] * 1000:.0f} ms")
    if gateway.get("cache_age") is not None:
        details.append(f"cache {gateway['cache_age']:.1f} s old")
    details.append(f"{gateway.get('resumes', 0)} resumes, {gateway.get('identifies', 0)} "
                   "identifies")
    return f"{text} ({', '.join(details)})"


# ---- verbs -------------------------------------------------------------------------------------
async def status(admin: Admin, args: argparse.Namespace, out: TextIO) -> int:
    from core.admin.keys import KeyFilter

    view = await admin.overview()
    failing = await admin.list_keys(KeyFilter(status="failing"), limit=100)
    pending = await admin.list_keys(KeyFilter(status="pending"), limit=20)
    held = await admin.list_keys(KeyFilter(status="held"), limit=100)
    jobs = await admin.bulk_jobs()
    if args.json:
        _print_json({**view, "failing": failing, "held": held, "pending": pending,
                     "bulk_jobs": jobs}, out)
        return 0
    print(render_status(view, failing, jobs, pending, held), file=out)
    return 0


def _at(value: str | None, now: datetime, *, past: bool = False) -> str:
    """An absolute time to the second with the relative one beside it."""
    if not value:
        return "-"
    at = parse_time(value)
    assert at is not None
    relative = relative_since(at, now) if past else relative_until(at, now)
    return f"{stamp(at)} ({relative})"


def render_status(view: dict[str, Any], failing: dict[str, Any],
                  jobs: list[dict[str, Any]], pending: dict[str, Any] | None = None,
                  held: dict[str, Any] | None = None) -> str:
    now = parse_time(view.get("now")) or datetime.now(UTC)
    lines = []
    alive = [d for d in view["daemons"] if d.get("alive", True)]
    if not alive:
        lines.append("daemons: none alive")
    for d in alive:
        lines.append(f"daemon {d['role']:8} {d['host']} pid {d['pid']} since "
                     f"{_at(d['since'], now, past=True)} (last heartbeat "
                     f"{_at(d['last_heartbeat'], now, past=True)})")
    lines.extend(_service_line(s, now) for s in view["services"])
    lines.extend(_page_lines(failing, "failing keys", now))
    lines.extend(_page_lines(held, "held keys (`held` lists their plans)", now))
    lines.extend(_page_lines(pending, "pending keys", now))
    if view.get("reminders"):
        from core.reminders.status import render_reminders

        lines.append(render_reminders(view["reminders"]))
    for job in jobs[:5]:
        lines.append(f"bulk job {job['id']}: {job['state']}, {job['done']}/{job['total']} done, "
                     f"{job['failed']} failed, {job['remaining']} remaining, "
                     f"{job['cancelled']} cancelled")
    return "\n".join(lines)


def _page_lines(page: dict[str, Any] | None, what: str, now: datetime) -> list[str]:
    if not page:
        return []
    lines = [line for k in page["items"] for line in _key_lines(k, now)]
    if page["total"] > len(page["items"]):
        lines.append(f"... and {page['total'] - len(page['items'])} more {what}")
    return lines


def _key_lines(k: dict[str, Any], now: datetime) -> list[str]:
    since = ""
    if k["failing_since"]:
        failing_since = parse_time(k["failing_since"])
        assert failing_since is not None
        since = (f" failing for {span((now - failing_since).total_seconds())} (since "
                 f"{stamp(failing_since)})")
    waiting = k.get("waiting")
    if waiting:
        due = f", next run {_at(waiting['until'], now)}" if waiting.get("until") else ""
    else:
        due = f", next attempt {_at(k['next_attempt_at'], now)}" if k["next_attempt_at"] else ""
    lines = [f"{k['status']:15} {k['sync_type']}:{k['group_id']} attempt {k['attempt']}"
             f"{since}{due}"]
    if waiting:
        lines.append(f"{'':15} waiting: {waiting['code']}: {waiting['detail']}")
    if k["last_error"]:
        lines.append(f"{'':15} {k['last_error']}")
    ack = k.get("acknowledged")
    if ack:
        lines.append(f"{'':15} acknowledged by {ack['by']} {_at(ack['at'], now, past=True)}: "
                     f"{ack['note']}")
    return lines


async def refuse_here(admin: Admin, sync_type: str) -> None:
    """``retry --here`` calls the service from this process, around the daemon's breaker
    and limits: refused (one line) while that service is paused or its circuit is open."""
    from core.admin.errors import Conflict
    from core.admin.keys import parse_sync_type
    from core.admin.waiting import BLOCKING, KeyFacts, ServiceFacts, waiting_reason
    from core.syncers.types import service_of

    service = service_of(parse_sync_type(sync_type))
    if service is None:
        return
    view = await admin.overview()
    entry = next((s for s in view["services"] if s["name"] == service), None)
    if entry is None:
        return
    now = parse_time(view.get("now")) or datetime.now(UTC)
    found = waiting_reason(KeyFacts(sync_type, owed=True), ServiceFacts.from_overview(entry), now)
    if found is not None and found.code in BLOCKING:
        raise Conflict(f"not run here: {found.detail}; add --force to call {service} from this "
                       "process anyway")


async def retry(admin: Admin, args: argparse.Namespace, out: TextIO) -> int:
    if args.here:
        if not args.force:
            await refuse_here(admin, args.sync_type)
        from core.config import load_settings
        from core.embed import run_once

        result = await run_once(load_settings(), args.sync_type, args.group_id)
        _print_json(result, out)
        return 0 if not ("error" in result or result.get("failed")) else 1
    _print_json(await admin.retry(args.sync_type, args.group_id, via=VIA, who=_operator()),
                out)
    return 0


def _scope(args: argparse.Namespace) -> BulkScope:
    from core.admin.bulk import BulkScope

    return BulkScope(service=args.service, status=args.status)


async def bulk_retry(admin: Admin, args: argparse.Namespace, out: TextIO) -> int:
    preview = await admin.bulk_preview(_scope(args))
    question = (f"retry {preview['keys']} failing keys in {preview['groups']} groups "
                f"(about {preview['estimated_calls']} external calls)?")
    if args.dry_run:
        _print_json(preview, out) if args.json else print(question.rstrip("?"), file=out)
        return 0
    if not _confirmed(args, question, out):
        return 1
    job = await admin.bulk_start(_scope(args), via=VIA, who=_operator())
    print(f"bulk job {job['id']} queued: {job['total']} keys", file=out)
    if args.no_wait:
        return 0
    job = await follow(admin, job["id"], out)
    return 0 if job["failed"] == 0 else 1


async def follow(admin: Admin, job_id: int, out: TextIO) -> dict[str, Any]:
    """Poll the job until it ends: a bar on a terminal, a line per change otherwise."""
    shown = None
    while True:
        job = await admin.bulk_job(job_id)
        progress = (job["done"], job["failed"], job["remaining"], job["cancelled"])
        if progress != shown:
            shown = progress
            print(progress_line(job, out.isatty()), end="\r" if out.isatty() else "\n",
                  file=out, flush=True)
        if job["state"] in ("done", "cancelled") and job["remaining"] == 0:
            if out.isatty():
                print(file=out)
            print(f"bulk job {job_id} {job['state']}: {job['done']} done, {job['failed']} "
                  f"failed, {job['cancelled']} cancelled", file=out)
            return job
        await asyncio.sleep(POLL_SECONDS)


def progress_line(job: dict[str, Any], bar: bool, width: int = 30) -> str:
    total = max(1, job["total"])
    finished = job["done"] + job["failed"] + job["cancelled"]
    text = (f"{finished}/{job['total']} ({job['done']} done, {job['failed']} failed, "
            f"{job['remaining']} remaining)")
    if not bar:
        return text
    filled = round(width * finished / total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {text}"


async def bulk_cancel(admin: Admin, args: argparse.Namespace, out: TextIO) -> int:
    job = await admin.bulk_cancel(args.job_id, via=VIA, who=_operator())
    print(f"bulk job {job['id']} cancelled: {job['cancelled']} keys not started are left as "
          f"they were; {job['remaining']} still running", file=out)
    return 0


async def resync(admin: Admin, args: argparse.Namespace, out: TextIO) -> int:
    preview = await admin.resync_preview(args.group_id)
    summary = (f"force re-sync of group {args.group_id}: {preview['overwrites']} Discord "
               f"overwrites, {preview['events']} calendar events, {preview['reminders']} "
               f"reminders still due, about {preview['calls']} external calls")
    if args.dry_run:
        if args.json:
            _print_json(preview, out)
        else:  # the items it will send, not only their count
            print("\n".join([summary + ":", *(f"  {call}" for call in preview["sends"])]),
                  file=out)
        return 0
    if not _confirmed(args, summary + "?", out):
        return 1
    _print_json(await admin.resync(args.group_id, via=VIA, who=_operator()), out)
    return 0


async def pause(admin: Admin, args: argparse.Namespace, out: TextIO) -> int:
    _print_json(await admin.pause(args.service, via=VIA, reason=args.reason,
                                  who=_operator(), for_seconds=args.for_seconds), out)
    return 0


def _pause_span(text: str) -> int:
    from core.admin.relative import parse_span

    try:
        return parse_span(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def resume(admin: Admin, args: argparse.Namespace, out: TextIO) -> int:
    _print_json(await admin.resume(args.service, via=VIA, who=_operator()), out)
    return 0


async def breaker_reset(admin: Admin, args: argparse.Namespace, out: TextIO) -> int:
    _print_json(await admin.reset_breaker(args.service, via=VIA, who=_operator()), out)
    return 0


async def held(admin: Admin, args: argparse.Namespace, out: TextIO) -> int:
    items = await admin.held()
    if args.json:
        _print_json(items, out)
        return 0
    if not items:
        print("no held syncs", file=out)
    for item in items:
        print(render_held(item), file=out)
    return 0


def render_held(item: dict[str, Any]) -> str:
    decided = ""
    if item.get("decided_at"):
        decided = f", {item['decision']} by {item['decided_by']} at {item['decided_at']}"
    users = ", ".join(f"{u['id']} ({u['name']})" if u.get("name") else u["id"]
                      for u in item["users"])
    lines = [f"held {item['sync_type']}:{item['group_id']} since {item['held_at']}: "
             f"{item['reason']}{decided}",
             f"  removes {item['removals']} of {item['members']}: {users or '-'}"]
    plan = item.get("plan") or {}
    for user, lost in (plan.get("users_losing") or {}).items():
        lines.append(f"  {user} loses {', '.join(lost)}")
    for event, gone in (plan.get("attendees_removed") or {}).items():
        lines.append(f"  event {event}: removes {', '.join(gone)}")
    for event in plan.get("events_cancelled") or []:
        lines.append(f"  cancels {event}")
    return "\n".join(lines)


def _operator() -> str:
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


async def approve(admin: Admin, args: argparse.Namespace, out: TextIO) -> int:
    result = await admin.approve(args.sync_type, args.group_id, via=VIA, who=_operator())
    print(f"approved {result['sync_type']}:{result['group_id']}: its {result['removals']} "
          "removal(s) are applied now if the membership is unchanged (else it is planned "
          "again)", file=out)
    return 0


async def reject(admin: Admin, args: argparse.Namespace, out: TextIO) -> int:
    result = await admin.reject(args.sync_type, args.group_id, via=VIA, who=_operator())
    print(f"rejected {result['sync_type']}:{result['group_id']}: it stays held until the "
          "group's membership changes", file=out)
    return 0


async def attention(admin: Admin, args: argparse.Namespace, out: TextIO) -> int:
    from core.admin.attention import AttentionQuery

    since = parse_time(args.since) if args.since else None
    found = await admin.attention(AttentionQuery(text=args.search, since=since,
                                                 limit=args.limit))
    if args.json:
        _print_json(found, out)
        return 0
    print(render_attention(found), file=out)
    return 0


def render_attention(found: dict[str, Any], now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    counts = found["counts"]
    head = (f"needs attention: {counts['total']} key(s), {counts['acknowledged']} "
            "acknowledged")
    if counts.get("new_since") is not None:
        head += f", {counts['new_since']} new since {_at(found['since'], now, past=True)}"
    if found.get("search"):
        head += f"; {found['total']} match {found['search']!r}"
    lines = [head]
    for item in found["items"]:
        name = f" ({item['group_name']})" if item.get("group_name") else ""
        new = " NEW" if item.get("new") else ""
        lines.append(f"{item['sync_type']}:{item['group_id']}{name}{new} since "
                     f"{_at(item['attention_since'], now, past=True)}")
        if item["last_error"]:
            lines.append(f"  {item['last_error']}")
        ack = item.get("acknowledged")
        if ack:
            lines.append(f"  acknowledged by {ack['by']} {_at(ack['at'], now, past=True)}: "
                         f"{ack['note']}")
    if found["total"] > len(found["items"]):
        lines.append(f"... and {found['total'] - len(found['items'])} more")
    return "\n".join(lines)


async def ack(admin: Admin, args: argparse.Namespace, out: TextIO) -> int:
    result = await admin.acknowledge(args.sync_type, args.group_id, args.note, via=VIA,
                                     who=_operator())
    done = result["acknowledged"]
    print(f"acknowledged {result['sync_type']}:{result['group_id']} as {done['by']}: "
          f"{done['note']} (cleared when the key next succeeds)", file=out)
    return 0


# ---- parser ------------------------------------------------------------------------------------
def add_verbs(verbs: Any) -> None:
    def verb(name: str, fn: Verb, help_: str, description: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = verbs.add_parser(name, help=help_,
                                                           description=description)
        parser.add_argument("--api", metavar="URL", help="talk to a daemon's admin API "
                            "(e.g. http://127.0.0.1:8765; token from ADMIN_TOKEN) instead of "
                            "the database")
        parser.set_defaults(handler=runner(fn))
        return parser

    p = verb("status", status, "what is stuck and why, pauses, breakers, daemons",
             "Daemons alive (active and standbys), each service's pause, breaker and "
             "rate-limit state, keys per status, every failing key with the service's own "
             "message, and recent bulk jobs.")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = verb("retry", retry, "run one key now",
             "Make one (sync type, group) due now; the daemon runs it within a second. "
             "Refused while it runs or when it is already due.")
    p.add_argument("sync_type", help="discord, calendar, reminders or rsvps")
    p.add_argument("group_id", type=int)
    p.add_argument("--here", action="store_true", help="run it in THIS process now (its own "
                   "clients, rate limits and breaker, not the daemon's; the same lease keeps "
                   "one run per key) and print its result; refused while the service is "
                   "paused or the daemon's circuit for it is open")
    p.add_argument("--force", action="store_true",
                   help="with --here: run even while paused or the circuit is open")

    for name, fn, help_ in (("bulk-retry", bulk_retry, "retry every failing key in a scope"),):
        p = verb(name, fn, help_,
                 "Preview how many keys, groups and external calls, then (confirmed) start a "
                 "durable bulk job the active daemon runs in the background lane; shows "
                 "progress until it ends (Ctrl-C stops watching, not the job).")
        p.add_argument("--service", help="discord, calendar or a sync type (default: all)")
        p.add_argument("--status", help="failing (default), retrying or needs_attention")
        p.add_argument("--dry-run", action="store_true", help="only print the preview")
        p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        p.add_argument("--no-wait", action="store_true", help="start the job and return")
        p.add_argument("--json", action="store_true", help="--dry-run preview as JSON")

    p = verb("bulk-cancel", bulk_cancel, "cancel what a bulk job has not started",
             "Keys the job has not started are left untouched; running ones finish.")
    p.add_argument("job_id", type=int)

    p = verb("resync", resync, "force re-sync of one group",
             "Forget the delivery records of everything the group should have and send it "
             "all again (Discord overwrites, calendar events; reminders still due are "
             "re-planned, a reminder already sent never again).")
    p.add_argument("group_id", type=int)
    p.add_argument("--dry-run", action="store_true", help="only print what would be re-sent")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--json", action="store_true", help="--dry-run preview as JSON")

    p = verb("pause", pause, "pause a service everywhere",
             "No call is made to the service by any daemon (within a second); its keys stay "
             "owed and converge after resume.")
    p.add_argument("service", help="discord or calendar")
    p.add_argument("--reason", help="shown in status and on the dashboard")
    p.add_argument("--for", dest="for_seconds", type=_pause_span, metavar="DURATION",
                   help="end the pause by itself after this long (90s, 30m, 2h, 1d; at "
                        "most 7d); without it the service stays paused until `resume`")

    p = verb("resume", resume, "resume a paused service", "Owed keys run again at once.")
    p.add_argument("service", help="discord or calendar")

    p = verb("held", held, "syncs the deletion guard holds for approval",
             "Every key whose plan would remove too many members (GUARD_MAX_REMOVALS, "
             "GUARD_MAX_REMOVAL_SHARE, GUARD_MAX_REMOVALS_PER_10_MIN): the reason, the "
             "users it removes and its exact plan.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    for name, fn, help_, description in (
        ("approve", approve, "apply a held sync's plan",
         "Apply exactly the held plan if the group's membership is unchanged; else the key "
         "is planned (and guarded) again. Audit-logged with who and when."),
        ("reject", reject, "keep a held sync held",
         "The key stays held, with no calls, until the group's membership changes. "
         "Audit-logged with who and when."),
    ):
        p = verb(name, fn, help_, description)
        p.add_argument("sync_type", help="discord or calendar (a held key's type)")
        p.add_argument("group_id", type=int)

    p = verb("attention", attention, "the needs-attention set, searchable",
             "Keys an operator must act on (a missing channel or calendar, a refused "
             "permission), newest first, unacknowledged before acknowledged, with the "
             "service's message and any acknowledgement (who, when, note).")
    p.add_argument("--search", metavar="TEXT", help="part of the error, a user, channel "
                   "or calendar id, a group name or id, a sync type or service (any case)")
    p.add_argument("--since", metavar="TIME", help="ISO time: count and mark the keys "
                   "that entered the set after it")
    p.add_argument("--limit", type=int, default=50, help="at most this many keys (1-500)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = verb("ack", ack, "acknowledge a key in the needs-attention set",
             "Record that you have seen the key and what is being done, for every operator "
             "(status, API, dashboard); cleared when the key next succeeds. Audit-logged "
             "with who and when.")
    p.add_argument("sync_type", help="discord, calendar, reminders or rsvps")
    p.add_argument("group_id", type=int)
    p.add_argument("--note", required=True, help="what is being done about it")

    p = verb("breaker-reset", breaker_reset, "close a service's circuit breaker",
             "Every daemon closes its breaker for the service within a second.")
    p.add_argument("service", help="discord or calendar")

