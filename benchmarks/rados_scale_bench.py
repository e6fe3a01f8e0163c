#!/usr/bin/env python3
"""Does the cost per object stay flat as RADOS pools grow, and the peak RSS bounded by --memory?

    python benchmarks/rados_scale_bench.py --conf CEPH_CONF [--sizes 100000,300000] [--memory 256M] [--pairs 1]

The RADOS twin of benchmarks/scale_bench.py. For each size, two pairs of pools (maps and
blocks) of about that many objects in all, on an existing cluster (``scripts/ceph-dev-cluster
start DIR`` prints one's ceph.conf; memstore takes about 16 KB of OSD memory per object,
so 10^6 objects want CEPH_DEV_STORE=bluestore):

* **clean**: volumes and their snapshots, every 1 KiB Pithos block named by two maps
  (benchmarks/rados_check_bench.py's load): no finding;
* **heavy**: the same plus as many blocks again that no map names: 40% of the objects are
  ``object_orphan`` findings.

On each, ``scan`` and ``check`` (``--format json -o FILE --memory M``) alternate ``--pairs``
times as whole processes (wall, CPU seconds of all threads and peak RSS from wait4); the OSD's
op counters (``perf dump`` on its admin socket) are read around each. One run of each on an
empty pair of pools measures the fixed cost (start-up, connect, listing nothing), so that the
rows also show the cost per object *after* it: a cost per object that falls with size only
because a fixed cost spreads thinner is not a cost that grows. Last, the extrapolation to
2x10^8 objects from the largest size. Read the ratios: the load average is on every row.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks import rados_check_bench as rcb  # noqa: E402
from benchmarks.run import timed  # noqa: E402
from benchmarks.scale_bench import TARGET, after_startup, extrapolate, flatness, table  # noqa: E402

MARKER_NS = "scale-bench"
ENTRIES = 8  # blocks per volume; a volume and its snapshot: 2 maps, 2 map-data objects, 8 blocks


def pools(kind: str, size: int) -> tuple[str, str]:
    return f"scale-{kind}-{size}-maps", f"scale-{kind}-{size}-blocks"


def load(conf: str, kind: str, size: int) -> None:
    """Fill the pools unless a previous run did (the marker ``scale-done``, in a namespace the scans do not list)."""
    import rados

    maps, blocks = pools(kind, size)
    c = rados.Rados(conffile=conf)
    c.connect(timeout=30)
    try:
        if c.pool_exists(maps) and c.pool_exists(blocks):
            io = c.open_ioctx(blocks)
            io.set_namespace(MARKER_NS)
            try:
                io.stat("scale-done")
                return
            except rados.ObjectNotFound:
                pass
        per_volume = 2 + 2 + ENTRIES + (ENTRIES if kind == "heavy" else 0)
        volumes = max(0, size // per_volume)
        old = rcb.MAPS, rcb.BLOCKS
        rcb.MAPS, rcb.BLOCKS = maps, blocks
        try:
            rcb.load(conf, volumes, ENTRIES, 1)
        finally:
            rcb.MAPS, rcb.BLOCKS = old
        bi = c.open_ioctx(blocks)
        if kind == "heavy":
            rng, pending = random.Random(2), []
            for _ in range(volumes * ENTRIES):
                data = rng.randbytes(1024)
                pending.append(bi.aio_write_full(hashlib.sha256(data).hexdigest(), data))
                if len(pending) >= 256:
                    for comp in pending:
                        comp.wait_for_complete()
                    pending.clear()
            for comp in pending:
                comp.wait_for_complete()
        bi.set_namespace(MARKER_NS)
        bi.write_full("scale-done", b"")
        bi.close()
    finally:
        c.shutdown()


def cmd(command: str, conf: str, kind: str, size: int, out: Path, memory: str, tmpdir: Path) -> list[str]:
    maps, blocks = pools(kind, size)
    return [sys.executable, "-m", "verify", command, "--backend", "rados", "--pool", maps, "--blocks-pool", blocks,
            "-c", conf, "--format", "json", "-o", str(out), "--no-progress", "--memory", memory,
            "--tmpdir", str(tmpdir)]


def measure(conf: str, kind: str, size: int, memory: str, pairs: int, work: Path) -> dict:
    tmpdir = work / "spill"
    tmpdir.mkdir(exist_ok=True)
    runs: dict[str, list] = {"scan": [], "check": []}
    ops: dict[str, list] = {"scan": [], "check": []}
    loads = []
    for _ in range(pairs):
        for c in ("scan", "check"):
            before = rcb.osd_ops(conf)
            runs[c].append(timed(cmd(c, conf, kind, size, work / f"{c}.json", memory, tmpdir)))
            ops[c].append(rcb.osd_ops(conf).get("op", 0) - before.get("op", 0))
            loads.append(os.getloadavg()[0])
    doc = json.loads((work / "check.json").read_text())
    s = doc["summary"]
    objects = s["per_store"]["maps"] + s["per_store"]["blocks"]
    row = {"store": kind, "files": objects, "findings": s["findings_total"], "load": max(loads),
           "orphans_pct": round(100 * s["findings"].get("object_orphan", 0) / (s["per_store"]["blocks"] or 1), 1),
           "jsonl_bytes": sum(len(json.dumps(f)) + 1 for f in doc["findings"])}
    del doc
    for c, rs in runs.items():
        cpu = statistics.median(r[1] for r in rs)
        rss = max(r[2] for r in rs)
        row[c] = {"wall_s": round(statistics.median(r[0] for r in rs), 2), "cpu_s": round(cpu, 2),
                  "rss_mib": round(rss, 1), "cpu_us_per_file": round(1e6 * cpu / objects, 2),
                  "rss_b_per_file": round(rss * 2**20 / objects, 1), "osd_ops": int(statistics.median(ops[c]))}
    row["check_over_scan_cpu"] = round(row["check"]["cpu_s"] / row["scan"]["cpu_s"], 2)
    row["check_over_scan_wall"] = round(row["check"]["wall_s"] / row["scan"]["wall_s"], 2)
    return row


def fixed_cost(conf: str, memory: str, work: Path) -> dict[str, float]:
    """CPU seconds of each command on an empty pair of pools: start-up, connect, an empty listing."""
    import rados

    maps, blocks = pools("empty", 0)
    c = rados.Rados(conffile=conf)
    c.connect(timeout=30)
    try:
        for p in (maps, blocks):
            if not c.pool_exists(p):
                c.create_pool(p)
    finally:
        c.shutdown()
    tmpdir = work / "spill"
    tmpdir.mkdir(exist_ok=True)
    return {k: statistics.median(timed(cmd(k, conf, "empty", 0, work / f"{k}.json", memory, tmpdir))[1]
                                 for _ in range(3)) for k in ("scan", "check")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conf", required=True, help="the cluster's ceph.conf (with a client.admin keyring)")
    ap.add_argument("--sizes", default="100000,300000", help="objects per pair of pools, comma-separated [%(default)s]")
    ap.add_argument("--stores", default="heavy,clean")
    ap.add_argument("--memory", default="256M")
    ap.add_argument("--pairs", type=int, default=1)
    ap.add_argument("--json", help="write the rows to this file too")
    a = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rados-scale-") as w:
        work = Path(w)
        print(f"--memory {a.memory}, load average {os.getloadavg()[0]:.1f} at start", flush=True)
        fixed = fixed_cost(a.conf, a.memory, work)
        print(f"fixed cost (empty pools): scan {fixed['scan']:.2f} s CPU, check {fixed['check']:.2f} s CPU", flush=True)
        for size in (int(s) for s in a.sizes.split(",")):
            for kind in a.stores.split(","):
                t0 = time.monotonic()
                load(a.conf, kind, size)
                print(f"{kind} {size:,}: pools ready in {time.monotonic() - t0:.0f} s", flush=True)
                row = measure(a.conf, kind, size, a.memory, a.pairs, work)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if a.json:
                    Path(a.json).write_text(json.dumps({"fixed": fixed, "rows": rows}, indent=1))
    print()
    print(table(rows))
    print()
    for r in rows:
        print(f"{r['store']} {r['files']:,}: OSD ops scan {r['scan']['osd_ops']:,}, check {r['check']['osd_ops']:,}")
    for line in flatness(rows) + after_startup(rows, fixed) + extrapolate(rows):
        print(line.replace("files", "objects").replace("file", "object"))
    print(f"(extrapolated to {TARGET:,} objects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
