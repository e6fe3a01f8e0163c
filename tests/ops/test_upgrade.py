"""upgrade-maps: hand-built expected bytes, the real v0.4 mapper's output, refusals, crashes, vlmc."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from crashpoints import fast_dir, run_crashing, tree
from verify.core import formats as F
from verify.core import layout
from verify.cli.main import cli
from verify.ops.fixes import upgrade as U
from verify.ops.fixes.upgrade import upgrade_maps
from verify.ops.sample import FiledStoreWriter, write_sample

GOLDEN = Path(__file__).parents[1] / "fixtures" / "golden_steps"
STANDINS = Path(__file__).parents[1] / "standins"
P = "cf3c2dba1fb61d4c13efe4e7c43165a39ff15f7350ef40593240e58887871ed5"  # v0, at its old Pithos path
Q = "65a3b1970fadbf71fcda00f622b4a9d1a530a96d3efcaf7c4d4dc5277941906f"  # v0, at its sha256 path
P_SIZE, Q_SIZE = 50331548, 5 * F.BLOCK_SIZE_4M  # P as Pithos knows it; Q opened without a size
ZERO = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def v04(name: str) -> str:
    return layout.v04_path(name.encode()).decode()


def unpack(tarball: str, dst: Path) -> Path:
    with tarfile.open(GOLDEN / tarball) as t:
        t.extractall(dst)  # our own fixture: plain files and dirs only
    return dst / "maps"


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# ---- hand-built bytes ----------------------------------------------------------------


def hand_header(size: int, flags: int, epoch: int) -> bytes:
    return b"AMF." + (2).to_bytes(4, "big") + size.to_bytes(8, "big") + (4194304).to_bytes(4, "big") \
        + flags.to_bytes(4, "big") + epoch.to_bytes(8, "big")


def hand_entry(flags: int, name: str) -> bytes:
    return bytes([flags]) + len(name).to_bytes(4, "little") + name.encode() + b"\0" * (123 - len(name))


def test_v1_upgrade_writes_the_mappers_bytes(tmp_path):
    maps = tmp_path / "maps"
    a, p = hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"p").hexdigest()
    size = 2 * 4194304 + 1  # three entries
    v1 = (1).to_bytes(4, "little") + size.to_bytes(8, "little") \
        + b"\x01" + bytes.fromhex(a) + b"\x00" + bytes.fromhex(p) + b"\x00" + bytes.fromhex(ZERO)
    FiledStoreWriter(maps).put("archip_vol-hand", v1)
    plan = U.plan_v1("archip_vol-hand", v1)
    assert [(s.op, s.obj) for s in plan.steps] == [
        ("write", "archip_vol-hand_0000000000000000"), ("write", "archip_vol-hand"),
        ("write", "vol-hand_0000000000000000"), ("write", "vol-hand"),
        ("write", "archip_vol-hand"), ("delete", "archip_vol-hand_0000000000000000"), ("delete", "archip_vol-hand")]
    assert plan.steps[1].data == hand_header(size, 0, 0)  # in place first: epoch 0
    assert plan.steps[4].data == hand_header(size, 2, 0)  # then flagged deleted
    s = upgrade_maps(str(maps), apply=True, backup_dir=str(tmp_path / "bk"), logdir=str(tmp_path / "logs"), direct=False)
    assert s["counts"] == {"upgraded": 1} and s["exit_code"] == 0
    got = files(maps)
    assert got == {
        v04("vol-hand"): hand_header(size, 0, 1),
        v04("vol-hand_0000000000000000"): hand_entry(3, "archip_" + a) + hand_entry(0, p) + hand_entry(4, ZERO),
    }
    assert (tmp_path / "bk" / "maps" / "archip_vol-hand").read_bytes() == v1
    assert (tmp_path / "logs" / "upgraded.log").read_text() == "Upgraded vol-hand\n"
    assert (tmp_path / "logs" / "failed.log").read_text() == ""


@pytest.mark.parametrize("direct", [False, True])
def test_v0_upgrade_moves_then_writes_a_readonly_header_over_32_bytes(tmp_path, direct):
    maps = FiledStoreWriter(tmp_path / "maps")
    d1, d2 = hashlib.sha256(b"1").hexdigest(), hashlib.sha256(b"2").hexdigest()
    v0 = bytes.fromhex(d1) + bytes.fromhex(ZERO) + bytes.fromhex(d2)
    name = hashlib.sha256(v0).hexdigest()
    maps.put(name, v0, "pithos")
    size = 3 * 4194304 - 100
    s = upgrade_maps(str(maps.root), apply=True, backup_dir=str(tmp_path / "bk"), logdir=None,
                     pithos_sizes={name: size}, direct=direct)
    assert s["counts"] == {"upgraded": 1}
    header = hand_header(size, 1, 0) + v0[32:]  # the object keeps its length and stale digests
    mapdata = hand_entry(0, d1) + hand_entry(4, ZERO) + hand_entry(0, d2)
    if direct:
        header, mapdata = header + bytes(512 - len(header)), mapdata + bytes(512 - len(mapdata))
    assert files(maps.root) == {v04(name): header, v04(name + "_0000000000000000"): mapdata}


# ---- the real v0.4 mapper's output ----------------------------------------------------


def test_offline_upgrade_equals_the_real_mapper(tmp_path):
    maps = unpack("before.maps.tar.gz", tmp_path / "mine")
    s = upgrade_maps(str(maps), apply=True, backup_dir=str(tmp_path / "bk"), logdir=None, direct=False,
                     pithos_sizes={P: P_SIZE, Q: Q_SIZE})
    assert s["counts"] == {"upgraded": 5}, s["results"]
    mine = files(maps)
    seen = set()
    for step, objs in [("02_open_alpha-vol1.maps.tar.gz", ["alpha-vol1", "alpha-vol1_0000000000000000"]),
                       ("07_open_v0_P_size_50331548.maps.tar.gz",
                        ["alpha-vol2", "alpha-vol2_0000000000000000", P, P + "_0000000000000000"]),
                       ("10_open_v0_Q_no_size.maps.tar.gz", [Q, Q + "_0000000000000000"])]:
        real = files(unpack(step, tmp_path / step))
        for obj in objs:
            assert mine[v04(obj)] == real[v04(obj)], (step, obj)
            seen.add(v04(obj))
        # what the mapper removed is gone here too (the purged archip_ map, P's old path)
        for gone in ("archip_alpha-vol1", "archip_alpha-vol2"):
            if v04(gone) not in real:
                assert v04(gone) not in mine
        assert layout.pithos_path(P.encode()).decode() not in mine
    # bravo-legacy was never opened in the golden run; ours is the only other thing written
    assert set(mine) - seen == {v04("bravo-legacy"), v04("bravo-legacy_0000000000000000")}


def test_offline_upgrade_with_direct_io_equals_the_real_mapper(tmp_path):
    maps = unpack("before.maps.tar.gz", tmp_path / "mine")
    upgrade_maps(str(maps), apply=True, backup_dir=str(tmp_path / "bk"), logdir=None, direct=True,
                 pithos_sizes={P: P_SIZE, Q: Q_SIZE})
    mine, real = files(maps), files(unpack("after-directio.maps.tar.gz", tmp_path / "real"))
    for obj in (P, P + "_0000000000000000", Q, Q + "_0000000000000000"):  # not written after their upgrade
        assert len(mine[v04(obj)]) % 512 == 0
        assert mine[v04(obj)] == real[v04(obj)], obj


# ---- what is refused, and never logged as upgraded -------------------------------------


def refusal_store(root: Path) -> FiledStoreWriter:
    maps = FiledStoreWriter(root)
    ok = [(0, ZERO)]
    maps.put("archip_shadowed-vol", F.write_v1(F.BLOCK_SIZE_4M, ok))
    maps.put_v2("shadowed-vol", F.BLOCK_SIZE_4M, [F.Entry(ZERO, F.OF_ZERO)])
    maps.put("archip_cut-short", F.write_v1(3 * F.BLOCK_SIZE_4M, ok * 3)[:50])
    maps.put("archip_vm", F.write_v1(F.BLOCK_SIZE_4M, ok))  # 'vm' is too short for filed
    maps.put("archip_fine-vol", F.write_v1(F.BLOCK_SIZE_4M, ok))
    maps.put(hashlib.sha256(b"v0").hexdigest(), bytes.fromhex(ZERO))  # v0, size unknown
    maps.put_v2("archip_vm2", F.BLOCK_SIZE_4M, [F.Entry(ZERO, F.OF_ZERO)], epoch=0)  # rename failed long ago
    return maps


def test_truncated_shadowed_short_and_sizeless_maps_are_failed_not_upgraded(tmp_path):
    maps = refusal_store(tmp_path / "maps")
    untouched = {k: v for k, v in files(maps.root).items() if "fine-vol" not in k}
    s = upgrade_maps(str(maps.root), apply=True, backup_dir=str(tmp_path / "bk"), logdir=str(tmp_path / "logs"))
    by = {r["name"]: r["status"] for r in s["results"]}
    assert by == {"archip_shadowed-vol": "failed", "archip_cut-short": "failed", "archip_vm": "failed",
                  "archip_fine-vol": "upgraded", hashlib.sha256(b"v0").hexdigest(): "failed",
                  "archip_vm2": "invalid"}
    assert s["exit_code"] == 1
    now = files(maps.root)
    assert {k: now[k] for k in untouched} == untouched
    logs = {n: (tmp_path / "logs" / f"{n}.log").read_text() for n in ("upgraded", "failed", "invalid")}
    assert logs["upgraded"] == "Upgraded fine-vol\n"
    failed = {line.split(":")[0] for line in logs["failed"].splitlines()}
    assert failed == {"Failed to upgrade shadowed-vol", "Failed to upgrade cut-short", "Failed to upgrade vm",
                      "Failed to upgrade " + hashlib.sha256(b"v0").hexdigest()}
    assert logs["invalid"] == "vm2 has invalid header object archip_vm2\n"


def test_incomplete_upgrades_are_purged_only_when_the_new_map_descends(tmp_path):
    s = write_sample(tmp_path / "sample")  # archip_vol-001: flagged deleted next to vol-001
    maps = FiledStoreWriter(s.maps_dir)
    ents = [F.Entry(hashlib.sha256(bytes([i])).hexdigest(), 0) for i in range(3)]
    # crashed between writing 'kept-vol' and starting the purge: same entries (one copied up since)
    maps.put_v2("archip_kept-vol", 3 * F.BLOCK_SIZE_4M, ents, epoch=0)
    maps.put_v2("kept-vol", 3 * F.BLOCK_SIZE_4M, ents[:2] + [F.Entry(F.copyup_name("kept-vol", 1, 2), 3)])
    # an unrelated volume happens to own the name: the old map is the only record of its data
    maps.put_v2("archip_other-vol", 3 * F.BLOCK_SIZE_4M, ents, epoch=0)
    maps.put_v2("other-vol", 3 * F.BLOCK_SIZE_4M, list(reversed(ents)))
    other = {k: v for k, v in files(maps.root).items() if "other-vol" in k}
    r = upgrade_maps(str(maps.root), apply=True, backup_dir=str(tmp_path / "bk"), logdir=None)
    by = {x["name"]: (x["status"], x["plan"]) for x in r["results"] if x["kind"] == "map_upgrade_incomplete"}
    assert by == {"archip_vol-001": ("upgraded", "purge"), "archip_kept-vol": ("upgraded", "purge"),
                  "archip_other-vol": ("failed", "")}
    for gone in ("archip_vol-001", "archip_vol-001_0000000000000000", "archip_kept-vol",
                 "archip_kept-vol_0000000000000000"):
        assert not (maps.root / v04(gone)).exists()
    assert {k: v for k, v in files(maps.root).items() if "other-vol" in k} == other
    assert (tmp_path / "bk" / "maps" / "archip_kept-vol_0000000000000000").exists()


def test_preview_writes_nothing(tmp_path):
    maps = unpack("before.maps.tar.gz", tmp_path)
    before = files(maps)
    s = upgrade_maps(str(maps), apply=False, backup_dir=str(tmp_path / "bk"), logdir=str(tmp_path / "logs"),
                     pithos_sizes={P: P_SIZE})
    assert files(maps) == before and not (tmp_path / "bk").exists() and not (tmp_path / "logs").exists()
    assert s["counts"] == {"planned": 4, "failed": 1} and s["exit_code"] == 1


# ---- crashes -------------------------------------------------------------------------


def test_crash_at_every_step_then_rerun_gives_the_same_maps(tmp_path):
    """Kill the run before its k-th write-side call, for every k, then rerun: the maps end up
    byte-identical to an uninterrupted run's, and the originals are in the backup dir."""
    with fast_dir() as scratch:
        pristine = Path(scratch) / "pristine"
        maps = FiledStoreWriter(pristine / "maps")
        a = hashlib.sha256(b"x").hexdigest()
        original_v1 = F.write_v1(2 * F.BLOCK_SIZE_4M, [(1, a), (0, ZERO)])
        maps.put("archip_crash-vol", original_v1)
        v0 = bytes.fromhex(a) + bytes.fromhex(ZERO)
        v0name = hashlib.sha256(v0).hexdigest()
        maps.put(v0name, v0, "pithos")
        maps.put_v2("archip_half-vol", F.BLOCK_SIZE_4M, [F.Entry(ZERO, F.OF_ZERO)], flags=F.MF_DELETED, epoch=0)
        maps.put_v2("half-vol", F.BLOCK_SIZE_4M, [F.Entry(ZERO, F.OF_ZERO)])
        sizes = {v0name: 2 * F.BLOCK_SIZE_4M - 7}

        def fresh(name):
            dst = Path(scratch) / name
            subprocess.run(["cp", "-a", str(pristine), str(dst)], check=True)
            return dst

        def run(dst, **kw):
            return upgrade_maps(str(dst / "maps"), apply=True, backup_dir=str(dst / "bk"), logdir=str(dst / "logs"),
                                pithos_sizes=sizes, jobs=1, direct=True, **kw)

        ref = fresh("ref")
        assert run(ref)["counts"] == {"upgraded": 3}
        reference = tree(ref / "maps")
        k = 0
        while True:
            k += 1
            dst = fresh(f"k{k}")
            crashed = run_crashing(lambda: run(dst), k, after=False)
            s = run(dst)
            assert s["exit_code"] == 0, (k, s["results"])
            assert tree(dst / "maps") == reference, k
            assert (dst / "bk" / "maps" / "archip_crash-vol").read_bytes() == original_v1 or k < 3
            subprocess.run(["rm", "-rf", str(dst)], check=True)
            if not crashed:
                break
        assert k > 40


