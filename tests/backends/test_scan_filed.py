"""The filed scanner (verify/_scan.pyx through verify/backends/filed/backend.py and verify/ops/scan.py).

Stores are written with the project's FiledStoreWriter and by hand; every test
compares the exact set of (kind, store, name) findings with what was planted.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from verify.core import formats as F
from verify.core import layout
from verify.ops import scan as scan_op
from verify.backends.filed.backend import FiledBackend
from verify.ops.sample import AT_RISK_NAMES, FiledStoreWriter, pithos_hash, write_sample

REPO = Path(__file__).resolve().parents[2]
M4 = F.BLOCK_SIZE_4M
ZERO1 = [F.Entry(F.ZERO_HASH, F.OF_ZERO)]


def run_scan(maps, blocks=None, jobs=2, off=None, shards=1):
    be = FiledBackend(str(maps), str(blocks) if blocks else None, off or {})
    be.validate()
    return scan_op.scan(be, jobs, progress=False, shards_per_store=shards)


def keys(summary) -> set[tuple[str, str, str]]:
    return {(f.kind, f.store, f.name) for f in summary.findings}


def planted(sample) -> set[tuple[str, str, str]]:
    return {(kind, store, name) for kind, items in sample.planted.items() for store, name in items}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="module")
def sample_summary(sample):
    return run_scan(sample.maps_dir, sample.blocks_dir)


# ---- the sample store: planted == found ---------------------------------------------


def test_sample_planted_equals_found(sample, sample_summary):
    assert keys(sample_summary) == planted(sample)
    assert sample_summary.exit_code == 1
    # every scan kind is planted at least once
    assert {k for k, _, _ in planted(sample)} >= {
        "map_corrupt", "map_upgrade_incomplete", "map_invalid_name", "map_data_missing", "map_v1", "map_v0",
        "object_unmigrated", "object_leftover", "object_conflict", "object_misplaced", "object_at_risk",
        "stray_entry"}


def test_sample_locks_and_counters(sample, sample_summary):
    assert [(lk.store, lk.name, lk.owner) for lk in sample_summary.locks] == sample.locks
    c = sample_summary.counters
    files = {s: sum(len(fs) for _, _, fs in os.walk(d)) for s, d in
             (("maps", sample.maps_dir), ("blocks", sample.blocks_dir))}
    # os.walk lists symlinks to files as files, and the scanner counts only regular files and strays
    assert c["maps.files"] == files["maps"]
    assert c["maps.v1"] == 1 and c["maps.v0"] == 2 and c["maps.corrupt"] == 4
    assert c["maps.locks"] == 1 and c["blocks.hash_files"] == 1


@pytest.mark.parametrize("jobs", [1, 8, 64, 4096])
def test_jobs_give_identical_results(sample, sample_summary, jobs):
    s = run_scan(sample.maps_dir, sample.blocks_dir, jobs=jobs)
    assert s.findings == sample_summary.findings  # kinds, names, paths and details, in order
    assert s.counters == sample_summary.counters
    assert s.locks == sample_summary.locks


@pytest.mark.parametrize("shards", [7, 256])
def test_shards_merge_to_the_same_result(sample, sample_summary, shards):
    be = FiledBackend(str(sample.maps_dir), str(sample.blocks_dir))
    assert len(be.shards(shards)) == 2 * shards
    s = run_scan(sample.maps_dir, sample.blocks_dir, shards=shards)
    assert s.findings == sample_summary.findings
    assert s.counters == sample_summary.counters
    assert s.locks == sample_summary.locks


def test_shards_with_odd_top_level_entries(tmp_path):
    """Entries that are not 2-hex dirs all belong to one shard: none lost, none twice."""
    blocks = FiledStoreWriter(tmp_path / "blocks")
    for i in range(40):
        blocks.put(f"object-{i:03d}", b"x")
    (tmp_path / "blocks" / "README").write_text("x")
    (tmp_path / "blocks" / "ab").mkdir(exist_ok=True)
    for odd in ("odd+dir/aa/bb", "AB/cd/ef", "abc/de/f0"):
        d = tmp_path / "blocks" / odd
        d.mkdir(parents=True)
        (d / "object-in-odd-dir").write_bytes(b"x")
    (tmp_path / "blocks" / "zz-link").symlink_to(tmp_path / "blocks" / "AB")
    (tmp_path / "maps").mkdir()
    results = [run_scan(tmp_path / "maps", tmp_path / "blocks", shards=n) for n in (1, 5, 256)]
    assert keys(results[0]) == {("stray_entry", "blocks", "README"), ("stray_entry", "blocks", "zz-link")} | {
        ("object_misplaced", "blocks", "object-in-odd-dir")}
    assert results[0].counters["blocks.files"] == 40 + 1 + 3  # the objects, README, the three odd ones
    for r in results[1:]:
        assert r.findings == results[0].findings and r.counters == results[0].counters


def test_pithos_migrate_off_silences_only_at_risk(sample, sample_summary):
    s = run_scan(sample.maps_dir, sample.blocks_dir, off={"maps": True, "blocks": True})
    assert keys(s) == keys(sample_summary) - {("object_at_risk", "blocks", AT_RISK_NAMES[0])}
    # off for the maps store only: the at-risk block is in blocks, still reported
    s = run_scan(sample.maps_dir, sample.blocks_dir, off={"maps": True})
    assert keys(s) == keys(sample_summary)


def test_healthy_store_exits_0(tmp_path):
    maps, blocks = FiledStoreWriter(tmp_path / "maps"), FiledStoreWriter(tmp_path / "blocks")
    data = b"block" * 100
    h = pithos_hash(data)
    blocks.put(h, data)
    blocks.put("archip_" + "ab" * 32, b"x" * 10)
    maps.put_v2("volume-1", 2 * M4, [F.Entry(h, 0), F.Entry("archip_" + "ab" * 32, F.OF_ARCHIP)])
    maps.put("volume-1_lock", b"")  # an empty, released-looking lock
    # a Pithos map upgraded in place: stale bytes after the header are normal
    maps.put(h, F.pack_v2_header(M4, flags=1, epoch=0) + bytes(range(200)))
    maps.put_v2(h, M4, [F.Entry(h, 0)], flags=1, epoch=0, where="v04")
    s = run_scan(tmp_path / "maps", tmp_path / "blocks")
    assert s.findings == [] and s.exit_code == 0
    assert s.counters["maps.v2"] == 2 and s.counters["maps.mapdata"] == 2


# ---- map findings: one per map, first applicable wins ----------------------------


def test_map_finding_precedence(tmp_path):
    maps = FiledStoreWriter(tmp_path / "maps")
    v1 = F.write_v1(2 * M4, [(0, F.ZERO_HASH)] * 2)
    expect = set()

    def want(kind, name):
        expect.add((kind, "maps", name))

    # upgraded maps that exist as v2
    for vol in ("volume-a", "volume-b", "volume-c", "volume-d"):
        maps.put_v2(vol, M4, ZERO1)
    # corrupt beats incomplete: a truncated archip_ v1 whose NAME exists as v2
    maps.put("archip_volume-a", v1[:40])
    want("map_corrupt", "archip_volume-a")
    # incomplete beats map_v1, and beats invalid_name for a v2 (flagged deleted) leftover
    maps.put("archip_volume-b", v1)
    want("map_upgrade_incomplete", "archip_volume-b")
    maps.put_v2("archip_volume-c", M4, ZERO1, flags=F.MF_DELETED, epoch=0)
    want("map_upgrade_incomplete", "archip_volume-c")
    # ... even when the leftover has lost its map-data
    maps.put("archip_volume-d", F.pack_v2_header(M4, flags=F.MF_DELETED, epoch=0))
    want("map_upgrade_incomplete", "archip_volume-d")
    # NAME absent: archip_ v1 is map_v1, archip_ v2 is an invalid name (the rename failed)
    maps.put("archip_volume-e", v1)
    want("map_v1", "archip_volume-e")
    maps.put_v2("archip_volume-f", M4, ZERO1, epoch=0)
    want("map_invalid_name", "archip_volume-f")
    # NAME exists, but not as a v2 map: not an interrupted upgrade
    maps.put("volume-g", v1)
    maps.put("archip_volume-g", v1)
    want("map_v1", "volume-g")
    want("map_v1", "archip_volume-g")
    maps.put("volume-h", b"not a map at all")
    want("not_a_map", "volume-h")
    maps.put_v2("archip_volume-h", M4, ZERO1, epoch=0)
    want("map_invalid_name", "archip_volume-h")
    # NAME shorter than filed's 6-byte minimum: the rename never could succeed
    maps.put_v2("vm", M4, ZERO1)
    want("stray_entry", "vm")  # filed cannot even hold it
    maps.put_v2("archip_vm", M4, ZERO1, epoch=0)
    want("map_invalid_name", "archip_vm")
    # invalid name beats missing map-data
    maps.put("bad_0123456789abcdef_x", F.pack_v2_header(M4))
    want("map_invalid_name", "bad_0123456789abcdef_x")
    # missing map-data: the second of two map-data objects (blocksize 256: 2 entries each)
    header, data = F.write_v2(3 * 256, ZERO1 * 3, 256, name="vol-md")
    maps.put("vol-md", header)
    maps.put(F.mapdata_name("vol-md", 0), data[F.mapdata_name("vol-md", 0)])
    want("map_data_missing", "vol-md")
    # a name so long that NAME_<16 hex> exceeds the filesystem's 255 bytes: its map-data cannot exist
    maps.put("v" * 250, F.pack_v2_header(M4))
    too_long = F.mapdata_name("v" * 250, 0).encode()
    os.makedirs(os.path.join(os.fsencode(tmp_path / "maps"), layout.v04_dirs(too_long)), exist_ok=True)
    want("map_data_missing", "v" * 250)
    # a zero-size v2 map has no map-data to miss
    maps.put("vol-empty", F.pack_v2_header(0))
    # the v1 map's NAME is a 64-hex Pithos name, upgraded v2 at its OLD Pithos path
    hx = "0f" * 32
    maps.put_v2(hx, M4, ZERO1, flags=1, epoch=0, where="pithos")
    maps.put("archip_" + hx, v1)
    want("map_upgrade_incomplete", "archip_" + hx)
    want("object_unmigrated", hx)
    # corrupt headers of every sort
    for name, raw in {
        "corrupt-sig4": b"AMF.",
        "corrupt-sig31": F.pack_v2_header(M4)[:31],
        "corrupt-v0ver": F.V2_HEADER.pack(F.V2_SIGNATURE, 0, M4, M4, 0, 1),
        "corrupt-v3ver": F.V2_HEADER.pack(F.V2_SIGNATURE, 3, M4, M4, 0, 1),
        "corrupt-bs128": F.pack_v2_header(M4, blocksize=128),
        "corrupt-bs-odd": F.pack_v2_header(M4, blocksize=3 << 20),
        "archip_corrupt-v1short": b"\x01\x00\x00\x00\x00",
        "archip_corrupt-v1trunc": v1[:-1],
    }.items():
        maps.put(name, raw)
        want("map_corrupt", name)
    # empty and non-map files under plain names are not maps (the mapper finds no signature); an
    # empty 64-hex file is an (empty) v0 map; hash and temp files are counted, never a finding
    maps.put("empty-object", b"")
    want("not_a_map", "empty-object")
    maps.put("some-other-file", b"\x00" * 100)
    want("not_a_map", "some-other-file")
    maps.put("ab" * 32, b"")
    want("map_v0", "ab" * 32)
    maps.put("volume-a_hash", b"0f" * 32)
    maps.put("volume-a_locknode1_77_01", b"node1_77")
    s = run_scan(tmp_path / "maps")
    assert keys(s) == expect
    names = [f.name for f in s.findings if f.kind.startswith("map_")]
    assert len(names) == len(set(names)), "at most one map finding per map object"


def test_header_verdicts_on_random_map_objects(tmp_path):
    """Through real files (pread of the head, fstat for the length), each object's map
    finding is the one formats.classify implies for its bytes."""
    rng = random.Random(99)
    maps = FiledStoreWriter(tmp_path / "maps")
    expect = set()
    for i in range(300):
        r = rng.random()
        if r < 0.3:
            bs = rng.choice([0, 128, 256, 1000, M4, rng.getrandbits(32)])
            data = struct.pack(">IIQIIQ", F.V2_SIGNATURE, rng.choice([2, 2, 1, 3]), rng.getrandbits(rng.choice([8, 40])),
                               bs, rng.getrandbits(32), rng.getrandbits(64))
        elif r < 0.6:
            data = struct.pack("<IQ", 1, rng.choice([0, M4, 3 * M4 - 1, rng.getrandbits(30)]))
            data += rng.randbytes(rng.choice([0, 33, 66, 99, rng.randrange(200)]))
        elif r < 0.7:
            data = rng.choice([b"AMF.", b"\x01\x00\x00\x00"]) + rng.randbytes(rng.randrange(30))
        else:
            data = rng.randbytes(rng.randrange(0, 600))
        data = data[: rng.choice([len(data), len(data), rng.randrange(len(data) + 1)])]
        name = hashlib.sha256(b"%d" % i).hexdigest() if rng.random() < 0.1 else f"fuzz-{i:04d}"
        maps.put(name, data)
        info = F.classify(data[: F.HEADER_READ], len(data), name.encode())
        kind = {
            F.HeaderClass.V1: "map_v1",
            F.HeaderClass.V0: "map_v0",
            F.HeaderClass.V2: "map_data_missing" if info.size else None,
            F.HeaderClass.NOT_MAP: "not_a_map",  # the fuzz- names are plain: no hash, lock or temp file
        }.get(info.cls, "map_corrupt")
        if kind:
            expect.add((kind, "maps", name))
    s = run_scan(tmp_path / "maps", jobs=3)
    assert keys(s) == expect
    assert len(expect) > 150


def test_a_map_at_a_wrong_path_gets_both_findings(tmp_path):
    maps = FiledStoreWriter(tmp_path / "maps")
    maps.put("archip_legacy-volume", F.write_v1(M4, [(0, F.ZERO_HASH)]), where="v03")
    maps.put_v2("a-volume-name", M4, ZERO1)
    os.rename(maps.path("a-volume-name"), maps.path("a-volume-name").parent / "renamed-away")
    s = run_scan(tmp_path / "maps")
    assert keys(s) == {
        ("map_v1", "maps", "archip_legacy-volume"),
        ("object_misplaced", "maps", "archip_legacy-volume"),
        ("object_misplaced", "maps", "renamed-away"),
        ("map_data_missing", "maps", "renamed-away"),  # its map-data is named after it
    }


def test_maps_whose_names_contain_lock_or_hash_are_still_maps(tmp_path):
    """'_hash' or '_lock' inside a volume name does not make its map a temp file."""
    maps = FiledStoreWriter(tmp_path / "maps")
    v1 = F.write_v1(M4, [(0, F.ZERO_HASH)])
    maps.put("archip_db_hash_store", v1)
    maps.put("archip_my_lockbox", v1)
    maps.put("web_hash_volume", F.pack_v2_header(M4))  # map-data missing
    maps.put_v2("ok_locker_volume", M4, ZERO1)
    maps.put("vol-1_locknode1_7000_ab", b"node1_7000")  # a real temp file
    maps.put("vol-1_hashnode1_7000_ab", b"ab" * 32)
    s = run_scan(tmp_path / "maps")
    assert keys(s) == {
        ("map_v1", "maps", "archip_db_hash_store"),
        ("map_v1", "maps", "archip_my_lockbox"),
        ("map_data_missing", "maps", "web_hash_volume"),
    }
    assert s.counters["maps.temp_files"] == 2


# ---- object findings -------------------------------------------------------------


def test_object_placement_kinds(tmp_path):
    blocks = FiledStoreWriter(tmp_path / "blocks")
    names = [pithos_hash(bytes([i]) * 64) for i in range(6)]
    blocks.put(names[0], b"a")  # migrated
    blocks.put(names[1], b"b", "pithos")  # unmigrated
    blocks.put(names[2], b"c", "pithos")
    blocks.link(names[2], "pithos", "v04")  # leftover
    blocks.put(names[3], b"d", "pithos")
    blocks.put(names[3], b"d", "v04")  # conflict, even with equal content
    blocks.put(names[4], b"e", "v03")  # 64-hex at neither path: misplaced
    blocks.put("archip_" + names[5], b"f", "v03")  # v0.3 layout: misplaced
    blocks.put(names[5].upper(), b"g")  # not 64 lowercase hex: an ordinary name, at its v0.4 path
    for n in AT_RISK_NAMES[:2]:
        blocks.put(n, b"h", "pithos")
    blocks.put("vol-1_0000000000000001_0000000000000000", b"")  # an empty copy-up: fine
    (tmp_path / "m").mkdir()
    s = run_scan(tmp_path / "m", tmp_path / "blocks")
    assert keys(s) == {
        ("object_unmigrated", "blocks", names[1]),
        ("object_leftover", "blocks", names[2]),
        ("object_conflict", "blocks", names[3]),
        ("object_misplaced", "blocks", names[4]),
        ("object_misplaced", "blocks", "archip_" + names[5]),
        ("object_at_risk", "blocks", AT_RISK_NAMES[0]),
        ("object_at_risk", "blocks", AT_RISK_NAMES[1]),
    }
    paths = {f.name: f.path for f in s.findings}
    assert paths[names[1]] == layout.pithos_path(names[1].encode()).decode()
    s = run_scan(tmp_path / "m", tmp_path / "blocks", off={"blocks": True})
    assert not any(f.kind == "object_at_risk" for f in s.findings)


def test_strays(tmp_path):
    blocks = tmp_path / "blocks"
    FiledStoreWriter(blocks).put("a-good-object", b"x")
    (blocks / "top-level-file").write_bytes(b"x")
    (blocks / "ab").mkdir()
    (blocks / "ab" / "depth-2-file").write_bytes(b"x")
    (blocks / "ab" / "cd").mkdir()
    (blocks / "ab" / "cd" / "depth-3-file").write_bytes(b"x")
    (blocks / "ab" / "cd" / "ef").mkdir()
    (blocks / "ab" / "cd" / "ef" / "dir-at-depth-4").mkdir()
    (blocks / "ab" / "cd" / "ef" / "dir-at-depth-4" / "deeper-object").write_bytes(b"x")
    (blocks / "ab" / "cd" / "ef" / "short").write_bytes(b"x")
    (blocks / "ab" / "cd" / "ef" / "sixsix").write_bytes(b"x")  # 6 bytes: long enough (misplaced)
    os.mkfifo(blocks / "ab" / "cd" / "ef" / "a-fifo-here")
    raw = os.path.join(os.fsencode(blocks), b"ab", b"cd", b"ef", b"caf\xe9-latin1-name")
    with open(raw, "wb") as fh:
        fh.write(b"x")
    s = run_scan(tmp_path / "blocks")  # the blocks dir scanned as a maps store: same strays
    assert keys(s) == {("stray_entry", "maps", n) for n in (
        "top-level-file", "depth-2-file", "depth-3-file", "dir-at-depth-4", "short", "a-fifo-here",
        "caf\\xe9-latin1-name")} | {("object_misplaced", "maps", "sixsix")} | {
        ("not_a_map", "maps", n) for n in ("sixsix", "a-good-object")}  # 1 byte each: no map
    paths = {f.name: f.path for f in s.findings}
    assert paths["caf\\xe9-latin1-name"] == "ab/cd/ef/caf\\xe9-latin1-name"
    assert paths["dir-at-depth-4"] == "ab/cd/ef/dir-at-depth-4"


def test_top_level_lost_and_found_is_the_filesystems_own(tmp_path):
    maps = FiledStoreWriter(tmp_path / "maps")
    maps.put_v2("a-volume", M4, [F.Entry(F.ZERO_HASH, F.OF_ZERO)])
    lf = tmp_path / "maps" / "lost+found"
    lf.mkdir()
    (lf / "#1234").write_bytes(b"recovered by fsck")
    nested = tmp_path / "maps" / "ab" / "lost+found"
    nested.mkdir(parents=True)
    (nested / "inside").write_bytes(b"x")
    s = run_scan(tmp_path / "maps")
    assert keys(s) == {("stray_entry", "maps", "inside")}  # only the top-level one is skipped


def test_non_utf8_directory_names_are_escaped(tmp_path):
    root = os.fsencode(tmp_path / "blocks")
    d = os.path.join(root, b"a\xff", b"cd", b"ef")
    os.makedirs(d)
    with open(os.path.join(d, b"some-object"), "wb") as fh:
        fh.write(b"x")
    s = run_scan(tmp_path / "blocks")  # as a maps store: its 1 byte is no map either
    assert sorted((f.kind, f.name, f.path) for f in s.findings) == [
        ("not_a_map", "some-object", "a\\xff/cd/ef/some-object"),
        ("object_misplaced", "some-object", "a\\xff/cd/ef/some-object")]


# ---- symlinks are never followed -----------------------------------------------------


def test_symlinks_are_strays_and_never_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    other = FiledStoreWriter(elsewhere)
    v1 = F.write_v1(M4, [(0, F.ZERO_HASH)])
    other.put("archip_hidden-volume", v1)  # would be map_v1 if the link were followed
    maps = tmp_path / "maps"
    real = FiledStoreWriter(maps)
    real.put_v2("volume-1", M4, ZERO1)
    d1 = other.path("archip_hidden-volume").parent.parent.parent
    (maps / "zz").symlink_to(d1, target_is_directory=True)  # level 1
    (maps / "ab").mkdir()
    (maps / "ab" / "cd").symlink_to(d1 / os.listdir(d1)[0], target_is_directory=True)  # level 2
    leaf = real.path("volume-1").parent
    (leaf / "link-to-v1-map").symlink_to(other.path("archip_hidden-volume"))  # level 4
    (leaf / "dangling-link").symlink_to(tmp_path / "nothing-here")
    s = run_scan(maps)
    assert keys(s) == {("stray_entry", "maps", n) for n in ("zz", "cd", "link-to-v1-map", "dangling-link")}
    assert s.counters["maps.v1"] == 0


def test_a_fifo_where_a_map_is_probed_does_not_hang_the_scan(tmp_path):
    """archip_NAME makes the scanner look at NAME; a FIFO there must not block it."""
    maps = FiledStoreWriter(tmp_path / "maps")
    maps.put("archip_volume-x", F.write_v1(M4, [(0, F.ZERO_HASH)]))
    fifo = maps.path("volume-x")
    fifo.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-m", "verify", "scan", "--maps-dir", str(tmp_path / "maps"), "--format",
                        "json", "--no-progress"], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 1, p.stderr
    assert {(f["kind"], f["name"]) for f in json.loads(p.stdout)["findings"]} == {
        ("map_v1", "archip_volume-x"), ("stray_entry", "volume-x")}


# ---- unreadable parts: reported with errno, exit 2, the rest completes ------------------


def _world_tmp():
    d = tempfile.mkdtemp(prefix="archverify-test-")
    os.chmod(d, 0o755)
    return Path(d)


@pytest.fixture
def nobody_sample(nobody):
    """A sample store in a dir nobody can reach; the scans run as nobody (tests/as_nobody.py)."""
    d = _world_tmp()
    try:
        s = write_sample(d / "store")
        s.nobody = nobody
        yield s
    finally:
        for p, dirs, _ in os.walk(d):
            for x in dirs:
                os.chmod(os.path.join(p, x), 0o755)
        shutil.rmtree(d)


def _scan_as_nobody(sample, *args):
    return sample.nobody.archverify("scan", "--format", "json", "--no-progress", "-j", "4", *args)


def test_unreadable_dirs_and_files_exit_2_and_the_rest_completes(nobody_sample):
    s = nobody_sample
    blocks = FiledStoreWriter(s.blocks_dir)
    hidden = blocks.put("object-behind-a-closed-door", b"x")
    os.chmod(hidden.parent, 0)  # level 3 dir: cannot be listed
    maps = FiledStoreWriter(s.maps_dir)
    closed_map = maps.put("unreadable-map", F.write_v1(M4, [(0, F.ZERO_HASH)]))
    os.chmod(closed_map, 0)
    lock = maps.put("unreadable-map_lock", b"node9_9999")
    os.chmod(lock, 0)
    p = _scan_as_nobody(s, "--maps-dir", str(s.maps_dir), "--blocks-dir", str(s.blocks_dir))
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    doc = json.loads(p.stdout)
    found = {(f["kind"], f["store"], f["name"]) for f in doc["findings"]}
    unreadable = {(f["store"], f["name"]): f for f in doc["findings"] if f["kind"] == "unreadable"}
    assert set(unreadable) == {("blocks", hidden.parent.name), ("maps", "unreadable-map"),
                               ("maps", "unreadable-map_lock")}
    for f in unreadable.values():
        assert errno.errorcode[errno.EACCES] in f["detail"]
    assert unreadable[("blocks", hidden.parent.name)]["path"] == str(
        hidden.parent.relative_to(s.blocks_dir))
    # everything else was still scanned
    assert found - {("unreadable", k[0], k[1]) for k in unreadable} == planted(s)
    assert doc["summary"]["exit_code"] == 2


def test_unreadable_store_root_is_one_line_error(nobody_sample):
    os.chmod(nobody_sample.blocks_dir, 0)
    s = nobody_sample
    p = _scan_as_nobody(s, "--maps-dir", str(s.maps_dir), "--blocks-dir", str(s.blocks_dir))
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archverify: error:") and str(nobody_sample.blocks_dir) in lines[0]
    assert p.stdout == ""


def test_probes_that_hit_unreadable_dirs(nobody_sample):
    """A probe (map-data, NAME of archip_NAME, the v0.4 path of an old-path object) that
    cannot look is an unreadable finding for the object, never a wrong verdict."""
    root = nobody_sample.maps_dir.parent / "probes"
    maps, blocks = FiledStoreWriter(root / "maps"), FiledStoreWriter(root / "blocks")
    names = {}
    # find names whose header and probed path live in different level-1 dirs
    for i in range(1000):
        a, b = f"volume-{i:04d}", F.mapdata_name(f"volume-{i:04d}", 0)
        if layout.v04_path(a.encode())[:2] != layout.v04_path(b.encode())[:2]:
            names.setdefault("md", (a, b))
        a2 = f"archip_other-{i:04d}"
        if layout.v04_path(a2.encode())[:2] != layout.v04_path(a2[7:].encode())[:2]:
            names.setdefault("v1", (a2, a2[7:]))
        h = hashlib.sha256(b"%d" % i).hexdigest()
        if h[:2] != layout.v04_path(h.encode())[:2].decode():
            names.setdefault("obj", (h, h))
    md_map, md = names["md"]
    maps.put_v2(md_map, M4, ZERO1)
    v1_map, v2_name = names["v1"]
    maps.put(v1_map, F.write_v1(M4, [(0, F.ZERO_HASH)]))
    maps.put_v2(v2_name, M4, ZERO1)
    obj, _ = names["obj"]
    blocks.put(obj, b"x", "pithos")
    blocks.put(obj, b"x", "v04")
    closed = [maps.path(md).parent, maps.path(v2_name).parent, blocks.path(obj, "v04").parent]
    headers = [maps.path(md_map), maps.path(v1_map), blocks.path(obj, "pithos")]
    assert not {h.parent.parent.parent for h in headers} & {d.parent.parent for d in closed}
    for d in closed:
        os.chmod(d, 0)
    p = _scan_as_nobody(nobody_sample, "--maps-dir", str(root / "maps"), "--blocks-dir", str(root / "blocks"))
    assert p.returncode == 2, p.stderr
    doc = json.loads(p.stdout)
    found = {(f["kind"], f["store"], f["name"]) for f in doc["findings"]}
    assert found == {
        ("unreadable", "maps", md_map),  # its map-data could not be looked for
        ("unreadable", "maps", v1_map),  # whether NAME exists could not be told
        ("unreadable", "blocks", obj),  # its v0.4 path could not be looked at
        *{("unreadable", st, d.name) for st, d in zip(("maps", "maps", "blocks"), closed)},  # the dirs
    }
    for f in doc["findings"]:
        assert errno.errorcode[errno.EACCES] in f["detail"]


# ---- files that vanish during the scan are not errors ----------------------------------


def test_files_vanishing_during_the_scan_are_not_errors(tmp_path):
    maps, blocks = FiledStoreWriter(tmp_path / "maps"), FiledStoreWriter(tmp_path / "blocks")
    v1 = F.write_v1(M4, [(0, F.ZERO_HASH)])

    def populate():
        made = []
        for i in range(100):
            made.append(maps.put(f"archip_churn-{i:04d}", v1))
            made.append(maps.put(f"vol-churn-{i:04d}", F.pack_v2_header(M4)))
            h = hashlib.sha256(b"%d" % i).hexdigest()
            made.append(blocks.put(h, b"x", "pithos"))
            made.append(blocks.put(h, b"x", "v04"))
        return made

    for _round in range(2):
        made = populate()
        stop = threading.Event()

        def churn(paths=made):
            for p in reversed(paths):
                if stop.is_set():
                    break
                p.unlink(missing_ok=True)
            for d in sorted({p.parent for p in paths}, key=lambda x: -len(x.parts)):
                if stop.is_set():
                    break
                with_dirs = [d, d.parent, d.parent.parent]
                for x in with_dirs:
                    try:
                        x.rmdir()
                    except OSError:
                        pass

        t = threading.Thread(target=churn)
        t.start()
        try:
            s = run_scan(tmp_path / "maps", tmp_path / "blocks", jobs=4)
        finally:
            stop.set()
            t.join()
        assert not [f for f in s.findings if f.kind in ("unreadable", "stray_entry")]
        assert s.exit_code in (0, 1)
        shutil.rmtree(tmp_path / "maps")
        shutil.rmtree(tmp_path / "blocks")


# ---- a scan never writes ----------------------------------------------------------------


def _tree_state(root: Path) -> dict:
    out = {}
    for p, dirs, files in os.walk(root):
        for n in dirs + files:
            full = os.path.join(p, n)
            st = os.lstat(full)
            digest = None
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
            out[full] = (st.st_mode, st.st_ino, st.st_nlink, st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest)
    return out


def test_scan_changes_nothing_in_the_stores(sample):
    before = _tree_state(sample.maps_dir.parent)
    s = run_scan(sample.maps_dir, sample.blocks_dir, jobs=4)
    assert s.findings
    assert _tree_state(sample.maps_dir.parent) == before


def test_scan_works_on_a_read_only_mount(sample, sample_summary):
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    mnt = Path(tempfile.mkdtemp(prefix="archverify-ro-"))
    try:
        r = subprocess.run(["mount", "--bind", str(sample.maps_dir.parent), str(mnt)], capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"cannot bind-mount here: {r.stderr.decode().strip()}")
        try:
            r = subprocess.run(["mount", "-o", "remount,bind,ro", str(mnt)], capture_output=True)
            if r.returncode != 0:
                pytest.skip("cannot remount read-only here")
            with pytest.raises(OSError):
                (mnt / "probe").write_bytes(b"x")
            s = run_scan(mnt / "maps", mnt / "blocks", jobs=4)
            assert s.findings == sample_summary.findings
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
    finally:
        mnt.rmdir()
