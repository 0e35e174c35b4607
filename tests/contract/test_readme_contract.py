"""The README's orchestration-contract example runs as written (no database, no runtime)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, cast

from tests.packaging.readme import ROOT

MARKER = "<!-- contract-example:"


def _example() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"```python\n(.*?)```", text[text.index(MARKER):], re.S)
    assert match is not None, "no python block after the contract-example marker"
    return match.group(1)


async def test_the_readme_contract_example_passes_as_written() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(_example(), "README.md", "exec"), namespace)
    name = "test_a_discord_failure_schedules_its_retry"
    test = cast(Callable[[], Awaitable[None]], namespace[name])
    await test()
