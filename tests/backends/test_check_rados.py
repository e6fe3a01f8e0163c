"""``archverify check --backend rados`` against the session's real single-node Ceph.

The store is the one tests/ops/test_check.py plants on filed (dangling references in
v0, v1 and v2 maps, a deleted map, a snapshot and a clone sharing objects, orphans,
entry-level corruption, a short map-data object, flipped bytes in Pithos blocks),
copied object by object into two pools of its own. The strongest test: both
backends report the same findings for the same logical store, placement aside.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from planted_check import CHECK_KINDS, build_store
from verify.ops import check as check_op
from verify.core import findingset
from verify.core import formats as F
from verify.backends.rados import backend as rb
from verify.backends.filed.backend import FiledBackend
from verify.core.findings import KINDS
from verify.core.spill import Spill

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.rados
MAPS, BLOCKS = "check-maps", "check-blocks"
# what only a filed store can have: where a file lies
PLACEMENT = {"object_unmigrated", "object_leftover", "object_conflict", "object_misplaced", "object_at_risk",
             "stray_entry"} | {k for k in KINDS if k.startswith("pithos_")}


@pytest.fixture(scope="module")
def planted(ceph_cluster, tmp_path_factory):
    p = build_store(tmp_path_factory.mktemp("rados-check"))
    ceph_cluster.load_pools(MAPS, BLOCKS, p.maps, p.blocks)
    return p


def backend(cluster, engine=None, inflight=256):
    be = rb.RadosBackend(MAPS, BLOCKS, str(cluster.conf), None, str(cluster.keyring), inflight=inflight,
                         engine=engine)
    be.validate()
    return be


def keys(summary, kinds=None) -> set:
    return {(f.kind, f.store, f.name) for f in summary.findings if kinds is None or f.kind in kinds}


ENGINES = ["c", "python"]


def _engine(engine):
    if engine == "c":
        pytest.importorskip("verify.native._rados", reason="the librados extension is not built (librados-dev missing)")
    return engine


@pytest.mark.parametrize("engine", ENGINES)
def test_reports_exactly_what_was_planted(ceph_cluster, planted, engine):
    s = check_op.check(backend(ceph_cluster, _engine(engine)), jobs=2, progress=False, verify_data=True)
    assert keys(s, CHECK_KINDS | {"map_corrupt"}) == planted.expect | {
        ("object_content_mismatch", "blocks", n) for n in planted.flipped}
    assert s.exit_code == 1
    assert s.counters["check.stage.data"] == 1
    # every Pithos block was read whole and hashed
    assert s.counters["data.objects"] >= len(planted.pithos) + len(planted.flipped)


@pytest.mark.parametrize("engine", ENGINES)
def test_same_findings_as_filed_for_the_same_store(ceph_cluster, planted, engine):
    """The same logical store on filed and on RADOS: the same findings, placement aside."""
    filed = check_op.check(FiledBackend(str(planted.maps), str(planted.blocks)), 2, progress=False, verify_data=True)
    rados = check_op.check(backend(ceph_cluster, _engine(engine)), 2, progress=False, verify_data=True)

    def kn(s):
        return {(f.kind, f.name) for f in s.findings if f.kind not in PLACEMENT}

    assert kn(rados) == kn(filed)
    for k in ("refs.references", "refs.referenced_objects", "refs.missing_objects", "refs.entries",
              "refs.zero_entries", "refs.deleted_entries", "refs.bad_entries", "refs.keeping_references"):
        assert rados.counters[k] == filed.counters[k], k


def scan_versions(be) -> dict:
    """(kind, name) -> version of each map-store finding a scan of every shard makes, placement aside."""
    out = {}
    for shard in be.shards(1):
        for f in be.scan_shard(shard, 2).findings:
            if f.store == "maps" and f.kind not in PLACEMENT:
                out[(f.kind, f.name)] = f.version
    return out


@pytest.mark.parametrize("engine", ENGINES)
def test_filed_and_rados_scans_name_the_same_map_version(ceph_cluster, planted, engine):
    """Both scans give each map finding the version its header read (av_map_version), none to others."""
    filed = scan_versions(FiledBackend(str(planted.maps), str(planted.blocks)))
    rados = scan_versions(backend(ceph_cluster, _engine(engine)))
    assert rados == filed
    maps = {k: v for k, v in filed.items() if k[0].startswith("map_")}
    assert maps and None not in maps.values(), filed
    assert {v for (k, _), v in maps.items() if k == "map_v1"} == {1}
    assert {v for (k, _), v in maps.items() if k == "map_v0"} == {0}
    assert {0, 1, 2} <= set(maps.values())  # the store has maps of every version with findings
    assert all(v is None for k, v in filed.items() if not k[0].startswith("map_")), filed


def test_the_reference_stage_reads_no_header_the_scan_read(ceph_cluster, planted):
    """The C scan hands its header reads to the reference stage: only a v0 or v1 map longer than
    the scan's read is read again (whole); the findings and entry counts are the python engine's,
    which reads every header again."""
    pytest.importorskip("verify.native._rados", reason="the librados extension is not built (librados-dev missing)")
    heads = {}
    for f in planted.maps.rglob("*"):
        if f.is_file() and F.name_class(f.name.encode()) is F.NameClass.PLAIN:
            heads[f.name] = f.read_bytes()
    again = {n for n, d in heads.items()
             if len(d) >= F.SCAN_HEADER_READ
             and F.classify(d[:F.SCAN_HEADER_READ], len(d), n.encode()).cls is not F.HeaderClass.V2}
    assert again and len(again) < len(heads)  # the store has both kinds
    c = check_op.check(backend(ceph_cluster, "c"), 2, progress=False)
    py = check_op.check(backend(ceph_cluster, "python"), 2, progress=False)
    assert c.counters["refs.header_reads"] == len(again)
    assert py.counters["refs.header_reads"] == len(heads)
    assert sorted(c.findings) == sorted(py.findings)
    refs = {k: v for k, v in c.counters.items() if k.startswith("refs.") and k not in ("refs.header_reads",
                                                                                         "refs.map_bytes")}
    assert refs == {k: py.counters[k] for k in refs}


@pytest.mark.parametrize("shards", [1, 4])
def test_header_reads_past_their_share_of_memory_are_read_again_with_the_same_findings(ceph_cluster, planted,
                                                                                       shards):
    """Under a budget too small for them, the C scan keeps no header read (whichever shard goes past
    its part first): the reference stage reads every header again, as the python engine does, and
    finds exactly what it finds under the default budget."""
    pytest.importorskip("verify.native._rados", reason="the librados extension is not built (librados-dev missing)")
    default = check_op.check(backend(ceph_cluster, "c"), 2, progress=False, shards_per_store=shards)
    with findingset.using(Spill(memory=4096)):
        tiny = check_op.check(backend(ceph_cluster, "c"), 2, progress=False, shards_per_store=shards)
        tiny_keys = sorted(tiny.findings)
    py = check_op.check(backend(ceph_cluster, "python"), 2, progress=False)
    assert default.counters["refs.header_reads"] < py.counters["refs.header_reads"]  # the default kept them
    assert tiny.counters["refs.header_reads"] == py.counters["refs.header_reads"]  # the tiny one read all again
    assert tiny_keys == sorted(default.findings) and tiny.exit_code == default.exit_code
    def counts(s):  # what the store holds, not how long the listing waited or what was read
        return {k: v for k, v in s.counters.items()
                if not k.endswith("_us") and k not in ("refs.header_reads", "refs.map_bytes")}

    assert counts(tiny) == counts(default)


def test_missing_detail_names_referencing_maps_and_indexes(ceph_cluster, planted):
    s = check_op.check(backend(ceph_cluster, inflight=3), jobs=1, progress=False)  # windows smaller than a page
    seen = set()
    for f in s.findings:
        if f.kind == "object_missing":
            seen.add(f.name)
            assert f.path is None
            for map_name, idx in planted.missing_refs[f.name].items():
                assert f"{map_name}[{','.join(map(str, idx))}]" in f.detail
    assert seen == set(planted.missing_refs)


def test_sample_windows_cover_the_pool_once_a_week(ceph_cluster, planted):
    be = backend(ceph_cluster)
    total = be.verify_data(2, check_op.SampleWindow.of(None).as_tuple()).counters["data.objects"]
    seen = []
    for day in range(20000, 20007):
        res = be.verify_data(2, check_op.SampleWindow.of(1 / 7, day).as_tuple())
        seen.append({f.name for f in res.findings})
        assert res.counters["data.objects"] + res.counters["data.unsampled"] == total
    assert set().union(*seen) == planted.flipped
    assert sum(len(x) for x in seen) == len(planted.flipped)  # each block in exactly one day's slice
    # the same windows as filed's
    fb = FiledBackend(str(planted.maps), str(planted.blocks))
    w = check_op.SampleWindow.of(1 / 7, 20003).as_tuple()
    assert {f.name for f in be.verify_data(1, w).findings} == {f.name for f in fb.verify_data(1, w).findings}


def test_deleted_and_empty_lock_objects_are_not_findings(ceph_cluster, planted):
    """Entries of the deleted map and deleted entries name nothing; radosd's empty _lock leftovers are normal."""
    c = ceph_cluster.rados()
    try:
        with c.open_ioctx(BLOCKS) as b:
            b.write_full("leftover-vol_lock", b"")
        s = check_op.check(backend(ceph_cluster), 2, progress=False)
        names = {f.name for f in s.findings}
        assert "leftover-vol_lock" not in names
        assert not any(n.startswith("archip_" + "b" * 8) or n.startswith("archip_" + "c" * 8) for n in names)
        assert "gone-vol" not in names
        with c.open_ioctx(BLOCKS) as b:
            b.remove_object("leftover-vol_lock")
    finally:
        c.shutdown()