# ---- online: through a stand-in vlmc ------------------------------------------------------


@pytest.fixture
def vlmc_env(tmp_path, monkeypatch):
    maps = unpack("before.maps.tar.gz", tmp_path / "online")
    monkeypatch.setenv("VLMC_FIXES_MAPS", str(maps))
    return maps


def test_online_mode_upgrades_through_vlmc_and_checks_the_result(tmp_path, vlmc_env, monkeypatch):
    monkeypatch.setenv("VLMC_FIXES_FAIL", "alpha-vol2")
    vlmc = (str(STANDINS / "vlmc_fixes"),)
    s = upgrade_maps(str(vlmc_env), apply=True, backup_dir=str(tmp_path / "bk"), logdir=str(tmp_path / "logs"),
                     mode="vlmc", vlmc=vlmc, jobs=3, pithos_sizes={Q: Q_SIZE})
    by = {r["target"]: r["status"] for r in s["results"]}
    assert by == {"alpha-vol1": "upgraded", "alpha-vol2": "failed", "bravo-legacy": "upgraded", Q: "upgraded",
                  P: "failed"}  # P: size unknown
    # the stand-in mapper and archverify's offline writer agree byte for byte
    offline = unpack("before.maps.tar.gz", tmp_path / "offline")
    upgrade_maps(str(offline), apply=True, backup_dir=str(tmp_path / "bk2"), logdir=None, direct=False,
                 pithos_sizes={Q: Q_SIZE})
    mine, theirs = files(offline), files(vlmc_env)
    for obj in ("alpha-vol1", "alpha-vol1_0000000000000000", "bravo-legacy", Q, Q + "_0000000000000000"):
        assert theirs[v04(obj)] == mine[v04(obj)], obj
    assert not any(k.endswith("_lock") for k in theirs)  # every open was closed
    assert "alpha-vol2" in (tmp_path / "logs" / "failed.log").read_text()
    assert (tmp_path / "bk" / "maps" / "archip_alpha-vol1").exists()


