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

:mod:`verify.ops.fixes.upgrade_plan` decides each map's steps; this module runs them.
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
from dataclasses import dataclass
from typing import Callable

from verify import backends
from verify.config import archipelago as config
from verify.durable import fsops
from verify.core import layout
from verify.core import formats as F
from verify.durable import (
    Journal, atomic_write, check_stop, fsync_dir, map_steps, run_lock, step_pool, stop_between_steps, store_locks,
    written_temp,
)
from verify.core.errors import StoreError
from verify.durable.fsops import ConflictError
from ..scan import run_shards
from .upgrade_plan import (
    Plan, PlanError, Step, make_plan, plan_purge, plan_v0, plan_v1, plan_v2_rename, read_v2, target_of,
)

JOURNAL_NAME = "upgrade-maps.journal"
HANDLED = ("map_v1", "map_v0", "map_upgrade_incomplete", "map_invalid_name", "map_corrupt")


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
        target = target_of(f.kind, f.name)
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

    with step_pool(jobs) as pool:
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
