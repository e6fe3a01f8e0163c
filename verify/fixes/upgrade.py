"""``upgrade-maps``: every v1 map (and v0 map of known size) becomes v2.

Two ways, same result:

- **vlmc** (Archipelago running): ``vlmc open NAME`` then ``vlmc close NAME``, as
  the old finalize script did, with bounded parallelism; afterwards the map is
  read back, and only a map that really is v2 under its own name is "upgraded".
- **offline** (Archipelago stopped on every node): archverify replays what the
  v0.4 mapper writes, byte for byte, as a list of filed requests (:class:`Step`):

  v1 ``archip_X`` (opened as ``X``): the map is first rewritten in place as v2
  (map-data ``archip_X_<16hex>`` then a 32-byte header at offset 0: flags 0, epoch
  0), then written as ``X`` (map-data, then header: epoch 1), then purged: header
  of ``archip_X`` flagged deleted, its map-data deleted, ``archip_X`` deleted.
  v0 (64-hex name, size known): the file moves from its old Pithos path first (as
  filed's pithos_migrate does), then map-data ``<hex>_0000000000000000`` and a
  read-only epoch-0 header over the first 32 bytes (the rest of the object stays).
  On RADOS the same steps, minus the move (a pool has no paths).

The steps are replayed through the store contract's object I/O
(:meth:`~verify.backends.base.ObjectIO.write_at`, ``remove``), so one writer serves
every backend: a write of ``data`` at ``offset`` leaves the object as the store's
peer does (the bytes around it kept; filed with direct I/O rounds the length up
to 512 with zeros; radosd's ``rados_write`` does not pad).

Unlike the mapper, archverify refuses up front what would leave a v2 map under an
invalid name (a target shorter than 6 bytes, invalid, or already taken: a
"shadowed" map) or load phantom entries (a truncated v1), and never logs those
as upgraded. Before any write the original bytes of every object a plan touches
are saved under the backup dir; the plan is journaled and each step recorded, so
a rerun after a crash rebuilds the plan from the backup and continues.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from .. import config
from .. import formats as F
from .. import layout
from .. import backends
from ..durable import (Journal, atomic_write, check_stop, fsync_dir, map_steps, run_lock, stop_between_steps,
                       store_locks, written_temp)
from ..errors import StoreError
from ..scan import run_shards
from .. import fsops
from ..fsops import ConflictError

JOURNAL_NAME = "upgrade-maps.journal"
HANDLED = ("map_v1", "map_v0", "map_upgrade_incomplete", "map_invalid_name", "map_corrupt")


class PlanError(Exception):
    """This map cannot be upgraded safely; the message says why."""


@dataclass(frozen=True)
class Step:
    """One filed request of the upgrade: write ``data`` at ``offset`` of ``obj``, delete ``obj``, or move it."""

    op: str  # write | delete | move
    obj: str
    offset: int = 0
    data: bytes = b""
    src: str = ""  # move: the old path, relative to the store root


@dataclass
class Plan:
    kind: str  # v1 | v1-inplace | v2-rename | purge | v0
    name: str  # the map object the finding is about
    target: str  # the name the volume is opened as (and logged under)
    steps: list[Step] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)  # objects whose bytes are backed up first


# ---- what the mapper writes (pure: bytes in, steps out) --------------------------


def write_map_steps(name: str, m: F.Map, flags: int, epoch: int) -> list[Step]:
    """The mapper's write_map: every map-data object first, then the 32-byte header at offset 0."""
    header, data = F.write_v2(m.size, m.entries, m.blocksize, flags, epoch, name=name)
    steps = [Step("write", obj, 0, chunk) for obj, chunk in data.items()]
    steps.append(Step("write", name, 0, header))
    return steps


def purge_steps(name: str, m: F.Map) -> list[Step]:
    """The mapper's purge_map: header flagged deleted (epoch kept), map-data deleted, header deleted."""
    header = F.pack_v2_header(m.size, m.blocksize, m.flags | F.MF_DELETED, m.epoch)
    steps = [Step("write", name, 0, header)]
    steps += [Step("delete", F.mapdata_name(name, b)) for b in range(F.mapdata_blocks(m.size, m.blocksize))]
    steps.append(Step("delete", name))
    return steps


