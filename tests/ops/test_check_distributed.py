"""check --dask on a real LocalCluster (worker processes) against local runs of the same stores."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import cloudpickle
import psutil
import pytest
from click.testing import CliRunner

import dask_faults
from dask_faults import killing
from planted_check import build_store
from verify.cluster import check as distributed_check
from verify.native import refjoin
from verify.core import formats as F
from verify.backends.filed.backend import FiledBackend
from verify.cli.main import cli
from verify.ops.sample import FiledStoreWriter, pithos_hash, write_sample

pytest.importorskip("distributed")
# the killing backend below is defined here, so workers get it by value, not by import
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes, shared by every test of this module."""
    with dask_faults.two_workers() as cluster:
        yield cluster


@dataclass
class Store:
    maps_dir: Path
    blocks_dir: Path


def spread_store(root: Path) -> Store:
    """Maps in many top-level dirs sharing objects: one missing object named by 20 live maps (more
    than the detail shows), snapshots sharing blocks, deleted maps keeping objects, an orphan
    Pithos block at both its paths, and a stored block named only by a deleted entry."""
    maps, blocks = FiledStoreWriter(root / "maps"), FiledStoreWriter(root / "blocks")
    B = F.BLOCK_SIZE_4M

    def block(seed: str, where: str = "v04") -> str:
        data = hashlib.sha256(seed.encode()).digest() * 40
        name = pithos_hash(data)
        blocks.put(name, data, where)
        return name

    lost = "archip_" + "d" * 64
    shared = [block("s0"), block("s1", "pithos")]
    for i in range(20):
        ents = [F.Entry(shared[i % 2], 0), F.Entry(lost, F.OF_ARCHIP), F.Entry(F.ZERO_HASH, F.OF_ZERO),
                F.Entry(block(f"own{i}"), 0)]
        maps.put_v2(f"vol-{i:02d}", 4 * B, ents, epoch=2)
        maps.put_v2(f"snap-{i:02d}", 4 * B, ents, flags=F.MF_READONLY, epoch=0)
    kept = block("kept-by-deleted-map")
    maps.put_v2("deleted-vol", 2 * B, [F.Entry(kept, 0), F.Entry("archip_" + "e" * 64, F.OF_ARCHIP)],
                flags=F.MF_DELETED)
    maps.put_v2("live-vol", 2 * B, [F.Entry(block("kept-by-deleted-entry"), 0x0F), F.Entry(shared[0], 0)])
    twice = hashlib.sha256(b"orphan at both paths").digest() * 10
    blocks.put(pithos_hash(twice), twice, "pithos")
    blocks.link(pithos_hash(twice), "pithos", "v04")  # mid-migration: one inode at both paths
    blocks.put("gone-object_hash", b"0" * 64)
    return Store(root / "maps", root / "blocks")


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    sample = write_sample(tmp_path_factory.mktemp("sample"))
    planted = build_store(tmp_path_factory.mktemp("planted"))
    return {
        "sample": Store(Path(sample.maps_dir), Path(sample.blocks_dir)),
        "planted": Store(planted.maps, planted.blocks),
        "spread": spread_store(tmp_path_factory.mktemp("spread")),
    }


def run_cli(*args):
    res = CliRunner().invoke(cli, ["check", *map(str, args)])
    assert res.exit_code in (0, 1, 2), res.output
    return res.exit_code, res.stdout


def store_args(s: Store):
    return ["--maps-dir", s.maps_dir, "--blocks-dir", s.blocks_dir, "--format", "json"]


def sorted_findings(doc: dict) -> str:
    return json.dumps(sorted(doc["findings"], key=lambda f: json.dumps(f, sort_keys=True)), sort_keys=True)


def counters(doc: dict) -> dict:
    """Counters minus the index size, which is per process: the whole set locally, one partition on Dask."""
    return {k: v for k, v in doc["summary"]["counters"].items() if k != "refs.index_bytes"}


@functools.cache
def _local(maps_dir, blocks_dir, *extra):
    return run_cli("--maps-dir", maps_dir, "--blocks-dir", blocks_dir, "--format", "json", "-j", 1, *extra)


def local_run(s: Store, *extra):
    code, out = _local(str(s.maps_dir), str(s.blocks_dir), *extra)
    return code, json.loads(out)


def assert_same(dcode, ddoc, code, doc):
    assert dcode == code
    assert sorted_findings(ddoc) == sorted_findings(doc)
    assert counters(ddoc) == counters(doc)
    assert ddoc["check"] == doc["check"]


@pytest.mark.parametrize("store,shards,jobs,extra", [
    ("sample", None, 2, ()),
    ("planted", None, 1, ("--verify-data",)),
    ("planted", 16, 2, ()),
    ("spread", 7, 2, ()),
    ("spread", 64, 1, ("--verify-data-sample", "0.5")),
])
def test_cluster_check_matches_local(cluster, stores, store, shards, jobs, extra):
    address, _ = cluster
    s = stores[store]
    code, doc = local_run(s, *extra)
    more = ["--shards", shards] if shards else []
    dcode, dout = run_cli(*store_args(s), "--dask", address, "-j", jobs, *more, *extra)
    assert_same(dcode, json.loads(dout), code, doc)
    kinds = {f["kind"] for f in doc["findings"]}
    assert kinds & {"object_missing", "object_orphan"}  # the stores do have planted reference findings


