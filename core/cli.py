"""groupsync command line: a thin face over core/ (`groupsync --help` lists the verbs)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import traceback
from collections.abc import Callable

from core.config import Settings, load_settings
from core.errors import ConfigError, GroupsyncError, InvalidArgument, UnknownGroupError
from core.observability import configure_logging, init_sentry
from core.syncers.types import load_modules as load_sync_types

EXIT_CONFIG = 2


def _secrets(settings: Settings) -> list[str]:
    if settings.google_credentials_file is None:  # no need to import google-auth then
        return settings.secret_values()
    from core.clients.google_credentials import file_secrets

    return [*settings.secret_values(), *file_secrets(settings.google_credentials_file)]


def _prepare(settings: Settings) -> None:
    configure_logging(settings.log_format, settings.log_level, _secrets(settings))
    dsn = settings.sentry_dsn.get_secret_value() if settings.sentry_dsn else None
    init_sentry(dsn, settings.sentry_environment, _secrets(settings))


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from core.admin.face import AdminFace
    from core.clients.factory import require_credentials
    from core.clients.probes import verify_credentials
    from core.daemon import install_stop_signals, run_daemon

    # Before anything starts (no admin port, no lock, no heartbeat): the settings, then
    # one call per enabled service. Real services are never faked.
    require_credentials(settings)
    face = AdminFace(settings)  # refuses a public ADMIN_HOST without ADMIN_TOKEN

    async def main() -> int:
        await verify_credentials(settings)  # rejected: exit 2; unreachable: one warning
        stop = asyncio.Event()
        install_stop_signals(stop)
        return await run_daemon(settings, stop, face=face)

    return asyncio.run(main())


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from core.config import redact_url
    from core.db.migrate import unknown_target, upgrade

    problem = unknown_target(settings.database_url, args.revision)
    if problem is not None:
        print(f"groupsync: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    upgrade(settings.database_url, args.revision)
    print(f"database at {redact_url(settings.database_url)} upgraded to {args.revision}")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from core.demo import DemoOptions, run_demo

    options = DemoOptions(workdir=Path(args.workdir), time_scale=args.time_scale)
    return asyncio.run(run_demo(settings, options))


def cmd_drift(args: argparse.Namespace, settings: Settings) -> int:
    from core.drift_report import run_drift

    groups = list(args.group or []) or None
    return asyncio.run(run_drift(settings, groups, args.dry_run, args.json, sys.stdout))


def cmd_sandbox(args: argparse.Namespace, settings: Settings) -> int:
    from core.sandbox.__main__ import run

    run(args)
    return 0


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Every verb; only the verb being run imports what it needs (each answers in well
    under a second): the sandbox's own arguments, for one, are added only for it."""
    parser = argparse.ArgumentParser(
        prog="groupsync",
        description="groupsync: keeps Discord, Google Calendar, reminders and RSVPs in step "
        "with group membership. Settings come from the environment (see README).",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    run = verbs.add_parser(
        "run",
        help="run the long-lived daemon",
        description="Run the daemon "
        "until SIGTERM/SIGINT. Refuses to start on a schema not at head.",
    )
    run.set_defaults(handler=cmd_run)

    migrate = verbs.add_parser(
        "migrate",
        help="upgrade the database schema",
        description="Apply Alembic migrations (default: to head).",
    )
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.set_defaults(handler=cmd_migrate)

    demo = verbs.add_parser(
        "demo",
        help="run the daemon against the sandbox with scripted changes and faults",
        description="Start the fake Discord and Calendar servers, a fresh SQLite database "
        "with sample data and the daemon; script joins, leaves and switches while injecting "
        "429s, 5xx and an outage; stop once everything has converged.",
    )
    demo.add_argument("--workdir", default="var/demo", help="where the demo database lives")
    demo.add_argument(
        "--time-scale",
        type=float,
        default=0.2,
        help="engine and sandbox time factor (1.0 = real backoff)",
    )
    demo.set_defaults(handler=cmd_demo)

    from core.admin.commands import add_verbs

    add_verbs(verbs)  # status, retry, bulk-retry, bulk-cancel, resync, pause, resume, ...

    drift = verbs.add_parser(
        "drift",
        help="list what the live services hold that differs from groupsync's records",
        description="Read Discord overwrites/roles and calendar events of every active group "
        "(or --group) and list each difference with what a sync does about it. With "
        "--dry-run nothing changes; without it the keys are marked owed and the daemon "
        "repairs and logs each item. People's own overwrites and events are never listed.",
    )
    drift.add_argument("--dry-run", action="store_true", help="report only, change nothing")
    drift.add_argument("--group", type=int, action="append", help="only this group (repeatable)")
    drift.add_argument("--json", action="store_true", help="one JSON list instead of lines")
    drift.set_defaults(handler=cmd_drift)

    sandbox = verbs.add_parser(
        "sandbox",
        help="serve the fake Discord and Google Calendar APIs on 127.0.0.1",
        description="Run the sandbox servers until SIGTERM/SIGINT; prints one JSON line "
        "with their URLs once ready. See docs/sandbox.md.",
    )
    words = sys.argv[1:] if argv is None else argv
    if "sandbox" in words[:1]:
        from core.sandbox.__main__ import add_arguments

        add_arguments(sandbox)
    sandbox.set_defaults(handler=cmd_sandbox)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Every known problem ends in one line on stderr naming the fix: exit 2 for bad
    settings, arguments and database problems, 1 for other refusals. The traceback is
    shown only with LOG_LEVEL=DEBUG; an unexpected error (a bug) keeps its traceback."""
    args = build_parser(argv).parse_args(argv)
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"groupsync: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    _prepare(settings)
    try:
        load_sync_types(settings.sync_type_modules)
        return handler(args, settings)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        code, line = _explain(exc)
        if code is None:
            raise
        if settings.log_level == "DEBUG":
            traceback.print_exc()
        print(f"groupsync: {line}", file=sys.stderr)
        return code


def _explain(exc: Exception) -> tuple[int | None, str]:
    from core.db.problems import database_problem

    if isinstance(exc, ConfigError):
        return EXIT_CONFIG, f"configuration error: {exc}"
    if isinstance(exc, UnknownGroupError):
        return 1, str(exc)  # a refusal like the admin verbs' "unknown group", not bad usage
    if isinstance(exc, InvalidArgument):
        return EXIT_CONFIG, str(exc)
    problem = database_problem(exc)
    if problem is not None:
        return EXIT_CONFIG, problem
    if isinstance(exc, GroupsyncError):
        return 1, str(exc)
    return None, ""


if __name__ == "__main__":
    sys.exit(main())
