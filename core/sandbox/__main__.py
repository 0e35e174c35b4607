"""``python -m core.sandbox``: run the fake services until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio

from core.sandbox.server import serve_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m core.sandbox", description=__doc__)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--discord-port", type=int, default=0)
    parser.add_argument("--calendar-port", type=int, default=0)
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--seed-demo", action="store_true")
    args = parser.parse_args(argv)
    asyncio.run(serve_forever(args.time_scale, args.host, args.discord_port, args.calendar_port,
                              args.seed_demo, args.control_port))


if __name__ == "__main__":
    main()
