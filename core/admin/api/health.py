"""/healthz (the process answers) and /readyz (database reachable, schema at head, role)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from core.admin.service import AdminService
from core.db.migrate import schema_status


async def readiness(engine: AsyncEngine, database_url: str, service: AdminService
                    ) -> tuple[bool, dict[str, Any]]:
    report: dict[str, Any] = {"role": service.role()}
    try:
        status = await schema_status(engine, database_url)
    except Exception as exc:  # unreachable: say so without the URL or its password
        report.update(database="unreachable", error=type(exc).__name__)
        return False, report
    report.update(database="ok", schema="head" if status.at_head else "behind",
                  revision=status.current, head=status.head)
    try:
        report["active_daemon"] = (await service.overview())["active_daemon"]
    except Exception:
        report["active_daemon"] = None
    return status.at_head, report
