"""Load caps on the session's real Ceph: a capped scan or check of real pools finds exactly what an
uncapped one finds and takes at least ``objects / cap`` (or ``bytes / cap``) seconds.

Only a lower bound on the elapsed time is asserted: that is what a limiter guarantees, whatever
the machine's speed. Both RADOS engines take from the one C bucket (verify/native/_native.h)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.rados


def run(ceph_cluster, *args, engine="c"):
    if engine == "c":
        pytest.importorskip("verify.native._rados", reason="the librados extension is not built (librados-dev missing)")
    env = dict(os.environ, PYTHONPATH=str(ROOT), ARCHVERIFY_RADOS_ENGINE=engine)
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "verify", *args[:1], "--backend", "rados", "-c", str(ceph_cluster.conf),
                        "--keyring", str(ceph_cluster.keyring), "--pool", "maps", "--blocks-pool", "blocks",
                        "--no-progress", "--format", "json", *map(str, args[1:])],
                       capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    return p, time.monotonic() - t0


def found(doc) -> set:
    return {(f["kind"], f["store"], f["name"]) for f in doc["findings"]}


@pytest.mark.parametrize("engine", ["c", "python"])
def test_capped_scan_of_the_pools(ceph_cluster, rados_store, engine):
    free, _ = run(ceph_cluster, "scan", engine=engine)
    objects = rados_store.maps_objects + rados_store.blocks_objects
    cap = max(20, objects // 2)  # about two seconds
    capped, elapsed = run(ceph_cluster, "scan", "--objects-per-second", cap, engine=engine)
    assert capped.returncode == free.returncode == 1, capped.stderr
    assert found(json.loads(capped.stdout)) == found(json.loads(free.stdout))
    assert elapsed >= objects / cap
    assert f"archverify: limits: {cap} objects/s" in capped.stderr


def test_capped_check_of_the_pools(ceph_cluster, rados_store):
    """Each of the check's passes lists the pools again: the scan's objects alone bound it from below."""
    free, _ = run(ceph_cluster, "check", "--verify-data")
    objects = rados_store.maps_objects + rados_store.blocks_objects
    cap = max(20, objects)
    capped, elapsed = run(ceph_cluster, "check", "--verify-data", "--objects-per-second", cap)
    assert capped.returncode == free.returncode == 1, capped.stderr
    assert found(json.loads(capped.stdout)) == found(json.loads(free.stdout))
    assert elapsed >= objects / cap


def test_byte_cap_on_the_pools(ceph_cluster, rados_store):
    free, _ = run(ceph_cluster, "check", "--verify-data")
    counters = json.loads(free.stdout)["summary"]["counters"]
    read = sum(counters.get(k, 0) for k in ("data.bytes", "maps.header_bytes", "refs.map_bytes"))
    assert read > 0
    cap = max(1024, read // 2)
    capped, elapsed = run(ceph_cluster, "check", "--verify-data", "--bytes-per-second", cap)
    assert capped.returncode == 1, capped.stderr
    assert found(json.loads(capped.stdout)) == found(json.loads(free.stdout))
    assert elapsed >= read / cap