def test_online_success_without_an_upgrade_is_not_logged_upgraded(tmp_path, monkeypatch):
    maps = FiledStoreWriter(tmp_path / "maps")
    maps.put("archip_quiet-vol", F.write_v1(F.BLOCK_SIZE_4M, [(0, ZERO)]))
    monkeypatch.setenv("VLMC_FIXES_MAPS", str(maps.root))
    monkeypatch.setenv("VLMC_FIXES_NOOP", "1")
    s = upgrade_maps(str(maps.root), apply=True, backup_dir=str(tmp_path / "bk"), logdir=str(tmp_path / "logs"),
                     mode="vlmc", vlmc=(str(STANDINS / "vlmc_fixes"),))
    assert [(r["name"], r["status"]) for r in s["results"]] == [("archip_quiet-vol", "failed")]
    assert (tmp_path / "logs" / "upgraded.log").read_text() == ""
    assert "quiet-vol" in (tmp_path / "logs" / "failed.log").read_text()


# ---- the command -----------------------------------------------------------------------


def test_cli_preview_then_offline_apply(tmp_path):
    maps = unpack("before.maps.tar.gz", tmp_path)
    base = ["upgrade-maps", "--maps-dir", str(maps), "--backup-dir", str(tmp_path / "bk"),
            "--journal-dir", str(tmp_path / "j"), "--v0-size", f"{P}={P_SIZE}", "--v0-size", f"{Q}={Q_SIZE}"]
    r = CliRunner().invoke(cli, base + ["--format", "json"])
    assert r.exit_code == 1, r.output
    assert json.loads(r.output)["counts"] == {"planned": 5}
    r = CliRunner().invoke(cli, base + ["--yes", "--offline", "--no-direct-io", "--logdir", str(tmp_path / "logs")])
    assert r.exit_code == 0, r.output
    assert len((tmp_path / "logs" / "upgraded.log").read_text().splitlines()) == 5
    r = CliRunner().invoke(cli, base + ["--v0-size", "nothex=12"])
    assert r.exit_code == 2


