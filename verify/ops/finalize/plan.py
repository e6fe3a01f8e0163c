"""finalize's plan: its steps for the stores at hand, the preflight that counts them, and
what would make ``--yes`` refuse (busy nodes, a ``vlmc`` it cannot run)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import scan as scan_mod
from verify.config.archipelago import SECTIONS
from verify.core.errors import Refused
from ..nodes import label
from ..pins import Quarantine
from verify.core.summary import Summary

# the steps when a store keeps objects at paths (filed; a mixed config's filed store), and when none does
STEPS = ("preflight", "pin", "stop", "enable", "start", "scan", "fix", "settle", "stop-off", "disable",
         "start-off", "restore", "release", "final")
RADOS_STEPS = ("preflight", "upgrade", "final")
OLD_PATH_KINDS = ("object_unmigrated", "object_leftover", "object_conflict")
MOVE_KINDS = ("object_unmigrated", "object_leftover", "object_misplaced")  # what migrate-objects moves or unlinks
EXIT_BLOCKED = 3  # the plan shown, and --yes would refuse now (what blocks is listed)
RESTART_STEPS = ("stop", "start", "stop-off", "start-off")
SCAN_STEPS = ("pin", "scan", "settle", "final")  # the steps that scan both stores (the fix scans on its own)

DRAIN = """\
Before: drain every node so no VM runs from Archipelago during the restarts (on the Ganeti master):
    gnt-node modify --drained=True NODE        # for each node, then live-migrate or fail over its VMs
  or, for a whole backend (on the Cyclades node):
    snf-manage backend-modify --drained=True BACKEND_ID
