"""The finalize flow against stand-in Archipelago nodes: plan, refusals, the whole run, crashes at every step."""

from __future__ import annotations

import configparser
import json
import os
import random
import shutil
import signal
from pathlib import Path

import pytest

from standins.harness import make_cluster, tree_hashes
from verify.core import formats as F
from verify.core import layout
from verify.ops.finalize.flow import STEPS, FixContext, Finalizer, Options, default_fixer
from verify.ops.nodes import Runner
from verify.ops.pins import Quarantine
from verify.ops.sample import AT_RISK_NAMES, FiledStoreWriter, pithos_hash, write_sample
from verify.core.errors import Refused

MIGRATION_KINDS = {"object_unmigrated", "object_leftover", "object_conflict", "object_at_risk", "map_v1"}


class Crash(BaseException):
    """What a kill looks like from inside: nothing after it runs."""


# ---- stores ---------------------------------------------------------------------------------


def clean_store(root: Path, misplaced: bool = True) -> dict:
    """Only what finalize can fix: unmigrated, leftover, (misplaced), at risk, a v1 map; healthy otherwise."""
    rng = random.Random(7)
    maps, blocks = FiledStoreWriter(root / "maps"), FiledStoreWriter(root / "blocks")

    def block(where="v04"):
        data = rng.randbytes(4096)
        name = pithos_hash(data)
        blocks.put(name, data, where)
        return name

    for v in range(3):
        entries = [F.Entry(block(), 0), F.Entry(F.ZERO_HASH, F.OF_ZERO)]
        nm = "archip_" + rng.randbytes(32).hex()
        blocks.put(nm, rng.randbytes(4096))
        entries.append(F.Entry(nm, F.OF_ARCHIP))
        maps.put_v2(f"vol-{v:03d}", 3 * F.BLOCK_SIZE_4M, entries)
    info = {"unmigrated": [block("pithos") for _ in range(3)], "at_risk": list(AT_RISK_NAMES)}
    lo = block("pithos")
    blocks.link(lo, "pithos", "v04")
    info["leftover"] = [lo]
    for name in AT_RISK_NAMES:
        blocks.put(name, rng.randbytes(4096), "pithos")
    if misplaced:
        nm = "archip_" + rng.randbytes(32).hex()
        blocks.put(nm, rng.randbytes(4096), "v03")
        info["misplaced"] = [nm]
    digest = rng.randbytes(32).hex()
    blocks.put("archip_" + digest, rng.randbytes(4096))
    v1 = [(0, info["unmigrated"][0]), (1, digest), (0, F.ZERO_HASH)]
    maps.put("archip_legacy-vol", F.write_v1(3 * F.BLOCK_SIZE_4M, v1))
    info["v1"] = ["legacy-vol"]
    return info


def blocks_content(store: Path) -> dict[str, str]:
    """Every data object's content hash, wherever it is (store or quarantine)."""
    out = tree_hashes(store / "blocks")
    q = store / ".archverify-quarantine" / "blocks"
    if q.exists():
        for k, v in tree_hashes(q).items():
            out.setdefault(k, v)
    return out


def object_file(store: Path, name: str) -> Path:
    return store / "blocks" / os.fsdecode(layout.v04_path(name.encode()))


def archipelago_reads(path: Path) -> dict[str, bool]:
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.read(path)
    return {s: cp.getboolean(s, "pithos_migrate", fallback=False) for s in ("blockerb", "blockerm")}


def hex_names(d: Path) -> list[str]:
    return sorted({f for _, _, files in os.walk(d) for f in files if layout.is_hex64(os.fsencode(f))})


def access_everything(c, store: Path, node: str = "n1") -> dict[str, str]:
    """What running VMs and Pithos do: read every object (filed migrates them) and open every volume.

    Returns the objects that failed, with filed's error (EIO, ENOENT).
    """
    r = c.standin(node, "archipelago-standin", "access", *hex_names(store / "blocks"), check=False)
    failed = dict(line.split(": ", 1) for line in r.stderr.splitlines() if ": " in line)
    c.standin(node, "archipelago-standin", "access", "--maps", *hex_names(store / "maps"), check=False)
    for _, _, files in os.walk(store / "maps"):
        for f in files:
            if f.startswith("archip_") and F.is_valid_volume_name(f[7:]) and not f.endswith("_lock"):
                c.standin(node, "vlmc", "open", f[7:], check=False)
                c.standin(node, "vlmc", "close", f[7:], check=False)
    return failed


