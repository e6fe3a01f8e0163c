"""finalize on a mixed config (filed blocks, RADOS maps), against stand-in nodes and the real test Ceph.

The filed steps run for the filed blocks store (pins, restarts, pithos_migrate in
[blockerb] alone, migrate-objects), --fix upgrades the v1 maps in the pool through
vlmc, and the final step is a scan and check of both stores.
"""

from __future__ import annotations

import json
import random
import sys
import uuid
from pathlib import Path

import pytest

from standins.harness import make_cluster
from test_finalize import Crash, archipelago_reads, blocks_content, journal_steps, object_file, starts
from verify.core import formats as F
from verify.backends.rados.backend import RadosBackend
from verify.ops.finalize.flow import MIXED_NOTE, STEPS, Finalizer, Options
from verify.ops.nodes import Runner
from verify.ops.sample import AT_RISK_NAMES, FiledStoreWriter, pithos_hash

STANDINS = Path(__file__).parents[1] / "standins"
VLMC = (sys.executable, str(STANDINS / "vlmc_rados"))


@pytest.fixture
def mixed(ceph_cluster, tmp_path, monkeypatch):
    return make_mixed(ceph_cluster, tmp_path, monkeypatch)


def make_mixed(ceph_cluster, tmp_path, monkeypatch):
    """Blocks in a dir: healthy, unmigrated, a leftover and the objects at risk; maps in a namespace of
    the config's pool: three v2 volumes and a v1 one; two started nodes reading archipelago-mixed.conf."""
    ceph_cluster.ensure_pools("maps")
    maps = RadosBackend("maps", None, str(ceph_cluster.conf), None, str(ceph_cluster.keyring),
                        namespace=f"mix-{uuid.uuid4().hex[:10]}")
    rng = random.Random(11)
    blocks = FiledStoreWriter(tmp_path / "blocks")

    def block(where="v04") -> str:
        data = rng.randbytes(4096)
        blocks.put(pithos_hash(data), data, where)
        return pithos_hash(data)

    unmigrated = [block("pithos") for _ in range(3)]
    for v in range(3):
        entries = [F.Entry(block(), 0), F.Entry(unmigrated[v], 0), F.Entry(F.ZERO_HASH, F.OF_ZERO)]
        header, md = F.write_v2(3 * F.BLOCK_SIZE_4M, entries, name=f"vol-{v:03d}")
        maps.write("maps", f"vol-{v:03d}".encode(), header)
        for k, d in md.items():
            maps.write("maps", k.encode(), d)
    maps.write("maps", b"vol-000_lock", b"")  # radosd's leftover after an unlock: not held
    leftover = block("pithos")
    blocks.link(leftover, "pithos", "v04")
    for name in AT_RISK_NAMES:
        blocks.put(name, rng.randbytes(4096), "pithos")
    digest = rng.randbytes(32).hex()
    blocks.put("archip_" + digest, rng.randbytes(4096))
    maps.write("maps", b"archip_legacy-vol", F.write_v1(2 * F.BLOCK_SIZE_4M, [(1, digest), (0, block())]))
    for k, v in {"VLMC_RADOS_POOL": "maps", "VLMC_RADOS_CONF": maps.ceph_conf, "VLMC_RADOS_KEYRING": maps.keyring,
                 "VLMC_RADOS_NAMESPACE": maps.namespace}.items():
        monkeypatch.setenv(k, v)
    c = make_cluster(tmp_path, tmp_path / "blocks", "unused", variant="mixed", monkeypatch=monkeypatch)
    for n in c.nodes:
        c.standin(n, "archipelago", "start")
    return maps, c, tmp_path / "blocks"


def options(maps, c, tmp_path, log, **kw) -> Options:
    rados = {"ceph_conf": maps.ceph_conf, "keyring": maps.keyring, "namespace": maps.namespace}
    return Options(c.config, c.nodes, Runner(c.template), tmp_path / "state", log=log.append, rados=rados,
                   vlmc=VLMC, **kw)


def maps_section(path: Path) -> str:
    text = path.read_text()
    return text[text.index("[blockerm]"):text.index("[mapperd]")]


def assert_finished(maps, c, tmp_path, store, before, out):
    assert out.state == "finished", out
    assert out.exit_code == 0 and {f.kind for f in out.summary.findings} <= {"object_orphan"}
    assert out.summary.counters["check.stage.references"] == 1  # the final step checked both stores
    steps = journal_steps(tmp_path)
    assert [s for s in steps if s in STEPS] == [s for s in STEPS] and steps[-1] == "finished"
    for n in c.nodes:
        assert archipelago_reads(c.conf(n)) == {"blockerb": False, "blockerm": False}
        assert "pithos_migrate" not in maps_section(c.conf(n))  # the RADOS section was never edited
    assert starts(c) == {"n1": [False, True, False], "n2": [False, True, False]}
    after = blocks_content(store.parent)
    assert {n: after.get(n) for n in before} == before  # nothing lost, nothing altered
    for name in AT_RISK_NAMES:
        assert object_file(store.parent, name).exists()
    assert F.parse_v2_header(maps.read("maps", b"legacy-vol")).epoch == 1
    assert maps.read("maps", b"archip_legacy-vol") is None


