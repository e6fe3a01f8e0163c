"""Backends: the kinds of store Archipelago uses, and the one registry of them.

Each backend is one module (or package) under ``verify/backends/`` holding a
backend class that implements some of the capability protocols of
:mod:`verify.backends.base`, and a ``from_options(cfg, validate=True, **options)``
that builds it from archipelago.conf and the command-line store options. The
registry below names the class, the capabilities it implements and the options
that select it; the commands read it and never probe a backend for methods. A
backend module is imported only when it is used (RADOS needs librados).

Adding a backend: its module, and one line in :data:`REGISTRY`.

Each store (``maps``, ``blocks``) is of one kind; when archipelago.conf or the flags
put the two stores in different kinds (filed blocks and RADOS maps, or the reverse),
the ``mixed`` backend holds one backend per store and sends each call to the one
holding that store.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..core.errors import UsageError
from .base import (MAP_LOOKUP, OBJECTS, PATHS, PROTOCOLS, REFERENCES, SCAN, SHARDED, BadObjectName, ObjectIO,
                   ProgressFn, ReferenceCheck, Scan, Shard, ShardedCheck, split, strerror)

Backend = Scan  # what every backend offers

__all__ = ["Backend", "BadObjectName", "Entry", "MAP_LOOKUP", "MIXED", "OBJECTS", "ObjectIO", "PATHS", "PROTOCOLS",
           "ProgressFn", "REFERENCES", "REGISTRY", "ROLES", "ReferenceCheck", "SCAN", "SHARDED", "Scan", "Shard",
           "ShardedCheck", "choose", "config_types", "entry", "from_options", "map_lookup", "names", "path_stores",
           "split", "store_backend", "store_kinds", "strerror", "supports"]


@dataclass(frozen=True)
class Entry:
    """One kind of store: its name (``--backend``, ``[blockerm] type``), where its code is, what it can do."""

    name: str
    module: str  # under verify.backends
    cls: str
    capabilities: frozenset[str]
    options: tuple[str, str] = ("", "")  # the flags that put the maps store, the blocks store in this kind
    flags: tuple[str, ...] = ()  # every option that only this kind reads (the other kind would ignore it)

    def load(self) -> type:
        return vars(importlib.import_module(f"{__name__}.{self.module}"))[self.cls]

    def build(self, cfg, validate: bool = True, **options):
        """The backend for ``cfg`` (a loaded archipelago.conf, or None) and the command-line options."""
        return importlib.import_module(f"{__name__}.{self.module}").from_options(cfg, validate=validate, **options)


_ALL = frozenset({SCAN, REFERENCES, SHARDED, OBJECTS, MAP_LOOKUP})

REGISTRY: tuple[Entry, ...] = (
    Entry("filed", "filed.backend", "FiledBackend", _ALL | {PATHS}, ("maps_dir", "blocks_dir"),
          ("maps_dir", "blocks_dir", "pithos_migrate")),  # the default
    Entry("rados", "rados.backend", "RadosBackend", _ALL, ("pool", "blocks_pool"),
          ("pool", "blocks_pool", "namespace", "inflight", "connect_timeout",
           "ceph_conf", "client_id", "ceph_name", "keyring", "cluster")),
    Entry("mixed", "mixed", "MixedBackend", _ALL),  # one store filed, the other RADOS: every flag applies
)
MIXED = "mixed"
ROLES = ("maps", "blocks")


def names() -> list[str]:
    return [e.name for e in REGISTRY]


def entry(name: str) -> Entry | None:
    return next((e for e in REGISTRY if e.name == name), None)


def supports(backend, capability: str) -> bool:
    """Whether ``backend``'s kind declares ``capability`` (an unregistered kind declares nothing)."""
    e = entry(backend.name)
    return e is not None and capability in e.capabilities


def config_types(cfg) -> dict[str, str] | None:
    """The kind of each store as a loaded archipelago.conf has it (None: no config)."""
    return {role: sc.type for role, sc in cfg.stores.items()} if cfg is not None else None


