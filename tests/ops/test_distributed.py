"""scan --dask on a real LocalCluster (worker processes) against local runs of the same stores."""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cloudpickle
import psutil
import pytest
from click.testing import CliRunner

import dask_faults
import refjoin_sides
from one_line import one_line_error
from refjoin_sides import expected, shard_sides
from verify.cluster import shards as distributed
from verify.native import refjoin
from verify.backends.filed.backend import FiledBackend
from verify.cli.main import cli
from verify.core.errors import ArchverifyError
from verify.ops.sample import write_sample

pytest.importorskip("distributed")
# the killing backend below is defined here, so workers get it by value, not by import
for _mod in (sys.modules[__name__], refjoin_sides):
    cloudpickle.register_pickle_by_value(_mod)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes, shared by every test of this module."""
    with dask_faults.two_workers() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="module")
def larger(tmp_path_factory):
    """Many more volumes and blocks, so every one of 256 top-level dirs holds something."""
    return write_sample(tmp_path_factory.mktemp("larger"), seed=11, volumes=250, blocks_per_volume=12)


def run_cli(*args):
    res = CliRunner().invoke(cli, ["scan", *map(str, args)])
    return res.exit_code, res.stdout


def comparable(doc_text: str) -> dict:
    """The JSON report minus the two figures that depend on wall time."""
    doc = json.loads(doc_text)
    for k in ("elapsed_s", "files_per_s"):
        doc["summary"].pop(k)
    return doc


def store_args(s):
    return ["--maps-dir", s.maps_dir, "--blocks-dir", s.blocks_dir, "--format", "json"]


@functools.cache
def _local_run(maps_dir, blocks_dir):
    code, out = run_cli("--maps-dir", maps_dir, "--blocks-dir", blocks_dir, "--format", "json")
    assert code in (0, 1)
    return code, out


def local_run(s):
    """The single-machine report of a store (computed once per store)."""
    code, out = _local_run(str(s.maps_dir), str(s.blocks_dir))
    return code, comparable(out)


@pytest.mark.parametrize("store,shards,jobs", [("sample", None, 2), ("sample", 64, 1), ("larger", None, 2),
                                               ("larger", 7, 1)])
def test_external_cluster_matches_local(cluster, store, shards, jobs, request):
    s = request.getfixturevalue(store)
    address, _ = cluster
    code, doc = local_run(s)
    extra = ["--shards", shards] if shards else []
    dcode, dout = run_cli(*store_args(s), "--dask", address, "-j", jobs, *extra)
    ddoc = comparable(dout)
    assert dcode == code
    assert json.dumps(ddoc["findings"], sort_keys=True) == json.dumps(doc["findings"], sort_keys=True)
    assert ddoc == doc
    assert doc["summary"]["findings_total"] > 0  # the stores do have planted findings


def test_local_n_matches_local(sample):
    code, doc = local_run(sample)
    dcode, dout = run_cli(*store_args(sample), "--dask", "local:2")
    assert dcode == code
    assert comparable(dout) == doc


def gone(pid: int) -> bool:
    """The process is dead (reaped, or a zombie its nanny has not reaped yet)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@dataclass
