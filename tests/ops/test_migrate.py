"""migrate-objects on real filed trees: what it moves, what it never touches, and crashes at every step."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import xxhash
from click.testing import CliRunner

from crashpoints import fast_dir, run_crashing, tree
from verify.core import layout
from verify.backends.filed.backend import FiledBackend
from verify.cli.main import cli
from verify.ops.fixes.migrate import migrate_objects
from verify.ops.sample import AT_RISK_NAMES, FiledStoreWriter, pithos_hash, write_sample
from verify.ops.scan import scan


def kinds(dirs) -> dict[str, set[tuple[str, str]]]:
    s = scan(FiledBackend(dirs["maps"], dirs["blocks"]), 2, progress=False)
    out: dict[str, set] = {}
    for f in s.findings:
        out.setdefault(f.kind, set()).add((f.store, f.name))
    return out


def read(root, rel) -> bytes:
    with open(os.path.join(root, rel), "rb") as fh:
        return fh.read()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """The sample store plus a v0.3 legacy dir: objects the store lacks, and one it has."""
    root = tmp_path_factory.mktemp("pristine")
    s = write_sample(root / "store")
    legacy = FiledStoreWriter(root / "legacy")
    names = []
    for i in range(3):
        data = os.urandom(1000 + i)
        nm = "archip_" + xxhash.xxh3_128_hexdigest(data) * 2
        legacy.put(nm, data, "v03")
        names.append(nm)
    blocks = FiledStoreWriter(s.blocks_dir)
    present = "archip_" + "ab" * 32
    blocks.put(present, b"in the store")
    legacy.put(present, b"an older copy", "v03")
    legacy.put("archip_legacy-volume_lock", b"node9_1", "v03")  # never imported
    return root, s, names, present


def copy_store(pristine, dst):
    root, s, names, present = pristine
    subprocess.run(["cp", "-a", str(root), str(dst)], check=True)  # keeps hard links (leftovers)
    dirs = {"maps": str(dst / "store" / "maps"), "blocks": str(dst / "store" / "blocks")}
    return dirs, str(dst / "legacy")


def expected_moves(s) -> dict[tuple[str, str], bytes]:
    """(store, name) -> content, for every object the planted findings say must end at its v0.4 path."""
    out = {}
    for kind in ("object_unmigrated", "object_misplaced", "object_leftover"):
        for store, name in s.planted.get(kind, ()):
            root = s.maps_dir if store == "maps" else s.blocks_dir
            for where in ("pithos", "v03", "v04"):
                p = FiledStoreWriter(root).path(name, where) if (where != "pithos" or layout.is_hex64(name.encode())) else None
                if p is not None and p.exists():
                    out[(store, name)] = p.read_bytes()
                    break
    return out


def assert_finished(dirs, s, legacy_names, legacy_dir):
    for (store, name), data in expected_moves(s).items():
        root = dirs[store]
        assert read(root, layout.v04_path(name.encode()).decode()) == data
        for old in (layout.pithos_path(name.encode()), layout.v03_path(name.encode())):
            if old is not None and old != layout.v04_path(name.encode()):
                assert not os.path.lexists(os.path.join(root, old.decode())), (name, old)
    for nm in legacy_names:
        assert read(dirs["blocks"], layout.v04_path(nm.encode()).decode()) == read(legacy_dir, layout.v03_path(nm.encode()).decode())
    left = kinds(dirs)
    for k in ("object_unmigrated", "object_misplaced", "object_leftover"):
        assert k not in left, left.get(k)
    at_risk = FiledStoreWriter(dirs["blocks"]).path(AT_RISK_NAMES[0], "pithos")
    assert at_risk.exists()


def test_preview_changes_nothing_and_lists_the_work(pristine, tmp_path):
    dirs, legacy = copy_store(pristine, tmp_path / "c")
    before = tree(tmp_path / "c")
    res = migrate_objects(dirs, apply=False, journal_dir=str(tmp_path / "j"), legacy_dirs=[legacy])
    assert tree(tmp_path / "c") == before
    assert not (tmp_path / "j").exists()
    _, s, names, present = pristine
    by = {(r["kind"], r["name"]): r for r in res}
    for kind in ("object_unmigrated", "object_misplaced", "object_leftover"):
        for store, name in s.planted[kind]:
            assert by[(kind, name)]["status"] == "planned"
    assert by[("object_at_risk", AT_RISK_NAMES[0])]["status"] == "skipped"
    conflict = [r for r in res if r["kind"] == "object_conflict"]
    assert [r["status"] for r in conflict] == ["conflict"]
    assert {by[("legacy", n)]["status"] for n in names} == {"planned"}
    assert ("legacy", present) not in by and ("legacy", "archip_legacy-volume_lock") not in by


def test_apply_moves_everything_and_never_touches_at_risk_or_conflicts(pristine, tmp_path):
    dirs, legacy = copy_store(pristine, tmp_path / "c")
    _, s, names, present = pristine
    legacy_before = tree(legacy)
    at_risk = FiledStoreWriter(dirs["blocks"]).path(AT_RISK_NAMES[0], "pithos")
    at_risk_data, at_risk_ino = at_risk.read_bytes(), at_risk.stat().st_ino
    res = migrate_objects(dirs, apply=True, journal_dir=str(tmp_path / "j"), legacy_dirs=[legacy])
    assert {r["status"] for r in res if r["kind"] in ("object_unmigrated", "object_misplaced", "object_leftover",
                                                       "legacy")} == {"done"}
    assert_finished(dirs, s, names, legacy)
    assert at_risk.read_bytes() == at_risk_data and at_risk.stat().st_ino == at_risk_ino
    assert kinds(dirs)["object_conflict"] == s.planted["object_conflict"]
    assert tree(legacy) == legacy_before
    assert read(dirs["blocks"], layout.v04_path(present.encode()).decode()) == b"in the store"
    # a second run has nothing left to do but the conflict and the at-risk object
    again = migrate_objects(dirs, apply=True, journal_dir=str(tmp_path / "j"), legacy_dirs=[legacy])
    assert {r["kind"] for r in again} == {"object_conflict", "object_at_risk"}


def test_conflict_reports_sizes_and_xxh3_and_resolves_only_identical(pristine, tmp_path):
    dirs, _ = copy_store(pristine, tmp_path / "c")
    _, s, _, _ = pristine
    (_, differing), = s.planted["object_conflict"]
    blocks = FiledStoreWriter(dirs["blocks"])
    data = os.urandom(4096)
    same = pithos_hash(data)
    blocks.put(same, data, "pithos")
    blocks.put(same, data, "v04")  # same bytes, another inode
    res = migrate_objects(dirs, apply=True, journal_dir=str(tmp_path / "j"), resolve_identical=True)
    by = {r["name"]: r for r in res if r["kind"] == "object_conflict"}
    d = by[differing]
    old, new = blocks.path(differing, "pithos"), blocks.path(differing, "v04")
    assert (d["status"], d["old_size"], d["new_size"]) == ("conflict", old.stat().st_size, new.stat().st_size)
    assert d["old_xxh3"] == xxhash.xxh3_128_hexdigest(old.read_bytes())
    assert d["new_xxh3"] == xxhash.xxh3_128_hexdigest(new.read_bytes())
    assert old.exists() and new.exists()
    assert by[same]["status"] == "done" and by[same]["identical"]
    assert not blocks.path(same, "pithos").exists() and blocks.path(same, "v04").read_bytes() == data


def test_legacy_dir_on_another_filesystem_is_copied_and_verified(pristine, tmp_path, monkeypatch):
    dirs, legacy = copy_store(pristine, tmp_path / "c")
    _, s, names, _ = pristine
    real_link = os.link

    def no_cross_device_link(src, dst, *a, **kw):
        if str(src).startswith(legacy):
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), src)
        return real_link(src, dst, *a, **kw)

    monkeypatch.setattr(os, "link", no_cross_device_link)
    res = migrate_objects(dirs, apply=True, journal_dir=str(tmp_path / "j"), legacy_dirs=[legacy])
    assert {r["detail"] for r in res if r["kind"] == "legacy"} == {"copied"}
    for nm in names:
        new = os.path.join(dirs["blocks"], layout.v04_path(nm.encode()).decode())
        old = os.path.join(legacy, layout.v03_path(nm.encode()).decode())
        assert Path(new).read_bytes() == Path(old).read_bytes()
        assert os.stat(new).st_ino != os.stat(old).st_ino
    assert not [e for e in os.listdir(dirs["blocks"]) if e.startswith(".archverify")]


def small_store(root) -> tuple[dict[str, str], str, dict[tuple[str, str], bytes], list[str]]:
    """One object of every kind the command handles, and two legacy objects: few steps, every path."""
    dirs = {"maps": os.path.join(root, "store", "maps"), "blocks": os.path.join(root, "store", "blocks")}
    maps, blocks = FiledStoreWriter(dirs["maps"]), FiledStoreWriter(dirs["blocks"])
    legacy = FiledStoreWriter(os.path.join(root, "legacy"))
    want = {}
    for store, w in (("blocks", blocks), ("maps", maps)):
        data = os.urandom(700)
        nm = pithos_hash(data)
        w.put(nm, data, "pithos")
        want[(store, nm)] = data
    data = os.urandom(600)
    nm = pithos_hash(data)
    blocks.put(nm, data, "pithos")
    blocks.link(nm, "pithos", "v04")
    want[("blocks", nm)] = data
    nm = "archip_" + os.urandom(32).hex()
    want[("blocks", nm)] = blocks.put(nm, os.urandom(500), "v03").read_bytes()
    blocks.put(AT_RISK_NAMES[1], b"the only copy", "pithos")
    data = os.urandom(300)
    nm = pithos_hash(data)
    blocks.put(nm, data, "pithos")
    blocks.put(nm, data[:10], "v04")
    names = []
    for _ in range(2):
        nm = "archip_" + os.urandom(32).hex()
        want[("blocks", nm)] = legacy.put(nm, os.urandom(400), "v03").read_bytes()
        names.append(nm)
    return dirs, str(legacy.root), want, names


def test_crash_at_every_step_then_rerun_loses_nothing(tmp_path):
    """Kill the run (os._exit: no cleanup) just before its k-th write-side call, for every k; then
    rerun. A crash after call k leaves the disk as a crash before call k+1 does, so this covers both."""
    with fast_dir() as scratch:
        pristine = os.path.join(scratch, "pristine")
        small_store(pristine)

        def fresh(name):
            dst = os.path.join(scratch, name)
            subprocess.run(["cp", "-a", pristine, dst], check=True)
            dirs = {"maps": os.path.join(dst, "store", "maps"), "blocks": os.path.join(dst, "store", "blocks")}
            return dst, dirs, os.path.join(dst, "legacy")

        ref, ref_dirs, ref_legacy = fresh("ref")
        migrate_objects(ref_dirs, apply=True, journal_dir=os.path.join(scratch, "ref-j"), legacy_dirs=[ref_legacy])
        reference = tree(os.path.join(ref, "store"))
        k = 0
        while True:
            k += 1
            work, dirs, legacy = fresh(f"k{k}")
            jdir = os.path.join(scratch, f"k{k}-j")
            real_link = os.link

            def crashing_run():
                def no_cross_device_link(src, dst, *a, **kw):  # legacy objects take the copy path
                    if str(src).startswith(legacy):
                        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), src)
                    return real_link(src, dst, *a, **kw)

                os.link = no_cross_device_link
                migrate_objects(dirs, apply=True, journal_dir=jdir, legacy_dirs=[legacy])

            crashed = run_crashing(crashing_run, k, after=False)
            res = migrate_objects(dirs, apply=True, journal_dir=jdir, legacy_dirs=[legacy])
            assert not [r for r in res if r["status"] == "failed"], (k, res)
            got = tree(os.path.join(work, "store"))
            assert got == reference, (k, set(got) ^ set(reference))
            shutil.rmtree(work)
            if not crashed:
                break
    assert k > 40  # every step of every object was a crash point


def test_small_store_ends_with_every_object_at_its_v04_path(tmp_path):
    dirs, legacy, want, names = small_store(str(tmp_path))
    legacy_before = tree(legacy)
    migrate_objects(dirs, apply=True, journal_dir=str(tmp_path / "j"), legacy_dirs=[legacy])
    for (store, name), data in want.items():
        assert read(dirs[store], layout.v04_path(name.encode()).decode()) == data
        for old in (layout.pithos_path(name.encode()), layout.v03_path(name.encode())):
            if old is not None:
                assert not os.path.lexists(os.path.join(dirs[store], old.decode()))
    assert FiledStoreWriter(dirs["blocks"]).path(AT_RISK_NAMES[1], "pithos").read_bytes() == b"the only copy"
    assert tree(legacy) == legacy_before
    assert set(kinds(dirs)) - {"map_v0"} == {"object_conflict", "object_at_risk"}  # the maps object has a v0 name


def test_cli_preview_then_apply(pristine, tmp_path):
    dirs, _ = copy_store(pristine, tmp_path / "c")
    args = ["migrate-objects", "--maps-dir", dirs["maps"], "--blocks-dir", dirs["blocks"],
            "--journal-dir", str(tmp_path / "j"), "--format", "json"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1, r.output
    doc = json.loads(r.output)
    assert doc["counts"]["planned"] >= 6 and not doc["applied"]
    r = CliRunner().invoke(cli, args + ["--yes"])
    assert r.exit_code == 1  # the conflict stays until someone compares it
    doc = json.loads(r.output)
    assert doc["counts"] == {"done": doc["counts"]["done"], "conflict": 1, "skipped": 1}
    r = CliRunner().invoke(cli, ["migrate-objects", "--maps-dir", str(tmp_path / "nope"), "--journal-dir", str(tmp_path)])
    assert r.exit_code == 2


def test_misplaced_lock_files_are_never_moved(tmp_path):
    maps = FiledStoreWriter(tmp_path / "maps")
    FiledStoreWriter(tmp_path / "blocks")
    lock = maps.put("archip_old-volume_lock", b"node3_7", "v03")
    dirs = {"maps": str(tmp_path / "maps"), "blocks": str(tmp_path / "blocks")}
    res = migrate_objects(dirs, apply=True, journal_dir=str(tmp_path / "j"))
    assert [(r["kind"], r["status"]) for r in res] == [("object_misplaced", "skipped")]
    assert lock.read_bytes() == b"node3_7"
    assert not maps.path("archip_old-volume_lock").exists()