def test_unreadable_map_data_is_named_and_stops_the_later_stages(ceph_cluster, planted, tmp_path):
    """A map whose map-data the OSD refuses for good (its name is past osd_max_object_name_len, the map's
    own name is not): an unreadable finding naming the map, never a phantom object_missing; exit 2."""
    long_name = "v" * 2040  # NAME fits in 2048 bytes, NAME_<16 hex> does not
    pool = "check-unread-maps"
    c = ceph_cluster.rados()
    try:
        if not c.pool_exists(pool):
            c.create_pool(pool)
        with c.open_ioctx(pool) as m:
            m.write_full(long_name, F.pack_v2_header(F.BLOCK_SIZE_4M))
            header, md = F.write_v2(F.BLOCK_SIZE_4M, [F.Entry("archip_" + "e" * 64, F.OF_ARCHIP)], name="fine-vol")
            m.write_full("fine-vol", header)
            for k, v in md.items():
                m.write_full(k, v)
    finally:
        c.shutdown()
    be = rb.RadosBackend(pool, BLOCKS, str(ceph_cluster.conf), None, str(ceph_cluster.keyring))
    be.validate()
    res = be.check_references(2)
    assert {(f.kind, f.name) for f in res.findings if f.kind in ("unreadable", "object_missing")} == {
        ("unreadable", long_name), ("object_missing", "archip_" + "e" * 64)}
    p = run_cli(ceph_cluster, "--pool", pool, "--blocks-pool", BLOCKS, "--format", "json", "--verify-data")
    assert p.returncode == 2, p.stderr
    doc = json.loads(p.stdout)
    assert ("unreadable", long_name) in {(f["kind"], f["name"]) for f in doc["findings"]}
    assert not [f for f in doc["findings"] if f["kind"] in CHECK_KINDS]
    assert doc["check"]["stages_run"] == ["scan"]


