"""The process slot: the one object through which a process's runtime is found."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

import core
from core import embed, lifecycle
from core.notifications import scheduler as scheduler_module
from core.process.slot import SLOT, SlotTaken
from core.runtime import Runtime, open_runtime
from tests.engine.conftest import Fakes, engine_settings

G = 57
CORE = Path(core.__file__).parent


@pytest.fixture
async def rt(database_url: str, fakes: Fakes) -> AsyncIterator[Runtime]:
    """A runtime built but not installed."""
    async with AsyncExitStack() as stack:
        runtime = await open_runtime(engine_settings(database_url), stack)
        yield runtime
        await runtime.coordinator.drain(2.0)


async def test_public_calls_run_on_the_installed_runtime_and_hand_off_after(
    rt: Runtime, fakes: Fakes, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)  # where a hand-off writes
    # Given a runtime installed in the slot
    with SLOT.installed(rt):
        # When a public call runs, then it runs here, on that runtime
        assert scheduler_module.current_runtime() is rt
        assert (await lifecycle.sync_group_calendar(G))["failed"] == 0
    # After the block nothing is installed: the same call hands off to a daemon
    assert scheduler_module.current_runtime() is None
    assert await lifecycle.sync_group_calendar(G) == {"handed_off": "daemon"}
    assert len(fakes.runs("calendar", G)) == 1


async def test_the_slot_is_emptied_even_when_the_block_raises(rt: Runtime) -> None:
    with pytest.raises(ZeroDivisionError), SLOT.installed(rt):
        _ = 1 / 0
    assert SLOT.current() is None


async def test_a_second_runtime_is_refused_and_the_first_stays(rt: Runtime) -> None:
    with SLOT.installed(rt):
        with pytest.raises(SlotTaken), SLOT.installed(rt):
            pass
        assert SLOT.runtime() is rt
    assert SLOT.runtime() is None


async def test_the_public_handle_is_published_for_the_block_and_an_apps_own_kept(
    rt: Runtime,
) -> None:
    own = scheduler_module.SyncScheduler()
    with scheduler_module.installed(rt, own):
        assert scheduler_module.current_scheduler() is own
    assert scheduler_module.current_scheduler() is None
    app = scheduler_module.SyncScheduler()
    scheduler_module._scheduler = app  # the public contract: the app's own scheduler
    try:
        with scheduler_module.installed(rt, own):
            assert scheduler_module.current_scheduler() is app
        assert scheduler_module.current_scheduler() is app
    finally:
        scheduler_module._scheduler = None


def test_installing_needs_the_runtimes_running_loop(rt: Runtime) -> None:
    with pytest.raises(RuntimeError), SLOT.installed(rt):
        pass
    assert SLOT.current() is None


def test_the_old_holders_are_gone() -> None:
    for name in ("_installed", "_background", "install_runtime", "uninstall_runtime"):
        assert not hasattr(scheduler_module, name), name
    assert not hasattr(embed, "_active")


def _module_level_holders(path: Path) -> list[str]:
    """Module-level names annotated with a runtime type, or bound to an empty mutable
    container (filled at run time): the shapes a global holding a runtime would take."""
    found = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names, value = [node.target.id], node.value
            if any(word in ast.unparse(node.annotation) for word in ("Runtime", "Installed")):
                found += names
                continue
        elif isinstance(node, ast.Assign):
            names, value = [t.id for t in node.targets if isinstance(t, ast.Name)], node.value
        else:
            continue
        empty = (isinstance(value, ast.List | ast.Set) and not value.elts) or (
            isinstance(value, ast.Dict) and not value.keys) or (
            isinstance(value, ast.Call) and not value.args
            and ast.unparse(value.func) in {"set", "list", "dict"})
        if empty:
            found += names
    return found


def test_no_module_global_in_core_holds_a_runtime() -> None:
    # An empty container or a Runtime-typed name at module level is where a runtime
    # would hide; the process slot (SLOT) is the one holder, _scheduler the one handle.
    holders = {
        f"{path.relative_to(CORE.parent)}:{name}"
        for path in CORE.rglob("*.py") if "sandbox" not in path.parts
        for name in _module_level_holders(path)
    }
    # The sync-type registry is a module-level table of specs, by design: not a runtime.
    assert holders - {"core/syncers/types.py:_specs"} == set()