@pytest.fixture
def running(tmp_path, monkeypatch):
    """A filed store (made by the test) and two started nodes; returns a factory."""

    def make(store_fn):
        store = tmp_path / "store"
        info = store_fn(store)
        c = make_cluster(tmp_path, store / "blocks", store / "maps", monkeypatch=monkeypatch)
        for n in c.nodes:
            c.standin(n, "archipelago", "start")
        return store, info, c

    return make


def options(c, tmp_path, log, **kw) -> Options:
    return Options(c.config, c.nodes, Runner(c.template), tmp_path / "state", log=log.append, **kw)


def starts(c) -> dict[str, list[bool]]:
    """pithos_migrate of [blockerb] at every start, per node, from the stand-ins' record."""
    out: dict[str, list[bool]] = {}
    for e in c.events("start"):
        if e.get("injected"):
            continue
        out.setdefault(e["node"], []).append(e["pithos_migrate"]["blockerb"])
    return out


def journal_steps(tmp_path) -> list[str]:
    lines = (tmp_path / "state" / "finalize.journal").read_text().splitlines()
    return [json.loads(ln)["step"] for ln in lines]


# ---- tests ------------------------------------------------------------------------------------


def test_plan_changes_nothing(tmp_path, running):
    store, info, c = running(clean_store)
    before = {n: c.conf(n).read_text() for n in c.nodes}
    r = c.archverify("finalize", *c.nodes_arg(), "--state-dir", str(tmp_path / "state"))
    assert r.returncode == 0, r.stderr
    assert {n: c.conf(n).read_text() for n in c.nodes} == before
    assert c.events("stop") == []
    assert not (tmp_path / "state" / "finalize.journal").exists()
    assert not (store / ".archverify-quarantine").exists()