def plan_v1(name: str, data: bytes) -> Plan:
    """A v1 map: ``archip_X`` is upgraded in place, renamed to ``X`` (epoch 1) and purged."""
    try:
        m = F.parse_v1(data)
    except F.MapFormatError as e:
        raise PlanError(f"corrupt v1 map ({e}); the mapper would load phantom entries") from None
    if not name.startswith(F.ARCHIP_PREFIX):
        return Plan("v1-inplace", name, name, write_map_steps(name, m, 0, 0), [name])
    target = name[len(F.ARCHIP_PREFIX):]
    steps = write_map_steps(name, m, 0, 0)
    steps += write_map_steps(target, m, m.flags, 1)
    m2 = F.Map(F.Version.V2, m.size, m.entries, m.blocksize, 0, 0)
    steps += purge_steps(name, m2)
    touched = [name] + [F.mapdata_name(name, b) for b in range(F.mapdata_blocks(m.size, m.blocksize))]
    touched += [F.mapdata_name(target, b) for b in range(F.mapdata_blocks(m.size, m.blocksize))]
    return Plan("v1", name, target, steps, touched)


def read_v2(name: str, read: Callable[[str], bytes | None]) -> F.Map:
    header = read(name)
    if header is None:
        raise PlanError(f"{name} is gone")
    try:
        m = F.parse_v2_header(header)
        blocks = {}
        if not m.deleted:
            for b in range(F.mapdata_blocks(m.size, m.blocksize)):
                chunk = read(F.mapdata_name(name, b))
                if chunk is not None:
                    blocks[b] = chunk
            m.entries = F.parse_v2(header, blocks).entries
        return m
    except F.MapFormatError as e:
        raise PlanError(f"cannot read v2 map {name}: {e}") from None


def plan_v2_rename(name: str, read: Callable[[str], bytes | None]) -> Plan:
    """A v2 ``archip_X`` without ``X`` (a rename that never happened): what opening ``X`` does."""
    m = read_v2(name, read)
    if m.deleted:
        raise PlanError(f"{name} is flagged deleted and {name[len(F.ARCHIP_PREFIX):]} does not exist")
    target = name[len(F.ARCHIP_PREFIX):]
    steps = write_map_steps(target, m, m.flags, 1) + purge_steps(name, m)
    nb = F.mapdata_blocks(m.size, m.blocksize)
    touched = [name] + [F.mapdata_name(name, b) for b in range(nb)] + [F.mapdata_name(target, b) for b in range(nb)]
    return Plan("v2-rename", name, target, steps, touched)


def plan_purge(name: str, read: Callable[[str], bytes | None], check: bool = True) -> Plan:
    """``archip_X`` left next to an upgraded ``X``: finish the purge, if ``X`` really descends from it.

    A purge that had begun (deleted flag set) is always finished: the mapper only
    starts it after ``X`` was written. Otherwise every entry of ``X`` must name
    the same object as ``archip_X`` or a copy-up of ``X`` (written since); anything
    else may be an unrelated volume, and the old map is left alone.
    """
    target = name[len(F.ARCHIP_PREFIX):]
    header = read(name)
    if header is None:
        raise PlanError(f"{name} is gone")
    try:
        m = F.parse_v2_header(header)
    except F.MapFormatError as e:
        raise PlanError(f"cannot read {name}: {e}") from None
    if check and not m.deleted:
        old = read_v2(name, read)
        new = read_v2(target, read)
        if new.size != old.size or new.blocksize != old.blocksize:
            raise PlanError(f"{target} (size {new.size}) does not descend from {name} (size {old.size}): compare by hand")
        if not new.deleted:
            for i, (a, b) in enumerate(zip(old.entries, new.entries)):
                if a.name != b.name and not b.name.startswith(target + "_"):
                    raise PlanError(f"{target} entry {i} ({b.name}) differs from {name} ({a.name}): compare by hand")
    nb = F.mapdata_blocks(m.size, m.blocksize)
    return Plan("purge", name, target, purge_steps(name, m), [name] + [F.mapdata_name(name, b) for b in range(nb)])


