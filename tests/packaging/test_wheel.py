"""The wheel: built from the checkout, installed into a fresh virtualenv in a temporary
folder outside it, it carries only ``core`` (with migrations) and a working ``groupsync``
script, and the README's embedding example runs against it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.packaging.readme import ROOT, embedding_example
from tests.packaging.test_readme_example import assert_group_42_synced

pytestmark = pytest.mark.slow


def uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run([*uv(), "build", "--wheel", "--quiet", "-o", str(out)], cwd=ROOT)
    (built,) = out.glob("groupsync-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv outside the checkout, with the locked dependencies and the wheel
    (from the uv cache when it has them, so this is quick and works offline)."""
    root = tmp_path_factory.mktemp("venv")
    assert ROOT not in root.parents
    run([*uv(), "venv", "--quiet", "--python", sys.executable, str(root / "venv")], cwd=root)
    requirements = root / "requirements.txt"
    run([*uv(), "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes",
         "--quiet", "-o", str(requirements)], cwd=ROOT)
    python = str(root / "venv" / "bin" / "python")
    install = [*uv(), "pip", "install", "--quiet", "--python", python,
               "-r", str(requirements), str(wheel)]
    offline = subprocess.run([*install, "--offline"], cwd=root, capture_output=True, text=True,
                             timeout=300)
    if offline.returncode != 0:  # a cold cache: let uv fetch what it lacks
        run(install, cwd=root, timeout=600)
    return root / "venv"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "DATABASE_URL", "SYNCER_FACTORY")}
    return {**env, **extra}


def test_the_wheel_holds_only_core_with_its_migrations(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names}
    distribution, version = wheel.name.split("-")[:2]
    assert top == {"core", f"{distribution}-{version}.dist-info"}
    assert "core/migrations/script.py.mako" in names
    assert "core/migrations/env.py" in names
    assert any(n.startswith("core/migrations/versions/0001_") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "bench/", "scripts/"))]


def test_the_installed_script_migrates_a_new_sqlite_file(venv: Path, tmp_path: Path) -> None:
    groupsync = str(venv / "bin" / "groupsync")
    helped = run([groupsync, "--help"], cwd=tmp_path, env=clean_env())
    for verb in ("run", "migrate", "status", "retry", "demo", "sandbox"):
        assert verb in helped.stdout

    run([groupsync, "migrate"], cwd=tmp_path, env=clean_env(DATABASE_URL="sqlite:///./new.db"))
    status = run([groupsync, "status", "--json"], cwd=tmp_path,
                 env=clean_env(DATABASE_URL="sqlite:///./new.db"))
    assert (tmp_path / "new.db").exists()
    assert status.stdout.strip().startswith("{")


def test_the_installed_script_migrates_a_fresh_database_on_either_backend(
    venv: Path, tmp_path: Path, empty_database_url: str
) -> None:
    # The wheel's own copy of the migrations (core/migrations), outside the checkout.
    groupsync = str(venv / "bin" / "groupsync")
    env = clean_env(DATABASE_URL=empty_database_url)
    refused = subprocess.run([groupsync, "status"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 2, refused.stderr
    assert "migrate" in refused.stderr  # an empty database names the command that fixes it
    run([groupsync, "migrate"], cwd=tmp_path, env=env)
    status = run([groupsync, "status", "--json"], cwd=tmp_path, env=env)
    assert json.loads(status.stdout)["services"]


def test_the_readme_embedding_example_runs_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    python = str(venv / "bin" / "python")
    where = run([python, "-c", "import core; print(core.__file__)"], cwd=tmp_path,
                env=clean_env())
    assert str(venv) in where.stdout  # the installed copy, not the checkout
    run([str(venv / "bin" / "groupsync"), "migrate"], cwd=tmp_path,
        env=clean_env(DATABASE_URL="sqlite:///./var/app.db"))
    (tmp_path / "example.py").write_text(embedding_example())

    example = run([python, "example.py"], cwd=tmp_path, env=clean_env(), timeout=180)

    assert "leading: True" in example.stdout
    assert_group_42_synced(tmp_path / "var" / "app.db")
