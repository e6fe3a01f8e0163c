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

The plan (no ``--yes``) runs the same preflight, writes nothing, and lists every step
with its count and whether the journal has it done; what would make ``--yes`` refuse
(busy nodes, a ``vlmc`` it cannot run) is listed and the plan exits EXIT_BLOCKED.

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

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from verify import backends, durable
from verify.core.errors import ArchverifyError, Interrupted, UsageError
from .cluster import Cluster, read_cluster
from .journal import JOURNAL, Journal
from .plan import (
    DRAIN, EXIT_BLOCKED, MOVE_KINDS, OLD_PATH_KINDS, RADOS_STEPS, RESTART_STEPS, SCAN_STEPS, STEPS, Outcome,
    Planning,
)
from .steps import FixContext, Steps, default_fixer
from ..nodes import Runner, label
from ..pins import Quarantine
from .services import SWITCHES, ServiceControl

__all__ = ["Cluster", "DEFAULT_NODES_WARNING", "DRAIN", "EXIT_BLOCKED", "Finalizer", "FixContext", "JOURNAL",
           "Journal", "MIXED_NOTE", "MOVE_KINDS", "OLD_PATH_KINDS", "Options", "Outcome", "PITHOS_MIGRATE_SKIPPED",
           "RADOS_STEPS", "RESTART_STEPS", "SCAN_STEPS", "STEPS", "Quarantine", "default_fixer", "read_cluster"]

PITHOS_MIGRATE_SKIPPED = ("pithos_migrate steps skipped: pithos_migrate is a setting of filed stores, and RADOS "
                          "pools have no old Pithos paths to migrate from")
MIXED_NOTE = ("{pools} in RADOS: pithos_migrate is set in [{sections}] only (a filed setting; pools have no "
              "old Pithos paths), and the final step is a scan and check of both stores")
DEFAULT_NODES_WARNING = ("--nodes not given: finalize acts on this node only. Every node that runs Archipelago on "
                         "these stores must be named (--nodes n1,n2,...): the others would keep pithos_migrate as "
                         "it is and keep their volumes open through the restarts")

Log = Callable[[str], None]


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
    given: dict = field(default_factory=dict)  # the store options typed (name -> as typed): one no store reads is refused
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


class Finalizer(Planning, Steps, ServiceControl):
    """One flow over the store contract: the steps are those of the stores at hand (:meth:`steps`),
    each run by its ``run_*`` method or :meth:`ServiceControl.switch_step`, journaled, skipped when done."""

    def __init__(self, opts: Options):
        self.o = opts
        self.log = opts.log
        self.journal = Journal(opts.state_dir)
        self.cluster: Cluster | None = None
        self.quarantines: dict[str, Quarantine] = {}
        self._stores = None  # both stores' backend, made once (one connection to a pool for the whole run)
        self._validated = False

    # -- the stores, through the store contract
    def stores(self):
        """The backend of the stores every node's config names, with the RADOS options given."""
        if self._stores is None:
            self._stores = backends.from_options(self.cluster.config, validate=False, given=self.o.given,
                                                 pithos_migrate="on", direct=self.cluster.direct, **self.o.rados)
            places = self.cluster.places
            for role, pool in self.o.pools.items():
                if places[role].get("pool") != pool:
                    flag = "--pool" if role == "maps" else "--blocks-pool"
                    raise UsageError(f"{flag} {pool}: {self.o.config_path} names "
                                     + (f"pool {places[role]['pool']!r}" if places[role].get("pool") else "no pool")
                                     + f" for the {role} store, and finalize acts on the stores Archipelago uses")
        return self._stores

    def backend(self, pithos_migrate_on: bool = True):
        """Both stores as Archipelago reads them with pithos_migrate on or off; validated at first use."""
        if not self._validated:
            self.stores().validate()
            self._validated = True
        return self.stores().with_pithos_migrate(pithos_migrate_on)

    @property
    def dirs(self) -> dict[str, str]:
        """The stores kept at paths (pins, pithos_migrate, migrate-objects): role -> dir."""
        be = self.stores()
        return {role: be.store_dir(role) for role in backends.ROLES if be.store_dir(role) is not None}

    @property
    def pools(self) -> list[str]:
        """The roles of the stores without paths (pools)."""
        return [role for role in backends.ROLES if role not in self.dirs]

    def steps(self) -> tuple[str, ...]:
        """A store at paths: the pithos_migrate flow; none: preflight, upgrade, final."""
        return STEPS if self.dirs else RADOS_STEPS

    def fixer_is_default(self) -> bool:
        return self.o.fixer is default_fixer

    def outcome(self, state: str, summary, exit_code: int, plan: dict | None = None) -> Outcome:
        order = list(self.dirs) + self.pools  # the stores at paths first, as the plan names them
        return Outcome(state, summary, exit_code, {r: self.cluster.places[r] for r in order}, plan,
                       self.stores().name)

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
        self.stores()  # a store option that no store here reads is refused now
        for w in self.cluster.warnings:
            self.log(f"  config warning: {w}")
        if self.o.nodes is None:
            self.log(f"WARNING: {DEFAULT_NODES_WARNING}")
        steps = self.steps()
        if self.dirs and self.pools:
            pools = " and ".join(f"the {r} store (pool {self.cluster.places[r]['pool']})" for r in self.pools)
            self.log(MIXED_NOTE.format(pools=pools[0].upper() + pools[1:], sections=self.sections()))
        self.log_resume(steps, yes)
        if not self.dirs:
            self.log(PITHOS_MIGRATE_SKIPPED)
        if not yes:
            return self.plan()
        if not j.records:
            pools = {} if self.dirs else {"pools": {r: self.cluster.places[r]["pool"] for r in self.pools}}
            j.append("begin", params=params, host=socket.gethostname(), **pools)
        runners = {"preflight": self.run_preflight, "pin": self.run_pin, "scan": self.run_scan, "fix": self.run_fix,
                   "settle": self.run_settle, "restore": self.run_restore, "release": self.run_release,
                   "upgrade": self.run_upgrade}
        for name in steps[:-1]:
            if name == "fix" and not self.o.fix:
                continue
            if not self.todo(name):
                continue
            stopped = self.switch_step(name) if name in SWITCHES else runners[name]()
            if stopped is not None:
                return stopped  # settle: objects left at old paths, pithos_migrate stays on
        return self.run_final()

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

    def log_resume(self, steps: tuple[str, ...], yes: bool) -> None:
        """Say that a journal is being resumed, what it holds and what comes next."""
        j = self.journal
        if not j.records:
            return
        done = [r["step"] for r in j.records if r.get("step") in steps]
        nxt = next((s for s in steps if s not in done and (s != "fix" or self.o.fix)), "final")
        how = "resuming" if yes else "--yes resumes"
        self.log(f"{how} the finalize started {j.records[0]['t']}: done {', '.join(done) or 'nothing'}; "
                 f"continuing with {nxt}")
