"""The store contract: what a backend can do, one protocol per capability.

A backend is a plain picklable value (it travels to Dask workers) that offers some
of these capabilities; which ones it offers is declared once, in the registry
(:mod:`verify.backends`), never discovered by probing for methods. The
conformance suite (tests/backends/) holds every registered backend to the
protocols it declares.

- :class:`Scan`: split both stores into shards and scan one (``scan``, ``check``'s first stage).
- :class:`ReferenceCheck`: every map entry against the stored objects, and content
  hashes (``check``'s later stages, on one machine).
- :class:`ShardedCheck`: the same two stages one shard at a time, the join done
  elsewhere (``check --dask``, :mod:`verify.cluster.check`).
- :class:`ObjectIO`: a store seen as named objects: list a page, read, stat, write
  whole, write at an offset (as Archipelago's own peer serves a write), remove, and
  who holds the peer's lock on a name. Writers (fixes) go through it.
"""

from __future__ import annotations

import dataclasses
import errno as errno_mod
import os
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

from ..core.errors import StoreError
from ..core.summary import ShardResult

ProgressFn = Callable[[int], None]  # called with the number of files/objects newly seen
Window = tuple[int, int, bool]  # a --verify-data-sample window: (start, width, everything)
Ref = tuple[bytes, bytes, int]  # (object name, map name, entry index) of an entry naming a missing object


def strerror(err: int) -> str:
    """``No such file or directory (ENOENT)``: the text and the name an operator can grep for."""
    name = errno_mod.errorcode.get(err, str(err))
    return f"{os.strerror(err)} ({name})"


@dataclass(frozen=True)
class Shard:
    """A disjoint part of one store: ``[lo, hi)`` of ``total`` parts (256 top-level dirs on filed,
    256 hash buckets or listing slices on RADOS)."""

    store: str  # "maps" or "blocks"
    lo: int
    hi: int
    total: int