def plan_v0(name: str, data: bytes, size: int, old_path: str | None) -> Plan:
    """A v0 map of known size: moved from its old path if there, then a read-only epoch-0 v2 map in place."""
    try:
        m = F.parse_v0(data)
    except F.MapFormatError as e:
        raise PlanError(f"corrupt v0 map: {e}") from None
    if len(m.entries) != F.nr_objs(size):
        raise PlanError(f"v0 map has {len(m.entries)} entries but size {size} needs {F.nr_objs(size)}")
    m.size = size
    steps = [Step("move", name, src=old_path)] if old_path else []
    steps += write_map_steps(name, m, F.MF_READONLY, 0)
    nb = F.mapdata_blocks(m.size, m.blocksize)
    return Plan("v0", name, name, steps, [name] + [F.mapdata_name(name, b) for b in range(nb)])


# ---- the store ------------------------------------------------------------------


class MapStore:
    """The maps store of any backend, through the contract's object I/O: the one writer of the upgrade.

    ``root`` is filed's maps dir, for what only a dir has: paths, and the move of a
    v0 map from its old Pithos path; None on a store without paths (RADOS).
    """

    def __init__(self, backend, root: str | None = None):
        self.backend = backend
        self.root = root

    @staticmethod
    def key(obj: str) -> bytes:
        return obj.encode("utf-8", "surrogateescape")

    def rel(self, obj: str) -> str:
        return layout.v04_path(self.key(obj)).decode("utf-8", "surrogateescape")

    def path(self, obj: str) -> str:
        return os.path.join(self.root, self.rel(obj))

    def read(self, obj: str) -> bytes | None:
        return self.backend.read("maps", self.key(obj))

    def head(self, obj: str, n: int) -> bytes | None:
        return self.backend.read("maps", self.key(obj), 0, n)

    def exists(self, obj: str) -> bool:
        return self.backend.stat("maps", self.key(obj)) is not None

    def lock_owner(self, obj: str) -> str | None:
        return self.backend.lock_owner("maps", self.key(obj))

    def read_rel(self, rel: str) -> bytes:
        with open(os.path.join(self.root, rel), "rb") as fh:
            return fh.read()

    def apply(self, step: Step) -> str:
        """Serve one request as the store's peer would."""
        if step.op == "move":
            old, new = os.path.join(self.root, step.src), self.path(step.obj)
            if fsops.inode(old) is None:
                if fsops.inode(new) is not None:
                    return "already"
                raise ConflictError(f"{old} vanished")
            fsops.ensure_dirs(self.root, os.path.dirname(self.rel(step.obj)))
            fsops.link_into_place(old, new)
            return fsops.unlink_if_same(old, new)
        if step.op == "delete":
            return "deleted" if self.backend.remove("maps", self.key(step.obj)) else "already"
        self.backend.write_at("maps", self.key(step.obj), step.offset, step.data)
        return "written"


class Backups:
    """Original bytes of every object a plan touches, kept under the backup dir, never overwritten."""

    def __init__(self, root: str):
        self.root = os.path.join(root, "maps")

    def check(self) -> None:
        """Fail before any map is touched when the backups cannot be written."""
        try:
            os.makedirs(self.root, exist_ok=True)
            probe = os.path.join(self.root, f".probe.{os.getpid()}")
            with open(probe, "wb") as fh:
                fh.write(b"x")
            os.unlink(probe)
        except OSError as e:
            raise StoreError(f"{self.root}: cannot save map backups there: {e.strerror}") from None

    def save(self, obj: str, data: bytes) -> str:
        """``ROOT/OBJ``, or ``OBJ.N`` when another content is there already; linked into place, never replaced."""
        os.makedirs(self.root, exist_ok=True)
        n = 0
        while True:
            path = os.path.join(self.root, obj if n == 0 else f"{obj}.{n}")
            try:
                with open(path, "rb") as fh:
                    if fh.read() == data:
                        return path
                n += 1
                continue
            except FileNotFoundError:
                pass
            with written_temp(self.root, obj, data) as tmp:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    continue
            fsync_dir(self.root)
            return path

    @staticmethod
    def load(paths: dict[str, str]) -> Callable[[str], bytes | None]:
        def read(obj: str) -> bytes | None:
            p = paths.get(obj)
            if p is None:
                return None
            with open(p, "rb") as fh:
                return fh.read()

        return read


