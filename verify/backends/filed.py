"""filed stores: NFS-shared dirs of files, walked by the Cython scanner.

Shards are ranges of the 256 top-level ``d1`` dirs (any other top-level entry
belongs to bucket 0). The scan itself is ``verify._scan.FiledShard``; this module
turns its C records into findings.
"""

from __future__ import annotations

import errno as errno_mod
import os
from collections import Counter
from dataclasses import dataclass

from .. import nativejob
from ..errors import StoreError
from ..findings import Finding, escape_name
from ..summary import Lock, ShardResult
from . import ProgressFn, Shard

BUCKETS = 256


def _load_scanner():
    try:
        from .. import _scan
    except ImportError as e:  # pragma: no cover - a broken install, not a user error
        raise StoreError(f"the compiled scanner is missing ({e}); reinstall archverify (make build)") from None
    return _scan


def split(total: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous, disjoint ranges covering ``[0, total)`` (fewer if parts > total)."""
    parts = max(1, min(parts, total))
    bounds = [total * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


def strerror(err: int) -> str:
    name = errno_mod.errorcode.get(err, str(err))
    return f"{os.strerror(err)} ({name})"


def records_to_result(store: str, records, counters: dict) -> ShardResult:
    res = ShardResult()
    res.counters = Counter({f"{store}.{k}": v for k, v in counters.items() if v})
    for kind, name, path, detail, err in records:
        name_s = escape_name(name)
        path_s = escape_name(path) if path is not None else None
        detail_s = escape_name(detail)
        if kind == "lock":
            res.locks.append(Lock(store, name_s, detail_s))
            continue
        if kind == "unreadable":
            detail_s = f"{detail_s}: {strerror(err)}"
        res.findings.append(Finding(kind, store, name_s, path_s, detail_s))
    return res


@dataclass
class FiledBackend:
    maps_dir: str
    blocks_dir: str | None = None
    pithos_migrate_off: dict | None = None  # role -> True when known off
    name: str = "filed"

    def __post_init__(self) -> None:
        self.pithos_migrate_off = self.pithos_migrate_off or {}

    def dirs(self) -> dict[str, str]:
        d = {"maps": self.maps_dir}
        if self.blocks_dir:
            d["blocks"] = self.blocks_dir
        return d

    def validate(self) -> None:
        """Fail before any walk starts: every store dir must be an openable directory."""
        for role, path in self.dirs().items():
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            except OSError as e:
                raise StoreError(f"{path}: cannot open {role} store dir: {e.strerror}") from None
            os.close(fd)

    def describe(self) -> dict:
        return {
            role: {"type": "filed", "dir": path, "pithos_migrate_known_off": bool(self.pithos_migrate_off.get(role))}
            for role, path in self.dirs().items()
        }

    def shards(self, per_store: int = 1) -> list[Shard]:
        return [Shard(role, lo, hi, BUCKETS) for role in self.dirs() for lo, hi in split(BUCKETS, per_store)]

    def scan_shard(self, shard: Shard, jobs: int, progress: ProgressFn | None = None) -> ShardResult:
        scan = _load_scanner()
        root = self.dirs()[shard.store]
        fs = scan.FiledShard(
            root, shard.lo, shard.hi, jobs, maps=shard.store == "maps",
            pithos_migrate_off=bool(self.pithos_migrate_off.get(shard.store)),
        )
        try:
            nativejob.run(fs.run, fs.stop, lambda: fs.progress()[0], progress, name=f"scan-{shard.store}-{shard.lo}")
        except OSError as e:
            raise StoreError(f"{root}: cannot open {shard.store} store dir: {e.strerror}") from None
        return records_to_result(shard.store, fs.records(), fs.counters())

    # -- the reference and data stages of 'check' (verify/check.py) --

    def check_references(self, jobs: int, progress: ProgressFn | None = None) -> ShardResult:
        """Every map's entries against every stored object of the blocks store."""
        from .filed_check import check_references

        return check_references(self.maps_dir, self._blocks(), jobs, progress)

    def verify_data(self, jobs: int, window: tuple[int, int, bool], progress: ProgressFn | None = None) -> ShardResult:
        """Content hashes of the 64-hex objects whose fingerprint is in ``window`` (start, width, all)."""
        from .filed_check import verify_data

        return verify_data(self._blocks(), jobs, window, progress)

    # -- the same stages one shard at a time, the join elsewhere (check --dask) --

    def check_shard(self, shard: Shard, jobs: int, locator: bytes) -> tuple[ShardResult, bytes]:
        """Findings decided within the shard, and its join records (``locator`` in each)."""
        from .filed_check import shard_fingerprints

        return shard_fingerprints(self.maps_dir, self._blocks(), shard.store, shard.lo, shard.hi, jobs, locator)

    def explain_shard(self, shard: Shard, jobs: int, records: bytes, width: int):
        """The first entries of this maps shard naming each missing key, and their counts."""
        from .filed_check import shard_missing

        return shard_missing(self.maps_dir, self._blocks(), shard.lo, shard.hi, jobs, records, width)

    def orphans_shard(self, shard: Shard, jobs: int, records: bytes, width: int) -> ShardResult:
        from .filed_check import shard_orphans

        return shard_orphans(self._blocks(), shard.lo, shard.hi, jobs, records, width)

    def verify_data_shard(self, shard: Shard, jobs: int, window: tuple[int, int, bool]) -> ShardResult:
        from .filed_check import verify_data

        return verify_data(self._blocks(), jobs, window, None, shard.lo, shard.hi)

    def _blocks(self) -> str:
        if not self.blocks_dir:
            raise StoreError("the check needs the blocks store too: give --blocks-dir (or a --config with [blockerb])")
        return self.blocks_dir
