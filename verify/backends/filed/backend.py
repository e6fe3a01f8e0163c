"""filed stores: NFS-shared dirs of files, walked by the Cython scanner.

Shards are ranges of the 256 top-level ``d1`` dirs (any other top-level entry
belongs to bucket 0). The scan itself is ``verify._scan.FiledShard``; this module
turns its C records into findings.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import stat as stat_mod
from collections import Counter
from dataclasses import dataclass

from verify.config import archipelago as config
from verify.core import layout
from verify.native import nativejob
from verify.core.errors import StoreError, UsageError
from verify.durable import fsops
from verify.core.findings import Finding, escape_name
from ..references import v04_path
from verify.core.summary import Lock, ShardResult
from ..base import BadObjectName, ProgressFn, Ref, Shard, Window, split, strerror

BUCKETS = 256
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO must not block, a symlink not lead out


SAMPLE_FILES = 4096  # files a sampled estimate counts at the least (estimated_objects)


def _is_dir(e: os.DirEntry) -> bool:
    try:
        return e.is_dir(follow_symlinks=False)
    except OSError:  # vanished since it was listed
        return False


def _files_under(top: str) -> int:
    """Files (every entry but a dir) in the tree under ``top``, symlinks not followed; a dir
    that cannot be listed counts as empty (the scan reports it)."""
    n, todo = 0, [top]
    while todo:
        try:
            with os.scandir(todo.pop()) as it:
                for e in it:
                    if _is_dir(e):
                        todo.append(e.path)
                    else:
                        n += 1
        except OSError:
            continue
    return n


def _sampled_files(root: str) -> int:
    """The files of a store judged from its first top-level dirs (``estimated_objects``)."""
    try:
        with os.scandir(root) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return 0
    dirs = [e.path for e in entries if _is_dir(e)]
    files = len(entries) - len(dirs)
    seen = done = 0
    step = 1
    while done < len(dirs) and seen < SAMPLE_FILES:
        seen += sum(_files_under(d) for d in dirs[done:done + step])
        done, step = min(len(dirs), done + step), step * 2
    return files + (seen * len(dirs) // done if done else 0)


def _load_scanner():
    try:
        from verify import _scan
    except ImportError as e:  # pragma: no cover - a broken install, not a user error
        raise StoreError(f"the compiled scanner is missing ({e}); reinstall archverify (make build)") from None
    return _scan


__all__ = ["BUCKETS", "FiledBackend", "from_options", "records_to_result", "split", "strerror"]


def from_options(cfg, validate: bool = True, maps_dir=None, blocks_dir=None, pithos_migrate="auto",
                 roles=None, direct=None, **_others) -> FiledBackend:
    """The dirs from the flags, else from archipelago.conf; each must be an openable dir (``validate``).
    ``direct``: filed's direct I/O of the maps store, over the config's (``upgrade-maps --direct``).

    ``roles``: the stores this backend holds (a mixed backend's filed part holds one);
    by default both, or the one store a mixed config keeps in a dir when no flag names
    the other (``migrate-objects`` on a mixed config: pools have no old paths)."""
    def configured(role):
        sc = cfg.stores[role] if cfg is not None else None
        return sc.archip_dir if sc is not None and sc.type == "filed" else None

    if roles is None:
        roles = ("maps", "blocks")
        if not maps_dir and cfg is not None and configured("maps") is None and configured("blocks") is not None:
            roles = ("blocks",)

    if "maps" in roles and cfg is not None and cfg.stores["maps"].type != "filed" and not maps_dir:
        raise UsageError(f"{cfg.path}: [blockerm] is a {cfg.stores['maps'].type} store; use --backend rados")
    mdir = (maps_dir or configured("maps")) if "maps" in roles else None
    bdir = (blocks_dir or configured("blocks")) if "blocks" in roles else None
    if "maps" in roles and not mdir:
        raise UsageError("filed backend needs --maps-dir (or --config)")
    if "maps" not in roles and not bdir:
        raise UsageError("filed blocks store: give --blocks-dir (or a --config with a file_blocker [blockerb])")
    # two trees: one equal to or inside the other would be walked twice, its maps taken for blocks and its
    # blocks for maps (false object_missing); the rule is the config reader's, for archip_dirs
    if mdir and bdir and config.stores_overlap(mdir, bdir):
        raise UsageError(f"the maps store {mdir} and the blocks store {bdir} are the same dir or lie "
                         "one inside the other: every file would be counted in both; give each its own dir")
    off = {}
    for role in roles:
        if pithos_migrate == "off":
            off[role] = True
        elif pithos_migrate == "auto" and cfg is not None:
            off[role] = cfg.stores[role].known_off
    padding = {role: cfg.stores[role].direct for role in roles
               if cfg is not None and cfg.stores[role].type == "filed"}
    if direct is not None and "maps" in roles:
        padding["maps"] = direct
    be = FiledBackend(os.fspath(mdir) if mdir else None, os.fspath(bdir) if bdir else None, off, padding)
    if validate:
        be.validate()
    return be


def records_to_result(store: str, records, counters: dict) -> ShardResult:
    res = ShardResult()
    res.counters = Counter({f"{store}.{k}": v for k, v in counters.items() if v})
    for kind, name, path, detail, err, aux in records:
        name_s = escape_name(name)
        path_s = escape_name(path) if path is not None else None
        detail_s = escape_name(detail)
        if kind == "lock":
            res.locks.append(Lock(store, name_s, detail_s))
            continue
        if kind == "unreadable":
            detail_s = f"{detail_s}: {strerror(err)}"
        res.findings.append(Finding(kind, store, name_s, path_s, detail_s, aux - 1 if aux else None))
    return res


DIRECT_ALIGN = 512  # filed with direct I/O writes whole 512-byte sectors


def overlay(current: bytes, offset: int, data: bytes, direct: bool) -> bytes:
    """An object after filed serves a write of ``data`` at ``offset`` to it."""
    end = offset + len(data)
    buf = bytearray(current)
    if len(buf) < end:
        buf.extend(bytes(end - len(buf)))
    buf[offset:end] = data
    if direct and len(buf) % DIRECT_ALIGN:
        buf.extend(bytes(DIRECT_ALIGN - len(buf) % DIRECT_ALIGN))
    return bytes(buf)


@dataclass
class FiledBackend:
    maps_dir: str | None  # None only as a mixed backend's part holding the blocks store
    blocks_dir: str | None = None
    pithos_migrate_off: dict | None = None  # role -> True when known off
    direct: dict | None = None  # role -> filed's direct I/O ([blocker*] direct): writes padded to 512
    name: str = "filed"

    def __post_init__(self) -> None:
        self.pithos_migrate_off = self.pithos_migrate_off or {}
        self.direct = self.direct or {}
        self._keep = 0  # bytes the blocks scan may keep for the reference stage (keep_heads)
        self._kept: list[tuple[int, int, bytes]] = []  # (lo, hi, paths) of each blocks shard that kept its paths
        self._estimate: int | None = None  # estimated_objects, 0: none

    def dirs(self) -> dict[str, str]:
        return {role: path for role, path in (("maps", self.maps_dir), ("blocks", self.blocks_dir)) if path}

    def store_dir(self, role: str) -> str | None:
        return self.dirs().get(role)

    def with_pithos_migrate(self, on: bool) -> FiledBackend:
        return dataclasses.replace(self, pithos_migrate_off={role: not on for role in self.dirs()})

    def keep_empty_locks(self, on: bool = True) -> None:
        """Nothing: an empty lock file is held by nobody (its content is all a lock file has)."""

    def keep_heads(self, budget: int = 0) -> None:
        """The scan of the blocks store keeps the paths it walked, within ``budget`` bytes (0: no bound),
        so that the reference stage marks the stored objects without a second walk (the maps it reads
        itself: the scan reads only their heads). A shard whose paths did not fit keeps none, nor does
        a shard taken from a checkpoint: the reference stage walks those."""
        self._keep = budget if budget > 0 else sys.maxsize
        self._kept = []

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

    def require_portable(self) -> None:
        """Workers run in their own working dirs: a relative store path would name another dir there."""
        for role, path in self.dirs().items():
            if not os.path.isabs(path):
                raise UsageError(f"{path}: with --dask give the {role} store dir as an absolute path, "
                                 "as the workers see it")

    def maps_lookup(self, jobs: int):
        """Map lookups by probing paths (no walk), for pithos-check."""
        from .maplookup import FiledMaps

        return FiledMaps(self.maps_dir, jobs)

    def shards(self, per_store: int = 1) -> list[Shard]:
        return [Shard(role, lo, hi, BUCKETS) for role in self.dirs() for lo, hi in split(BUCKETS, per_store)]

    def estimated_objects(self) -> int | None:
        """About how many files a scan walks, for a progress bar's total and ETA: each store's
        files under its first top-level dirs (v0.4 files an object under the first hex digits of
        its name's sha256, so the dirs hold equal shares), 1, 2, 4, ... more dirs until
        SAMPLE_FILES are seen, scaled to all of them; files at the top are counted as they are.
        Names only: nothing is opened or stat'ed (a FIFO or a socket is a name like any other).
        An estimate (old Pithos paths are not spread by hash); None for empty stores. Made once."""
        if self._estimate is None:
            self._estimate = sum(_sampled_files(root) for root in self.dirs().values())
        return self._estimate or None

    def scan_shard(self, shard: Shard, jobs: int, progress: ProgressFn | None = None) -> ShardResult:
        scan = _load_scanner()
        root = self.dirs()[shard.store]
        keep = self._keep - sum(len(k[2]) for k in self._kept) if shard.store == "blocks" else 0
        fs = scan.FiledShard(
            root, shard.lo, shard.hi, jobs, maps=shard.store == "maps",
            pithos_migrate_off=bool(self.pithos_migrate_off.get(shard.store)), keep=max(keep, 0),
        )
        try:
            nativejob.run(fs.run, fs.stop, lambda: fs.progress()[0], progress, name=f"scan-{shard.store}-{shard.lo}")
        except OSError as e:
            raise StoreError(f"{root}: cannot open {shard.store} store dir: {e.strerror}") from None
        if keep > 0 and (paths := fs.kept()) is not None:
            self._kept.append((shard.lo, shard.hi, paths))
        return records_to_result(shard.store, fs.records(), fs.counters())

    # -- the reference and data stages of 'check' (verify/ops/check.py) --

    def check_references(self, jobs: int, progress: ProgressFn | None = None) -> ShardResult:
        """Every map's entries against every stored object of the blocks store."""
        from .check import check_references

        kept, self._kept = self._kept, []  # used once: a later check stage walks again
        return check_references(self.maps_dir, self._blocks(), jobs, progress, kept)

    def verify_data(self, jobs: int, window: Window, progress: ProgressFn | None = None) -> ShardResult:
        """Content hashes of the 64-hex objects whose fingerprint is in ``window`` (start, width, all)."""
        from .check import verify_data

        return verify_data(self._blocks(), jobs, window, progress)

    # -- the same stages one shard at a time, the join elsewhere (check --dask) --

    def check_shard(self, shard: Shard, jobs: int, locator: bytes) -> tuple[ShardResult, bytes]:
        """Findings decided within the shard, and its join records (``locator`` in each)."""
        from .check import shard_fingerprints

        return shard_fingerprints(self.dirs()[shard.store], shard.store, shard.lo, shard.hi, jobs, locator)

    def explain_shard(self, shard: Shard, jobs: int, records: bytes,
                      width: int) -> tuple[list[Ref], dict[bytes, tuple[int, int]]]:
        """The first entries of this maps shard naming each missing key, and their counts."""
        from .check import shard_missing

        return shard_missing(self.maps_dir, shard.lo, shard.hi, jobs, records, width)

    def orphans_shard(self, shard: Shard, jobs: int, records: bytes, width: int) -> ShardResult:
        from .check import shard_orphans

        return shard_orphans(self._blocks(), shard.lo, shard.hi, jobs, records, width)

    def verify_data_shard(self, shard: Shard, jobs: int, window: Window) -> ShardResult:
        from .check import verify_data

        return verify_data(self._blocks(), jobs, window, None, shard.lo, shard.hi)

    def object_path(self, name: bytes) -> str | None:
        return v04_path(name)

    def _blocks(self) -> str:
        if not self.blocks_dir:
            raise StoreError("the check needs the blocks store too: give --blocks-dir (or a --config with [blockerb])")
        return self.blocks_dir

    # -- object I/O: the store as named objects at their v0.4 paths (fixes write through this) --

    def _path(self, store: str, name: bytes) -> bytes:
        try:
            rel = layout.v04_path(name)
        except layout.BadObjectName:
            raise BadObjectName(f"object name {escape_name(name)!r}: a filed store cannot hold it "
                                "(empty, '/' or NUL)") from None
        return os.path.join(os.fsencode(self.dirs()[store]), rel)

    def _fail(self, what: str, path: bytes, err: int) -> StoreError:
        return StoreError(f"{escape_name(path)}: {what}: {strerror(err)}")

    def list_page(self, store: str, cursor: bytes | None = None, limit: int = 1000) -> tuple[list[bytes], bytes | None]:
        """Names of regular files at their v0.4 path, in path order; the cursor is the last path listed."""
        out: list[bytes] = []
        for rel in self._walk(os.fsencode(self.dirs()[store]), cursor.split(b"/") if cursor else None):
            out.append(rel.rsplit(b"/", 1)[1])
            if len(out) == limit:
                return out, rel
        return out, None

    def _walk(self, root: bytes, after: list[bytes] | None, depth: int = 0, rel: bytes = b""):
        """``d1/d2/d3/NAME`` paths after ``after`` (their parts), sorted; only v0.4-placed regular files."""
        try:
            with os.scandir(os.path.join(root, rel) if rel else root) as it:
                entries = sorted((e.name, e.is_dir(follow_symlinks=False), e.is_file(follow_symlinks=False))
                                 for e in it)
        except FileNotFoundError:
            return
        except OSError as e:
            raise self._fail("cannot list", os.path.join(root, rel), e.errno) from None
        for name, is_dir, is_file in entries:
            here = after is not None and len(after) > depth
            if here and (name < after[depth] or (depth == 3 and name == after[depth])):
                continue
            deeper = after if here and name == after[depth] else None
            path = rel + b"/" + name if rel else name
            if depth < 3 and is_dir:
                yield from self._walk(root, deeper, depth + 1, path)
            elif depth == 3 and is_file and layout.v04_dirs(name) == rel:
                yield path

    def read(self, store: str, name: bytes, offset: int = 0, length: int | None = None) -> bytes | None:
        path = self._path(store, name)
        try:
            fd = os.open(path, READ_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise self._fail("cannot open", path, e.errno) from None
        try:
            st = os.fstat(fd)
            if not stat_mod.S_ISREG(st.st_mode):
                raise StoreError(f"{escape_name(path)}: not a regular file; archverify reads only regular files")
            want = max(0, st.st_size - offset) if length is None else length
            chunks, got = [], 0
            while got < want:
                b = os.pread(fd, want - got, offset + got)
                if not b:
                    break
                chunks.append(b)
                got += len(b)
            return b"".join(chunks)
        except OSError as e:
            raise self._fail("cannot read", path, e.errno) from None
        finally:
            os.close(fd)

    def stat(self, store: str, name: bytes) -> int | None:
        path = self._path(store, name)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise self._fail("cannot stat", path, e.errno) from None
        if not stat_mod.S_ISREG(st.st_mode):
            raise StoreError(f"{escape_name(path)}: not a regular file; archverify reads only regular files")
        return st.st_size

    def write(self, store: str, name: bytes, data: bytes) -> None:
        """Temp file at the store root, fsync, rename over the v0.4 path, fsync the dirs."""
        self._path(store, name)  # refuses what the store cannot hold
        root = self.dirs()[store]
        rel = os.fsdecode(layout.v04_path(name))
        try:
            fsops.atomic_replace(root, rel, data)
        except fsops.ConflictError as e:
            raise StoreError(str(e)) from None
        except OSError as e:
            raise self._fail("cannot write", os.fsencode(os.path.join(root, rel)), e.errno) from None

    def write_at(self, store: str, name: bytes, offset: int, data: bytes) -> None:
        """filed's pwrite, made atomic: the new content whole in a temp, renamed over the object
        (mode and owner of the object kept; a new one gets filed's mode and the store's owner).
        Nothing is written when the object holds that content already (a replay)."""
        path = self._path(store, name)
        current = self.read(store, name)
        new = overlay(current or b"", offset, data, self.direct.get(store, config.DIRECT_DEFAULT))
        if new == current:
            return
        mode, owner = fsops.FILE_MODE, None
        if current is not None:
            try:
                st = os.lstat(path)
                mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
            except FileNotFoundError:
                pass
        root = self.dirs()[store]
        rel = os.fsdecode(layout.v04_path(name))
        try:
            fsops.atomic_replace(root, rel, new, mode, owner)
        except fsops.ConflictError as e:
            raise StoreError(str(e)) from None
        except OSError as e:
            raise self._fail("cannot write", path, e.errno) from None

    def lock_owner(self, store: str, name: bytes) -> str | None:
        """filed writes its unique string into ``NAME_lock`` and unlinks it on release."""
        owner = self.read(store, name + b"_lock")
        if not owner:
            return None
        return escape_name(owner.strip()) or "?"

    def remove(self, store: str, name: bytes) -> bool:
        path = self._path(store, name)
        try:
            return fsops.remove(self.dirs()[store], os.fsdecode(layout.v04_path(name))) == "deleted"
        except NotADirectoryError:
            return False
        except OSError as e:
            raise self._fail("cannot remove", path, e.errno) from None