def from_options(cfg, name: str | None = None, validate: bool = True, given: dict[str, str] | None = None,
                 **options):
    """The backend that ``--backend`` (``name``), archipelago.conf (``cfg``, or None) and the store
    options call for, built as its kind builds it: the one way a command gets a backend.
    ``given``: the options typed, as :func:`choose` takes them."""
    e = choose(name, config_types(cfg), options, given)
    if cfg is None and e.name != MIXED and "roles" not in options:
        named = [role for role, flag in zip(ROLES, e.options) if options.get(flag)]
        if named == ["blocks"]:
            options["roles"] = ("blocks",)  # --blocks-dir alone reads the blocks store, as --maps-dir alone the maps
    return e.build(cfg, validate=validate, **options)


def unnamed_stores(backend) -> list[tuple[str, str]]:
    """The stores a one-kind backend built from flags alone does not hold (``--maps-dir`` alone),
    each with the option that would have named it."""
    e = entry(backend.name)
    if e is None or e.name == MIXED:
        return []
    held = backend.describe()
    return [(role, e.options[i]) for i, role in enumerate(ROLES) if role not in held]


def path_stores(cfg, options: dict) -> tuple[str, tuple[str, ...]]:
    """The kind and the roles of the stores kept as files at paths (their kind declares PATHS),
    per the config and flags: what migrate-objects works on (a pool has no paths); a UsageError
    when no store is."""
    kinds = store_kinds(config_types(cfg), options)
    roles = tuple(role for role in ROLES if PATHS in entry(kinds[role]).capabilities)
    if not roles:
        where = f"{cfg.path}: " if cfg is not None else ""
        raise UsageError(f"{where}both stores are {' and '.join(sorted(set(kinds.values())))}, which keep "
                         "no objects at paths: there is nothing to move between old and v0.4 paths")
    held = {kinds[role] for role in roles}
    return (held.pop() if len(held) == 1 else MIXED), roles


def map_lookup(backend, jobs: int):
    """The maps store looked up by name (pithos-check), or one line saying this kind cannot."""
    if not supports(backend, MAP_LOOKUP):
        where = backend.describe().get("maps", {})
        raise UsageError(f"pithos-check cannot look maps up by name in this {backend.name} maps store "
                         f"({where.get('pool') or where.get('dir')})")
    return backend.maps_lookup(jobs)


def store_kinds(config_types: dict[str, str] | None, options: dict) -> dict[str, str]:
    """The kind of each store: a flag naming it (``--pool``, ``--blocks-dir``, ...) wins over
    archipelago.conf; without either, the blocks store is taken to be of the maps store's kind."""
    kinds: dict[str, str] = {}
    for i, role in enumerate(ROLES):
        flagged = [e.name for e in REGISTRY if e.options[i] and options.get(e.options[i])]
        if len(flagged) > 1:
            flags = " and ".join("--" + entry(n).options[i].replace("_", "-") for n in flagged)
            raise UsageError(f"{flags} both name the {role} store: give one")
        kind = flagged[0] if flagged else (config_types or {}).get(role)
        if kind is not None:
            kinds[role] = kind
    kinds.setdefault("maps", REGISTRY[0].name)
    kinds.setdefault("blocks", kinds["maps"])
    return kinds


def choose(name: str | None, config_types: dict[str, str] | None, options: dict,
           given: dict[str, str] | None = None) -> Entry:
    """The backend named by ``--backend``, else the one the stores' kinds call for: one kind for
    both stores is that kind's backend, two kinds are ``mixed``.

    ``given``: the options the user typed (name -> as typed). One that only another kind reads would be
    ignored without a word (``--backend rados --maps-dir DIR`` scanning the pool, not DIR):
    it is refused instead."""
    if name is not None:
        e = entry(name)
        if e is None:
            raise UsageError(f"no backend {name!r}; archverify knows {', '.join(names())}")
    else:
        kinds = store_kinds(config_types, options)
        e = entry(kinds["maps"] if kinds["maps"] == kinds["blocks"] else MIXED)
    given = given or {}
    if e.flags:
        for other in REGISTRY:
            stray = [o for o in other.flags if o in given and o not in e.flags]
            if stray:
                why = f"--backend {name}" if name is not None else "by the config and the store flags"
                raise UsageError(f"{given[stray[0]]} is a {other.name} option, but both stores are {e.name} here "
                                 f"({why}): it would be ignored; drop it"
                                 + (" or give --backend mixed" if name else ""))
    return e


def store_backend(backend, role: str):
    """The backend that holds ``role``'s store: ``backend`` itself, or a mixed backend's part."""
    return backend.part(role) if backend.name == MIXED else backend