After finalize: undrain:
    gnt-node modify --drained=False NODE
    snf-manage backend-modify --drained=False BACKEND_ID"""


@dataclass
class Outcome:
    state: str  # "finished", "waiting" (old paths left, pithos_migrate on) or "plan"
    summary: Summary | None
    exit_code: int
    stores: dict[str, dict] = field(default_factory=dict)  # role -> where the store is, as reports name it
    plan: dict | None = None  # the plan's steps, what blocks --yes, what is missing, the estimate
    kind: str = ""  # the backend's name (filed, rados, mixed), for the human report


class Planning:
    """The preflight and the plan for :class:`verify.ops.finalize.flow.Finalizer`."""

    def preflight(self, plan: bool = False) -> dict:
        """Mapped volumes and held locks (a non-empty lock object, or on a pool one radosd holds):
        reasons to refuse without --force; for the plan also what is missing to tell
        (``missing``) and how long the scan took."""
        be = self.backend(pithos_migrate_on=True)
        be.keep_empty_locks()  # held_locks asks each pool's empty lock objects for a RADOS lock
        try:
            summary = scan_mod.scan(be, self.o.jobs, progress=False)
        finally:
            be.keep_empty_locks(False)
        missing: list[str] | None = [] if plan else None
        pre = {"mapped": self.mapped(missing), "held_locks": self.held_locks(summary, be),
               "at_risk": sum(1 for f in summary.findings if f.kind == "object_at_risk"),
               "findings": dict(summary.per_kind), "scan_seconds": summary.elapsed}
        if plan:
            pre["missing"] = missing
        return pre

    @staticmethod
    def held_locks(summary: Summary, be) -> list[str]:
        """Locks someone holds: a non-empty lock object, or, in a store without paths, one its peer
        holds otherwise (radosd's RADOS lock on a pool), as the store contract's ``lock_owner`` tells
        (a lock file's content is all a store at paths has, and the scan has read it)."""
        held = []
        for lk in summary.locks:
            owner = lk.owner
            if not owner and be.store_dir(lk.store) is None and lk.name.endswith("_lock"):
                owner = be.lock_owner(lk.store, lk.name.encode()[:-len(b"_lock")])
            if owner:
                held.append(f"{lk.store}:{lk.name} ({owner})")
        return held

    def stores_line(self) -> str:
        return ", ".join([f"{r}={d}" for r, d in self.dirs.items()]
                         + [f"{r}=pool {self.cluster.places[r]['pool']}" for r in self.pools])

    def sections(self) -> str:
        """The config sections of the stores at paths, where pithos_migrate is set."""
        return "] and [".join(SECTIONS[r] for r in ("blocks", "maps") if r in self.dirs)

    def plan(self) -> Outcome:
        """Reads only: the preflight, then every step with its count and whether it is done."""
        pre = self.preflight(plan=True)
        nodes = ", ".join(label(n) for n in self.o.node_list)
        if self.dirs:
            self.missing_vlmc_here(pre["missing"], self.o.fix and self.fixer_is_default()
                                   and not self.journal.done("fix"))
            return self.show_plan(f"finalize plan for nodes {nodes} (stores: {self.stores_line()})",
                                  self.plan_steps(pre), pre)
        mode = self.upgrade_mode()
        self.missing_vlmc_here(pre["missing"], mode == "vlmc" and not self.journal.done("upgrade"))
        pools = ", ".join(f"{r}={self.cluster.places[r]['pool']}" for r in self.pools)
        return self.show_plan(f"finalize plan for nodes {nodes} (RADOS pools: {pools})",
                              self.plan_steps(pre, mode), pre)

    def plan_steps(self, pre: dict, mode: str = "vlmc") -> list[dict]:
        """The steps, each with what it does, its count where it has one, and whether the journal
        has it done. ``mode``: how the upgrade step of stores without paths would run."""
        f = pre["findings"]
        maps = self.maps_to_upgrade(f)
        if not self.dirs:
            steps = [
                {"step": "preflight", "what": "every node's config names these pools; no volume mapped, no lock held"},
                {"step": "upgrade", "what": f"upgrade-maps ({'offline' if mode == 'offline' else 'online, vlmc'})",
                 **maps, "maps_v1": f.get("map_v1", 0), "unfinished_upgrades": f.get("map_upgrade_incomplete", 0)},
                {"step": "final", "what": "the last scan and check; exit code as 'archverify check'"},
            ]
        else:
            stop = "archipelago stop -f" if self.o.force else "archipelago stop"
            moves = sum(f.get(k, 0) for k in MOVE_KINDS)
            old = sum(f.get(k, 0) for k in OLD_PATH_KINDS)
            final = ("scan and check of both stores; exit code as 'archverify check'" if self.pools
                     else "the last scan; exit code as 'archverify scan'")
            steps = [
                {"step": "preflight", "what": "configs valid and alike on every node; no volume mapped, no lock held"},
                {"step": "pin", "what": f"hard-link the objects at risk into {self.quarantine_hint()}",
                 "objects_at_risk": pre["at_risk"]},
                {"step": "stop", "what": f"'{stop}' on every node"},
                {"step": "enable", "what": f"pithos_migrate = True in [{self.sections()}] of "
                                           f"{self.o.config_path} on every node"},
                {"step": "start", "what": "'archipelago start' on every node"},
                {"step": "scan", "what": "scan what lazy migration leaves behind; pin anything newly at risk"},
                {"step": "fix", "what": ("migrate-objects and upgrade-maps" if self.o.fix else "skipped (add --fix)"),
                 **({"objects_to_move": moves, **maps} if self.o.fix else {})},
                {"step": "settle", "what": "restore pins filed removed; go on once nothing is at an old Pithos path",
                 "objects_at_old_paths": old},
                {"step": "stop-off", "what": "'archipelago stop' on every node"},
                {"step": "disable", "what": "pithos_migrate = False on every node"},
                {"step": "start-off", "what": "'archipelago start' on every node"},
                {"step": "restore", "what": "link back any pinned object filed removed"},
                {"step": "release", "what": "drop the pins of objects back in place"},
                {"step": "final", "what": final},
            ]
        for st in steps:
            st["done"] = self.journal.done(st["step"])
        return steps

    def maps_to_upgrade(self, findings: dict) -> dict:
        """What upgrade-maps would upgrade: v1 maps, unfinished upgrades, v0 maps when --pithos-db gives sizes."""
        out = {"maps_to_upgrade": findings.get("map_v1", 0) + findings.get("map_upgrade_incomplete", 0)
               + (findings.get("map_v0", 0) if self.o.pithos_sizes else 0)}
        if findings.get("map_v0") and not self.o.pithos_sizes:
            out["v0_maps_left"] = findings["map_v0"]  # their sizes are in Pithos's database only
        return out

    def show_plan(self, header: str, steps: list[dict], pre: dict) -> Outcome:
        """Say the plan: each step (done ones marked), its count, an estimate and what would
        block --yes now; exit EXIT_BLOCKED when something would."""
        self.log(header)
        for i, st in enumerate(steps, 1):
            counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in st.items()
                               if k not in ("step", "what", "done") and isinstance(v, int))
            self.log(f"  {i}. {st['step']}: {st['what']}" + (f" ({counts})" if counts else "")
                     + (" [done]" if st["done"] else ""))
            if st.get("v0_maps_left"):
                self.log(f"     {st['v0_maps_left']} v0 map(s) stay: give --pithos-db so their sizes are known")
        todo = [st["step"] for st in steps if not st["done"]]
        scans = sum(1 for st in todo if st in SCAN_STEPS)
        phases = sum(1 for st in todo if st in RESTART_STEPS)
        secs = pre.get("scan_seconds", 0.0)
        estimate = {"scans": scans, "seconds_per_scan": round(secs, 3), "scan_seconds": round(scans * secs, 3),
                    "restart_phases": phases, "nodes": len(self.o.node_list)}
        self.log(f"estimate: {scans} scan(s) of about {secs:.1f}s each (the preflight's) = {scans * secs:.0f}s, "
                 f"{phases} restart phase(s) on {len(self.o.node_list)} node(s), plus the fixes")
        self.log(f"journal: {self.journal.path}")
        blocking = self.busy(pre)
        blocks = [] if self.o.force else list(blocking)
        for b in blocking:
            self.log(f"  busy: {b}")
        if blocking and self.o.force:
            self.log("  --force: --yes would go on; mapped volumes freeze on disk I/O while Archipelago is stopped")
        for m in pre.get("missing", []):
            self.log(f"  missing: {m}")
        blocks += pre.get("missing", [])
        if blocking:
            self.log(DRAIN)
        plan = {"steps": steps, "blocked_by": blocks, "missing": pre.get("missing", []), "estimate": estimate,
                "findings": pre["findings"]}
        if blocks:
            self.log(f"nothing done; --yes would refuse now ({len(blocks)} reason(s) above)")
            return self.outcome("plan", None, EXIT_BLOCKED, plan)
        self.log("nothing done; run again with --yes to proceed")
        return self.outcome("plan", None, 0, plan)

    def quarantine_hint(self) -> str:
        return ", ".join(str(Quarantine(s, d, self.o.quarantine_root).dir) for s, d in self.dirs.items())

    @staticmethod
    def busy(pre: dict) -> list[str]:
        """Mapped volumes and held locks, one line per node or kind: what --yes refuses without --force."""
        busy = []
        for node, vols in pre["mapped"].items():
            busy.append(f"{node}: {len(vols)} volume(s) mapped ({', '.join(vols[:5])})")
        if pre["held_locks"]:
            busy.append(f"{len(pre['held_locks'])} lock(s) held: " + ", ".join(pre["held_locks"][:5]))
        return busy

    def refuse_if_busy(self, pre: dict) -> None:
        busy = self.busy(pre)
        if not busy:
            return
        for b in busy:
            self.log(f"  busy: {b}")
        if self.o.force:
            self.log("  --force: going on; mapped volumes freeze on disk I/O while Archipelago is stopped")
            return
        self.log(DRAIN)
        raise Refused("the cluster is not idle (listed above): drain the nodes, or --force to stop with -f")
