"""scan --backend rados --dask against the real single-node Ceph of the test run (tests/rados_cluster.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rados_cluster", reason="the RADOS test fixtures (tests/rados_cluster.py) are not here")
pytestmark = pytest.mark.rados

ROOT = Path(__file__).resolve().parents[2]


def scan(ceph_cluster, *more):
    args = ["--backend", "rados", "--pool", "maps", "--blocks-pool", "blocks", "-c", str(ceph_cluster.conf),
            "--keyring", str(ceph_cluster.keyring), "--format", "json", "--no-progress", *more]
    p = subprocess.run([sys.executable, "-m", "verify", "scan", *args], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300, cwd=ROOT)
    doc = json.loads(p.stdout)
    for k in ("elapsed_s", "files_per_s"):
        doc["summary"].pop(k)
    # durations measured inside the scan (e.g. list_wait_us) differ between any two runs
    doc["summary"]["counters"] = {k: v for k, v in doc["summary"]["counters"].items() if not k.endswith("_us")}
    return p.returncode, doc


def test_rados_dask_matches_local(ceph_cluster, rados_store):
    code, local = scan(ceph_cluster, "--shards", "8")
    dcode, dist = scan(ceph_cluster, "--shards", "8", "--dask", "local:2")
    assert dcode == code == 1
    assert json.dumps(dist["findings"], sort_keys=True) == json.dumps(local["findings"], sort_keys=True)
    assert dist == local
    assert {("map_v1", "archip_legacy-vol")} <= {(f["kind"], f["name"]) for f in dist["findings"]}
    _, single = scan(ceph_cluster)  # one shard per store: same findings, other listing counters
    assert single["findings"] == dist["findings"]
