"""The wheel's packages: ``core`` and, inside it as ``core.migrations``, the top-level
``migrations/`` folder (Alembic's script location in a checkout), so an installed
``groupsync migrate`` carries its scripts and ``core`` stays the only top-level package."""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        *find_namespace_packages(include=["core*"]),
        "core.migrations",
        "core.migrations.versions",
    ],
    package_dir={"core.migrations": "migrations"},
)