# ---- one map ------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    target: str
    kind: str  # the finding kind
    plan: str  # plan kind, or "" when refused
    status: str  # planned | upgraded | failed | invalid
    detail: str = ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _lock_owner(store: MapStore, names) -> str | None:
    for n in names:
        owner = store.lock_owner(n)
        if owner is not None:
            return f"{n}_lock held by {owner}"
    return None


def _v0_old_path(store: MapStore, name: str, path: str | None) -> str | None:
    """filed: the v0 map's old Pithos path while its file is still there (None: at its v0.4 path)."""
    if store.root is None:
        return None
    old = (layout.pithos_path(name.encode()) or b"").decode()
    if old and old != store.rel(name) and os.path.lexists(os.path.join(store.root, old)):
        if store.exists(name) and fsops.inode(os.path.join(store.root, old)) != fsops.inode(store.path(name)):
            raise PlanError("a different file sits at its v0.4 path (object_conflict): resolve it first")
        return old
    if path is not None and path != store.rel(name):
        raise PlanError(f"map file at {path}, not at a path v0.4 reads: run 'archverify migrate-objects' first")
    return None


def make_plan(store: MapStore, kind: str, name: str, path: str | None,
              pithos_sizes: dict[str, int] | None) -> Plan:
    """Decide, from the store as it is now, what upgrading this map takes; PlanError if it must not be done.

    ``path`` is where a filed scan found the map (None on a store without paths)."""
    if kind == "map_v0":
        size = (pithos_sizes or {}).get(name)
        if size is None:
            raise PlanError("size unknown: give the Pithos database (--pithos-db) so the size is known")
        old_path = _v0_old_path(store, name, path)
        data = store.read_rel(old_path) if old_path else store.read(name)  # what filed serves while the old file exists
        if data is None:
            raise PlanError(f"{name} is gone")
        return plan_v0(name, data, size, old_path)
    if path is not None and path != store.rel(name):
        raise PlanError(f"map file at {path}, not at its v0.4 path: run 'archverify migrate-objects' first")
    if kind == "map_upgrade_incomplete":
        return plan_purge(name, store.read)
    data = store.read(name)
    if data is None:
        raise PlanError(f"{name} is gone")
    info = F.classify(data[: F.HEADER_READ], len(data), name.encode())
    if info.cls is F.HeaderClass.CORRUPT_V1_SHORT:
        raise PlanError("truncated v1 map: its entries are cut short; restore it from backup")
    if kind == "map_invalid_name":
        target = name[len(F.ARCHIP_PREFIX):] if name.startswith(F.ARCHIP_PREFIX) else None
        if target is None or store.exists(target) or not _target_ok(target):
            raise PlanError(f"invalid header object {name}")
        return plan_v2_rename(name, store.read)
    if name.startswith(F.ARCHIP_PREFIX):
        target = name[len(F.ARCHIP_PREFIX):]
        if not _target_ok(target):
            raise PlanError(f"{target!r} cannot be a v0.4 volume name (fewer than 6 bytes or invalid for vlmc)")
        if store.exists(target):
            raise PlanError(f"shadowed: a map {target} already exists, so opening {target} never reaches {name}")
    return plan_v1(name, data)


def _target_ok(target: str) -> bool:
    return len(target.encode()) >= layout.MIN_NAME_LEN and F.is_valid_volume_name(target)


def _originals(store: MapStore, plan: Plan) -> dict[str, bytes]:
    """The bytes of each object the plan touches, as they are now (a v0 map may still be at its old path)."""
    found = {}
    for obj in plan.touched:
        data = store.read(obj)
        if data is not None:
            found[obj] = data
    if plan.steps and plan.steps[0].op == "move":
        found[plan.name] = store.read_rel(plan.steps[0].src)
    return found


def save_originals(store: MapStore, plan: Plan, backups: Backups) -> dict[str, str]:
    return {obj: backups.save(obj, data) for obj, data in _originals(store, plan).items()}