def test_refuses_when_busy_then_force(tmp_path, running):
    store, info, c = running(lambda s: clean_store(s, misplaced=False))
    c.standin("n2", "vlmc", "map", "vol-001")
    before = {n: c.conf(n).read_text() for n in c.nodes}
    args = [*c.nodes_arg(), "--state-dir", str(tmp_path / "state"), "--yes"]
    r = c.archverify("finalize", *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert {n: c.conf(n).read_text() for n in c.nodes} == before and c.events("stop") == []
    # a held lock refuses too
    c.standin("n2", "vlmc", "unmap", "vol-001")
    c.standin("n1", "vlmc", "open", "vol-000")
    assert c.archverify("finalize", *args).returncode == 2
    assert c.events("stop") == []
    c.standin("n1", "vlmc", "close", "vol-000")
    c.standin("n2", "vlmc", "map", "vol-001")
    r = c.archverify("finalize", *args, "--force")
    assert r.returncode == 1, r.stdout + r.stderr  # object_misplaced-free store, but unmigrated objects left
    # without fixes or accesses, old paths remain: pithos_migrate stays on, pins are kept
    assert all(archipelago_reads(c.conf(n)) == {"blockerb": True, "blockerm": True} for n in c.nodes)
    assert {e["node"] for e in c.events("stop") if e["force"]} == {"n1", "n2"}
    assert len(list((store / ".archverify-quarantine" / "blocks").iterdir())) == len(AT_RISK_NAMES)


def test_sample_store_without_fix(tmp_path, running):
    """write_sample's store: accesses migrate what filed can; a conflict holds the flow until resolved."""
    store, _, c = running(lambda s: write_sample(s))
    sample_lock = next((store / "maps").rglob("vol-000_lock"))
    sample_lock.unlink()  # the sample's stale lock; a held one refuses (test above)
    at_risk = {n: h for n, h in blocks_content(store).items() if n == AT_RISK_NAMES[0]}
    before = blocks_content(store)
    seen = {}

    def hook(step):
        if step == "start":
            seen["failed"] = access_everything(c, store)
            seen["gone"] = not object_file(store, AT_RISK_NAMES[0]).exists()

    log: list[str] = []
    out = Finalizer(options(c, tmp_path, log, after_step=hook)).run(yes=True)
    assert seen["gone"]  # filed with pithos_migrate on unlinked the at-risk object: the pin holds it
    assert out.state == "waiting" and out.exit_code >= 1
    # pithos_migrate is still on: the at-risk object is reported (and pinned); the conflict holds the flow
    assert {f.kind for f in out.summary.findings} & MIGRATION_KINDS == {"object_conflict", "object_at_risk"}
    conflict = next(f for f in out.summary.findings if f.kind == "object_conflict")
    assert seen["failed"][conflict.name].startswith("EIO")
    assert object_file(store, AT_RISK_NAMES[0]).exists()  # restored already
    # the operator resolves the conflict: the v0.4 copy is the truncated one
    object_file(store, conflict.name).unlink()
    c.standin("n1", "archipelago-standin", "access", conflict.name)
    log.clear()
    out = Finalizer(options(c, tmp_path, log)).run(yes=True)
    assert any(line.startswith("resuming") for line in log)
    assert out.state == "finished"
    kinds = {f.kind for f in out.summary.findings}
    assert not kinds & MIGRATION_KINDS
    assert out.exit_code == out.summary.exit_code
    for n in c.nodes:
        assert archipelago_reads(c.conf(n)) == {"blockerb": False, "blockerm": False}
    assert starts(c) == {"n1": [False, True, False], "n2": [False, True, False]}
    after = blocks_content(store)
    assert {n: after.get(n) for n in at_risk} == at_risk
    lost = {n for n in before if n not in after or (after[n] != before[n] and n != conflict.name)}
    assert lost == set()
    assert not (store / ".archverify-quarantine").exists()
    assert journal_steps(tmp_path)[-1] == "finished"


def vlmc_upgrade_fixer(ctx: FixContext) -> list[dict]:
    """A fix step through the running Archipelago, as the old tool upgraded v1 maps: vlmc open + close."""
    ops = []
    for _, _, files in os.walk(ctx.dirs["maps"]):
        for f in files:
            if f.startswith("archip_") and not f.endswith("_lock") and F.is_valid_volume_name(f[7:]):
                ctx.runner.check(ctx.nodes[0], ["vlmc", "open", f[7:]])
                ctx.runner.check(ctx.nodes[0], ["vlmc", "close", f[7:]])
                ops.append({"op": "upgrade", "name": f[7:]})
    return ops


@pytest.mark.parametrize("fixes", ["vlmc", "real"])
def test_crash_after_every_step_then_resume(tmp_path, running, fixes):
    """Killed after every step in turn (the journal is all that survives), then run to the end."""
    if fixes == "real":  # migrate-objects and upgrade-maps: also the misplaced object gets fixed
        pytest.importorskip("verify.ops.fixes.migrate")
        fixer = default_fixer
    else:
        fixer = vlmc_upgrade_fixer
    store, info, c = running(lambda s: clean_store(s, misplaced=fixes == "real"))
    before = blocks_content(store)
    crashed: list[str] = []

    def hook_for(crash_at):
        def hook(step):
            if step == "start" and fixes == "vlmc":
                access_everything(c, store)
            elif step == "start":  # filed unlinks the objects at risk; the fixes do the rest
                c.standin("n1", "archipelago-standin", "access", *info["at_risk"], check=False)
            if step == crash_at:
                raise Crash(step)
        return hook

    for step in STEPS:
        log: list[str] = []
        opts = options(c, tmp_path, log, fix=True, fixer=fixer, after_step=hook_for(step))
        with pytest.raises(Crash):
            Finalizer(opts).run(yes=True)
        crashed.append(step)
        if len(crashed) > 1:
            assert any(line.startswith("resuming") for line in log)
        now = blocks_content(store)
        assert {n: now.get(n) for n in before} == before, f"lost data after a crash at {step}"
    log = []
    out = Finalizer(options(c, tmp_path, log, fix=True, fixer=fixer)).run(yes=True)
    assert out.state == "finished"
    assert out.summary.findings == [] and out.exit_code == 0
    assert crashed == list(STEPS)
    steps = journal_steps(tmp_path)
    assert [s for s in steps if s in STEPS][: len(STEPS)] == list(STEPS)
    assert steps[-1] == "finished"
    for n in c.nodes:
        assert archipelago_reads(c.conf(n)) == {"blockerb": False, "blockerm": False}
    assert starts(c) == {"n1": [False, True, False], "n2": [False, True, False]}
    for name in info["at_risk"]:
        assert object_file(store, name).exists()
    assert blocks_content(store) == {**before, **{n: h for n, h in blocks_content(store).items() if n not in before}}


def test_crash_in_the_middle_of_pinning(tmp_path, running, monkeypatch):
    store, info, c = running(lambda s: clean_store(s, misplaced=False))
    real_pin = Quarantine.pin
    calls = []

    def pin_then_die(self, name):
        calls.append(name)
        if len(calls) == 2:
            raise Crash("pin")
        return real_pin(self, name)

    monkeypatch.setattr(Quarantine, "pin", pin_then_die)
    with pytest.raises(Crash):
        Finalizer(options(c, tmp_path, [])).run(yes=True)
    assert len(list((store / ".archverify-quarantine" / "blocks").iterdir())) == 1
    monkeypatch.setattr(Quarantine, "pin", real_pin)
    stop_at = {"s": "enable"}

    def hook(step):
        if step == stop_at["s"]:
            raise Crash(step)

    with pytest.raises(Crash):
        Finalizer(options(c, tmp_path, [], after_step=hook)).run(yes=True)
    assert sorted(p.name for p in (store / ".archverify-quarantine" / "blocks").iterdir()) == sorted(info["at_risk"])
    q = Quarantine("blocks", str(store / "blocks"))
    for name in info["at_risk"]:
        assert os.path.samefile(q.pin_path(name), object_file(store, name))


def test_killed_and_failed_nodes_resume(tmp_path, running):
    """A real SIGKILL of archverify in the middle of a phase, and a node whose stop fails."""
    store, info, c = running(lambda s: clean_store(s, misplaced=False))
    before = blocks_content(store)
    args = [*c.nodes_arg(), "--state-dir", str(tmp_path / "state"), "--yes"]
    c.standin("n1", "archipelago-standin", "fail", "n2", "start", "--kill")
    r = c.archverify("finalize", *args)
    assert r.returncode == -signal.SIGKILL
    st = c.state()["nodes"]
    assert st["n1"]["running"] and not st["n2"]["running"]
    assert object_file(store, info["at_risk"][0]).exists()
    # n2 refuses its second stop (when pithos_migrate goes off again): finalize stops with a table
    c.standin("n1", "archipelago-standin", "fail", "n2", "stop")
    r = c.archverify("finalize", *args)
    assert "resuming" in r.stdout
    assert r.returncode == 1  # the unmigrated objects nobody accessed wait at their old paths
    access_everything(c, store)
    for name in info["at_risk"]:
        assert not object_file(store, name).exists()  # filed unlinked them all
    r = c.archverify("finalize", *args)
    assert r.returncode == 2 and "n2" in r.stderr and "Traceback" not in r.stderr
    st = c.state()["nodes"]
    assert not st["n1"]["running"] and st["n2"]["running"]
    r = c.archverify("finalize", *args)
    assert r.returncode == 0, r.stdout + r.stderr  # accesses migrated every object, the vlmc open the v1 map
    assert "finalize finished" in r.stdout
    after = blocks_content(store)
    assert {n: after.get(n) for n in before} == before
    for n in c.nodes:
        assert archipelago_reads(c.conf(n)) == {"blockerb": False, "blockerm": False}
    assert starts(c)["n1"] == [False, True, False] and starts(c)["n2"] == [False, True, False]


def test_finalize_fix_done_when(tmp_path, running):
    """The whole job with the real fixes: unmigrated, leftover, misplaced, at-risk objects and a v1 map."""
    pytest.importorskip("verify.ops.fixes.migrate")
    pytest.importorskip("verify.ops.fixes.upgrade")
    store, info, c = running(clean_store)
    before = blocks_content(store)
    backups, logs = tmp_path / "backups", tmp_path / "logs"
    r = c.archverify("finalize", *c.nodes_arg(), "--state-dir", str(tmp_path / "state"), "--yes", "--fix",
                     "--backup-dir", str(backups), "--logdir", str(logs))
    assert r.returncode == 0, r.stdout + r.stderr
    # the upgrade step wrote where finalize was told, not into the state dir
    assert info["v1"][0] in (logs / "upgraded.log").read_text()
    assert any(backups.rglob("*")) and not (tmp_path / "state" / "map-backups").exists()
    for n in c.nodes:
        assert archipelago_reads(c.conf(n)) == {"blockerb": False, "blockerm": False}
    assert starts(c) == {"n1": [False, True, False], "n2": [False, True, False]}
    after = blocks_content(store)
    assert {n: after.get(n) for n in before} == before
    for name in info["at_risk"]:
        assert object_file(store, name).exists()
    assert journal_steps(tmp_path)[-1] == "finished"
    scan = c.archverify("scan", "--config", str(c.conf("n1")), "--format", "json")
    assert scan.returncode == 0 and json.loads(scan.stdout)["findings"] == []


# ---- pins ---------------------------------------------------------------------------------------


def test_pins(tmp_path):
    store = tmp_path / "store"
    w = FiledStoreWriter(store / "blocks")
    name = AT_RISK_NAMES[1]
    p = w.put(name, b"precious", "pithos")
    q = Quarantine("blocks", str(store / "blocks"))
    q.validate()
    assert q.pin(name).action == "pinned"
    assert q.pin(name).action == "kept"
    assert q.restore(name).action == "intact"
    p.unlink()  # what filed with pithos_migrate on does on first access
    assert q.pin(name).action == "kept"
    assert q.restore(name).action == "restored" and p.read_bytes() == b"precious"
    p.unlink()
    p.write_bytes(b"different")
    assert q.release(name).action == "conflict" and q.pin_path(name).exists()
    p.unlink()
    assert q.release(name).action == "released" and p.read_bytes() == b"precious"
    assert q.pinned() == []
    with pytest.raises(ValueError):
        q.pin_path("../x")
    assert Quarantine("blocks", str(store / "blocks"), store / "nope").pin("0" * 64).action == "lost"


def test_quarantine_must_be_outside_tree_and_same_fs(tmp_path):
    (tmp_path / "blocks" / "ab").mkdir(parents=True)
    with pytest.raises(Refused):
        Quarantine("blocks", str(tmp_path / "blocks"), tmp_path / "blocks" / "ab").validate()
    Quarantine("blocks", str(tmp_path / "blocks"), tmp_path / "blocks" / ".q").validate()  # outside d1/d2/d3
    shm = Path("/dev/shm")
    if shm.is_dir() and os.stat(shm).st_dev != os.stat(tmp_path).st_dev:
        d = shm / f"archverify-test-{os.getpid()}"
        try:
            with pytest.raises(Refused):
                Quarantine("blocks", str(tmp_path / "blocks"), d).validate()
        finally:
            shutil.rmtree(d, ignore_errors=True)


# ---- the journal ------------------------------------------------------------------------------


def test_journal_torn_line_lock_and_mismatch(tmp_path, running):
    from verify.core.errors import ArchverifyError, LockedError, UsageError
    from verify.ops.finalize.flow import Journal

    j = Journal(tmp_path / "state")
    j.lock()
    j.append("begin", params={"nodes": ["n1"], "config": "x"})
    j.append("preflight")
    with open(j.path, "a") as fh:
        fh.write('{"step": "pi')  # a crash in the middle of a write
    other = Journal(tmp_path / "state")
    with pytest.raises(LockedError):
        other.lock()
    j.unlock()
    assert [r["step"] for r in other.load()] == ["begin", "preflight"] and not other.done("pin")
    lines = j.path.read_text().splitlines()
    j.path.write_text("\n".join([lines[0], "garbage", lines[1]]) + "\n")
    with pytest.raises(ArchverifyError) as bad:
        other.load()  # a damaged line in the middle: an error naming the file and line, exit 2
    assert bad.value.exit_code == 2 and not isinstance(bad.value, LockedError)
    # a journal of another cluster is not continued with different nodes
    store, info, c = running(lambda s: clean_store(s, misplaced=False))
    j.path.write_text(lines[0] + "\n")
    with pytest.raises(UsageError):
        Finalizer(options(c, tmp_path, [])).run(yes=True)
    assert c.events("stop") == []
