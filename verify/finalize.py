"""The guide's "Finalizing upgrade" as one resumable flow, run from one node.

Steps, in order; each one completed is appended to a journal (JSON lines, fsync'd)
in the state dir, and a rerun skips what is done and says so:

    preflight  configs valid and alike on every node; no volume mapped, no lock held
    pin        hard-link every object at risk into the quarantine dir
    stop       archipelago stop on every node
    enable     pithos_migrate = True in [blockerb] and [blockerm] on every node
    start      archipelago start on every node
    scan       what lazy migration leaves behind (and pin anything newly at risk)
    fix        (--fix) migrate-objects and upgrade-maps
    settle     restore pins filed removed; go on only when no object is left at an
               old Pithos path (else stop here, pithos_migrate on, pins kept)
    stop-off, disable, start-off
               pithos_migrate off again: from now on it could only lose objects
    restore    link back any pinned object filed removed before the restart
    release    drop the pins of objects back in place
    final      the last scan; its exit code is finalize's

Every step is safe to repeat: the restart phases skip nodes already in the wanted
state, config edits are idempotent, pins are hard links that are kept or restored.

On RADOS pools (``rados_blocker`` for both stores) the flow is shorter, since a pool
has no old paths and pithos_migrate is a filed setting (said in one line):

    preflight  configs valid and naming the same pools on every node; no volume
               mapped, no lock held (radosd's RADOS lock or a non-empty NAME_lock)
    upgrade    upgrade-maps: online (vlmc) when Archipelago runs, offline when it
               is stopped on every node; journaled and resumable by itself
    final      the last scan and check; their worse exit code is finalize's

A mixed config (one store a file_blocker, the other a rados_blocker) runs the filed
flow for its filed store: pins, restarts and pithos_migrate in that store's section
only, migrate-objects on its dir; the scans read both stores (the mixed backend),
--fix upgrades the maps wherever they are, and the final step is a scan and check.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import config as config_mod
from . import durable
from . import confedit
from . import restart as restart_mod
from . import scan as scan_mod
from .backends.filed import FiledBackend
from .errors import ArchverifyError, ConfigError, Interrupted, Refused, UsageError
from .nodes import Runner, label
from .pins import PinResult, Quarantine
from .summary import Summary

RADOS_STEPS = ("preflight", "upgrade", "final")
PITHOS_MIGRATE_SKIPPED = ("pithos_migrate steps skipped: pithos_migrate is a setting of filed stores, and RADOS "
                          "pools have no old Pithos paths to migrate from")
MIXED_NOTE = ("{pools} in RADOS: pithos_migrate is set in [{sections}] only (a filed setting; pools have no "
              "old Pithos paths), and the final step is a scan and check of both stores")
STEPS = ("preflight", "pin", "stop", "enable", "start", "scan", "fix", "settle", "stop-off", "disable",
         "start-off", "restore", "release", "final")
OLD_PATH_KINDS = ("object_unmigrated", "object_leftover", "object_conflict")
JOURNAL = "finalize.journal"

DRAIN = """\
Before: drain every node so no VM runs from Archipelago during the restarts (on the Ganeti master):
    gnt-node modify --drained=True NODE        # for each node, then live-migrate or fail over its VMs
  or, for a whole backend (on the Cyclades node):
    snf-manage backend-modify --drained=True BACKEND_ID