def split(total: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous, disjoint ranges covering ``[0, total)`` (fewer if parts > total)."""
    parts = max(1, min(parts, total))
    bounds = [total * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


def portable(backend):
    """The backend as it travels (to a Dask worker): without this process's open handles (fields
    named ``_*``), in it and in the backends it holds (a mixed backend's parts)."""
    if not dataclasses.is_dataclass(backend):
        return backend
    unset = type(dataclasses.MISSING)  # by type: a class that travelled by value holds copies of the sentinel
    reset = {}
    for f in dataclasses.fields(backend):
        if f.name.startswith("_") and f.init:
            if not isinstance(f.default_factory, unset):
                reset[f.name] = f.default_factory()
            elif not isinstance(f.default, unset):
                reset[f.name] = f.default
        elif f.init:
            value = getattr(backend, f.name)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                reset[f.name] = portable(value)
    return dataclasses.replace(backend, **reset) if reset else backend


@runtime_checkable
class Scan(Protocol):
    """Every backend: what it reads, its shards, the scan of one shard."""

    name: str

    def validate(self) -> None:
        """Fail before any slow work: the stores are there and may be read (StoreError otherwise)."""

    def require_portable(self) -> None:
        """Fail (UsageError) if these settings would name something else on another machine (--dask)."""

    def describe(self) -> dict:
        """What is scanned, per store role (``maps``, ``blocks``), for the report's ``stores`` section."""

    def shards(self, per_store: int) -> list[Shard]:
        """The whole of each store as ``per_store`` shards."""

    def scan_shard(self, shard: Shard, jobs: int, progress: ProgressFn | None = None) -> ShardResult:
        """Scan one shard; unreadable parts become ``unreadable`` findings, never exceptions."""

    def estimated_objects(self) -> int | None:
        """About how many objects a scan lists, where the store can tell cheaply (a progress
        bar's total, shown as an estimate); None where it cannot."""

    def store_dir(self, role: str) -> str | None:
        """The dir holding ``role``'s store when it is a tree of files at paths (what has old
        Pithos paths, pithos_migrate, hard-link pins and store lock files: migrate-objects,
        finalize); None for a store without paths (a pool) or one this backend does not hold."""

    def keep_empty_locks(self, on: bool = True) -> None:
        """Make the scans that follow report each lock without owner as a lock too, where one may
        still be held otherwise (a pool: radosd's RADOS lock); elsewhere nothing. By default such
        locks are only counted (``locks`` counters): a store may hold millions."""

    def with_pithos_migrate(self, on: bool):
        """This backend as Archipelago reads its stores with pithos_migrate ``on`` or off (an
        object left at an old Pithos path is at risk only when off); itself where the setting
        means nothing (a pool has no old paths)."""


@runtime_checkable
class ReferenceCheck(Protocol):
    """``check``'s reference and data stages on this machine."""

    def check_references(self, jobs: int, progress: ProgressFn | None = None) -> ShardResult:
        """Every map's entries against the stored objects: object_missing, object_orphan, map_corrupt."""

    def verify_data(self, jobs: int, window: Window, progress: ProgressFn | None = None) -> ShardResult:
        """Content hashes of the Pithos blocks (64-hex names) whose fingerprint is in ``window``."""

    def keep_heads(self, budget: int = 0) -> None:
        """Called before the scan stage: keep what it reads that the reference stage would read
        again (RADOS: each map header; shards taken from a checkpoint keep nothing, and the
        references then read all again). Past ``budget`` bytes (0: no bound) nothing is kept, and the
        references read it all again. Nothing where nothing is worth keeping."""


@runtime_checkable
class ShardedCheck(Protocol):
    """The reference and data stages one shard at a time; the join runs elsewhere.

    Join records are ``width`` bytes: the 16-byte fingerprint of a name
    (:func:`verify.native.refjoin.fingerprint`), the caller's ``locator``, then one byte,
    1 when a live entry needs the object. The first entries naming a missing object
    are ranked within a shard so that the first few over all shards, taken in
    shard order, are those a local :meth:`ReferenceCheck.check_references` names.
    """

    def check_shard(self, shard: Shard, jobs: int, locator: bytes) -> tuple[ShardResult, bytes]:
        """Findings decided within the shard, and its join records (referenced names of a maps
        shard, stored names of a blocks shard)."""

    def explain_shard(self, shard: Shard, jobs: int, records: bytes,
                      width: int) -> tuple[list[Ref], dict[bytes, tuple[int, int]]]:
        """A maps shard again, for the missing keys in ``records``: the first entries naming each,
        and per name (maps, entries) of this shard naming it."""

    def orphans_shard(self, shard: Shard, jobs: int, records: bytes, width: int) -> ShardResult:
        """A blocks shard again: ``object_orphan`` for each stored object keyed in ``records``."""

    def verify_data_shard(self, shard: Shard, jobs: int, window: Window) -> ShardResult:
        """``verify_data`` on one blocks shard."""

    def object_path(self, name: bytes) -> str | None:
        """Where the blocks store keeps ``name``, for an ``object_missing`` path (None: no paths)."""


Cursor = object  # opaque; good only for the backend object that returned it


@runtime_checkable
class ObjectIO(Protocol):
    """A store as named objects, where Archipelago v0.4 reads and writes them.

    ``store`` is a role (``maps`` or ``blocks``). Names are bytes; a name a store
    cannot hold raises :class:`BadObjectName`. A missing object is ``None`` (read,
    stat) or ``False`` (remove), never an exception; any other failure is a
    StoreError naming the object and the reason.
    """

    def list_page(self, store: str, cursor: Cursor | None = None,
                  limit: int = 1000) -> tuple[list[bytes], Cursor | None]:
        """Up to ``limit`` names after ``cursor``, and the cursor of the next page (None: no more).
        The pages of one listing hold every object there at its start exactly once."""

    def read(self, store: str, name: bytes, offset: int = 0, length: int | None = None) -> bytes | None:
        """The object's bytes from ``offset`` (all of them, or at most ``length``)."""

    def stat(self, store: str, name: bytes) -> int | None:
        """The object's size."""

    def write(self, store: str, name: bytes, data: bytes) -> None:
        """Replace the object's content whole, atomically where the store allows it."""

    def write_at(self, store: str, name: bytes, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` as the store's Archipelago peer serves a write request:
        the bytes around it kept, the object created or extended (with zeros) as needed
        (filed with direct I/O also pads the length to 512). Idempotent: a replayed write
        leaves the object as it was."""

    def remove(self, store: str, name: bytes) -> bool:
        """Delete the object; False if it was not there."""

    def lock_owner(self, store: str, name: bytes) -> str | None:
        """Who holds the peer's lock on ``name`` (filed: a non-empty ``NAME_lock``; RADOS: a
        locker of radosd's lock on ``NAME_lock``, or a non-empty one), None when nobody does.
        Empty lock objects are what a clean unlock leaves: nobody holds them."""


@runtime_checkable
class MapLookupProvider(Protocol):
    """Maps looked up by name, as the mapper would (``pithos-check``, verify/backends/maplookup.py);
    commands ask :func:`verify.backends.map_lookup`, which refuses a kind without it."""

    def maps_lookup(self, jobs: int):
        """A :class:`verify.backends.maplookup.MapLookup` (``lookup_maps``, ``check_rows``, ``list_maps``)
        over the maps store (close it when done)."""


# the capabilities a registry entry may declare, and the protocol each stands for
SCAN, REFERENCES, SHARDED, OBJECTS, MAP_LOOKUP = "scan", "references", "sharded", "objects", "map_lookup"
PROTOCOLS = {SCAN: Scan, REFERENCES: ReferenceCheck, SHARDED: ShardedCheck, OBJECTS: ObjectIO,
             MAP_LOOKUP: MapLookupProvider}
# a kind whose stores are trees of files at paths (Scan.store_dir answers a dir for each store it
# holds): what migrate-objects moves between old and v0.4 paths; no protocol of its own
PATHS = "paths"


class BadObjectName(StoreError):
    """A name the store cannot hold (empty, or with '/' or NUL on filed): refused, nothing touched."""
