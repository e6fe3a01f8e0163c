"""Backends: the kinds of store Archipelago uses, and the one registry of them.

Each backend is one module (or package) under ``verify/backends/`` holding a
backend class that implements some of the capability protocols of
:mod:`verify.backends.base`, and a ``from_options(cfg, validate=True, **options)``
that builds it from archipelago.conf and the command-line store options. The
registry below names the class, the capabilities it implements and the options
that select it; the commands read it and never probe a backend for methods. A
backend module is imported only when it is used (RADOS needs librados).

Adding a backend: its module, and one line in :data:`REGISTRY`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..errors import UsageError
from .base import (MAP_LOOKUP, OBJECTS, PROTOCOLS, REFERENCES, SCAN, SHARDED, BadObjectName, ObjectIO,
                   ProgressFn, ReferenceCheck, Scan, Shard, ShardedCheck, split, strerror)

Backend = Scan  # what every backend offers

__all__ = ["Backend", "BadObjectName", "Entry", "MAP_LOOKUP", "OBJECTS", "ObjectIO", "PROTOCOLS", "ProgressFn",
           "REFERENCES", "REGISTRY", "ReferenceCheck", "SCAN", "SHARDED", "Scan", "Shard", "ShardedCheck", "choose",
           "entry", "names", "split", "strerror", "supports"]


@dataclass(frozen=True)
class Entry:
    """One kind of store: its name (``--backend``, ``[blockerm] type``), where its code is, what it can do."""

    name: str
    module: str  # under verify.backends
    cls: str
    capabilities: frozenset[str]
    selected_by: tuple[str, ...] = ()  # store options that imply this backend when nothing else says

    def load(self) -> type:
        return vars(importlib.import_module(f"{__name__}.{self.module}"))[self.cls]

    def build(self, cfg, validate: bool = True, **options):
        """The backend for ``cfg`` (a loaded archipelago.conf, or None) and the command-line options."""
        return importlib.import_module(f"{__name__}.{self.module}").from_options(cfg, validate=validate, **options)


_ALL = frozenset({SCAN, REFERENCES, SHARDED, OBJECTS})

REGISTRY: tuple[Entry, ...] = (
    Entry("filed", "filed", "FiledBackend", _ALL | {MAP_LOOKUP}),  # the default
    Entry("rados", "rados", "RadosBackend", _ALL, selected_by=("pool",)),
)


def names() -> list[str]:
    return [e.name for e in REGISTRY]


def entry(name: str) -> Entry | None:
    return next((e for e in REGISTRY if e.name == name), None)


def supports(backend, capability: str) -> bool:
    """Whether ``backend``'s kind declares ``capability`` (an unregistered kind declares nothing)."""
    e = entry(backend.name)
    return e is not None and capability in e.capabilities


def choose(name: str | None, config_type: str | None, options: dict) -> Entry:
    """The backend named by ``--backend``, else by the config's maps store, else implied by the options."""
    for wanted in (name, config_type):
        if wanted is not None:
            e = entry(wanted)
            if e is None:
                raise UsageError(f"no backend {wanted!r}; archverify knows {', '.join(names())}")
            return e
    return next((e for e in REGISTRY if any(options.get(o) for o in e.selected_by)), REGISTRY[0])
