"""The store contract, held to account on every registered backend with the same tests.

Each backend in ``verify.backends.REGISTRY`` gets fresh, empty stores here (filed: two
tmp dirs; RADOS: a namespace of its own in two pools of the session's real Ceph;
mixed: a filed dir for one store and a pool for the other, both ways round) and
must pass every test of this module for the capabilities it declares. A new backend
adds its builders to :data:`BUILDERS`; the first test fails until it does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import uuid
from pathlib import Path

import pytest

import dask_faults
from dask_faults import killing
from rados_cluster import write_rados_store
from planted_check import CHECK_KINDS, build_store
from verify import backends
from verify.ops import check as check_op
from verify.core.findingset import using
from verify.core.spill import Spill
from verify.backends import BadObjectName
from verify.core.errors import StoreError
from verify.core.summary import ShardResult

POOLS = ("conformance-maps", "conformance-blocks")


def _filed(request, tmp_path):
    from verify.backends.filed.backend import FiledBackend

    for d in ("maps", "blocks"):
        (tmp_path / d).mkdir()
    return FiledBackend(str(tmp_path / "maps"), str(tmp_path / "blocks"))


def _rados(request, tmp_path):
    from verify.backends.rados.backend import RadosBackend

    cluster = request.getfixturevalue("ceph_cluster")
    cluster.ensure_pools(*POOLS)
    # a namespace per test: empty stores without a pool per test
    be = RadosBackend(*POOLS, str(cluster.conf), None, str(cluster.keyring), namespace=f"t-{uuid.uuid4().hex[:12]}")
    be.validate()
    return be


def _mixed(filed_role):
    def build(request, tmp_path):
        from verify.backends.filed.backend import FiledBackend
        from verify.backends.mixed import MixedBackend

        whole = _rados(request, tmp_path)
        (tmp_path / filed_role).mkdir()
        filed = FiledBackend(*[str(tmp_path / filed_role) if r == filed_role else None for r in ("maps", "blocks")])
        pools = [None if r == filed_role else p for r, p in zip(("maps", "blocks"), POOLS)]
        rados = type(whole)(*pools, whole.ceph_conf, None, whole.keyring, namespace=whole.namespace)
        parts = (filed, rados) if filed_role == "maps" else (rados, filed)
        be = MixedBackend(*parts)
        be.validate()
        return be
    return build


# builder name: (registered backend, builder)
BUILDERS = {"filed": ("filed", _filed), "rados": ("rados", _rados),
            "mixed-filed-blocks": ("mixed", _mixed("blocks")), "mixed-filed-maps": ("mixed", _mixed("maps"))}


def test_every_registered_backend_is_held_to_the_suite():
    assert {name for name, _ in BUILDERS.values()} == set(backends.names())


@pytest.fixture(params=list(BUILDERS))
def be(request, tmp_path):
    return BUILDERS[request.param][1](request, tmp_path)


def needs(be, capability):
    if not backends.supports(be, capability):
        pytest.skip(f"{be.name} does not declare {capability}")


def test_implements_what_it_declares(be):
    entry = backends.entry(be.name)
    assert type(be) is entry.load()
    assert backends.SCAN in entry.capabilities
    assert entry.capabilities <= set(backends.PROTOCOLS) | {backends.PATHS}
    for cap in entry.capabilities & set(backends.PROTOCOLS):
        assert isinstance(be, backends.PROTOCOLS[cap]), cap


# ---- what a scan is told before it starts: validate, describe, shards, estimated_objects ----


def _maps_store_missing(be, tmp_path):
    """``be`` with its maps store replaced by one that does not exist (a dir or a pool)."""
    if be.name == "mixed":
        maps, blocks = (be.part("maps"), be.part("blocks"))
        return type(be)(_maps_store_missing(maps, tmp_path), blocks)
    if be.name == "filed":
        return dataclasses.replace(be, maps_dir=str(tmp_path / "no-such-maps-dir"))
    return dataclasses.replace(be, pool="conformance-no-such-pool")


def test_validate_passes_on_stores_that_are_there(be):
    assert be.validate() is None


def test_validate_refuses_a_missing_store_in_one_line_naming_it(be, tmp_path):
    broken = _maps_store_missing(be, tmp_path)
    with pytest.raises(StoreError) as e:
        broken.validate()
    line = str(e.value)
    assert "\n" not in line and ("no-such-maps-dir" in line or "conformance-no-such-pool" in line), line


def test_describe_names_every_store_it_scans_and_only_those(be):
    d = be.describe()
    assert set(d) == {s.store for s in be.shards(1)} == {"maps", "blocks"}
    assert json.loads(json.dumps(d)) == d  # the report's ``stores`` section, as it is
    for role, what in d.items():
        assert what["type"] in backends.names(), (role, what)
        named = what.get("dir") or what.get("pool")
        assert named, (role, what)


@pytest.mark.parametrize("per_store", [1, 3, 255, 256, 1000])
def test_shards_cut_each_store_into_disjoint_parts_covering_it(be, per_store):
    shards = be.shards(per_store)
    assert shards == be.shards(per_store)  # the same cut every time: resumed and distributed runs agree
    for role in ("maps", "blocks"):
        mine = [(s.lo, s.hi, s.total) for s in shards if s.store == role]
        assert 1 <= len(mine) <= per_store, (role, len(mine))
        total = mine[0][2]
        assert {t for _, _, t in mine} == {total}
        assert mine[0][0] == 0 and mine[-1][1] == total
        assert all(lo < hi for lo, hi, _ in mine)
        assert all(hi == lo2 for (_, hi, _), (lo2, _, _) in zip(mine, mine[1:]))


# what a store holds, as counted (the rest, such as list calls or probes, is the work done)
WHAT_IS_STORED = {"files", "v0", "v1", "v2", "corrupt", "mapdata", "other", "locks", "hash_files", "temp_files",
                  "header_bytes"}


def test_every_object_is_scanned_in_exactly_one_shard(be):
    needs(be, backends.OBJECTS)
    write_rados_store(_Through(be, "maps"), _Through(be, "blocks"))

    def scanned(per_store):
        r = ShardResult.merge_all(be.scan_shard(s, 2) for s in be.shards(per_store))
        seen = {k: n for k, n in r.counters.items() if k.split(".", 1)[1] in WHAT_IS_STORED}
        return seen, sorted((f.kind, f.store, f.name, f.detail) for f in r.findings)

    whole_counters, whole_findings = scanned(1)
    assert whole_counters["maps.files"] > 0 and whole_counters["blocks.files"] > 0 and whole_findings
    for per_store in (4, 256):
        counters, findings = scanned(per_store)
        assert counters == whole_counters, per_store
        assert findings == whole_findings, per_store


def test_estimated_objects_is_a_positive_count_or_none_and_never_fails(be):
    # a count that says nothing (0: an empty store, or a cluster without a ceph-mgr) is None, never a total of 0
    assert be.estimated_objects() is None
    needs(be, backends.OBJECTS)
    write_rados_store(_Through(be, "maps"), _Through(be, "blocks"))
    est = be.estimated_objects()
    assert est is None or (isinstance(est, int) and est > 0), est


# ---- object I/O -------------------------------------------------------------------------

NAMES = [b"vol-000", b"a" * 64, b"archip_" + b"b" * 64, b"vol-000_0000000000000001", b"with space and\nnewline",
         b"\xce\xbb-utf8", b"x"]


def test_objects_round_trip(be):
    needs(be, backends.OBJECTS)
    data = bytes(range(256)) * 40 + b"\0" * 100
    for i, name in enumerate(NAMES):
        be.write("maps", name, data[i:])
    for i, name in enumerate(NAMES):
        assert be.read("maps", name) == data[i:]
        assert be.stat("maps", name) == len(data) - i
        assert be.read("maps", name, 10, 7) == data[i + 10:i + 17]
        assert be.read("maps", name, 5) == data[i + 5:]
    be.write("maps", NAMES[0], b"short")  # replaced whole, not overwritten in place
    assert be.read("maps", NAMES[0]) == b"short"
    be.write("blocks", NAMES[0], b"")
    assert be.stat("blocks", NAMES[0]) == 0 and be.read("blocks", NAMES[0]) == b""
    assert be.read("blocks", NAMES[1]) is None  # the stores are apart
    assert be.remove("maps", NAMES[0]) is True
    assert be.stat("maps", NAMES[0]) is None and be.read("maps", NAMES[0]) is None
    assert be.remove("maps", NAMES[0]) is False


def test_missing_objects_are_none_never_errors(be):
    needs(be, backends.OBJECTS)
    for store in ("maps", "blocks"):
        assert be.read(store, b"never-written") is None
        assert be.read(store, b"never-written", 3, 4) is None
        assert be.stat(store, b"never-written") is None
        assert be.remove(store, b"never-written") is False
    assert be.list_page("maps") == ([], None)


def test_write_at_keeps_the_bytes_around_as_the_peer_does(be):
    needs(be, backends.OBJECTS)
    maps = backends.store_backend(be, "maps")
    pad = maps.name == "filed" and maps.direct.get("maps", True)  # filed with direct I/O: whole 512-byte sectors

    def expect(raw: bytes) -> bytes:
        return raw + bytes(-len(raw) % 512) if pad else raw

    be.write_at("maps", b"new-object", 10, b"abc")  # created, the gap zero-filled
    assert be.read("maps", b"new-object") == expect(bytes(10) + b"abc")
    be.write("maps", b"old-map", b"0123456789" * 10)
    be.write_at("maps", b"old-map", 0, b"HEAD")  # over the first bytes: the tail kept
    assert be.read("maps", b"old-map") == expect(b"HEAD" + (b"0123456789" * 10)[4:])
    be.write_at("maps", b"old-map", 0, b"HEAD")  # replayed: nothing changes
    assert be.read("maps", b"old-map") == expect(b"HEAD" + (b"0123456789" * 10)[4:])
    be.write_at("maps", b"old-map", 98, b"END!")  # past the end: extended
    assert be.read("maps", b"old-map")[:102] == b"HEAD" + (b"0123456789" * 10)[4:98] + b"END!"
    assert be.read("blocks", b"old-map") is None


def test_lock_owner_only_for_held_locks(be):
    needs(be, backends.OBJECTS)
    be.write("maps", b"vol-a", b"x")
    assert be.lock_owner("maps", b"vol-a") is None  # no lock object
    be.write("maps", b"vol-a_lock", b"")
    assert be.lock_owner("maps", b"vol-a") is None  # what a clean unlock leaves
    be.write("maps", b"vol-a_lock", b"node1_1234")
    assert be.lock_owner("maps", b"vol-a") == "node1_1234"


@pytest.mark.parametrize("bad", [b"", b"a\0b"])
def test_names_no_store_can_hold_are_refused(be, bad):
    needs(be, backends.OBJECTS)
    with pytest.raises(BadObjectName):
        be.write("maps", bad, b"x")
    with pytest.raises(BadObjectName):
        be.read("maps", bad)


@pytest.mark.parametrize("limit", [1, 7, 1000])
def test_listing_pages_cover_everything_exactly_once(be, limit):
    needs(be, backends.OBJECTS)
    names = set(NAMES) | {f"obj-{i:03d}".encode() for i in range(40)}
    for n in names:
        be.write("blocks", n, n)
    be.write("maps", b"only-in-maps", b"")
    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = be.list_page("blocks", cursor, limit)
        assert len(page) <= limit
        seen += page
        pages += 1
        if cursor is None:
            break
        assert page  # a page with a next page is never empty
    assert sorted(seen) == sorted(names)  # each exactly once
    assert pages >= len(names) // limit


# ---- map lookup by name (pithos-check) -----------------------------------------------------

M = 4 << 20


def _lookup_maps() -> dict[bytes, bytes]:
    """Maps of every version Pithos may name, as bytes (hand-made from FORMATS.md's layouts
    where the writers could hide a reader's mistake)."""
    from verify.core import formats as F

    digests = [bytes([i % 255 + 1]) * 32 for i in range(200)]
    header, md = F.write_v2(3 * M, [F.Entry(F.ZERO_HASH, F.OF_ZERO)] * 3, flags=F.MF_READONLY, epoch=0,
                            name="vol-v2-new")
    maps = {
        b"1a" * 32: b"".join(digests[:3]) + bytes(32) + digests[5],  # v0: 3 entries, then the end
        b"2b" * 32: b"".join(digests),  # v0 of 200 entries: more than one 4 KiB read holds
        b"3c" * 32: F.ZERO_DIGEST,  # an empty file's map: one zero-block entry
        b"snf_file_0123456789abcdef": b"".join(digests[:2]),  # unsigned, not v1: v0 (assume-v0)
        b"4d" * 32: b"".join(digests[:2]).ljust(512, b"\0"),  # padded by direct I/O
        b"archip_vol-v1-old": struct.pack("<IQ", 1, 2 * M) + (b"\0" + F.ZERO_DIGEST) * 2,
        b"archip_vol-v1-big": struct.pack("<IQ", 1, 200 * M) + (b"\0" + F.ZERO_DIGEST) * 200,  # > 4 KiB
        b"archip_vol-v1-cut": struct.pack("<IQ", 1, 2 * M) + b"\0" * 20,  # truncated: corrupt
        b"vol-v2-new": header,
        b"archip_vol-v2-new": struct.pack("<IQ", 1, 9 * M),  # NAME answers first: never looked at
        b"vol-bad-version": struct.pack(">IIQIIQ", F.V2_SIGNATURE, 9, M, M, 0, 0),
        b"vol-empty-object": b"",
    }
    maps.update({k.encode(): v for k, v in md.items()})
    return maps


LOOKED_UP = ["1a" * 32, "2b" * 32, "3c" * 32, "snf_file_0123456789abcdef", "4d" * 32, "vol-v1-old", "vol-v1-big",
             "vol-v1-cut", "vol-v2-new", "vol-bad-version", "vol-empty-object", "vol-nowhere", "5e" * 32, "", "a\0b"]


def test_map_lookup_answers_as_filed_does(be, tmp_path):
    """Maps of each version written through the object I/O, looked up by name: the same answer
    as filed's for the same bytes, placement (where, path) aside."""
    needs(be, backends.MAP_LOOKUP)
    needs(be, backends.OBJECTS)
    import dataclasses

    from verify.core import layout
    from verify.backends.filed.maplookup import FiledMaps
    from verify.backends.maplookup import LookupError_, MapInfo

    maps = _lookup_maps()
    ref_root = tmp_path / "reference-maps"
    for name, data in maps.items():
        be.write("maps", name, data)
        p = ref_root / layout.v04_path(name).decode()
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(be.read("maps", name))  # what the store holds (filed with direct I/O pads it)
    limits = [10, 300, 0, 5, 10, None, None, None, None, None, 3, 1, 1, 1, 1]
    part = backends.store_backend(be, "maps")
    with FiledMaps(str(ref_root)) as ref:
        lookup = backends.map_lookup(be, 2)  # the contract's way in: a mixed backend's maps part answers
        try:
            for lim in (limits, None, [4] * len(LOOKED_UP)):
                got, want = lookup.lookup_maps(LOOKED_UP, lim), ref.lookup_maps(LOOKED_UP, lim)
                assert set(got) == set(LOOKED_UP)
                for name in LOOKED_UP:
                    g, w = got[name], want[name]
                    if isinstance(w, MapInfo):
                        assert isinstance(g, MapInfo), name
                        assert dataclasses.replace(g, where="", path=None) == \
                            dataclasses.replace(w, where="", path=None), name
                        assert g.where == ("pool" if part.name == "rados" else w.where)
                    else:
                        assert g == w, name
            bad = lookup.lookup_maps(["", "a\0b"])
            assert bad == {"": LookupError_("", 0), "a\0b": LookupError_("a\0b", 0)}
            assert {n: i.v0_entries for n, i in lookup.lookup_maps(LOOKED_UP[:2], [500, 500]).items()} == \
                {"1a" * 32: 3, "2b" * 32: 200}
            listed = {(n, h.cls.value) for n, _p, h in lookup.list_maps()}
            assert listed == {(n, h.cls.value) for n, _p, h in ref.list_maps()}
            # check_rows: one verdict byte per Pithos row, as filed's C prober gives it for the same bytes
            rows = LOOKED_UP[:13] + ["archip:vol-v2-new", "archip:vol-nowhere"]  # names any store can hold
            sizes = [3 * M, 200 * M, 0, None, 3 * M, 2 * M, 200 * M, 2 * M, 3 * M, None, 1, 5, None, 9 * M, 9 * M]
            assert len(sizes) == len(rows)
            verdicts = lookup.check_rows(rows, sizes)
            assert verdicts == ref.check_rows(rows, sizes)
            assert len(set(verdicts)) >= 5, verdicts.hex()  # ok, missing, size and corrupt of several versions
        finally:
            lookup.close()


def test_a_kind_that_declares_no_map_lookup_is_refused_in_one_line():
    @dataclasses.dataclass
    class Unregistered:  # a store no registry entry names declares nothing
        name: str = "nonesuch"

        def describe(self):
            return {"maps": {"type": "nonesuch", "dir": "/srv/maps"}}

        def maps_lookup(self, jobs):  # offered, but not declared: never reached
            raise AssertionError("probed for a method instead of asking the registry")

    from verify.core.errors import UsageError

    with pytest.raises(UsageError) as e:
        backends.map_lookup(Unregistered(), 1)
    assert str(e.value) == "pithos-check cannot look maps up by name in this nonesuch maps store (/srv/maps)"


# ---- the scan and the reference check of the same planted store ---------------------------


class _Through:
    """An ioctx-like writer over the contract's object I/O, for the store planters of the tests."""

    def __init__(self, be, store):
        self.be, self.store = be, store

    def write_full(self, name, data):
        self.be.write(self.store, name.encode() if isinstance(name, str) else name, data)

    def get_pool_name(self):
        return self.store


def test_scan_finds_what_was_planted(be):
    needs(be, backends.OBJECTS)
    st = write_rados_store(_Through(be, "maps"), _Through(be, "blocks"))
    kinds = {k for k, _ in st.planted}
    from verify.ops.scan import scan

    s = scan(be, 2, progress=False)
    assert {(f.kind, f.name) for f in s.findings if f.kind in kinds} == st.planted
    assert s.exit_code == 1


def _plant_check_store(be, root: Path):
    """tests/ops/test_check.py's store, each object written by name through the contract."""
    p = build_store(root)
    for store, top in (("maps", p.maps), ("blocks", p.blocks)):
        for dirpath, _dirs, files in os.walk(top):
            for f in files:
                be.write(store, os.fsencode(f), (Path(dirpath) / f).read_bytes())
    return p


@pytest.fixture
def planted(be, tmp_path):
    needs(be, backends.OBJECTS)
    return _plant_check_store(be, tmp_path / "src")


def test_reference_check_finds_what_was_planted(be, planted):
    needs(be, backends.REFERENCES)
    s = check_op.check(be, 2, progress=False, verify_data=True)
    got = {(f.kind, f.store, f.name) for f in s.findings if f.kind in CHECK_KINDS | {"map_corrupt"}}
    assert got == planted.expect | {("object_content_mismatch", "blocks", n) for n in planted.flipped}
    assert s.counters["check.stage.data"] == 1
    for f in s.findings:
        if f.kind == "object_missing":
            for map_name, idx in planted.missing_refs[f.name].items():
                assert f"{map_name}[{','.join(map(str, idx))}]" in f.detail


def test_a_spilled_check_equals_the_check_in_ram(be, planted, tmp_path):
    """A budget of 512 bytes spills the findings (and a mixed store's join) as sorted runs to the spill
    dir: the same findings in the same order, the same counters and exit code; the dir is empty after."""
    needs(be, backends.REFERENCES)
    whole = check_op.check(be, 2, progress=False, verify_data=True)
    (tmp_path / "spill").mkdir()
    with using(Spill(memory=512, tmpdir=str(tmp_path / "spill"))) as tiny:
        spilled = check_op.check(be, 2, progress=False, verify_data=True)
        assert spilled.findings.spilled and tiny.spilled_bytes > 0
        assert "findings-run" in tiny.made
        # the reference index cannot fit 256 bytes: every backend takes the sharded join, spilled
        assert spilled.counters["refs.shards"] >= 2 and "join-refs" in tiny.made
        got = [f.as_dict() for f in spilled.findings]  # read while its spill dir is there
    assert got == [f.as_dict() for f in whole.findings]
    assert counts(spilled) == counts(whole) and spilled.exit_code == whole.exit_code == 1
    assert list((tmp_path / "spill").iterdir()) == []


# ---- the sharded check equals the local one ------------------------------------------------


@pytest.fixture(scope="module")
def dask_address():
    pytest.importorskip("distributed")
    with dask_faults.two_workers() as (address, _client):
        yield address


# what a process read itself: a local check's reference stage reads no header its scan stage read,
# a Dask shard reads its maps afresh
PER_PROCESS_IO = {"refs.index_bytes", "refs.header_reads", "refs.map_bytes", "refs.shards"}


def counts(summary) -> dict:
    """Counters but the index size (per process: the whole set locally, one partition on Dask), what each
    process read itself, and times."""
    return {k: v for k, v in summary.counters.items() if k not in PER_PROCESS_IO and not k.endswith("_us")}


def sorted_json(summary) -> list:
    import json

    return sorted(json.dumps(f.as_dict(), sort_keys=True) for f in summary.findings)


@pytest.mark.parametrize("shards", [1, 5])
def test_sharded_check_equals_local(be, planted, dask_address, shards):
    needs(be, backends.SHARDED)
    from verify.cluster import check as distributed_check

    # the scan's I/O counters (listing calls, probes) depend on its shards: the same on both sides
    local = check_op.check(be, 1, progress=False, verify_data=True, shards_per_store=shards)
    dask = distributed_check.check(be, dask_address, 1, progress=False, verify_data=True, shards_per_store=shards)
    assert sorted_json(dask) == sorted_json(local)
    assert dask.exit_code == local.exit_code == 1
    assert counts(dask) == counts(local)
    assert {f.kind for f in local.findings} >= {"object_missing", "object_orphan", "object_content_mismatch"}


def test_many_entries_naming_one_missing_object_are_named_alike(be, dask_address, tmp_path):
    """More entries name the lost object than a detail shows: which ones it shows is the same on Dask."""
    needs(be, backends.SHARDED)
    from verify.cluster import check as distributed_check
    from verify.core import formats as F

    lost = "archip_" + "d" * 64
    for i in range(30):
        header, md = F.write_v2(2 * F.BLOCK_SIZE_4M, [F.Entry(lost, F.OF_ARCHIP), F.Entry(lost, F.OF_ARCHIP)],
                                name=f"vol-{i:02d}")
        be.write("maps", f"vol-{i:02d}".encode(), header)
        for k, v in md.items():
            be.write("maps", k.encode(), v)
    be.write("blocks", b"kept-nowhere", b"x")
    local = check_op.check(be, 1, progress=False)
    missing = [f for f in local.findings if f.kind == "object_missing"]
    assert [f.name for f in missing] == [lost] and "60 entries of 30 maps" in missing[0].detail
    for shards in (3, 16):
        dask = distributed_check.check(be, dask_address, 1, progress=False, shards_per_store=shards)
        assert sorted_json(dask) == sorted_json(local)


@pytest.mark.parametrize("method", ["check_shard", "explain_shard"])
def test_killed_worker_sharded_check_still_exact(be, planted, dask_address, tmp_path, method):
    needs(be, backends.SHARDED)
    import psutil

    from verify.cluster import check as distributed_check

    local = check_op.check(be, 1, progress=False)
    marker = tmp_path / "killed.pid"
    dask = distributed_check.check(killing(be, marker, method), dask_address, 1, progress=False, shards_per_store=4)
    pid = int(marker.read_text())
    try:
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        pass
    assert sorted_json(dask) == sorted_json(local)
    assert dask.exit_code == local.exit_code


def store_flags(be) -> list[str]:
    """The command-line flags naming ``be``'s stores (no --backend: the flags imply it)."""
    flags = []
    for role, filed_flag, rados_flag in (("maps", "--maps-dir", "--pool"), ("blocks", "--blocks-dir", "--blocks-pool")):
        part = backends.store_backend(be, role)
        flags += [filed_flag, part.dirs()[role]] if part.name == "filed" else [rados_flag, part.pools()[role]]
    rados = next((p for p in map(backends.store_backend, [be, be], backends.ROLES) if p.name == "rados"), None)
    if rados is not None:
        flags += ["-c", rados.ceph_conf, "--keyring", rados.keyring, "--namespace", rados.namespace]
    return flags


def test_cli_check_dask_equals_local(be, planted):
    """archverify check --dask local:2, as an operator runs it, on every backend that declares it."""
    needs(be, backends.SHARDED)
    import json

    from click.testing import CliRunner

    from verify.cli.main import cli

    def run(*extra):
        res = CliRunner().invoke(cli, ["check", *store_flags(be), "--format", "json", "--no-progress", "-j", "1",
                                       "--shards", "3", *extra])
        return res.exit_code, json.loads(res.stdout)

    code, doc = run()
    dcode, ddoc = run("--dask", "local:2")
    assert dcode == code == 1
    assert sorted(json.dumps(f, sort_keys=True) for f in ddoc["findings"]) == \
        sorted(json.dumps(f, sort_keys=True) for f in doc["findings"])
    assert ddoc["check"]["stages_run"] == doc["check"]["stages_run"] == ["scan", "references"]


# ---- what the commands ask of a store beyond reading it: paths, pithos_migrate, kept heads ----


def _kind_of(be, role):
    return be.describe()[role]["type"]


def test_store_dir_is_a_dir_exactly_where_the_kind_keeps_paths(be):
    """store_dir answers the dir (where pins, old Pithos paths and store locks are) for a store of
    a kind declaring PATHS, and None for any other (a pool): what finalize and migrate-objects ask."""
    for role in backends.ROLES:
        kind = backends.entry(_kind_of(be, role))
        d = be.store_dir(role)
        if backends.PATHS in kind.capabilities:
            assert d == be.describe()[role]["dir"] and os.path.isdir(d), (role, d)
            if backends.supports(be, backends.OBJECTS):
                be.write(role, b"vol-in-a-dir", b"x")
                assert any("vol-in-a-dir" in files for _, _, files in os.walk(d)), role
        else:
            assert d is None, (role, d)
    assert be.store_dir("neither") is None


def test_with_pithos_migrate_is_the_same_stores_read_as_archipelago_would(be):
    """The view for pithos_migrate on or off holds the same stores; only stores kept at paths
    say the setting (a pool has no old Pithos paths), and the view scans the same objects."""
    needs(be, backends.OBJECTS)
    write_rados_store(_Through(be, "maps"), _Through(be, "blocks"))
    from verify.ops.scan import scan

    def stored(summary):
        return {k: n for k, n in summary.counters.items() if k.split(".", 1)[-1] in WHAT_IS_STORED}

    whole = scan(be, 2, progress=False)
    assert stored(whole)["maps.files"] > 0
    for on in (True, False):
        view = be.with_pithos_migrate(on)
        assert type(view) is type(be) and view.name == be.name
        for role in backends.ROLES:
            desc, mine = view.describe()[role], be.describe()[role]
            if be.store_dir(role) is not None:
                assert desc.pop("pithos_migrate_known_off") is (not on), role
                mine.pop("pithos_migrate_known_off")
            assert desc == mine, role
            assert view.store_dir(role) == be.store_dir(role)
        s = scan(view, 2, progress=False)
        assert stored(s) == stored(whole)
        assert {(f.kind, f.name) for f in s.findings} == {(f.kind, f.name) for f in whole.findings}


def test_keep_heads_changes_no_finding_of_the_references(be, planted):
    """keep_heads before the scan (check's first stage) lets a backend keep what the references
    read again; with or without the scan in between, the reference stage finds the same."""
    needs(be, backends.REFERENCES)

    def refs():
        r = be.check_references(2)
        return sorted((f.kind, f.store, f.name, f.detail) for f in r.findings)

    plain = refs()
    assert {(k, st, n) for k, st, n, _ in plain if k in CHECK_KINDS} == \
        {x for x in planted.expect if x[0] in CHECK_KINDS}
    assert be.keep_heads() is None
    assert refs() == plain  # kept nothing (no scan ran): the references read everything again
    be.keep_heads()
    for shard in be.shards(3):
        be.scan_shard(shard, 2)
    assert refs() == plain  # what the scan kept, reused


def _options_of(be) -> dict:
    """The store options that name ``be``'s stores, as a user types them (the test may look at kinds)."""
    opts = {}
    for i, role in enumerate(backends.ROLES):
        desc = be.describe()[role]
        flag = backends.entry(desc["type"]).options[i]
        opts[flag] = desc.get("dir") or desc.get("pool")
        part = backends.store_backend(be, role)
        if desc["type"] == "rados":
            opts.update(ceph_conf=part.ceph_conf, keyring=part.keyring, namespace=part.namespace)
    return opts


def test_from_options_builds_the_backend_the_options_name(be):
    """backends.from_options: the kind the store options call for, the same stores."""
    built = backends.from_options(None, **_options_of(be))
    assert built.name == be.name
    assert built.describe() == be.describe()


def test_a_backend_travels_without_its_handles(be):
    """portable(): what a Dask worker gets (plain pickle here) scans and describes as the original."""
    import pickle

    from verify.backends.base import portable

    needs(be, backends.OBJECTS)
    be.write("maps", b"vol-travels", b"")
    there = pickle.loads(pickle.dumps(portable(be)))
    assert there.describe() == be.describe()
    shard = be.shards(1)[0]
    assert there.scan_shard(shard, 1).counters["maps.files"] == be.scan_shard(shard, 1).counters["maps.files"] == 1


@pytest.mark.parametrize("conf, want", [("filed", ("filed", ("maps", "blocks"))), ("mixed", ("filed", ("blocks",))),
                                        ("rados", None)])
def test_path_stores_are_the_stores_of_kinds_with_paths(tmp_path, conf, want):
    """What migrate-objects works on: the stores kept at paths, per archipelago.conf; none is one line."""
    from verify.config import archipelago as config
    from verify.core.errors import UsageError

    src = (Path(__file__).parents[1] / "fixtures" / f"archipelago-{conf}.conf").read_text()
    for d in ("maps", "blocks"):
        (tmp_path / d).mkdir()
    path = tmp_path / "archipelago.conf"
    path.write_text(src.replace("@MAPS@", str(tmp_path / "maps")).replace("@BLOCKS@", str(tmp_path / "blocks")))
    cfg = config.load(str(path))
    if want is None:
        with pytest.raises(UsageError) as e:
            backends.path_stores(cfg, {})
        assert "\n" not in str(e.value) and str(path) in str(e.value)
    else:
        assert backends.path_stores(cfg, {}) == want
