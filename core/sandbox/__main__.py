"""``python -m core.sandbox``: run the fake services until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio

from core.sandbox.server import serve_forever


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the standalone sandbox (shared with ``python main.py sandbox``)."""
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiplies every rate-limit window and retry_after")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--discord-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--calendar-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--control-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed-demo", action="store_true",
                        help="create a small guild, users and a calendar")


def run(args: argparse.Namespace) -> None:
    asyncio.run(serve_forever(args.time_scale, args.host, args.discord_port, args.calendar_port,
                              args.seed_demo, args.control_port))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m core.sandbox", description=__doc__)
    add_arguments(parser)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