def execute(store: MapStore, plan: Plan, journal: Journal, backups: Backups, *, size: int | None = None,
            resume: dict | None = None) -> None:
    """Save the originals, journal the intent, then run the steps, journaling each.

    ``resume`` is the journaled intent of an interrupted run: its backups are
    reused and the steps already recorded are skipped.
    """
    key = f"map|{plan.name}"
    if resume is None:
        journal.append({"ev": "intent", "id": key, "plan": plan.kind, "name": plan.name, "target": plan.target,
                        "backups": save_originals(store, plan, backups), "size": size,
                        "old_path": plan.steps[0].src if plan.steps and plan.steps[0].op == "move" else None,
                        "nsteps": len(plan.steps)})
        first = 0
    else:
        first = resume.get("first", 0)
    for i in range(first, len(plan.steps)):
        store.apply(plan.steps[i])
        journal.append({"ev": "step", "id": key, "i": i})
    journal.append({"ev": "done", "id": key})


def rebuild(rec: dict) -> Plan:
    """The plan of a journaled intent, from the saved original bytes (the store has changed since)."""
    read = Backups.load(rec.get("backups", {}))
    name, kind = rec["name"], rec["plan"]
    if kind in ("v1", "v1-inplace"):
        return plan_v1(name, read(name))
    if kind == "v2-rename":
        return plan_v2_rename(name, read)
    if kind == "purge":
        return plan_purge(name, read, check=False)
    if kind == "v0":
        return plan_v0(name, read(name), rec["size"], rec.get("old_path"))
    raise PlanError(f"unknown plan {kind!r} in the journal")


# ---- online: through the running Archipelago ------------------------------------


def vlmc_upgrade(vlmc: tuple[str, ...], target: str, size: int | None, timeout: float = 600) -> str | None:
    """``vlmc open`` + ``vlmc close`` (the mapper upgrades on an exclusive open); None, or why it failed."""
    extra = ["--assume_v0", "--v0_size", str(size)] if size is not None else []
    for verb in ("open", "close"):
        try:
            # its own session: a Ctrl-C at the terminal stops archverify between maps, not vlmc mid-open
            p = subprocess.run([*vlmc, verb, target, *extra], capture_output=True, text=True, timeout=timeout,
                               start_new_session=True)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"vlmc {verb} {target}: {e}"
        if p.returncode != 0:
            msg = (p.stderr or p.stdout).strip().splitlines()
            return f"vlmc {verb} {target} exited {p.returncode}" + (f": {msg[-1]}" if msg else "")
    return None


def verify_upgraded(store: MapStore, plan: Plan) -> str | None:
    """After vlmc: the target must be a loadable v2 map and no v1 ``archip_`` original may be left."""
    try:
        read_v2(plan.target, store.read)
    except PlanError as e:
        return f"not v2 after vlmc: {e}"
    if plan.kind == "v1" and store.exists(plan.name):
        data = store.read(plan.name) or b""
        if F.is_v1_header(data):
            return f"{plan.name} is still a v1 map after vlmc"
        return f"{plan.name} was left behind by the mapper (map_upgrade_incomplete): run upgrade-maps again"
    return None


# ---- the operation ------------------------------------------------------------------


def _log_line(o: Outcome) -> tuple[str, str]:
    if o.status == "upgraded":
        extra = f" (finished the purge of {o.name})" if o.plan == "purge" else ""
        return "upgraded", f"Upgraded {o.target}{extra}\n"
    if o.status == "invalid":
        return "invalid", f"{o.target} has invalid header object {o.name}\n"
    return "failed", f"Failed to upgrade {o.target}: {o.detail}\n"


def write_logs(logdir: str, outcomes: list[Outcome]) -> dict[str, str]:
    """upgraded.log, failed.log, invalid.log like the old tool's, each replaced atomically."""
    os.makedirs(logdir, exist_ok=True)
    lines: dict[str, list[str]] = {"upgraded": [], "failed": [], "invalid": []}
    for o in outcomes:
        if o.status == "planned":
            continue
        which, line = _log_line(o)
        lines[which].append(line)
    paths = {}
    for which, ls in lines.items():
        path = os.path.join(logdir, f"{which}.log")
        atomic_write(path, "".join(ls).encode("utf-8"))
        paths[which] = path
    return paths


def _target_of(kind: str, name: str) -> str:
    if kind in ("map_v1", "map_upgrade_incomplete", "map_invalid_name", "map_corrupt") and name.startswith(F.ARCHIP_PREFIX):
        return name[len(F.ARCHIP_PREFIX):]
    return name


