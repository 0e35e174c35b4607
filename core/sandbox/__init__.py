"""Fake Discord REST v10 and Google Calendar v3 servers for tests, the demo and benchmarks.

Start in-process with ``async with start_sandbox(time_scale=0.01) as sb`` or as a
process with ``python -m core.sandbox``. See docs/sandbox.md.
"""

from core.sandbox.calendar_fake import CalendarFake
from core.sandbox.discord_fake import DiscordFake
from core.sandbox.faults import FaultHandle
from core.sandbox.options import CalendarLimits, DiscordLimits, RouteLimit, SandboxLimits
from core.sandbox.server import Sandbox, serve_forever, start_sandbox

__all__ = [
    "CalendarFake",
    "CalendarLimits",
    "DiscordFake",
    "DiscordLimits",
    "FaultHandle",
    "RouteLimit",
    "Sandbox",
    "SandboxLimits",
    "serve_forever",
    "start_sandbox",
]