def run_cli(cluster, *args):
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "verify", "check", "--backend", "rados", "--no-progress",
                           "-c", str(cluster.conf), "--keyring", str(cluster.keyring), *map(str, args)],
                          capture_output=True, text=True, env=e, timeout=120, cwd=ROOT)


def test_cli_json_and_exit_code(ceph_cluster, planted):
    p = run_cli(ceph_cluster, "--pool", MAPS, "--blocks-pool", BLOCKS, "--format", "json", "--verify-data")
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    got = {(f["kind"], f["store"], f["name"]) for f in doc["findings"] if f["kind"] in CHECK_KINDS | {"map_corrupt"}}
    assert got == planted.expect | {("object_content_mismatch", "blocks", n) for n in planted.flipped}
    assert doc["check"]["stages_run"] == ["scan", "references", "data"]


def test_cli_clean_pools_exit_zero(ceph_cluster):
    import hashlib

    c = ceph_cluster.rados()
    try:
        for pool in ("clean-maps", "clean-blocks"):
            if not c.pool_exists(pool):
                c.create_pool(pool)
        names = []
        with c.open_ioctx("clean-blocks") as b:
            for i in range(4):
                data = os.urandom(300) + bytes(100)
                names.append(hashlib.sha256(data.rstrip(b"\0")).hexdigest())
                b.write_full(names[-1], data)
            b.write_full("vol_lock", b"")
        header, md = F.write_v2(4 * F.BLOCK_SIZE_4M, [F.Entry(n, 0) for n in names], name="volume")
        with c.open_ioctx("clean-maps") as m:
            m.write_full("volume", header)
            for k, v in md.items():
                m.write_full(k, v)
    finally:
        c.shutdown()
    p = run_cli(ceph_cluster, "--pool", "clean-maps", "--blocks-pool", "clean-blocks", "--verify-data", "-q")
    assert p.returncode == 0, p.stdout + p.stderr
    assert len(p.stdout.strip().splitlines()) == 1


