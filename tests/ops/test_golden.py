"""Stores written by the real Archipelago v0.4 peers (tests/fixtures/golden/README.md).

The scan of each store must give exactly the findings its facts file implies, and
every map in it must parse to exactly the header and entries the facts file decodes.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from verify.core import formats as F
from verify.core import layout
from verify.ops import scan as scan_op
from verify.backends.filed.backend import FiledBackend

GOLDEN = Path(__file__).parents[1] / "fixtures" / "golden"

P = "cf3c2dba1fb61d4c13efe4e7c43165a39ff15f7350ef40593240e58887871ed5"  # v0 map at its old Pithos path
Q = "65a3b1970fadbf71fcda00f622b4a9d1a530a96d3efcaf7c4d4dc5277941906f"  # v0 map at its sha256 path
# Pithos blocks the inputs put at their old Pithos paths ("at=old_pithos_path" in the facts);
# no request reads a block's data, so filed never migrates them: still there after.
OLD_PATH_BLOCKS = {
    "04e90216e350e7efb0484537151c5ade9c587177d99923131d69d2cc7fe3ef15",
    "6be1d87a5a0ec2dfb8baa3c09cedc6281e378ef8ebc9601de9af559a9485e066",
    "9f50f16f0d87581f42fe2cdda7d8dc34c21e18b7b5826cf15b93be58c6c012d1",
    "b40616d9e6979b337c4c18120c936fba7e1adb2f51a4712c08a2ab4626d7d265",
    "e9c8aaef7d276738a2bb0e080d4a4f4e02233c223abce7edb9be7b8d576f6d66",
    "f8c3ba80694aa95ad5970eed3285a4ff7e51aaa6336f16c398e3df4066687b59",
}

EXPECTED = {
    "before": {
        ("map_v1", "maps", "archip_alpha-vol1"),
        ("map_v1", "maps", "archip_alpha-vol2"),
        ("map_v1", "maps", "archip_bravo-legacy"),
        ("map_v0", "maps", P),
        ("map_v0", "maps", Q),
        ("object_unmigrated", "maps", P),
        *{("object_unmigrated", "blocks", h) for h in OLD_PATH_BLOCKS},
    },
    # v1 maps alpha-vol1/alpha-vol2 upgraded and purged, P and Q upgraded (P moved to its
    # sha256 path); archip_bravo-legacy was never opened; the old-path blocks were never read.
    "after": {
        ("map_v1", "maps", "archip_bravo-legacy"),
        *{("object_unmigrated", "blocks", h) for h in OLD_PATH_BLOCKS},
    },
}
EXPECTED["after-directio"] = EXPECTED["after"]
# while alpha-vol1 is open (request 02): its v1 map upgraded and purged, the rest untouched
EXPECTED["step02-open-alpha-vol1"] = EXPECTED["before"] - {("map_v1", "maps", "archip_alpha-vol1")}
# while P is open (request 07): P moved to its sha256 path and upgraded; Q not yet
EXPECTED["step07-open-P"] = {
    ("map_v1", "maps", "archip_bravo-legacy"),
    ("map_v0", "maps", Q),
    *{("object_unmigrated", "blocks", h) for h in OLD_PATH_BLOCKS},
}


@pytest.fixture(scope="session")
def stores(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for name in ("before", "after", "after-directio", "step02-open-alpha-vol1", "step07-open-P"):
        d = tmp_path_factory.mktemp(name)
        with tarfile.open(GOLDEN / f"{name}.tar.gz") as tf:
            # trusted fixtures; the "data" filter where this Python has it
            kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tf.extractall(d, **kw)
        out[name] = d
    return out


def _found(root: Path, jobs: int = 2, pithos_migrate_off: bool = False):
    off = {"maps": True, "blocks": True} if pithos_migrate_off else {}
    be = FiledBackend(str(root / "maps"), str(root / "blocks"), off)
    be.validate()
    s = scan_op.scan(be, jobs)
    return s, {(f.kind, f.store, f.name) for f in s.findings}


@pytest.mark.parametrize("name", ["before", "after", "after-directio"])
def test_scan_finds_exactly_what_the_facts_imply(stores, name):
    s, found = _found(stores[name])
    assert found == EXPECTED[name]
    assert s.exit_code == 1
    assert not s.locks  # every map was closed


@pytest.mark.parametrize(("name", "locked"), [("step02-open-alpha-vol1", "alpha-vol1"), ("step07-open-P", P)])
def test_open_maps_hold_locks(stores, name, locked):
    """filed writes NAME_lock, holding its unique string, while a map is open."""
    s, found = _found(stores[name])
    assert found == EXPECTED[name]
    lock = stores[name] / "maps" / layout.v04_path(f"{locked}_lock".encode()).decode()
    owner = lock.read_text()
    assert owner
    assert [(lk.store, lk.name, lk.owner) for lk in s.locks] == [("maps", f"{locked}_lock", owner)]
    assert s.held_locks == s.locks


@pytest.mark.parametrize("name", ["before", "after", "after-directio"])
def test_scan_counts_map_versions(stores, name):
    s, _ = _found(stores[name], jobs=1)
    facts = parse_facts(GOLDEN / {"before": "before-facts.txt", "after": "facts.txt",
                                  "after-directio": "facts-directio.txt"}[name])
    by_version = {v: sum(1 for m in facts.values() if m.version == v) for v in ("v0", "v1", "v2")}
    for v, n in by_version.items():
        assert s.counters.get(f"maps.{v}", 0) == n
    assert s.counters.get("maps.mapdata", 0) == sum(1 for _ in (stores[name] / "maps").rglob("*_" + "?" * 16))


def test_migration_off_changes_nothing_here(stores):
    """None of these names has coinciding paths: pithos_migrate does not matter to them."""
    for name in EXPECTED:
        assert _found(stores[name], pithos_migrate_off=True)[1] == EXPECTED[name]


# ---- the facts files, decoded ------------------------------------------------------


@dataclass
class FactMap:
    name: str
    version: str
    attrs: dict
    entries: list = field(default_factory=list)  # (name, flags)


_MAP = re.compile(r"^MAP (\S+)\s+(v[012])\s+(.*)$")
_V2E = re.compile(r"^\s+\[\s*(\d+)\] flags=0x([0-9a-f]{2}) \S+\s+len=\s*(\d+) (\S+)")
_V1E = re.compile(r"^\s+\[\s*(\d+)\] v1flag=(\d+) (\S+)")
_V0E = re.compile(r"^\s+\[\s*(\d+)\] ([0-9a-f]{64})\s")


def parse_facts(path: Path) -> dict[str, FactMap]:
    maps: dict[str, FactMap] = {}
    cur = None
    for line in path.read_text().splitlines():
        if m := _MAP.match(line):
            attrs = dict(kv.split("=", 1) for kv in m.group(3).split() if "=" in kv)
            cur = maps[m.group(1)] = FactMap(m.group(1), m.group(2), attrs)
            continue
        if cur is None or not line.startswith("   ["):
            cur = None if not line.startswith("   [") else cur
            continue
        if cur.version == "v2":
            m = _V2E.match(line)
            assert int(m.group(1)) == len(cur.entries) and int(m.group(3)) == len(m.group(4))
            cur.entries.append((m.group(4), int(m.group(2), 16)))
        elif cur.version == "v1":
            m = _V1E.match(line)
            nm, flag = m.group(3), int(m.group(2))
            flags = F.OF_WRITABLE | F.OF_ARCHIP if flag else (F.OF_ZERO if nm == F.ZERO_HASH else 0)
            cur.entries.append((nm, flags))
        else:
            m = _V0E.match(line)
            nm = m.group(2)
            cur.entries.append((nm, F.OF_ZERO if nm == F.ZERO_HASH else 0))
    return maps


def _read_map(root: Path, fm: FactMap) -> F.Map:
    header = (root / fm.attrs["path"]).read_bytes()
    assert len(header) == int(fm.attrs["file_size"])
    if fm.version == "v0":
        return F.parse_v0(header)
    if fm.version == "v1":
        return F.parse_v1(header)
    hdr = F.parse_v2_header(header)
    mapdata = {}
    for b in range(F.mapdata_blocks(hdr.size, hdr.blocksize)):
        md = F.mapdata_name(fm.name, b).encode()
        mapdata[b] = (root / "maps" / layout.v04_path(md).decode()).read_bytes()
    return F.parse_v2(header, mapdata)


@pytest.mark.parametrize(("name", "facts_file"), [("before", "before-facts.txt"), ("after", "facts.txt"),
                                                  ("after-directio", "facts-directio.txt")])
def test_every_map_parses_as_the_facts_decode_it(stores, name, facts_file):
    facts = parse_facts(GOLDEN / facts_file)
    assert len(facts) >= 5
    for fm in facts.values():
        m = _read_map(stores[name], fm)
        assert m.version.value == fm.version, fm.name
        assert [(e.name, e.flags) for e in m.entries] == fm.entries, fm.name
        if fm.version != "v0":
            assert m.size == int(fm.attrs["size"]), fm.name
        if fm.version == "v2":
            assert m.blocksize == int(fm.attrs["blocksize"])
            assert m.flags == int(fm.attrs["flags"].split("(")[0])
            assert m.epoch == int(fm.attrs["epoch"])
            assert m.nr_objs == int(fm.attrs["nr_objs"]) == len(m.entries)


@pytest.mark.parametrize("name", ["after", "after-directio"])
def test_upgraded_maps_in_detail(stores, name):
    root = stores[name]
    facts = parse_facts(GOLDEN / ("facts.txt" if name == "after" else "facts-directio.txt"))

    def get(n):
        return _read_map(root, facts[n])

    # v1 upgrade: epoch 1 at first, 2 after the snapshot; snapshot read-only, epoch 0, same objects
    vol1, snap1 = get("alpha-vol1"), get("alpha-snap1")
    assert (vol1.flags, vol1.epoch, snap1.flags, snap1.epoch) == (0, 2, F.MF_READONLY, 0)
    assert vol1.entries[4] == snap1.entries[4] == F.Entry(
        "archip_874122226d39170d752b5cf6bd8317e64fe803ab110a0059c889fa118b16d275", F.OF_ARCHIP)
    assert all(not e.flags & F.OF_WRITABLE for e in snap1.entries)
    # deleted map: header flagged deleted, epoch kept, its own archip objects as 0x0f entries
    vol2 = get("alpha-vol2")
    assert vol2.deleted and vol2.epoch == 1
    assert [i for i, e in enumerate(vol2.entries) if e.flags == 0x0F] == [0, 3, 7, 8]
    assert all(e.deleted and e.name.startswith("archip_") for e in vol2.entries if e.flags == 0x0F)
    # clone from a v0 image, then copy-ups VOLUME_<epoch>_<index>
    vm1 = get("bravo-vm1")
    assert (vm1.flags, vm1.epoch, vm1.nr_objs) == (0, 1, 14)
    assert vm1.entries[13] == F.Entry(F.copyup_name("bravo-vm1", 1, 13), F.OF_WRITABLE | F.OF_ARCHIP)
    # P, upgraded in place: read-only v2 header over the first 32 bytes, stale v0 digests after
    p_now = (root / facts[P].attrs["path"]).read_bytes()
    p_before = (stores["before"] / "maps" / layout.pithos_path(P.encode()).decode()).read_bytes()
    pm = get(P)
    assert (pm.readonly, pm.epoch, pm.size) == (True, 0, 50331548)
    assert p_now[32:len(p_before)] == p_before[32:]
    info = F.classify(p_now[: F.HEADER_READ], len(p_now), P.encode())
    assert info.cls is F.HeaderClass.V2
    assert [e.name for e in pm.entries] == [e.name for e in F.parse_v0(p_before).entries]


def test_direct_io_pads_every_map_object_to_512(stores):
    facts = parse_facts(GOLDEN / "facts-directio.txt")
    for fm in facts.values():
        size = (stores["after-directio"] / fm.attrs["path"]).stat().st_size
        if fm.version == "v2":
            assert size == 512, fm.name
    for md in (stores["after-directio"] / "maps").rglob("*_" + "?" * 16):
        assert md.stat().st_size % 512 == 0
    # the padding holds no entries: alpha-vol2's map-data has 12 slots, 9 entries
    vol2 = _read_map(stores["after-directio"], facts["alpha-vol2"])
    assert len(vol2.entries) == 9