class Boom(Exception):
    """A crash in the middle of a plan (the journal keeps the intent open)."""


def test_interrupted_plan_is_dropped_when_a_mapper_wrote_the_map_since(tmp_path, monkeypatch):
    maps = FiledStoreWriter(tmp_path / "maps")
    entries = [(0, ZERO), (1, hashlib.sha256(b"m").hexdigest())]
    maps.put("archip_moved-vol", F.write_v1(2 * F.BLOCK_SIZE_4M, entries))
    real_apply, calls = U.MapStore.apply, [0]

    def crash_after_two_steps(self, step):
        if calls[0] == 2:
            raise Boom
        calls[0] += 1
        return real_apply(self, step)

    kw = dict(apply=True, backup_dir=str(tmp_path / "bk"), logdir=None, direct=False)
    monkeypatch.setattr(U.MapStore, "apply", crash_after_two_steps)
    with pytest.raises(Boom):
        upgrade_maps(str(maps.root), **kw)
    monkeypatch.setattr(U.MapStore, "apply", real_apply)
    assert F.parse_v2_header(maps.path("archip_moved-vol").read_bytes()).epoch == 0  # rewritten in place
    # then Archipelago ran: opening moved-vol renamed it, a snapshot bumped its epoch, the old map was purged
    v2_entries = F.parse_v1(F.write_v1(2 * F.BLOCK_SIZE_4M, entries)).entries
    maps.put_v2("moved-vol", 2 * F.BLOCK_SIZE_4M, v2_entries, epoch=2)
    for gone in ("archip_moved-vol", "archip_moved-vol_0000000000000000"):
        maps.path(gone).unlink()
    after_mapper = files(maps.root)
    s = upgrade_maps(str(maps.root), **kw)
    assert s["results"] == [] and files(maps.root) == after_mapper
    journal = [json.loads(x) for x in (tmp_path / "bk" / U.JOURNAL_NAME).read_text().splitlines()]
    assert journal[-1]["ev"] == "failed" and journal[-1]["id"] == "map|archip_moved-vol"