class KillFirstAttempt(FiledBackend):
    """The first attempt at one chosen shard kills its whole worker process, as an OOM kill would."""

    marker: str = ""
    victim: tuple = ("blocks", 0)

    def scan_shard(self, shard, jobs, progress=None):
        if (shard.store, shard.lo) == self.victim:
            try:
                fd = os.open(self.marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                pass  # the retry, on a live worker
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os._exit(9)
        return super().scan_shard(shard, jobs, progress)


def test_killed_worker_shard_is_rerun_and_result_exact(cluster, larger, tmp_path):
    _, client = cluster
    code, doc = local_run(larger)
    marker = tmp_path / "killed.pid"
    be = KillFirstAttempt(str(larger.maps_dir), str(larger.blocks_dir), marker=str(marker))
    shards = be.shards(8)
    result = distributed.run_shards(client, be, shards, jobs=1)
    from verify.core.summary import Summary

    summary = Summary.from_result(result)
    killed_pid = int(marker.read_text())
    assert gone(killed_pid)
    assert [f.as_dict() for f in summary.findings] == doc["findings"]
    assert {k: v for k, v in summary.counters.items() if v} == doc["summary"]["counters"]
    assert summary.exit_code == code
    client.wait_for_workers(2, timeout=180)  # the nanny restarted it for the next tests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_process(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "verify", "scan", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=120)


def test_unreachable_scheduler_one_line_exit_2(sample):
    p = run_process(*store_args(sample), "--dask", f"tcp://127.0.0.1:{free_port()}", "--dask-timeout", 1)
    one_line_error(p.returncode, p.stdout, p.stderr)


def test_worker_without_the_store_one_line_exit_2(cluster, tmp_path):
    address, _ = cluster
    missing = tmp_path / "not-mounted" / "maps"  # absent on the workers (and here)
    p = run_process("--maps-dir", missing, "--format", "json", "--dask", address)
    one_line_error(p.returncode, p.stdout, p.stderr)


def test_shard_store_error_on_worker_reaches_client(cluster, tmp_path):
    """Without the up-front check, the shard itself fails on the worker and the client gets its error."""
    _, client = cluster
    be = FiledBackend(str(tmp_path / "gone"))
    with pytest.raises(ArchverifyError) as err:
        distributed.run_shards(client, be, be.shards(2), jobs=1, retries=0)
    assert err.value.exit_code == 2


def test_relative_store_path_refused_before_connecting(sample, tmp_path):
    rel = os.path.relpath(sample.maps_dir)
    code, out = run_cli("--maps-dir", rel, "--dask", f"tcp://127.0.0.1:{free_port()}")
    assert code == 2 and out == ""


@pytest.mark.parametrize("address", ["local:0", "local:x", "no port here"])
def test_bad_address_exit_2(sample, address):
    code, out = run_cli(*store_args(sample), "--dask", address, "--dask-timeout", 1)
    assert code == 2 and out == ""


def synthetic_shard(seed: int) -> refjoin.Sides:
    """Built on the worker, as a check shard's fingerprints would be."""
    return shard_sides(seed, 4000, 3500, 9000)


@pytest.mark.parametrize("parts", [1, 3, 16])
def test_distributed_reference_join_matches_local(cluster, parts):
    _, client = cluster
    seeds = list(range(6))
    futures = client.map(synthetic_shard, seeds, pure=False)
    result = refjoin.join_distributed(client, futures, parts)
    local = [shard_sides(s, 4000, 3500, 9000) for s in seeds]
    missing, orphans, n_refs, n_stored = expected(local)
    assert missing and orphans
    assert list(result.iter_missing()) == missing
    assert list(result.iter_orphans()) == orphans
    assert (result.referenced, result.stored) == (n_refs, n_stored)
    assert len(result.partition_bytes) == parts
    total = sum(len(s.refs) + len(s.stored) for s in local)
    assert sum(result.partition_bytes) == total
    if parts > 1:  # each partition task held a share of the records, not all of them
        assert max(result.partition_bytes) < total * 2 / parts


def test_join_survives_a_worker_killed_while_holding_shards(cluster):
    """The shards' records live on the workers; kill one holding some, the scheduler recomputes them."""
    _, client = cluster
    client.wait_for_workers(2, timeout=180)
    seeds = list(range(6))
    futures = client.map(synthetic_shard, seeds, pure=False)
    client.gather(futures)  # all computed and held on the workers
    holders = client.who_has(futures)
    victim = sorted({w for ws in holders.values() for w in ws})[0]
    pid = client.run(os.getpid, workers=[victim])[victim]
    psutil.Process(pid).kill()
    result = refjoin.join_distributed(client, futures, 4)
    missing, orphans, n_refs, n_stored = expected([shard_sides(s, 4000, 3500, 9000) for s in seeds])
    assert list(result.iter_missing()) == missing
    assert list(result.iter_orphans()) == orphans
    assert (result.referenced, result.stored) == (n_refs, n_stored)
    assert gone(pid)
    client.wait_for_workers(2, timeout=180)


@dataclass
class NamesOnly:
    """A store of names only, held to the sharded-check capability: maps shards reference ``obj-K``
    (some never stored), blocks shards hold some of them."""

    seed: int = 3
    universe: int = 6000
    name: str = "names-only"

    def shards(self, per_store):
        from verify.backends import Shard, split

        return [Shard(role, lo, hi, 256) for role in ("maps", "blocks") for lo, hi in split(256, per_store)]

    def names(self, shard):
        import random

        rng = random.Random(f"{self.seed}-{shard.store}-{shard.lo}")
        if shard.store == "maps":  # repeats, and some names beyond the universe: never stored
            return [f"obj-{rng.randrange(self.universe * 11 // 10)}" for _ in range(2 * (shard.hi - shard.lo) * 8)]
        return [f"obj-{k}" for k in range(self.universe) if shard.lo <= k % 256 < shard.hi and rng.random() < 0.8]

    def check_shard(self, shard, jobs, locator):
        from verify.core.summary import ShardResult

        names = self.names(shard)
        flag = b"\1" if shard.store == "maps" else b"\0"
        recs = refjoin.records((n.encode() for n in names), [locator + flag] * len(names))
        return ShardResult(Counter({f"{shard.store}.files": len(names)})), bytes(recs)

    def explain_shard(self, shard, jobs, records, width):
        keys = {records[i:i + refjoin.KEY] for i in range(0, len(records), width)}
        refs = [(n.encode(), f"map-{shard.lo}".encode(), i) for i, n in enumerate(self.names(shard))
                if refjoin.fingerprint(n.encode()) in keys]
        return refs, {}

    def object_path(self, name):
        return None

    def orphans_shard(self, shard, jobs, records, width):
        from verify.core.findings import Finding
        from verify.core.summary import ShardResult

        keys = {records[i:i + refjoin.KEY] for i in range(0, len(records), width)}
        return ShardResult(findings=[Finding("object_orphan", "blocks", n, None, "") for n in self.names(shard)
                                     if refjoin.fingerprint(n.encode()) in keys])


def test_reference_stage_joins_on_the_cluster(cluster):
    """The reference stage of check --dask over any ShardedCheck: missing and orphan names exactly."""
    from verify.cluster import check as distributed_check
    from verify.core.summary import Summary

    _, client = cluster
    be = NamesOnly()
    shards = be.shards(5)
    result = distributed_check.references(client, be, shards, 1, parts=4)
    summary = Summary.from_result(result)
    refs = {n for s in shards if s.store == "maps" for n in be.names(s)}
    stored = {n for s in shards if s.store == "blocks" for n in be.names(s)}
    got = {(f.kind, f.name) for f in summary.findings}
    assert got == {("object_missing", n) for n in refs - stored} | {("object_orphan", n) for n in stored - refs}
    assert refs - stored and stored - refs
    assert result.counters["refs.referenced_objects"] == len(refs)
    assert result.counters["refs.missing_objects"] == len(refs - stored)


def test_scheduler_without_workers_one_line_exit_2(sample):
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address=None,
                      silence_logs=logging.ERROR, scheduler_kwargs=distributed.NO_HTTP_PORT) as lc:
        p = run_process(*store_args(sample), "--dask", lc.scheduler_address, "--dask-timeout", 1)
    one_line_error(p.returncode, p.stdout, p.stderr)


def test_backends_travel_without_open_handles():
    import threading
    from dataclasses import field

    @dataclass
    class WithHandle:
        pool: str
        name: str = "x"
        _conn: object = field(default=None, repr=False, compare=False)
        _io: dict = field(default_factory=dict, repr=False, compare=False)

    be = WithHandle("maps", _conn=threading.Lock(), _io={"maps": threading.Lock()})
    travelled = cloudpickle.loads(cloudpickle.dumps(distributed.portable(be)))
    assert (travelled.pool, travelled._conn, travelled._io) == ("maps", None, {})
    assert be._conn is not None  # the caller's own copy keeps its handles
    assert distributed.resident(travelled) is distributed.resident(WithHandle("maps"))