def map_store(maps, direct: bool = config.DIRECT_DEFAULT) -> MapStore:
    """``maps``: a maps dir (``direct``: filed's direct I/O), or a backend offering object I/O."""
    if isinstance(maps, (str, os.PathLike)):
        maps = backends.from_options(None, maps_dir=os.fspath(maps), direct=direct)
    return MapStore(maps, maps.store_dir("maps"))


def upgrade_maps(maps, *, apply: bool, backup_dir: str, logdir: str | None, mode: str = "offline",
                 vlmc=("vlmc",), jobs: int = 4, pithos_sizes: dict[str, int] | None = None,
                 journal_dir: str | None = None, direct: bool = config.DIRECT_DEFAULT) -> dict:
    """Upgrade every v1 map (and v0 map whose size ``pithos_sizes`` gives) of a maps store to v2.

    ``maps``: a filed maps dir, or a backend (filed or RADOS) whose maps store is
    written through its object I/O. ``mode``: "offline" (archverify writes,
    Archipelago must be stopped everywhere) or "vlmc" (through the running
    Archipelago). ``direct``: filed's ``direct`` setting for a dir given by path,
    which pads what it writes to 512 bytes. Returns a summary dict with
    ``results`` (one per map), ``counts``, the log paths and ``exit_code``.
    """
    if mode not in ("offline", "vlmc"):
        raise ValueError(f"mode must be 'offline' or 'vlmc', not {mode!r}")
    store = map_store(maps, direct)
    journal_dir = journal_dir or backup_dir
    outcomes: list[Outcome] = []
    if apply:
        # a dir has a store lock file; a pool is guarded by the run lock of the journal dir
        dirs = [store.root] if store.root is not None else []
        with stop_between_steps(), run_lock(journal_dir, "upgrade-maps"), store_locks(dirs, "upgrade-maps"):
            journal = Journal(os.path.join(journal_dir, JOURNAL_NAME))
            try:
                backups = Backups(backup_dir)
                backups.check()
                if store.root is not None:
                    fsops.cleanup_temps(store.root)
                outcomes += _resume(store, journal, backups, mode)
                outcomes += _run(store, True, journal, backups, mode, tuple(vlmc), jobs, pithos_sizes)
            finally:
                journal.close()
    else:
        outcomes += _run(store, False, None, None, mode, tuple(vlmc), jobs, pithos_sizes)
    log_paths = write_logs(logdir, outcomes) if (logdir and apply) else {}
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    bad = counts.get("failed", 0) + counts.get("invalid", 0) + counts.get("planned", 0)
    return {"mode": mode, "applied": apply, "results": [o.as_dict() for o in outcomes], "counts": counts,
            "logs": log_paths, "exit_code": 1 if bad else 0}


def _resume(store: MapStore, journal: Journal, backups: Backups, mode: str) -> list[Outcome]:
    """Finish offline upgrades a crash interrupted, unless the store has moved on since.

    An interrupted plan is only continued offline, and only while the map it writes
    holds nothing but what this plan itself wrote: if a mapper has written it since
    (Archipelago was started in between), the plan is dropped and the fresh scan
    that follows decides again (an ``archip_`` leftover then goes through the
    purge check).
    """
    out = []
    steps_done: dict[str, int] = {}
    for rec in journal.records():
        if rec.get("ev") == "step":
            steps_done[rec["id"]] = max(steps_done.get(rec["id"], -1), rec["i"])
    for rec in journal.pending():
        if not rec.get("id", "").startswith("map|"):
            continue
        check_stop()
        name = rec["name"]
        if rec.get("mode") == "vlmc" or mode == "vlmc":
            journal.append({"ev": "failed", "id": rec["id"], "error": "interrupted; the scan below decides again"})
            continue
        try:
            plan = rebuild(rec)
            first = steps_done.get(rec["id"], -1) + 1
            if _moved_on(store, plan):
                journal.append({"ev": "failed", "id": rec["id"], "error": "store changed since; decided again"})
                continue
            execute(store, plan, journal, backups, resume={"first": first})
            out.append(Outcome(name, plan.target, "resumed", plan.kind, "upgraded", "resumed after an interruption"))
        except (PlanError, ConflictError, StoreError, OSError) as e:
            journal.append({"ev": "failed", "id": rec["id"], "error": str(e)})
            out.append(Outcome(name, rec.get("target", name), "resumed", rec.get("plan", ""), "failed",
                               f"resuming an interrupted upgrade: {e}"))
    return out


