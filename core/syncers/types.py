"""The sync-type registry: every place that enumerates sync types reads it.

The engine, the admin faces, the metrics and the dashboard ask this module which sync
types exist and what each one is (``core.syncers.spec``), so a new type needs its own
module and one ``register(SyncTypeSpec(...))``; the built-in four are registered by
``core.syncers.builtin`` exactly the same way, ahead of any other. Registration order is
run order (a group change starts them in it).
"""

from __future__ import annotations

import importlib

from core.db.models import SyncType
from core.errors import ConfigError, InvalidArgument
from core.syncers.spec import SyncTypeSpec

__all__ = ["SyncTypeSpec", "register", "registered", "spec_of"]

_specs: dict[str, SyncTypeSpec] = {}


def register(spec: SyncTypeSpec) -> SyncTypeSpec:
    """Add a sync type (at import time of the module that defines it). Registering the
    same name again replaces the spec in its place (a reloaded module, a test)."""
    _specs[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """For tests that registered a type of their own."""
    if name in _builtin_names():
        raise ValueError(f"{name} is built in")
    _specs.pop(name, None)


def registered() -> tuple[SyncTypeSpec, ...]:
    """Every sync type, in run order."""
    _ensure_builtins()
    return tuple(_specs.values())


def names() -> tuple[SyncType, ...]:
    return tuple(spec.sync_type for spec in registered())


def is_registered(name: object) -> bool:
    return isinstance(name, str) and name in {spec.name for spec in registered()}


def spec_of(name: str) -> SyncTypeSpec:
    _ensure_builtins()
    try:
        return _specs[name]
    except (KeyError, TypeError):
        raise unknown(name) from None


def parse(value: object) -> SyncType:
    """A registered sync type's name, or ``InvalidArgument`` listing the valid ones."""
    if not is_registered(value):
        raise unknown(value)
    return SyncType(str(value))


def unknown(value: object) -> InvalidArgument:
    valid = ", ".join(spec.name for spec in registered())
    return InvalidArgument(f"unknown sync type {value!r}; valid types: {valid}")


def load_modules(modules: tuple[str, ...]) -> None:
    """Import SYNC_TYPE_MODULES: each registers its sync types as it is imported."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError("SYNC_TYPE_MODULES", f"cannot import {name!r}: {exc}") from None


def service_of(sync_type: str) -> str | None:
    return spec_of(sync_type).service


def services() -> tuple[str, ...]:
    """The services sync types call, in first-registration order."""
    return tuple(dict.fromkeys(s.service for s in registered() if s.service is not None))


def service_label(service: str) -> str:
    labels = [s.service_label for s in registered() if s.service == service and s.service_label]
    return labels[0] if labels else service


def filter_choices() -> list[tuple[str, str]]:
    """(value, label) for the dashboard's scope filter: each service, then each type."""
    by_service = [(service, service_label(service)) for service in services()]
    by_type = [(spec.name, spec.label) for spec in registered() if spec.name not in services()]
    return by_service + by_type


def types_of(service: str) -> tuple[SyncType, ...]:
    return tuple(s.sync_type for s in registered() if s.service == service)


def scopes() -> tuple[str, ...]:
    """What a pause, a key filter or a bulk retry may name: a service or a sync type."""
    return tuple(dict.fromkeys((*services(), *(s.name for s in registered()))))


def _builtin_names() -> frozenset[str]:
    return frozenset({SyncType.DISCORD, SyncType.CALENDAR, SyncType.REMINDERS, SyncType.RSVPS})


def _ensure_builtins() -> None:
    # The built-in four register on first use, ahead of any other (their run order).
    if SyncType.DISCORD not in _specs:
        from core.syncers.builtin import register_builtins

        others = dict(_specs)
        _specs.clear()
        register_builtins(register)
        _specs.update({k: v for k, v in others.items() if k not in _specs})