After finalize: undrain:
    gnt-node modify --drained=False NODE
    snf-manage backend-modify --drained=False BACKEND_ID"""

Log = Callable[[str], None]


@dataclass
class FixContext:
    """What a fix step gets: the store dirs, where to journal, the nodes and their runner."""

    dirs: dict[str, str]
    journal_dir: Path
    logdir: Path
    backup_dir: Path
    runner: Runner
    nodes: list[str | None]
    jobs: int = 1
    direct: bool = config_mod.DIRECT_DEFAULT  # filed's direct I/O of the maps store (padding of what it writes)
    maps: object = None  # the maps store when it is not a dir of ``dirs``: a backend with object I/O (a pool)
    vlmc: tuple[str, ...] = ("vlmc",)
    pithos_sizes: dict | None = None  # v0 map sizes (from --pithos-db): those maps are upgraded too


def default_fixer(ctx: FixContext) -> list[dict]:
    """migrate-objects on the filed stores, then upgrade-maps (through vlmc: Archipelago runs),
    journaled in the state dir.

    vlmc runs on this machine, which is one of the nodes: finalize is run from one.
    """
    try:
        from .fixes.migrate import migrate_objects
        from .fixes.upgrade import upgrade_maps
    except ImportError as e:
        raise UsageError(f"--fix needs migrate-objects and upgrade-maps, missing from this installation ({e})") from None
    ops = list(migrate_objects(dict(ctx.dirs), apply=True, journal_dir=str(ctx.journal_dir / "migrate"),
                               jobs=ctx.jobs))
    maps = ctx.maps if ctx.maps is not None else ctx.dirs["maps"]
    res = upgrade_maps(maps, apply=True, backup_dir=str(ctx.backup_dir), logdir=str(ctx.logdir),
                       mode="vlmc", vlmc=ctx.vlmc, jobs=min(4, ctx.jobs), pithos_sizes=ctx.pithos_sizes,
                       journal_dir=str(ctx.journal_dir / "upgrade"), direct=ctx.direct)
    ops += list(res.get("results", []))
    return ops


@dataclass
class Options:
    config_path: str
    nodes: list[str] | None
    runner: Runner
    state_dir: Path
    fix: bool = False
    force: bool = False
    jobs: int = 1
    quarantine_root: str | None = None
    rados: dict = field(default_factory=dict)  # -c/--ceph-conf, --id, --keyring, --namespace, ... for RADOS pools
    pools: dict = field(default_factory=dict)  # --pool/--blocks-pool: must be the pools the config names
    rados_typed: frozenset = frozenset()  # the RADOS flags typed (as typed): refused when no store is a pool
    backup_dir: Path | None = None  # upgrade-maps' backups [default: STATE/map-backups]
    logdir: Path | None = None  # upgrade-maps' logs [default: STATE/upgrade-logs]
    pithos_sizes: Callable[[], dict] | None = None  # v0 map sizes, read when a fix step needs them
    vlmc: tuple[str, ...] = ("vlmc",)  # the command online map upgrades run
    fixer: Callable[[FixContext], list[dict]] = default_fixer
    log: Log = print
    after_step: Callable[[str], None] | None = None  # called after each journaled step (tests crash here)

    @property
    def node_list(self) -> list[str | None]:
        return list(self.nodes) if self.nodes else [None]


# ---- the journal -------------------------------------------------------------------


class Journal:
    """The steps done, one durable record each (:class:`durable.Journal`), and the state dir's run lock."""

    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir)
        self.path = self.dir / JOURNAL
        self.records: list[dict] = []
        self._log: durable.Journal | None = None
        self._lock = contextlib.ExitStack()

    def lock(self) -> None:
        """One finalize per state dir."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"{self.dir}: cannot use as --state-dir: {e.strerror}") from None
        self._lock.enter_context(durable.run_lock(self.dir, "finalize"))

    def unlock(self) -> None:
        if self._log is not None:
            self._log.close()
        self._lock.close()

    @property
    def log(self) -> durable.Journal:
        if self._log is None:
            self._log = durable.Journal(self.path)
        return self._log

    def load(self) -> list[dict]:
        self.records = self.log.records()
        return self.records

    def append(self, step: str, **data) -> dict:
        rec = self.log.append({"step": step, **data})
        self.records.append(rec)
        return rec

    def archive(self) -> Path:
        dst = Path(self.log.archive())
        self.records = []
        return dst

    def done(self, step: str) -> bool:
        return any(r.get("step") == step for r in self.records)

    def get(self, step: str) -> dict:
        for r in reversed(self.records):
            if r.get("step") == step:
                return r
        return {}

    @property
    def finished(self) -> bool:
        return self.done("finished")


# ---- reading the nodes' configs ----------------------------------------------------------


@dataclass
class Cluster:
    dirs: dict[str, str]  # filed stores: role -> archip_dir
    pools: dict[str, str] = field(default_factory=dict)  # RADOS stores: role -> pool
    cephx_id: str | None = None
    direct: bool = config_mod.DIRECT_DEFAULT
    configs: dict = field(default_factory=dict)  # node -> ArchipConfig
    warnings: list[str] = field(default_factory=list)

    @property
    def mixed(self) -> bool:
        return bool(self.dirs) and bool(self.pools)

    def sections(self) -> str:
        """The config sections of the filed stores, where pithos_migrate is set."""
        return "] and [".join(config_mod.SECTIONS[r] for r in ("blocks", "maps") if r in self.dirs)


def read_cluster(opts: Options) -> Cluster:
    """Every node's archipelago.conf, checked; all must name the same dirs and pools."""
    errors: list[str] = []
    warnings: list[str] = []
    configs = {}
    for node in opts.node_list:
        where = f"{node}:{opts.config_path}" if node is not None else opts.config_path
        try:
            data = opts.runner.read_file(node, opts.config_path)
        except config_mod.UnreadableConfig as e:
            errors.append(str(e))
            continue
        cfg, problems = config_mod.check(data, where)
        errors += [str(p) for p in problems if p.level == "error"]
        warnings += [str(p) for p in problems if p.level == "warning"]
        if cfg is not None:
            configs[node] = cfg
    if errors:
        for e in errors:
            opts.log(f"  config: {e}")
        raise ConfigError(f"{len(errors)} config problem(s) on the nodes (listed above); fix them and run again")
    dirs: dict[str, str] = {}
    pools: dict[str, str] = {}
    first = label(opts.node_list[0])
    for node, cfg in configs.items():
        for role in ("maps", "blocks"):
            sc = cfg.stores[role]
            where, what = (pools, sc.pool) if sc.type == "rados" else (dirs, os.path.abspath(sc.archip_dir))
            if where.setdefault(role, what) != what:
                key = "pool" if sc.type == "rados" else "archip_dir"
                raise Refused(f"{label(node)}: [{sc.section}] {key} {what} differs from {where[role]} on "
                              f"{first}; every node must share the same stores")
    direct = any(cfg.stores["maps"].direct for cfg in configs.values())  # any node padding: pad
    cephx = next((cfg.stores[r].cephx_id for cfg in configs.values() for r in pools if cfg.stores[r].cephx_id), None)
    return Cluster(dirs, pools, cephx, direct=direct, configs=configs, warnings=warnings)