def _moved_on(store: MapStore, plan: Plan) -> bool:
    """True when the header the plan writes last holds a v2 header other than the plan's own."""
    final = [s for s in plan.steps if s.op == "write" and s.obj == plan.target]
    if not final:
        return False
    current = store.read(plan.target)
    if current is None or not F.is_v2_header(current):
        return False
    return current[: F.V2_HEADER_LEN] != final[-1].data[: F.V2_HEADER_LEN]


def _scan(backend, jobs: int):
    """The maps store's findings this command handles, one per (kind, map)."""
    result = run_shards(backend, [sh for sh in backend.shards(1) if sh.store == "maps"], jobs, progress=False)
    seen = set()
    found = []
    for f in sorted(result.findings, key=lambda f: (f.name, f.kind, f.path or "")):
        if f.kind in HANDLED and (f.kind, f.name) not in seen:
            seen.add((f.kind, f.name))
            found.append(f)
    return found


def _run(store, apply, journal, backups, mode, vlmc, jobs, pithos_sizes) -> list[Outcome]:
    findings = [f for f in _scan(store.backend, jobs) if f.kind != "map_corrupt" or _is_v1(store, f.name)]

    def one(f) -> Outcome:
        if apply:
            check_stop()  # a signal: this map is not begun; the maps begun are finished (no half-upgraded map)
        target = _target_of(f.kind, f.name)
        try:
            plan = make_plan(store, f.kind, f.name, f.path, pithos_sizes)
        except PlanError as e:
            status = "invalid" if f.kind == "map_invalid_name" else "failed"
            return Outcome(f.name, target, f.kind, "", status, str(e))
        except OSError as e:
            return Outcome(f.name, target, f.kind, "", "failed", f"{e.filename}: {e.strerror}")
        if not apply:
            return Outcome(f.name, plan.target, f.kind, plan.kind, "planned",
                           f"{len(plan.steps)} writes/deletes" if mode == "offline" or plan.kind == "purge"
                           else "vlmc open + close")
        if not (mode == "offline" or plan.kind == "purge"):
            return _online(store, plan, f.kind, journal, backups, vlmc, pithos_sizes)
        held = _lock_owner(store, [plan.name] if plan.kind == "purge" else [plan.name, plan.target])
        if held:
            return Outcome(f.name, plan.target, f.kind, plan.kind, "failed",
                           f"{held}: the volume is open somewhere, or a crashed node left the lock; "
                           "remove it only when sure")
        try:
            size = (pithos_sizes or {}).get(f.name) if f.kind == "map_v0" else None
            execute(store, plan, journal, backups, size=size)
        except (ConflictError, StoreError, OSError) as e:
            journal.append({"ev": "failed", "id": f"map|{plan.name}", "error": str(e)})
            return Outcome(f.name, plan.target, f.kind, plan.kind, "failed", str(e))
        return Outcome(f.name, plan.target, f.kind, plan.kind, "upgraded")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return map_steps(pool, one, findings)


def _is_v1(store: MapStore, name: str) -> bool:
    """Only corrupt *v1* maps are upgrade candidates (the old tool logged truncated ones as upgraded)."""
    try:
        return F.is_v1_header(store.head(name, len(F.V1_MAGIC)))
    except StoreError:
        return False


def _online(store, plan, kind, journal, backups, vlmc, pithos_sizes) -> Outcome:
    key = f"map|{plan.name}"
    journal.append({"ev": "intent", "id": key, "mode": "vlmc", "plan": plan.kind, "name": plan.name,
                    "target": plan.target, "backups": save_originals(store, plan, backups)})
    size = (pithos_sizes or {}).get(plan.name) if plan.kind == "v0" else None
    err = vlmc_upgrade(vlmc, plan.target, size) or verify_upgraded(store, plan)
    if err:
        journal.append({"ev": "failed", "id": key, "error": err})
        return Outcome(plan.name, plan.target, kind, plan.kind, "failed", err)
    journal.append({"ev": "done", "id": key})
    return Outcome(plan.name, plan.target, kind, plan.kind, "upgraded")