def test_a_map_past_32768_entries_gets_a_second_map_data_object(tmp_path):
    maps = FiledStoreWriter(tmp_path / "maps")
    n = 4194304 // 128 + 1  # one entry more than a 4 MiB map-data object holds
    last = hashlib.sha256(b"last").hexdigest()
    v1 = (1).to_bytes(4, "little") + (n * 4194304).to_bytes(8, "little") \
        + (b"\x00" + bytes.fromhex(ZERO)) * (n - 1) + b"\x01" + bytes.fromhex(last)
    maps.put("archip_big-vol", v1)
    s = upgrade_maps(str(maps.root), apply=True, backup_dir=str(tmp_path / "bk"), logdir=None, direct=True)
    assert s["counts"] == {"upgraded": 1}
    got = files(maps.root)
    assert got[v04("big-vol")] == hand_header(n * 4194304, 0, 1) + bytes(480)
    assert got[v04("big-vol_0000000000000000")] == hand_entry(4, ZERO) * (n - 1)
    assert got[v04("big-vol_0000000000000001")] == hand_entry(3, "archip_" + last) + bytes(384)
    assert set(got) == {v04("big-vol"), v04("big-vol_0000000000000000"), v04("big-vol_0000000000000001")}


@pytest.mark.parametrize("running", [True, False])
def test_cli_without_a_mode_asks_archipelago_status(tmp_path, monkeypatch, running):
    maps = FiledStoreWriter(tmp_path / "maps")
    maps.put("archip_auto-vol", F.write_v1(F.BLOCK_SIZE_4M, [(0, ZERO)]))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    status = bindir / "archipelago"  # 'archipelago status' exits with the number of peers running
    status.write_text(f"#!/bin/sh\n[ \"$1\" = status ] && exit {1 if running else 0}\nexit 2\n")
    status.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("VLMC_FIXES_MAPS", str(maps.root))
    r = CliRunner().invoke(cli, ["upgrade-maps", "--maps-dir", str(maps.root), "--yes", "--format", "json",
                                 "--backup-dir", str(tmp_path / "bk"), "--journal-dir", str(tmp_path / "j"),
                                 "--vlmc", str(STANDINS / "vlmc_fixes")])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["mode"] == ("vlmc" if running else "offline")
    assert [(x["target"], x["status"]) for x in doc["results"]] == [("auto-vol", "upgraded")]
    assert F.parse_v2_header(maps.path("auto-vol").read_bytes()).epoch == 1