# ---- the flow ----------------------------------------------------------------------------


@dataclass
class Outcome:
    state: str  # "finished", "waiting" (old paths left, pithos_migrate on) or "plan"
    summary: Summary | None
    exit_code: int
    dirs: dict[str, str] = field(default_factory=dict)


class Finalizer:
    def __init__(self, opts: Options):
        self.o = opts
        self.log = opts.log
        self.journal = Journal(opts.state_dir)
        self.cluster: Cluster | None = None
        self.quarantines: dict[str, Quarantine] = {}
        self._rados = None  # the pools' backend, made at first use

    # -- building blocks of the steps
    def backend(self, pithos_migrate_on: bool = True):
        """Both stores: the filed dirs (pithos_migrate as the step has it), the pools, or a mix."""
        dirs = self.cluster.dirs
        filed = None
        if dirs:
            filed = FiledBackend(dirs.get("maps"), dirs.get("blocks"), {r: not pithos_migrate_on for r in dirs})
            filed.validate()
            if not self.cluster.pools:
                return filed
        rados = self.rados_backend()
        if filed is None:
            return rados
        from .backends.mixed import MixedBackend

        return MixedBackend(*(filed if r in dirs else rados for r in ("maps", "blocks")))

    def scan(self, pithos_migrate_on: bool) -> Summary:
        return scan_mod.scan(self.backend(pithos_migrate_on), self.o.jobs, progress=False)

    def held_locks(self, summary: Summary, be) -> list[str]:
        """Locks someone holds: a non-empty lock object, or on a pool one radosd holds a RADOS lock on."""
        held = []
        for lk in summary.locks:
            owner = lk.owner
            if not owner and lk.store in self.cluster.pools and lk.name.endswith("_lock"):
                owner = be.lock_owner(lk.store, lk.name.encode()[:-len(b"_lock")])
            if owner:
                held.append(f"{lk.store}:{lk.name} ({owner})")
        return held

    def mapped(self) -> dict[str, list[str]]:
        """Volumes mapped on each node: reasons to refuse without --force."""
        out = {}
        for node in self.o.node_list:
            vols = self.o.runner.showmapped(node)
            if vols:
                out[label(node)] = vols
        return out

    def quarantine(self, store: str) -> Quarantine:
        if store not in self.quarantines:
            q = Quarantine(store, self.cluster.dirs[store], self.o.quarantine_root)
            q.validate()
            self.quarantines[store] = q
        return self.quarantines[store]

    def pin_at_risk(self, summary: Summary) -> list[PinResult]:
        out = []
        for f in summary.findings:
            if f.kind == "object_at_risk":
                r = self.quarantine(f.store).pin(f.name)
                out.append(r)
                if r.action == "conflict":
                    raise Refused(f"{f.store}:{f.name}: {r.detail}; inspect both before running again")
                if r.action == "lost":
                    self.log(f"  WARNING {f.store}:{f.name}: {r.detail}")
        return out

    def all_pins(self) -> list[tuple[Quarantine, str]]:
        out = []
        for store in self.cluster.dirs:
            q = self.quarantine(store)
            out += [(q, n) for n in q.pinned()]
        return out

    def writing(self):
        """The store locks, held while finalize itself writes into the stores (restoring pins);
        the fixes take them on their own."""
        return durable.store_locks(self.cluster.dirs.values(), "finalize")

    def restore_all(self) -> list[PinResult]:
        with self.writing():
            results = [q.restore(n) for q, n in self.all_pins()]
        for r in results:
            if r.action == "restored":
                self.log(f"  restored {r.store}:{r.name} (filed had removed it)")
            elif r.action in ("lost", "conflict"):
                self.log(f"  WARNING {r.store}:{r.name}: {r.detail}")
        return results

    def todo(self, step: str) -> bool:
        """Whether ``step`` is still to do; a signal received meanwhile stops the run before it."""
        if self.journal.done(step):
            return False
        durable.check_stop()
        return True

    def step(self, name: str, **data) -> None:
        self.journal.append(name, **data)
        if self.o.after_step is not None:
            self.o.after_step(name)

    def phase(self, want: str) -> None:
        resume = "archverify finalize (same options) continues from here"
        restart_mod.phase(self.o.runner, self.o.node_list, want, self.o.force, log=self.log, resume=resume)

    def toggle(self, value: bool) -> list[dict]:
        changes = confedit.apply_on_nodes(self.o.runner, self.o.node_list, self.o.config_path, value)
        for c in changes:
            what = "; ".join(c.changes) if c.changes else "already " + ("on" if value else "off")
            self.log(f"  {label(c.node)}: {what}" + (f" (backup {c.backup})" if c.backup else ""))
        return [{"node": label(c.node), "changes": c.changes, "backup": c.backup} for c in changes]

    # -- preflight and plan
    def preflight(self) -> dict:
        """Mapped volumes and held locks: reasons to refuse without --force."""
        be = self.backend(pithos_migrate_on=True)
        summary = scan_mod.scan(be, self.o.jobs, progress=False)
        return {"mapped": self.mapped(), "held_locks": self.held_locks(summary, be),
                "at_risk": sum(1 for f in summary.findings if f.kind == "object_at_risk"),
                "findings": dict(summary.per_kind)}

    def stores_line(self) -> str:
        return ", ".join([f"{r}={d}" for r, d in self.cluster.dirs.items()]
                         + [f"{r}=pool {p}" for r, p in self.cluster.pools.items()])

    def print_plan(self, pre: dict) -> None:
        nodes = ", ".join(label(n) for n in self.o.node_list)
        stop = "archipelago stop -f" if self.o.force else "archipelago stop"
        final = ("final scan and check; exit code as 'archverify check'" if self.cluster.mixed
                 else "final scan; exit code as 'archverify scan'")
        lines = [
            f"finalize plan for nodes {nodes} (stores: {self.stores_line()})",
            f"  1. pin {pre['at_risk']} object(s) at risk (hard links in {self.quarantine_hint()})",
            f"  2. '{stop}' on every node",
            f"  3. pithos_migrate = True in [{self.cluster.sections()}] of {self.o.config_path} on every node",
            "  4. 'archipelago start' on every node, then scan",
            "  5. " + ("migrate-objects and upgrade-maps (--fix)" if self.o.fix else "no fixes (add --fix)"),
            "  6. restore pinned objects filed removed; wait until nothing is left at an old Pithos path",
            "  7. stop, pithos_migrate = False, start on every node; restore; release the pins",
            f"  8. {final}",
            f"journal: {self.journal.path}",
        ]
        for ln in lines:
            self.log(ln)

    def quarantine_hint(self) -> str:
        return ", ".join(str(Quarantine(s, d, self.o.quarantine_root).dir) for s, d in self.cluster.dirs.items())

    def refuse_if_busy(self, pre: dict) -> None:
        busy = []
        for node, vols in pre["mapped"].items():
            busy.append(f"{node}: {len(vols)} volume(s) mapped ({', '.join(vols[:5])})")
        if pre["held_locks"]:
            busy.append(f"{len(pre['held_locks'])} lock(s) held: " + ", ".join(pre["held_locks"][:5]))
        if not busy:
            return
        for b in busy:
            self.log(f"  busy: {b}")
        if self.o.force:
            self.log("  --force: going on; mapped volumes freeze on disk I/O while Archipelago is stopped")
            return
        self.log(DRAIN)
        raise Refused("the cluster is not idle (listed above): drain the nodes, or --force to stop with -f")

    # -- run
    def run(self, yes: bool) -> Outcome:
        """The plan (``yes`` False: reads only, writes nothing) or the flow from where it stopped."""
        if not yes:
            return self._run(yes)
        self.journal.lock()
        try:
            with durable.stop_between_steps():
                try:
                    return self._run(yes)
                except ArchverifyError as e:
                    signo = durable.stop_requested()
                    if signo is None or isinstance(e, Interrupted):
                        raise
                    # a Ctrl-C reaches the node commands too: their failure is the interruption
                    raise Interrupted(signo, f"{e}; run the same command again to continue") from None
        finally:
            self.journal.unlock()

    def _run(self, yes: bool) -> Outcome:
        j = self.journal
        j.load()
        params = {"nodes": [label(n) for n in self.o.node_list], "config": self.o.config_path}
        if j.finished:
            if not yes:
                self.log(f"the previous finalize finished {j.get('finished').get('t')}; --yes starts a new one")
                j.records = []
            else:
                old = j.archive()
                self.log(f"the previous finalize finished ({old.name} kept); starting a new one")
        if j.records:
            first = j.records[0]
            if first.get("params") != params:
                raise UsageError(f"{j.path}: an unfinished finalize for {first.get('params')} is recorded there; "
                                 "run it again with the same --nodes and --config, or move the journal away")
        self.cluster = read_cluster(self.o)
        if not self.cluster.pools and (self.o.rados_typed or self.o.pools):
            flag = sorted(self.o.rados_typed)[0] if self.o.rados_typed else "--pool"
            raise UsageError(f"{flag} is a RADOS option, but {self.o.config_path} names no pool (both stores "
                             "are filed): it would be ignored; drop it")
        for w in self.cluster.warnings:
            self.log(f"  config warning: {w}")
        if not self.cluster.dirs:
            self.log_resume(RADOS_STEPS, yes)
            return self._run_rados(yes, params)
        if self.cluster.mixed:
            pools = " and ".join(f"the {r} store (pool {p})" for r, p in self.cluster.pools.items())
            self.log(MIXED_NOTE.format(pools=pools[0].upper() + pools[1:], sections=self.cluster.sections()))
        self.log_resume(STEPS, yes)
        if not yes:
            pre = self.preflight()
            self.print_plan(pre)
            for node, vols in pre["mapped"].items():
                self.log(f"  busy: {node}: {len(vols)} volume(s) mapped")
            if pre["held_locks"]:
                self.log(f"  busy: {len(pre['held_locks'])} lock(s) held")
            self.log(DRAIN)
            self.log("nothing done; run again with --yes to proceed")
            return Outcome("plan", None, 0, self.cluster.dirs)
        if not j.records:
            j.append("begin", params=params, host=socket.gethostname())

        if self.todo("preflight"):
            pre = self.preflight()
            self.refuse_if_busy(pre)
            self.step("preflight", mapped=pre["mapped"], held_locks=pre["held_locks"], at_risk=pre["at_risk"])
        if self.todo("pin"):
            self.log("pinning objects at risk")
            pins = self.pin_at_risk(self.scan(pithos_migrate_on=True))
            self.log(f"  {len(pins)} object(s) pinned")
            self.step("pin", pinned=[f"{p.store}:{p.name}" for p in pins])
        if self.todo("stop"):
            self.log("stopping Archipelago on every node" + (" (-f)" if self.o.force else ""))
            self.phase("stopped")
            self.step("stop")
        if self.todo("enable"):
            self.log("pithos_migrate on")
            self.step("enable", nodes=self.toggle(True))
        if self.todo("start"):
            self.log("starting Archipelago on every node")
            self.phase("running")
            self.step("start")
        if self.todo("scan"):
            s = self.scan(pithos_migrate_on=True)
            self.pin_at_risk(s)
            self.log(f"scan: {len(s.findings)} finding(s): " + _kinds(s))
            self.step("scan", findings=dict(s.per_kind))
        if self.o.fix and self.todo("fix"):
            self.log("fixing: migrate-objects, upgrade-maps")
            maps = self.rados_backend() if "maps" in self.cluster.pools else None
            ctx = FixContext(dict(self.cluster.dirs), j.dir / "fixes", self.logdir(), self.backup_dir(),
                             self.o.runner, self.o.node_list, self.o.jobs, self.cluster.direct, maps, self.o.vlmc,
                             self.o.pithos_sizes() if self.o.pithos_sizes else None)
            for d in (ctx.journal_dir / "migrate", ctx.journal_dir / "upgrade", ctx.logdir, ctx.backup_dir):
                d.mkdir(parents=True, exist_ok=True)
            ops = self.o.fixer(ctx)
            counts: dict[str, int] = {}
            for op in ops:
                counts[str(op.get("status", "done"))] = counts.get(str(op.get("status", "done")), 0) + 1
            self.log(f"  {len(ops)} fix operation(s): " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                                                            or "nothing to do"))
            self.step("fix", operations=counts)
        if self.todo("settle"):
            self.restore_all()
            s = self.scan(pithos_migrate_on=True)
            self.pin_at_risk(s)
            left = [f for f in s.findings if f.kind in OLD_PATH_KINDS]
            if left:
                self.restore_all()
                self.log(f"{len(left)} object(s) still at an old Pithos path: " + _kinds(s, OLD_PATH_KINDS))
                self.log("pithos_migrate stays ON (pins kept) until none is left: "
                         + ("resolve them ('archverify migrate-objects', see object_conflict advice)" if self.o.fix
                            else "run again with --fix, or 'archverify migrate-objects --yes'")
                         + ", then run 'archverify finalize --yes' again to continue")
                return Outcome("waiting", s, max(s.exit_code, 1), self.cluster.dirs)
            self.step("settle")
        if self.todo("stop-off"):
            self.log("stopping Archipelago on every node to turn pithos_migrate off")
            self.phase("stopped")
            self.step("stop-off")
        if self.todo("disable"):
            self.log("pithos_migrate off")
            self.step("disable", nodes=self.toggle(False))
        if self.todo("start-off"):
            self.log("starting Archipelago on every node")
            self.phase("running")
            self.step("start-off")
        if self.todo("restore"):
            res = self.restore_all()
            bad = [r for r in res if r.action in ("lost", "conflict")]
            if bad:
                raise Refused(f"{len(bad)} pinned object(s) could not be put back (listed above); pins kept in "
                              f"{self.quarantine_hint()}")
            self.step("restore", restored=sum(r.action == "restored" for r in res))
        if self.todo("release"):
            with self.writing():
                results = [q.release(n) for q, n in self.all_pins()]
            kept = [r for r in results if r.action != "released"]
            if kept:
                for r in kept:
                    self.log(f"  pin kept: {r.store}:{r.name}: {r.detail}")
                raise Refused(f"{len(kept)} pin(s) kept (listed above); run again once resolved")
            for q in self.quarantines.values():
                q.remove_if_empty()
            self.log(f"released {len(results)} pin(s)")
            self.step("release", released=len(results))
        durable.check_stop()
        if self.cluster.mixed:
            from .check import check as check_op

            s = check_op(self.backend(pithos_migrate_on=False), self.o.jobs, progress=False)
        else:
            s = self.scan(pithos_migrate_on=False)
        self.step("final", findings=dict(s.per_kind), exit_code=s.exit_code)
        j.append("finished")
        self.log("pithos_migrate is off again on every node and the pins are released; undrain the nodes:")
        self.log("    gnt-node modify --drained=False NODE   (or snf-manage backend-modify --drained=False BACKEND_ID)")
        return Outcome("finished", s, s.exit_code, self.cluster.dirs)


    # -- RADOS pools ---------------------------------------------------------------------------

    def backup_dir(self) -> Path:
        return self.o.backup_dir or self.journal.dir / "map-backups"

    def logdir(self) -> Path:
        return self.o.logdir or self.journal.dir / "upgrade-logs"

    def rados_backend(self):
        """The pools of the config (a mixed config's one pool) with -c/--id/--keyring/--namespace;
        one connection for the whole run."""
        from .backends import entry

        if self._rados is None:
            opts = dict(self.o.rados)
            opts.setdefault("client_id", self.cluster.cephx_id)
            pools = self.cluster.pools
            for role, pool in self.o.pools.items():
                if pools.get(role) != pool:
                    flag = "--pool" if role == "maps" else "--blocks-pool"
                    raise UsageError(f"{flag} {pool}: {self.o.config_path} names "
                                     + (f"pool {pools[role]!r}" if pools.get(role) else "no pool")
                                     + f" for the {role} store, and finalize acts on the stores Archipelago uses")
            self._rados = entry("rados").build(None, pool=pools.get("maps"), blocks_pool=pools.get("blocks"),
                                               roles=tuple(pools), **opts)
        return self._rados

    def rados_preflight(self, be) -> dict:
        """Mapped volumes on any node, and held locks: a non-empty lock object, or one radosd holds."""
        summary = scan_mod.scan(be, self.o.jobs, progress=False)
        return {"mapped": self.mapped(), "held_locks": self.held_locks(summary, be),
                "findings": dict(summary.per_kind)}

    def upgrade_mode(self) -> str:
        """'offline' only when Archipelago is stopped on every node; else through the running one."""
        states = [self.o.runner.status(n).state for n in self.o.node_list]
        return "offline" if all(st == "stopped" for st in states) else "vlmc"

    def log_resume(self, steps: tuple[str, ...], yes: bool) -> None:
        """Say that a journal is being resumed, what it holds and what comes next (every flow)."""
        j = self.journal
        if not j.records:
            return
        done = [r["step"] for r in j.records if r.get("step") in steps]
        nxt = next((s for s in steps if s not in done and (s != "fix" or self.o.fix)), "final")
        how = "resuming" if yes else "--yes resumes"
        self.log(f"{how} the finalize started {j.records[0]['t']}: done {', '.join(done) or 'nothing'}; "
                 f"continuing with {nxt}")

    def _run_rados(self, yes: bool, params: dict) -> Outcome:
        from .check import check as check_op
        from .fixes.upgrade import upgrade_maps

        j = self.journal
        be = self.rados_backend()
        pools = ", ".join(f"{r}={p}" for r, p in self.cluster.pools.items())
        self.log(PITHOS_MIGRATE_SKIPPED)
        if not yes:
            pre = self.rados_preflight(be)
            nodes = ", ".join(label(n) for n in self.o.node_list)
            self.log(f"finalize plan for nodes {nodes} (RADOS pools: {pools})")
            self.log("  1. preflight: every node's config names these pools; no volume mapped, no lock held")
            self.log(f"  2. upgrade-maps ({'offline' if self.upgrade_mode() == 'offline' else 'online, vlmc'}): "
                     f"{pre['findings'].get('map_v1', 0)} v1 map(s), "
                     f"{pre['findings'].get('map_upgrade_incomplete', 0)} unfinished upgrade(s)")
            self.log("  3. final scan and check; exit code as 'archverify check'")
            self.log(f"journal: {j.path}")
            for node, vols in pre["mapped"].items():
                self.log(f"  busy: {node}: {len(vols)} volume(s) mapped")
            if pre["held_locks"]:
                self.log(f"  busy: {len(pre['held_locks'])} lock(s) held")
            self.log("nothing done; run again with --yes to proceed")
            return Outcome("plan", None, 0, {})
        if not j.records:
            j.append("begin", params=params, host=socket.gethostname(), pools=self.cluster.pools)
        if self.todo("preflight"):
            pre = self.rados_preflight(be)
            pre["at_risk"] = 0
            self.refuse_if_busy(pre)
            self.step("preflight", mapped=pre["mapped"], held_locks=pre["held_locks"])
        if self.todo("upgrade"):
            mode = self.upgrade_mode()
            self.log(f"upgrade-maps ({mode}) on pool {self.cluster.pools['maps']}")
            res = upgrade_maps(be, apply=True, backup_dir=str(self.backup_dir()), logdir=str(self.logdir()),
                               pithos_sizes=self.o.pithos_sizes() if self.o.pithos_sizes else None, mode=mode, vlmc=self.o.vlmc, jobs=min(4, self.o.jobs),
                               journal_dir=str(j.dir / "fixes" / "upgrade"))
            counts = res["counts"]
            self.log("  " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing to upgrade"))
            if res["exit_code"]:
                for r in res["results"]:
                    if r["status"] != "upgraded":
                        self.log(f"  {r['status']} {r['target']}: {r['detail']}")
            self.step("upgrade", mode=mode, counts=counts)
        durable.check_stop()
        s = check_op(be, self.o.jobs, progress=False)
        self.step("final", findings=dict(s.per_kind), exit_code=s.exit_code)
        j.append("finished")
        return Outcome("finished", s, s.exit_code, {})


def _kinds(s: Summary, only=None) -> str:
    pk = s.per_kind
    items = [(k, n) for k, n in sorted(pk.items()) if only is None or k in only]
    return ", ".join(f"{k} {n}" for k, n in items) or "none"