def test_spread_store_findings_are_the_planted_ones(stores):
    """The spread store's missing object is named by 20 maps in many shards; deleted maps keep objects."""
    _code, doc = local_run(stores["spread"])
    by_kind = {}
    for f in doc["findings"]:
        by_kind.setdefault(f["kind"], set()).add(f["name"])
    assert by_kind["object_missing"] == {"archip_" + "d" * 64}
    twice = pithos_hash(hashlib.sha256(b"orphan at both paths").digest() * 10)
    assert by_kind["object_orphan"] == {twice, "gone-object_hash"}
    assert doc["summary"]["counters"]["refs.missing_objects"] == 1


def test_missing_detail_does_not_depend_on_threads(stores):
    """40 maps name the missing object, 8 entries are recorded: which 8 must not depend on -j or timing."""
    s = stores["spread"]
    _code, one = local_run(s)
    _code, many = local_run(s, "-j", 4)
    assert sorted_findings(many) == sorted_findings(one)
    detail = next(f["detail"] for f in one["findings"] if f["kind"] == "object_missing")
    assert "40 entries of 40 maps" in detail and "and 35 more" in detail


def test_shard_records_use_the_joins_fingerprint(stores):
    """Blocks shards hand the join refjoin.fingerprint(name) of every object at a v0.4-read path."""
    s = stores["spread"]
    be = FiledBackend(str(s.maps_dir), str(s.blocks_dir))
    keys = set()
    for shard in be.shards(4):
        if shard.store == "blocks":
            _res, recs = be.check_shard(shard, 1, bytes(7))
            keys |= {recs[i:i + refjoin.KEY] for i in range(0, len(recs), distributed_check.WIDTH)}
    names = {f.encode() for _d, _s, files in os.walk(s.blocks_dir) for f in files if not f.endswith("_hash")}
    assert keys == {refjoin.fingerprint(n) for n in names}


def test_local_n_matches_local(stores):
    s = stores["planted"]
    code, doc = local_run(s)
    dcode, dout = run_cli(*store_args(s), "--dask", "local:2", "-j", 1)
    assert_same(dcode, json.loads(dout), code, doc)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("method", ["check_shard", "explain_shard"])
def test_killed_worker_result_still_exact(cluster, stores, tmp_path, method):
    address, client = cluster
    s = stores["spread"]
    code, doc = local_run(s)
    marker = tmp_path / "killed.pid"
    be = killing(FiledBackend(str(s.maps_dir), str(s.blocks_dir)), marker, method)
    # explain_shard: the first maps shard holds some of the 40 maps naming the missing object
    summary = distributed_check.check(be, address, jobs=1, progress=False, shards_per_store=8)
    killed = int(marker.read_text())
    assert gone(killed)
    found = json.dumps(sorted([f.as_dict() for f in summary.findings], key=lambda f: json.dumps(f, sort_keys=True)),
                       sort_keys=True)
    assert found == sorted_findings(doc)
    assert summary.exit_code == code
    client.wait_for_workers(2, timeout=180)  # the nanny restarted it for the next tests


def test_backend_without_sharded_check_refused_with_one_line(stores):
    """A kind of store the registry does not declare sharded is refused before any cluster starts."""
    from verify.core.errors import UsageError

    class Unregistered:
        name = "s3"

    with pytest.raises(UsageError):
        distributed_check.check(Unregistered(), "local:1", jobs=1)


def test_unreadable_part_stops_the_later_stages_on_dask(nobody):
    """A blocks dir nobody can list: the workers skip references and data exactly as a local run does."""
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="check-dask-unsafe-", dir="/tmp"))
    locked = None
    try:
        os.chmod(root, 0o755)
        p = build_store(root / "store", seed=3)
        locked = sorted(d for d in p.blocks.iterdir() if d.is_dir())[0]
        for dirpath, _dirs, files in os.walk(root):
            os.chmod(dirpath, 0o755)
            for f in files:
                os.chmod(os.path.join(dirpath, f), 0o644)
        os.chmod(locked, 0)
        # as nobody (tests/as_nobody.py): root reads everything, mode 000 means nothing to it
        args = ["check", *store_args(Store(p.maps, p.blocks)), "--verify-data", "-j", "1"]
        runs = [nobody.archverify(*args, *extra) for extra in ([], ["--dask", "local:1", "--shards", "4"])]
        (local, dask) = runs
        assert local.returncode == dask.returncode == 2, dask.stderr
        ldoc, ddoc = json.loads(local.stdout), json.loads(dask.stdout)
        assert ddoc["check"]["stages_skipped"] == ["references", "data"]
        assert "unreadable" in {f["kind"] for f in ddoc["findings"]}
        assert_same(dask.returncode, ddoc, local.returncode, ldoc)
    finally:
        if locked is not None:
            os.chmod(locked, 0o755)
        shutil.rmtree(root, ignore_errors=True)


def test_worker_without_the_store_one_line_exit_2(cluster, stores, tmp_path):
    address, _ = cluster
    s = stores["sample"]
    res = CliRunner().invoke(cli, ["check", "--maps-dir", str(s.maps_dir), "--blocks-dir", str(tmp_path / "absent"),
                                   "--dask", address])
    assert res.exit_code == 2
    assert "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1 and str(tmp_path / "absent") in res.output
