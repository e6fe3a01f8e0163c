"""``archverify scan --backend rados`` against the session's real single-node Ceph."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from verify.backends.rados import backend as rb
from verify.core.errors import StoreError
from verify.core.summary import ShardResult, Summary

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.rados


def run_scan(*args, env=None, timeout=60):
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    e.update(env or {})
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "verify", "scan", "--backend", "rados", "--no-progress", *args],
                       capture_output=True, text=True, env=e, timeout=timeout, cwd=ROOT)
    return p, time.monotonic() - t0


def cluster_args(c, *more):
    return ["-c", str(c.conf), "--keyring", str(c.keyring), *more]


def findings(doc) -> set[tuple[str, str]]:
    return {(f["kind"], f["name"]) for f in doc["findings"]}


@pytest.fixture(scope="module")
def backend(ceph_cluster, rados_store):
    return rb.from_options(None, pool="maps", blocks_pool="blocks", ceph_conf=str(ceph_cluster.conf),
                           keyring=str(ceph_cluster.keyring))


@pytest.mark.parametrize("engine", ["c", "python"])
def test_scan_reports_exactly_the_planted_findings(ceph_cluster, rados_store, engine, tmp_path):
    if engine == "c":
        pytest.importorskip("verify.native._rados", reason="the librados extension is not built (librados-dev missing)")
    p, _ = run_scan(*cluster_args(ceph_cluster, "--pool", "maps", "--blocks-pool", "blocks", "--format", "json",
                                  "--logdir", str(tmp_path / "logs")),
                    env={"ARCHVERIFY_RADOS_ENGINE": engine})
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    assert findings(doc) == rados_store.planted
    assert all(f["store"] == "maps" and f["path"] is None for f in doc["findings"])
    s = doc["summary"]
    assert s["per_store"] == {"maps": rados_store.maps_objects, "blocks": rados_store.blocks_objects}
    assert s["locks"] == len(rados_store.locks) + 1  # every lock object of both pools is counted
    assert {o["name"]: o["owner"] for o in s["lock_owners"]} == {k: v for k, v in rados_store.locks.items() if v}
    assert s["counters"]["blocks.locks"] == 1  # listed, never read
    assert "blocks.reads" not in s["counters"] and "blocks.header_bytes" not in s["counters"]
    assert {f.stem for f in (tmp_path / "logs").glob("*.log")} == {k for k, _ in rados_store.planted}


def test_config_gives_pools_and_cephx_id(ceph_cluster, rados_store, tmp_path):
    conf = tmp_path / "archipelago.conf"
    conf.write_text("[ARCHIPELAGO]\nUSER = archipelago\n\n"
                    "[blockerb]\ntype = rados_blocker\npool = blocks\ncephx_id = admin\n\n"
                    "[blockerm]\ntype = rados_blocker\npool = maps\ncephx_id = admin\n")
    p, _ = run_scan("--config", str(conf), *cluster_args(ceph_cluster, "--format", "json"))
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    assert doc["backend"] == "rados"
    assert {r: v["pool"] for r, v in doc["stores"].items()} == {"maps": "maps", "blocks": "blocks"}
    assert findings(doc) == rados_store.planted


def test_shards_are_disjoint_and_complete(backend, rados_store):
    """The listing split into 7 ranges finds each object once: same counts and findings as one range."""
    one = Summary.from_result(ShardResult.merge_all(backend.scan_shard(s, 1) for s in backend.shards(1)))
    many_shards = backend.shards(7)
    assert len(many_shards) == 14
    many = Summary.from_result(ShardResult.merge_all(backend.scan_shard(s, 1) for s in many_shards))
    work = lambda c: {k: v for k, v in c.items() if not k.endswith((".list_calls", ".list_wait_us", ".probes"))}  # noqa: E731
    assert work(many.counters) == work(one.counters)
    assert [(f.kind, f.name) for f in many.findings] == [(f.kind, f.name) for f in one.findings]
    assert many.counters["maps.files"] == rados_store.maps_objects
    assert {(f.kind, f.name) for f in one.findings} == rados_store.planted


def test_object_deleted_between_listing_and_read_is_not_an_error(ceph_cluster, backend):
    """Objects listed, then deleted before their header and lock reads: no finding, counted as vanished."""
    c = ceph_cluster.rados()
    try:
        with c.open_ioctx("maps") as io:
            names = [f"race-vol-{i:03d}" for i in range(40)] + [f"race-vol-{i:03d}_lock" for i in range(10)]
            for n in names:
                io.write_full(n, b"\1\0\0\0")  # would be a (corrupt) v1 map if it stayed
            listed = sorted(o.key for o in io.list_objects() if o.key.startswith("race-vol-"))
            assert listed == sorted(names)
            for n in listed:
                io.remove_object(n)
    finally:
        c.shutdown()
    res = backend.check_names("maps", listed)
    assert res.findings == [] and res.locks == []
    assert res.counters["maps.vanished"] == len(names)
    assert Summary.from_result(res).exit_code == 0


def test_unreadable_object_is_named_and_exit_2(backend):
    """A read the OSD refuses for good (a name past osd_max_object_name_len) is reported, not retried forever."""
    name = "x" * 3000
    res = backend.check_names("maps", [name])
    assert [(f.kind, f.name) for f in res.findings] == [("unreadable", name)]
    assert Summary.from_result(res).exit_code == 2


@pytest.mark.parametrize("engine", ["c", "python"])
def test_stalled_osd_stops_the_run_within_the_op_timeout(ceph_cluster, rados_store, engine):
    """A stalled OSD: the first read it leaves unanswered for the op timeout stops the run with one
    error naming the pool and the object, not retried (librados resent it on every OSD map change
    meanwhile) and not one finding per object, which would take the op timeout per window of reads."""
    import signal

    if engine == "c":
        pytest.importorskip("verify.native._rados", reason="the librados extension is not built (librados-dev missing)")
    be = rb.RadosBackend("maps", None, str(ceph_cluster.conf), None, str(ceph_cluster.keyring), op_timeout=1,
                         engine=engine)
    be.validate()
    pid = int((ceph_cluster.dir / "run" / "osd.0.pid").read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreError) as e:
            be.check_names("maps", [f"vol-{i:03d}" for i in range(10)] * 20)
        took = time.monotonic() - t0
    finally:
        os.kill(pid, signal.SIGCONT)
    assert "pool 'maps'" in str(e.value) and "vol-00" in str(e.value) and "--op-timeout" in str(e.value)
    assert took < 1 + 3, took


def test_namespace(ceph_cluster, rados_store):
    c = ceph_cluster.rados()
    try:
        with c.open_ioctx("maps") as io:
            io.set_namespace("tenant1")
            io.write_full("ns-corrupt", b"AMF.\0\0\0\x09" + bytes(24))
            io.write_full("ns-vol_lock", b"")
    finally:
        c.shutdown()
    p, _ = run_scan(*cluster_args(ceph_cluster, "--pool", "maps", "--namespace", "tenant1", "--format", "json"))
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    assert findings(doc) == {("map_corrupt", "ns-corrupt")}
    assert doc["summary"]["per_store"]["maps"] == 2 and doc["summary"]["locks"] == 1


# ---- faults: one line on stderr, exit 2, no traceback ---------------------------------


def assert_one_line_exit_2(p):
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert p.stdout == ""


def test_unreachable_cluster_fails_within_connect_timeout(ceph_cluster, tmp_path):
    conf = tmp_path / "ceph.conf"
    text = ceph_cluster.conf.read_text()
    lines = [("mon host = [v2:127.0.0.1:1]" if ln.startswith("mon host") else ln) for ln in text.splitlines()]
    conf.write_text("\n".join(lines) + "\n")
    p, took = run_scan("-c", str(conf), "--keyring", str(ceph_cluster.keyring), "--pool", "maps",
                       "--connect-timeout", "2")
    assert_one_line_exit_2(p)
    assert took < 2 + 8  # the timeout plus interpreter start-up; librados alone would hang


def test_missing_pool(ceph_cluster, rados_store):
    p, _ = run_scan(*cluster_args(ceph_cluster, "--pool", "no-such-pool"))
    assert_one_line_exit_2(p)
    p, _ = run_scan(*cluster_args(ceph_cluster, "--pool", "maps", "--blocks-pool", "no-such-blocks"))
    assert_one_line_exit_2(p)


def test_wrong_key_and_unknown_user(ceph_cluster, rados_store, tmp_path):
    keyring = tmp_path / "wrong.keyring"
    key = subprocess.run(["ceph-authtool", "--gen-print-key"], capture_output=True, text=True, check=True).stdout
    keyring.write_text(f"[client.admin]\n\tkey = {key.strip()}\n")
    p, _ = run_scan("-c", str(ceph_cluster.conf), "--keyring", str(keyring), "--pool", "maps")
    assert_one_line_exit_2(p)
    p, _ = run_scan(*cluster_args(ceph_cluster, "--id", "nobody", "--pool", "maps"))
    assert_one_line_exit_2(p)
    p, _ = run_scan("-c", str(ceph_cluster.conf), "--keyring", str(tmp_path / "absent"), "--pool", "maps")
    assert_one_line_exit_2(p)


def test_missing_caps(ceph_cluster, rados_store, tmp_path):
    out = {user: ceph_cluster.user(user, caps, tmp_path / f"{user}.keyring") for user, caps in
           (("nocaps", ["mon", "allow r"]), ("mapsonly", ["mon", "allow r", "osd", "allow r pool=maps"]))}
    p, _ = run_scan("-c", str(ceph_cluster.conf), "--keyring", str(out["nocaps"]), "--id", "nocaps", "--pool", "maps")
    assert_one_line_exit_2(p)
    p, _ = run_scan("-c", str(ceph_cluster.conf), "--keyring", str(out["mapsonly"]), "--id", "mapsonly",
                    "--pool", "maps", "--blocks-pool", "blocks")
    assert_one_line_exit_2(p)
    p, _ = run_scan("-c", str(ceph_cluster.conf), "--keyring", str(out["mapsonly"]), "--id", "mapsonly",
                    "--pool", "maps", "--format", "json")
    assert p.returncode == 1, p.stderr


def test_python_rules_agree_with_the_extension_on_counters(backend, ceph_cluster, rados_store):
    """The pure-Python reference (fallback) and the C path count the same objects the same way."""
    pytest.importorskip("verify.native._rados", reason="the librados extension is not built (librados-dev missing)")
    c_res = ShardResult.merge_all(backend.scan_shard(s, 1) for s in backend.shards(1))
    py = rb.RadosBackend("maps", "blocks", str(ceph_cluster.conf), None, str(ceph_cluster.keyring), engine="python")
    py_res = ShardResult.merge_all(py.scan_shard(s, 1) for s in py.shards(1))
    keep = ("files", "v0", "v1", "v2", "corrupt", "mapdata", "other", "locks", "hash_files", "temp_files")
    pick = lambda r: Counter({k: v for k, v in r.counters.items() if k.split(".", 1)[1] in keep})  # noqa: E731
    assert pick(c_res) == pick(py_res)
    assert sorted((f.kind, f.name) for f in c_res.findings) == sorted((f.kind, f.name) for f in py_res.findings)
    # one verdict (av_map_verdict and its twin formats.map_verdict): the same details too
    maps = lambda r: sorted((f.kind, f.name, f.detail, f.version)  # noqa: E731
                            for f in r.findings if f.kind.startswith("map_"))
    assert maps(c_res) == maps(py_res) and maps(c_res)
    # every map finding names the map version its header read (av_map_version / HeaderClass.map_version)
    version = {f.name: f.version for f in c_res.findings if f.kind.startswith("map_")}
    assert None not in version.values(), version
    assert {version[n] for k, n in rados_store.planted if k == "map_v1"} == {1}
    assert {version[n] for k, n in rados_store.planted if k == "map_v0"} <= {0}
    assert all(f.version is None for f in c_res.findings if not f.kind.startswith("map_"))
    assert sorted(c_res.locks) == sorted(py_res.locks)


@pytest.mark.parametrize("engine", ["c", "python"])
def test_locks_without_owner_are_counted_and_listed_only_when_asked(ceph_cluster, rados_store, engine):
    """A pool keeps an empty NAME_lock for every volume radosd ever opened: a scan counts them but
    lists only those with an owner (bounded memory), unless finalize asks for all (their RADOS locks)."""
    be = rb.RadosBackend("maps", "blocks", str(ceph_cluster.conf), None, str(ceph_cluster.keyring), engine=engine)
    try:
        listed = lambda: ShardResult.merge_all(be.scan_shard(s, 1) for s in be.shards(2))  # noqa: E731
        res = listed()
        assert {lk.name: lk.owner for lk in res.locks} == {k: v for k, v in rados_store.locks.items() if v}
        assert res.counters["maps.locks"] == len(rados_store.locks)
        be.keep_empty_locks()
        res = listed()
        assert {lk.name: lk.owner for lk in res.locks if lk.store == "maps"} == rados_store.locks
        assert res.counters["maps.locks"] == len(rados_store.locks)
    finally:
        be.close()


def test_without_ceph_libraries_one_clear_line(tmp_path):
    """A filed-only install (neither the extension nor python-rados): exit 2 with one line, no traceback."""
    code = ("import sys; sys.modules['verify.native._rados'] = None; sys.modules['rados'] = None\n"
            "from verify.cli.main import main\n"
            "sys.argv = ['archverify', 'scan', '--backend', 'rados', '--pool', 'maps']\n"
            "main()\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert_one_line_exit_2(p)


def _found(findings) -> list[tuple]:
    return sorted((f.kind, f.store, f.name, f.detail) for f in findings)  # not the version: a spill keeps none


def test_scan_hands_records_over_in_batches_and_spills_the_same_findings(backend, rados_store, monkeypatch,
                                                                          tmp_path):
    """A shard's C records go to Python while the loop runs, a batch at a time, and into the run's
    finding set, which spills past its share of --memory: the same findings as one batch at the end."""
    pytest.importorskip("verify.native._rados", reason="the librados extension is not built (librados-dev missing)")
    from verify.core import findingset
    from verify.core.spill import Spill
    from verify.ops.scan import scan

    whole = scan(backend, 1)
    taken = []
    add = rb.RadosBackend._add_records
    monkeypatch.setattr(rb.RadosBackend, "_add_records", lambda self, res, store, pool, recs: (
        taken.append(len(recs)), add(self, res, store, pool, recs))[1])
    monkeypatch.setattr(rb, "RECORD_BATCH", 2)
    with findingset.using(Spill(memory=2048, tmpdir=str(tmp_path))):
        batched = scan(backend, 1)
        assert batched.findings.spilled
        assert _found(batched.findings) == _found(whole.findings)
    timeless = lambda s: {k: v for k, v in s.counters.items() if not k.endswith("list_wait_us")}  # noqa: E731
    assert sorted(batched.locks) == sorted(whole.locks) and timeless(batched) == timeless(whole)
    assert {k for k, _ in rados_store.planted} <= set(batched.per_kind)
    # taken while the loop ran, not all at its end (each batch is 2 records and what the ops in flight add)
    assert sum(1 for n in taken if n) >= 2, taken


def test_a_loop_whose_records_are_not_taken_waits_and_a_stop_ends_the_wait(backend, rados_store):
    """At most two batches of records (and what the ops in flight add) are held in C: the loop
    stops starting objects until the last batch is taken, and a stop ends that wait."""
    pytest.importorskip("verify.native._rados", reason="the librados extension is not built (librados-dev missing)")
    import threading

    from verify.native._radoshard import RadosShard

    def started(rs):
        t = threading.Thread(target=rs.run, daemon=True)
        t.start()
        t.join(1.5)
        assert t.is_alive() and rs.progress() < rados_store.maps_objects, "the loop did not wait for a taker"
        return t

    inflight, batch = 4, 2
    rs = RadosShard(backend.ioctx("maps"), 0, 1, 1, inflight, maps=True, batch=batch)
    t = started(rs)
    batches = []
    while t.is_alive():
        batches.append(rs.take_records())
        t.join(0.01)
    batches.append(rs.records())
    assert max(map(len, batches)) <= batch + inflight
    whole = RadosShard(backend.ioctx("maps"), 0, 1, 1, inflight, maps=True)
    whole.run()
    assert sorted(r for b in batches for r in b) == sorted(whole.records())

    rs = RadosShard(backend.ioctx("maps"), 0, 1, 1, inflight, maps=True, batch=batch)
    t = started(rs)
    rs.stop()
    t.join(10)
    assert not t.is_alive(), "a stop did not end the wait for a taker"