def test_check_needs_the_blocks_pool(ceph_cluster, planted):
    p = run_cli(ceph_cluster, "--pool", MAPS)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_namespace_is_the_store(ceph_cluster, planted):
    """With --namespace, both pools are seen through it: an object in the blocks pool's default
    namespace does not satisfy a map of another namespace, and nothing of the default one leaks in."""
    there, lost = "f" * 64, "archip_" + "9" * 64
    c = ceph_cluster.rados()
    try:
        with c.open_ioctx(MAPS) as m, c.open_ioctx(BLOCKS) as b:
            m.set_namespace("tenant1")
            header, md = F.write_v2(2 * F.BLOCK_SIZE_4M, [F.Entry(there, 0), F.Entry(lost, F.OF_ARCHIP)], name="ns-vol")
            m.write_full("ns-vol", header)
            for k, v in md.items():
                m.write_full(k, v)
            b.write_full(lost, b"in the default namespace only")
            b.set_namespace("tenant1")
            b.write_full(there, b"")
            b.write_full("ns-orphan", b"x")
        for engine in ENGINES:
            be = rb.RadosBackend(MAPS, BLOCKS, str(ceph_cluster.conf), None, str(ceph_cluster.keyring),
                                 namespace="tenant1", engine=_engine(engine))
            be.validate()
            res = be.check_references(1)
            assert {(f.kind, f.name) for f in res.findings} == {("object_missing", lost), ("object_orphan", "ns-orphan")}
    finally:
        with c.open_ioctx(BLOCKS) as b:
            b.remove_object(lost)
        c.shutdown()


@pytest.mark.parametrize("engine", ENGINES)
def test_maps_with_names_filed_could_not_hold_are_read(ceph_cluster, engine):
    """radosd has no shortest name: a map named in fewer than filed's 6 bytes is a map the scan counts,
    and the check reads its entries (a missing object found, a present one not an orphan)."""
    import uuid

    ceph_cluster.ensure_pools(MAPS, BLOCKS)
    be = rb.RadosBackend(MAPS, BLOCKS, str(ceph_cluster.conf), None, str(ceph_cluster.keyring), engine=engine,
                         namespace=f"names-{uuid.uuid4().hex[:8]}")
    kept, lost = "a" * 64, "archip_" + "b" * 64
    be.write("blocks", kept.encode(), b"")
    for name in ("vol-5", "v2"):
        header, md = F.write_v2(2 * F.BLOCK_SIZE_4M, [F.Entry(kept, 0), F.Entry(lost, F.OF_ARCHIP)], name=name)
        be.write("maps", name.encode(), header)
        for k, v in md.items():
            be.write("maps", k.encode(), v)
    s = check_op.check(be, 2, progress=False)
    assert s.counters["maps.v2"] == 2 and s.counters["refs.maps_v2"] == 2
    assert {(f.kind, f.name) for f in s.findings} == {("object_missing", lost)}
    assert "2 entries of 2 maps" in s.findings[0].detail


def test_object_io_refuses_names_python_rados_cannot_send(ceph_cluster):
    """python-rados names objects by str, sent as UTF-8: a non-UTF-8 name is refused in one line, untouched."""
    from verify.backends import BadObjectName

    ceph_cluster.ensure_pools(MAPS, BLOCKS)
    be = backend(ceph_cluster)
    for call in (lambda: be.write("maps", b"vol-\xff\xfe", b"x"), lambda: be.read("maps", b"vol-\xff\xfe"),
                 lambda: be.remove("maps", b"vol-\xff\xfe")):
        with pytest.raises(BadObjectName, match="not UTF-8"):
            call()
