"""A tiny route table that reports the matched template (for buckets, faults and logs)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[a-z_]+\})", template)
    regex = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{regex}$")


class RouteTable:
    def __init__(self, routes: list[tuple[str, str, str]]) -> None:
        """``routes``: (method, template, name); literal templates must come first."""
        self._routes = [(Route(m, t, n), _compile(t)) for m, t, n in routes]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route, pattern in self._routes:
            found = pattern.match(path)
            if found and route.method == method:
                return route, found.groupdict()
        return None

    def path_exists(self, path: str) -> bool:
        return any(pattern.match(path) for _, pattern in self._routes)