def test_plan_then_fix_run_ends_clean(mixed, tmp_path):
    maps, c, store = mixed
    before = blocks_content(store.parent)
    log: list[str] = []
    out = Finalizer(options(maps, c, tmp_path, log, fix=True)).run(yes=False)
    assert out.state == "plan"
    assert MIXED_NOTE.format(pools="The maps store (pool maps)", sections="blockerb") in log
    assert any("pithos_migrate = True in [blockerb] of" in ln for ln in log)
    assert c.events("stop") == [] and maps.read("maps", b"archip_legacy-vol")[:4] == b"\x01\x00\x00\x00"
    log.clear()
    out = Finalizer(options(maps, c, tmp_path, log, fix=True)).run(yes=True)
    assert_finished(maps, c, tmp_path, store, before, out)
    fix = next(json.loads(ln) for ln in (tmp_path / "state" / "finalize.journal").read_text().splitlines()
               if json.loads(ln).get("step") == "fix")
    assert fix["operations"].get("upgraded") == 1  # the v1 map, online through vlmc


def test_crash_after_some_steps_then_resume(mixed, tmp_path):
    """Killed after the steps that write (config, fixes, restore), each in turn, then run to the end."""
    maps, c, store = mixed
    before = blocks_content(store.parent)
    for step in ("pin", "enable", "fix", "disable", "restore"):
        def crash(name, at=step):
            if name == at:
                raise Crash(name)

        log: list[str] = []
        with pytest.raises(Crash):
            Finalizer(options(maps, c, tmp_path, log, fix=True, after_step=crash)).run(yes=True)
        now = blocks_content(store.parent)
        assert {n: now.get(n) for n in before} == before, f"lost data after a crash at {step}"
    out = Finalizer(options(maps, c, tmp_path, [], fix=True)).run(yes=True)
    assert_finished(maps, c, tmp_path, store, before, out)


def test_cli_scan_check_and_plan_on_a_mixed_config(mixed, tmp_path):
    """archverify scan/check --config on the mixed file read the maps pool and the blocks dir into one
    report; the finalize plan writes nothing."""
    maps, c, store = mixed
    flags = ["--config", str(c.conf("n1")), "-c", maps.ceph_conf, "--keyring", maps.keyring,
             "--namespace", maps.namespace, "--format", "json", "--no-progress"]
    scan = c.archverify("scan", *flags)
    doc = json.loads(scan.stdout)
    assert scan.returncode == 1, scan.stderr  # unmigrated objects and a v1 map
    assert doc["stores"]["maps"]["type"] == "rados" and doc["stores"]["blocks"]["type"] == "filed"
    kinds = {(f["kind"], f["store"]) for f in doc["findings"]}
    assert {("object_unmigrated", "blocks"), ("map_v1", "maps"), ("object_leftover", "blocks")} <= kinds
    check = c.archverify("check", *flags)
    cdoc = json.loads(check.stdout)
    assert check.returncode == 1 and "Traceback" not in check.stderr
    assert not [f for f in cdoc["findings"] if f["kind"] == "object_missing"]  # unmigrated objects are still served
    pithos = c.archverify("pithos-check", *flags[:-3], "--db", "postgresql://pithos@127.0.0.1:9/pithos")
    assert pithos.returncode == 2 and len(pithos.stderr.strip().splitlines()) == 1  # no database there
    plan = c.archverify("finalize", *c.nodes_arg(), "-c", maps.ceph_conf, "--keyring", maps.keyring, "--namespace",
                        maps.namespace, "--state", str(tmp_path / "state"))
    assert plan.returncode == 0 and "Traceback" not in plan.stderr, plan.stderr
    assert "[blockerb] of archipelago.conf" in plan.stdout + plan.stderr
    assert not (tmp_path / "state" / "finalize.journal").exists() and c.events("stop") == []
    # the pieces by hand: each writer fixes the store it can, through the same config
    store_flags = flags[:-3]
    up = c.archverify("upgrade-maps", *store_flags, "--offline", "--yes", "--state", str(tmp_path / "up"),
                      "--backup-dir", str(tmp_path / "up-backups"))
    assert up.returncode == 0, up.stdout + up.stderr
    assert F.parse_v2_header(maps.read("maps", b"legacy-vol")).epoch == 1
    mig = c.archverify("migrate-objects", "--config", str(c.conf("n1")), "--yes", "--state", str(tmp_path / "mig"))
    assert mig.returncode == 0, mig.stdout + mig.stderr
    after = json.loads(c.archverify("check", *flags).stdout)
    assert {f["kind"] for f in after["findings"]} <= {"object_orphan", "object_at_risk"}
