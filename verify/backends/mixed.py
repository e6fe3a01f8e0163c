"""Stores of two kinds: one filed, the other RADOS (``[blockerb]`` and ``[blockerm]`` of
different types in archipelago.conf, or e.g. ``--blocks-dir`` with ``--pool``).

A mixed backend holds one backend per store (a filed one holding only its dir, a
RADOS one only its pool) and sends each call to the part holding the store it is
about. Everything a single backend does within one store (the scan, a shard's
join records, the data hashes, object I/O) is the part's own; what needs both
stores at once, the reference stage, is the sharded join of
:mod:`verify.backends.shard_join`, run in this process or on Dask as for any backend.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import UsageError
from ..core.summary import ShardResult
from . import ROLES, entry, store_kinds
from .base import ProgressFn, Ref, Shard, Window

__all__ = ["MixedBackend", "from_options"]


def from_options(cfg, validate: bool = True, **options) -> MixedBackend:
    """Each store's backend, built from the config and flags as that kind builds its own."""
    types = {role: sc.type for role, sc in cfg.stores.items()} if cfg is not None else None
    kinds = store_kinds(types, options)
    if kinds["maps"] == kinds["blocks"]:
        raise UsageError(f"--backend mixed: both stores are {kinds['maps']}; give --backend {kinds['maps']} "
                         "(mixed is for one filed store and one RADOS pool)")
    parts = {role: entry(kind).build(cfg, validate=validate, roles=(role,), **options) for role, kind in kinds.items()}
    return MixedBackend(parts["maps"], parts["blocks"])


@dataclass
class MixedBackend:
    maps: object  # the backend holding the maps store (and only it)
    blocks: object  # the backend holding the blocks store
    name: str = "mixed"

    def part(self, role: str):
        return self.maps if role == "maps" else self.blocks

    def _parts(self):
        return ((role, self.part(role)) for role in ROLES)

    def kinds(self) -> dict[str, str]:
        return {role: be.name for role, be in self._parts()}

    # ---- the scan ------------------------------------------------------------------------

    def validate(self) -> None:
        for _, be in self._parts():
            be.validate()

    def require_portable(self) -> None:
        for _, be in self._parts():
            be.require_portable()

    def describe(self) -> dict:
        return {role: be.describe()[role] for role, be in self._parts()}

    def shards(self, per_store: int = 1) -> list[Shard]:
        return [s for role, be in self._parts() for s in be.shards(per_store) if s.store == role]

    def scan_shard(self, shard: Shard, jobs: int, progress: ProgressFn | None = None) -> ShardResult:
        return self.part(shard.store).scan_shard(shard, jobs, progress)

    def store_dir(self, role: str) -> str | None:
        return self.part(role).store_dir(role)

    def with_pithos_migrate(self, on: bool) -> MixedBackend:
        return MixedBackend(self.maps.with_pithos_migrate(on), self.blocks.with_pithos_migrate(on))

    def keep_empty_locks(self, on: bool = True) -> None:
        for _, be in self._parts():
            be.keep_empty_locks(on)

    def estimated_objects(self) -> int | None:
        """Both parts' estimates, or None when either part has none (half a total would mislead)."""
        counts = [be.estimated_objects() for _, be in self._parts()]
        return None if None in counts else sum(counts)

    # ---- check: the references through the sharded join, the data on the blocks part -------

    def check_references(self, jobs: int, progress: ProgressFn | None = None) -> ShardResult:
        """Every map's entries (read by the maps part) against the objects the blocks part lists."""
        from .shard_join import local_references

        return local_references(self, jobs, progress)

    def keep_heads(self, budget: int = 0) -> None:
        """Nothing: the references go through the sharded join, which reads the maps shard by shard."""

    def verify_data(self, jobs: int, window: Window, progress: ProgressFn | None = None) -> ShardResult:
        return self.blocks.verify_data(jobs, window, progress)

    def check_shard(self, shard: Shard, jobs: int, locator: bytes) -> tuple[ShardResult, bytes]:
        return self.part(shard.store).check_shard(shard, jobs, locator)

    def explain_shard(self, shard: Shard, jobs: int, records: bytes,
                      width: int) -> tuple[list[Ref], dict[bytes, tuple[int, int]]]:
        return self.maps.explain_shard(shard, jobs, records, width)

    def orphans_shard(self, shard: Shard, jobs: int, records: bytes, width: int) -> ShardResult:
        return self.blocks.orphans_shard(shard, jobs, records, width)

    def verify_data_shard(self, shard: Shard, jobs: int, window: Window) -> ShardResult:
        return self.blocks.verify_data_shard(shard, jobs, window)

    def object_path(self, name: bytes) -> str | None:
        return self.blocks.object_path(name)

    def maps_lookup(self, jobs: int):
        """The maps part's map lookup (pithos-check reads only the maps store)."""
        return self.maps.maps_lookup(jobs)

    # ---- object I/O: the part holding the store --------------------------------------------

    def list_page(self, store: str, cursor=None, limit: int = 1000):
        return self.part(store).list_page(store, cursor, limit)

    def read(self, store: str, name: bytes, offset: int = 0, length: int | None = None) -> bytes | None:
        return self.part(store).read(store, name, offset, length)

    def stat(self, store: str, name: bytes) -> int | None:
        return self.part(store).stat(store, name)

    def write(self, store: str, name: bytes, data: bytes) -> None:
        self.part(store).write(store, name, data)

    def write_at(self, store: str, name: bytes, offset: int, data: bytes) -> None:
        self.part(store).write_at(store, name, offset, data)

    def remove(self, store: str, name: bytes) -> bool:
        return self.part(store).remove(store, name)

    def lock_owner(self, store: str, name: bytes) -> str | None:
        return self.part(store).lock_owner(store, name)
