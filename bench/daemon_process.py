"""A real daemon (``python main.py run``) as a child process, for benchmarks that measure
its own CPU and memory: started on a database URL with extra settings, waited for until it
holds leadership, read through /proc, stopped with SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Daemon:
    process: asyncio.subprocess.Process
    log: Path

    def cpu_seconds(self) -> float:
        """User + system CPU of the daemon's process (all its threads) so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def rss_bytes(self) -> int:
        return int(Path(f"/proc/{self.process.pid}/statm").read_text().split()[1]) * PAGE

    def events(self) -> list[dict[str, object]]:
        """The daemon's JSON log lines so far (other lines skipped)."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def saw(self, event: str) -> bool:
        return any(e.get("event") == event for e in self.events())


@asynccontextmanager
async def running_daemon(
    database_url: str, directory: Path, *, timeout: float = 120.0, **env: str
) -> AsyncIterator[Daemon]:
    """``main.py run`` with no service enabled (unless ``env`` says otherwise), JSON logs
    to a file, the admin API on a free port; yields once it holds leadership."""
    log = directory / "daemon.log"
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ENABLED_SERVICES": "",
        "LOG_FORMAT": "json",
        "ADMIN_PORT": "0",
        **env,
    }
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "main.py"), "run",
            cwd=ROOT, env=environment, stdout=out, stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
        )
    daemon = Daemon(process, log)
    try:
        deadline = time.monotonic() + timeout
        while not daemon.saw("leadership_acquired"):
            if process.returncode is not None:
                raise RuntimeError(f"daemon exited {process.returncode}: {log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"daemon not leader within {timeout:g}s")
            await asyncio.sleep(0.05)
        yield daemon
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=30)
            except TimeoutError:
                process.kill()
                await process.wait()
