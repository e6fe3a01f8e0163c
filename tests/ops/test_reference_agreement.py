"""The Cython scanner and the naive pure-Python scan (benchmarks/naive_scan.py) must
agree on every finding (kind, store, name, path), every lock and every counter, on
the sample store, on odd hand-built corners, and on generated trees."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from verify.core import formats as F
from verify.backends.filed.backend import FiledBackend
from verify.ops.sample import AT_RISK_NAMES, FiledStoreWriter, write_sample
from verify.ops.scan import scan

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


naive_scan = _load("naive_scan")
gen_tree = _load("gen_tree")


def both(maps: Path, blocks: Path | None, off: dict | None = None, jobs: int = 3):
    fast = scan(FiledBackend(str(maps), str(blocks) if blocks else None, dict(off or {})), jobs, progress=False)
    slow = naive_scan.scan(str(maps), str(blocks) if blocks else None, dict(off or {}))
    return fast, slow


def keys(summary) -> set[tuple]:
    return {(f.kind, f.store, f.name, f.path) for f in summary.findings}


def assert_agree(fast, slow) -> None:
    assert keys(fast) == keys(slow)
    assert fast.locks == slow.locks
    fast_counts = {k: v for k, v in fast.counters.items() if not k.endswith(".header_bytes")}
    assert fast_counts == dict(slow.counters)
    assert fast.exit_code == slow.exit_code


@pytest.mark.parametrize("seed", [4, 11])
def test_sample_store(tmp_path, seed):
    s = write_sample(tmp_path, seed=seed)
    fast, slow = both(s.maps_dir, s.blocks_dir)
    assert_agree(fast, slow)
    planted = {(k, st, n) for k, v in s.planted.items() for st, n in v}
    assert planted <= {(f.kind, f.store, f.name) for f in slow.findings}


def test_sample_store_pithos_migrate_off(tmp_path):
    s = write_sample(tmp_path)
    fast, slow = both(s.maps_dir, s.blocks_dir, {"maps": True, "blocks": True})
    assert_agree(fast, slow)
    assert "object_at_risk" not in {f.kind for f in slow.findings}


def _corners(root: Path) -> None:
    """Odd cases of the walk, the probes and the precedence of map findings."""
    maps, blocks = FiledStoreWriter(root / "maps"), FiledStoreWriter(root / "blocks")
    z = F.Entry(F.ZERO_HASH, F.OF_ZERO)
    # strays at every depth, in both stores
    (maps.root / "top-file").write_bytes(b"x")
    (maps.root / "top-link").symlink_to("top-file")
    (blocks.root / "ab").mkdir()
    (blocks.root / "ab" / "depth2-file").write_bytes(b"")
    (blocks.root / "ab" / "dirlink").symlink_to("..")
    (blocks.root / "ab" / "cd" / "ef" / "deep-dir" / "x").mkdir(parents=True)
    os.mkfifo(blocks.root / "ab" / "cd" / "ef" / "a-fifo")
    # a non-hex top-level dir is walked like any other: what it holds is misplaced
    (maps.root / "zz" / "yy" / "xx").mkdir(parents=True)
    (maps.root / "zz" / "yy" / "xx" / "vol-in-zz").write_bytes(F.pack_v2_header(0))
    # archip_<hex64> while <hex64> is a v2 map at its old Pithos path: upgrade incomplete
    hx = "c" * 64
    maps.put(hx, F.pack_v2_header(F.BLOCK_SIZE_4M, flags=F.MF_READONLY, epoch=0), where="pithos")
    maps.put_v2("archip_" + hx, F.BLOCK_SIZE_4M, [z], flags=F.MF_DELETED, epoch=0)
    # archip_X v1 while X is v2: upgrade incomplete (wins over map_v1)
    maps.put_v2("vol-up", F.BLOCK_SIZE_4M, [z])
    maps.put("archip_vol-up", F.write_v1(F.BLOCK_SIZE_4M, [(0, F.ZERO_HASH)]))
    # archip_X where X is a directory, or a v1 map, or too short: invalid name
    maps.put_v2("archip_vol-dir", F.BLOCK_SIZE_4M, [z], epoch=0)
    maps.path("vol-dir").mkdir(parents=True)
    maps.put("vol-v1only", F.write_v1(F.BLOCK_SIZE_4M, [(0, F.ZERO_HASH)]))
    maps.put_v2("archip_vol-v1only", F.BLOCK_SIZE_4M, [z], epoch=0)
    maps.put_v2("archip_abc", F.BLOCK_SIZE_4M, [z], epoch=0)
    # names that break the volume-name rule in the middle, and after a newline
    maps.put_v2("vol_0123456789abcdef-x", F.BLOCK_SIZE_4M, [z])
    maps.put_v2("vol\nname_0123456789abcdef-x", F.BLOCK_SIZE_4M, [z])
    # small blocksize: several map-data objects, the last one missing; another a directory
    maps.put_v2("vol-small-bs", 5 * 256, [z] * 5, blocksize=256)
    os.unlink(maps.path("vol-small-bs_0000000000000002"))
    maps.put_v2("vol-md-dir", F.BLOCK_SIZE_4M, [z])
    os.unlink(maps.path("vol-md-dir_0000000000000000"))
    maps.path("vol-md-dir_0000000000000000").mkdir(parents=True)
    # maps at wrong paths: both a map finding and an object finding
    maps.put("archip_vol-v03", F.write_v1(F.BLOCK_SIZE_4M, [(1, "d" * 64)]), where="v03")
    maps.put("e" * 64, b"", where="pithos")  # empty v0 map at its old path
    maps.put("f" * 64, F.write_v0([F.ZERO_HASH]))
    maps.put("not-a-map", b"hello")
    maps.put("empty-file", b"")
    maps.put("vol-x_lock", b"node9_1\0trailing")
    maps.put("vol-x_locknode9_1_0a", b"")
    # blocks: a directory at the v0.4 path of an unmigrated object: conflict
    blocks.put("a" * 64, b"old", where="pithos")
    blocks.path("a" * 64).mkdir(parents=True)
    blocks.put(AT_RISK_NAMES[1], b"", where="pithos")
    blocks.put("b" * 64, b"", where="v03")
    blocks.put("archip_" + "9" * 64 + "_lock", b"")


@pytest.mark.parametrize("off", [{}, {"maps": True, "blocks": True}])
def test_corners(tmp_path, off):
    _corners(tmp_path)
    fast, slow = both(tmp_path / "maps", tmp_path / "blocks", off)
    assert_agree(fast, slow)
    found = {(f.kind, f.name) for f in slow.findings}
    assert ("map_upgrade_incomplete", "archip_" + "c" * 64) in found
    assert ("map_upgrade_incomplete", "archip_vol-up") in found
    assert {("map_invalid_name", n) for n in ("archip_vol-dir", "archip_vol-v1only", "archip_abc",
                                              "vol_0123456789abcdef-x")} <= found
    # vlmc's re.match(".*_...") stops at a newline: valid to vlmc, so valid here (its map is healthy)
    assert not any(name == "vol\nname_0123456789abcdef-x" for _, name in found)
    assert {("map_data_missing", "vol-small-bs"), ("map_data_missing", "vol-md-dir")} <= found
    assert {("map_v1", "archip_vol-v03"), ("object_misplaced", "archip_vol-v03")} <= found
    assert {("map_v0", "e" * 64), ("object_unmigrated", "e" * 64)} <= found
    assert ("object_conflict", "a" * 64) in found
    assert (("object_at_risk", AT_RISK_NAMES[1]) in found) == (not off)
    strays = {n for k, n in found if k == "stray_entry"}
    assert {"top-file", "top-link", "depth2-file", "dirlink", "deep-dir", "a-fifo"} <= strays


def test_maps_store_only(tmp_path):
    s = write_sample(tmp_path)
    assert_agree(*both(s.maps_dir, None))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_tree(tmp_path, seed):
    m = gen_tree.generate(tmp_path, files=6000, seed=seed, jobs=1)
    fast, slow = both(tmp_path / "maps", tmp_path / "blocks", jobs=1 + seed)
    assert_agree(fast, slow)
    planted = {(k, st, n) for k, v in m["planted"].items() for st, n in v}
    assert planted == {(f.kind, f.store, f.name) for f in slow.findings}
    assert json.loads((tmp_path / "tree.json").read_text())["files_total"] == m["files_total"]


def test_generated_tree_is_deterministic(tmp_path):
    def listing(root: Path) -> list[tuple[str, bytes]]:
        out = []
        for dp, _dn, fn in os.walk(root):
            for f in fn:
                p = os.path.join(dp, f)
                out.append((os.path.relpath(p, root), b"" if os.path.islink(p) else Path(p).read_bytes()))
        return sorted(out)

    a = gen_tree.generate(tmp_path / "a", files=3000, seed=7, jobs=1)
    b = gen_tree.generate(tmp_path / "b", files=3000, seed=7, jobs=2)
    assert a["planted"] == b["planted"]
    assert listing(tmp_path / "a" / "maps") == listing(tmp_path / "b" / "maps")
    assert listing(tmp_path / "a" / "blocks") == listing(tmp_path / "b" / "blocks")


def test_many_top_level_dirs(tmp_path):
    """More top-level dirs than the scanner keeps open at once: the one-level walk takes over."""
    maps, blocks = FiledStoreWriter(tmp_path / "maps"), FiledStoreWriter(tmp_path / "blocks")
    maps.put_v2("vol-a", F.BLOCK_SIZE_4M, [F.Entry(F.ZERO_HASH, F.OF_ZERO)])
    for i in range(600):
        leaf = blocks.root / f"top{i:03d}" / "cd" / "ef"
        leaf.mkdir(parents=True)
        (leaf / f"archip_object-{i}").write_bytes(b"")
    fast, slow = both(tmp_path / "maps", tmp_path / "blocks")
    assert_agree(fast, slow)
    assert sum(f.kind == "object_misplaced" for f in slow.findings) == 600
