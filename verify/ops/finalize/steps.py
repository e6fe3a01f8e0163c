"""finalize's steps between the preflight and the last scan: pins, the scans, the fixes, the
map upgrade of stores without paths, and the release of the pins.

Each ``run_*`` method is one journaled step of :class:`verify.ops.finalize.flow.Finalizer`; the
restarts and config edits between them are :mod:`verify.ops.finalize.services`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from verify.config import archipelago as config_mod
from verify import durable
from .. import scan as scan_mod
from verify.core.errors import Refused, UsageError
from .plan import OLD_PATH_KINDS, Outcome
from ..nodes import Runner
from ..pins import PinResult, Quarantine
from verify.core.summary import Summary


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
    """migrate-objects on the stores at paths, then upgrade-maps (through vlmc: Archipelago runs),
    journaled in the state dir.

    vlmc runs on this machine, which is one of the nodes: finalize is run from one.
    """
    try:
        from ..fixes.migrate import migrate_objects
        from ..fixes.upgrade import upgrade_maps
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


def _kinds(s: Summary, only=None) -> str:
    pk = s.per_kind
    items = [(k, n) for k, n in sorted(pk.items()) if only is None or k in only]
    return ", ".join(f"{k} {n}" for k, n in items) or "none"


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


class Steps:
    """The journaled steps of :class:`verify.ops.finalize.flow.Finalizer` (needs ``o``, ``log``, ``step``,
    ``journal``, ``backend``, ``dirs``)."""

    # -- the pins: hard links of the objects at risk, in each store's quarantine dir
    def quarantine(self, store: str) -> Quarantine:
        if store not in self.quarantines:
            q = Quarantine(store, self.dirs[store], self.o.quarantine_root)
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
        for store in self.dirs:
            q = self.quarantine(store)
            out += [(q, n) for n in q.pinned()]
        return out

    def writing(self):
        """The store locks, held while finalize itself writes into the stores (restoring pins);
        the fixes take them on their own."""
        return durable.store_locks(self.dirs.values(), "finalize")

    def restore_all(self) -> list[PinResult]:
        with self.writing():
            results = [q.restore(n) for q, n in self.all_pins()]
        for r in results:
            if r.action == "restored":
                self.log(f"  restored {r.store}:{r.name} (filed had removed it)")
            elif r.action in ("lost", "conflict"):
                self.log(f"  WARNING {r.store}:{r.name}: {r.detail}")
        return results

    def scan(self, pithos_migrate_on: bool) -> Summary:
        return scan_mod.scan(self.backend(pithos_migrate_on), self.o.jobs, progress=False)

    def backup_dir(self) -> Path:
        return self.o.backup_dir or self.journal.dir / "map-backups"

    def logdir(self) -> Path:
        return self.o.logdir or self.journal.dir / "upgrade-logs"

    def log_failures(self, counts: dict, logdir: Path) -> None:
        """Failed and invalid map upgrades: how many, and the log file that lists each with its reason."""
        for which in ("failed", "invalid"):
            if counts.get(which):
                self.log(f"  {counts[which]} map upgrade(s) {which}: each listed with its reason in "
                         f"{Path(logdir) / f'{which}.log'}")

    # -- the steps
    def run_preflight(self) -> None:
        pre = self.preflight()
        self.refuse_if_busy(pre)
        at_risk = {"at_risk": pre["at_risk"]} if self.dirs else {}  # a pool has no objects at risk
        self.step("preflight", mapped=pre["mapped"], held_locks=pre["held_locks"], **at_risk)

    def run_pin(self) -> None:
        self.log("pinning objects at risk")
        pins = self.pin_at_risk(self.scan(pithos_migrate_on=True))
        self.log(f"  {len(pins)} object(s) pinned")
        self.step("pin", pinned=[f"{p.store}:{p.name}" for p in pins])

    def run_scan(self) -> None:
        s = self.scan(pithos_migrate_on=True)
        self.pin_at_risk(s)
        self.log(f"scan: {len(s.findings)} finding(s): " + _kinds(s))
        self.step("scan", findings=dict(s.per_kind))

    def run_fix(self) -> None:
        self.log("fixing: migrate-objects, upgrade-maps")
        j = self.journal
        ctx = FixContext(dict(self.dirs), j.dir / "fixes", self.logdir(), self.backup_dir(),
                         self.o.runner, self.o.node_list, self.o.jobs, self.cluster.direct,
                         self.backend() if "maps" in self.pools else None, self.o.vlmc,
                         self.o.pithos_sizes() if self.o.pithos_sizes else None)
        for d in (ctx.journal_dir / "migrate", ctx.journal_dir / "upgrade", ctx.logdir, ctx.backup_dir):
            d.mkdir(parents=True, exist_ok=True)
        ops = self.o.fixer(ctx)
        counts: dict[str, int] = {}
        for op in ops:
            counts[str(op.get("status", "done"))] = counts.get(str(op.get("status", "done")), 0) + 1
        self.log(f"  {len(ops)} fix operation(s): " + (_counts(counts) or "nothing to do"))
        self.log_failures(counts, ctx.logdir)
        self.step("fix", operations=counts)

    def run_settle(self) -> Outcome | None:
        """Go on only when nothing is left at an old Pithos path; else stop here, waiting."""
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
            return self.outcome("waiting", s, max(s.exit_code, 1))
        self.step("settle")
        return None

    def run_restore(self) -> None:
        res = self.restore_all()
        bad = [r for r in res if r.action in ("lost", "conflict")]
        if bad:
            raise Refused(f"{len(bad)} pinned object(s) could not be put back (listed above); pins kept in "
                          f"{self.quarantine_hint()}")
        self.step("restore", restored=sum(r.action == "restored" for r in res))

    def run_release(self) -> None:
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

    def run_upgrade(self) -> None:
        """upgrade-maps on stores without paths: online while Archipelago runs, offline when stopped."""
        from ..fixes.upgrade import upgrade_maps

        mode = self.upgrade_mode()
        self.log(f"upgrade-maps ({mode}) on pool {self.cluster.places['maps'].get('pool')}")
        res = upgrade_maps(self.backend(), apply=True, backup_dir=str(self.backup_dir()), logdir=str(self.logdir()),
                           pithos_sizes=self.o.pithos_sizes() if self.o.pithos_sizes else None, mode=mode,
                           vlmc=self.o.vlmc, jobs=min(4, self.o.jobs),
                           journal_dir=str(self.journal.dir / "fixes" / "upgrade"))
        counts = res["counts"]
        self.log("  " + (_counts(counts) or "nothing to upgrade"))
        if res["exit_code"]:
            for r in res["results"]:
                if r["status"] != "upgraded":
                    self.log(f"  {r['status']} {r['target']}: {r['detail']}")
            self.log_failures(counts, self.logdir())
        self.step("upgrade", mode=mode, counts=counts)

    def run_final(self) -> Outcome:
        """The last scan (stores all at paths), or scan and check (a store in a pool): its exit code is finalize's."""
        from ..check import check as check_op

        durable.check_stop()
        be = self.backend(pithos_migrate_on=False)
        s = check_op(be, self.o.jobs, progress=False) if self.pools else scan_mod.scan(be, self.o.jobs, progress=False)
        self.step("final", findings=dict(s.per_kind), exit_code=s.exit_code)
        self.journal.append("finished")
        if self.dirs:
            self.log("pithos_migrate is off again on every node and the pins are released; undrain the nodes:")
            self.log("    gnt-node modify --drained=False NODE   (or snf-manage backend-modify --drained=False BACKEND_ID)")
        return self.outcome("finished", s, s.exit_code)
