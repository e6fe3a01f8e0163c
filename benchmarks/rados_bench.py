#!/usr/bin/env python3
"""Objects/s of ``archverify scan --backend rados`` against, in the same run:

* a minimal C program making the same librados calls as the scan: the listing, then
  aio reads of exactly the objects the scan reads (header candidates, locks, the
  upgrade probes; benchmarks/rados_ceiling.c, compiled here with the scanner's own
  name rules from verify/_rules.h): the ceiling this cluster allows. The run checks
  that both made the same number of reads and probes;
* the provided finalize script's loop: ``rados.ObjectIterator`` and one synchronous
  32-byte read per object, sequentially (written here in Python 3: the old tool);
* listing alone (``rados ls``).

The C program and the scan alternate, --pairs times, each a whole process (start-up
and connect included); the ratio is the median of the pairs' ratios.
Run twice: on the local cluster as is, and with client-side latency injected
(Ceph's ``ms_inject_delay_*`` messenger options), which stands for a remote cluster.

    python benchmarks/rados_bench.py                 # starts its own cluster, 100k objects
    python benchmarks/rados_bench.py --objects 20000 --conf /path/ceph.conf   # an existing cluster

The maps pool holds a mix of v2 headers with their map-data, v1 and v0 maps, empty
radosd locks and hash objects. The baseline stops after --baseline-seconds and its
rate is taken over what it did (it would take minutes with latency injected).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from verify import formats as F  # noqa: E402

POOL = "bench-maps"


def objects(n: int):
    """(name, bytes) pairs, a cycle of 20: 6 v2 headers + their map-data, 2 v1, 2 v0, 3 locks, 1 hash."""
    i = 0
    emitted = 0
    zero = [F.Entry(F.ZERO_HASH, F.OF_ZERO)] * 4
    while emitted < n:
        for k in range(20):
            if emitted >= n:
                return
            if k < 12:
                vol = f"vol-{i:07d}-{k // 2}"
                header, data = F.write_v2(4 * F.BLOCK_SIZE_4M, zero, name=vol)
                if k % 2 == 0:
                    yield vol, header + bytes(512 - len(header))
                else:
                    yield next(iter(data.items()))
            elif k < 14:
                h = hashlib.sha256(f"{i}-{k}".encode()).hexdigest()
                yield f"archip_v1-{i:07d}-{k}", F.write_v1(3 * F.BLOCK_SIZE_4M, [(0, h), (1, h), (0, F.ZERO_HASH)])
            elif k < 16:
                h = hashlib.sha256(f"v0-{i}-{k}".encode()).hexdigest()
                yield h, F.write_v0([h, F.ZERO_HASH])
            elif k < 19:
                yield f"vol-{i:07d}-{k}_lock", b""
            else:
                yield f"vol-{i:07d}-{k}_hash", hashlib.sha256(b"x").hexdigest().encode()
            emitted += 1
        i += 1


def load(conf: str, n: int) -> None:
    import rados

    c = rados.Rados(conffile=conf)
    c.connect(timeout=30)
    if c.pool_exists(POOL):
        c.delete_pool(POOL)
    c.create_pool(POOL)
    io = c.open_ioctx(POOL)
    t0 = time.monotonic()
    pending = []
    for name, data in objects(n):
        pending.append(io.aio_write_full(name, data))
        if len(pending) >= 512:
            for comp in pending:
                comp.wait_for_complete()
            pending = []
    for comp in pending:
        comp.wait_for_complete()
    io.close()
    c.shutdown()
    print(f"loaded {n:,} objects into pool {POOL} in {time.monotonic() - t0:.1f}s", flush=True)


def pool_size(conf: str) -> int:
    p = subprocess.run(["rados", "-c", conf, "-p", POOL, "ls"], capture_output=True, text=True)
    return len(p.stdout.splitlines()) if p.returncode == 0 else -1


def baseline(conf: str, seconds: float) -> tuple[int, float]:
    """The provided script's loop: ObjectIterator + a synchronous 32-byte read each."""
    import rados

    c = rados.Rados(conffile=conf)
    c.connect(timeout=30)
    io = c.open_ioctx(POOL)
    n = 0
    kinds = {"v2": 0, "v1": 0, "v0": 0, "other": 0}
    t0 = time.monotonic()
    for obj in io.list_objects():
        try:
            head = io.read(obj.key, 32, 0)
        except Exception:  # the old tool skipped every error silently
            continue
        if head[:4] == b"AMF.":
            kinds["v2"] += 1
        elif head[:4] == b"\1\0\0\0":
            kinds["v1"] += 1
        elif len(obj.key) == 64:
            kinds["v0"] += 1
        else:
            kinds["other"] += 1
        n += 1
        if n % 256 == 0 and time.monotonic() - t0 > seconds:
            break
    took = time.monotonic() - t0
    io.close()
    c.shutdown()
    return n, took


def timed(cmd, env=None) -> tuple[float, str]:
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    took = time.monotonic() - t0
    if p.returncode not in (0, 1):
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}): {p.stderr.strip()}")
    return took, p.stdout


def run_ceiling(ceiling_bin: str, conf: str, n: int, inflight: int) -> dict:
    took, text = timed([ceiling_bin, conf, POOL, str(inflight)])
    listed, reads, probes, inner = text.split()
    assert int(listed) == n, (listed, n)
    return {"wall": took, "inner": float(inner), "reads": int(reads), "probes": int(probes)}


def run_scan(conf: str, n: int, inflight: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    took, text = timed([sys.executable, "-m", "verify", "scan", "--backend", "rados", "--pool", POOL, "-c", conf,
                        "--inflight", str(inflight), "--format", "jsonl", "--no-progress"], env)
    doc = json.loads(text.splitlines()[-1])  # jsonl: the findings, then the summary
    s = doc["summary"]
    assert s["per_store"]["maps"] == n, s["per_store"]
    c = s.get("counters", {})
    return {"wall": took, "inner": s["elapsed_s"], "reads": c.get("maps.reads", c.get("reads")),
            "probes": c.get("maps.probes", c.get("probes"))}


def round_(label: str, conf: str, n: int, ceiling_bin: str, inflight: int, base_s: float, pairs: int) -> dict:
    """Alternated pairs (C ceiling, then scan), whole process each; the median pair ratio counts."""
    out: dict = {"label": label, "load": os.getloadavg()[0]}
    took, _ = timed(["rados", "-c", conf, "-p", POOL, "ls"])
    out["rados_ls"] = n / took
    run_ceiling(ceiling_bin, conf, n, inflight)  # warm the OSD's caches and this host's
    ratios, ceil_runs, scan_runs = [], [], []
    for _ in range(pairs):
        c = run_ceiling(ceiling_bin, conf, n, inflight)
        s = run_scan(conf, n, inflight)
        ceil_runs.append(c)
        scan_runs.append(s)
        ratios.append(c["wall"] / s["wall"])  # scan's rate as a share of the ceiling's
    out["pairs"] = [{"ceiling_s": c["wall"], "scan_s": s["wall"]} for c, s in zip(ceil_runs, scan_runs)]
    out["ratio"] = statistics.median(ratios)
    out["ratio_inner"] = statistics.median(c["inner"] / s["inner"] for c, s in zip(ceil_runs, scan_runs))
    out["ceiling"] = n / statistics.median(c["wall"] for c in ceil_runs)
    out["scan"] = n / statistics.median(s["wall"] for s in scan_runs)
    out["ops"] = {"ceiling": [ceil_runs[0]["reads"], ceil_runs[0]["probes"]],
                  "scan": [scan_runs[0]["reads"], scan_runs[0]["probes"]]}
    out["load_end"] = os.getloadavg()[0]
    if base_s > 0:
        done, took = baseline(conf, base_s)
        out["baseline"] = done / took
        out["baseline_objects"] = done
    return out


def report(r: dict) -> None:
    print(f"\n== {r['label']} (load average {r['load']:.1f} -> {r['load_end']:.1f})")
    (cr, cp), (sr, sp) = r["ops"]["ceiling"], r["ops"]["scan"]
    same = "same ops" if (cr, cp) == (sr, sp) else "DIFFERENT ops: the ratio compares different work"
    print(f"  ops: C ceiling {cr:,} reads + {cp:,} probes; scan {sr} reads + {sp} probes ({same})")
    print(f"  rados ls (listing only)         {r['rados_ls']:>10,.0f} objects/s  (wall, incl. connect)")
    print(f"  C ceiling (same reads/probes)   {r['ceiling']:>10,.0f} objects/s  (median wall, whole process)")
    print(f"  archverify scan --backend rados {r['scan']:>10,.0f} objects/s  (median wall, whole process)")
    for k, p in enumerate(r["pairs"], 1):
        print(f"    pair {k}: C {p['ceiling_s']:.2f}s, scan {p['scan_s']:.2f}s -> {p['ceiling_s'] / p['scan_s']:.0%}")
    if "baseline" in r:
        print(f"  provided loop (sync read each)  {r['baseline']:>10,.0f} objects/s  ({r['baseline_objects']:,} "
              f"objects timed); scan / loop: {r['scan'] / r['baseline']:.1f}x")
    print(f"  scan / C ceiling: {r['ratio']:.0%} whole process (median of {len(r['pairs'])} alternated pairs; "
          f"target >= 85%), {r['ratio_inner']:.0%} after start-up")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--conf", help="an existing cluster's ceph.conf (with a client.admin keyring); default: start one")
    ap.add_argument("--inflight", type=int, default=256)
    ap.add_argument("--delay-max", type=float, default=0.008,
                    help="ms_inject_delay_max in seconds (uniform 0..max per message from an OSD) [0.008]")
    ap.add_argument("--baseline-seconds", type=float, default=15.0,
                    help="time the provided loop for this long (0: skip it)")
    ap.add_argument("--pairs", type=int, default=3, help="alternated (C, scan) pairs per round [3]")
    ap.add_argument("--no-latency", action="store_true", help="skip the round with latency injected")
    ap.add_argument("--keep", action="store_true", help="keep the cluster this script started")
    ap.add_argument("--reuse", action="store_true",
                    help=f"with --conf: keep pool {POOL} when it already holds --objects objects")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="archverify-rados-bench-"))
    started = None
    try:
        conf = a.conf
        if conf is None:
            started = tmp / "cluster"
            p = subprocess.run([str(ROOT / "scripts" / "ceph-dev-cluster"), "start", str(started)],
                               capture_output=True, text=True, check=True)
            conf = p.stdout.strip().splitlines()[-1]
            print(f"cluster started: {conf}", flush=True)
        ceiling = tmp / "rados_ceiling"
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(ceiling), str(ROOT / "benchmarks" / "rados_ceiling.c"),
                        "-lrados"],
                       check=True)
        if not (a.reuse and a.conf and pool_size(conf) == a.objects):
            load(conf, a.objects)
        delayed = tmp / "delayed.conf"
        inject = (f"ms inject delay type = osd\nms inject delay max = {a.delay_max}\n"
                  "ms inject delay probability = 1\n")
        text = Path(conf).read_text()
        text = text.replace("[client]\n", "[client]\n" + inject, 1) if "[client]\n" in text else \
            text + "\n[client]\n" + inject
        delayed.write_text(text)
        results = [round_("local cluster", conf, a.objects, str(ceiling), a.inflight, a.baseline_seconds, a.pairs)]
        if not a.no_latency:
            results.append(round_(f"latency injected (ms_inject_delay_max={a.delay_max}s on OSD replies)",
                                  str(delayed), a.objects, str(ceiling), a.inflight, a.baseline_seconds, a.pairs))
        print(f"\n{a.objects:,} objects in pool {POOL}, --inflight {a.inflight}, {os.cpu_count()} CPUs")
        for r in results:
            report(r)
        if a.json:
            Path(a.json).write_text(json.dumps({"objects": a.objects, "inflight": a.inflight, "rounds": results},
                                               indent=2) + "\n")
    finally:
        if started is not None and not a.keep:
            subprocess.run([str(ROOT / "scripts" / "ceph-dev-cluster"), "purge", str(started)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
