#!/usr/bin/env python3
"""Objects/s of ``archverify scan --backend rados`` against, in the same run:

* the provided finalize script's loop: ``rados.ObjectIterator`` and one synchronous
  32-byte read per object, sequentially (written here in Python 3: the baseline);
* a minimal C program that only lists and aio-reads 32 bytes per object
  (benchmarks/rados_ceiling.c, compiled here): the ceiling this cluster allows;
* listing alone (``rados ls``).

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


def round_(label: str, conf: str, n: int, ceiling_bin: str, inflight: int, base_s: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out: dict = {"label": label}
    took, _ = timed(["rados", "-c", conf, "-p", POOL, "ls"])
    out["rados_ls"] = n / took
    took, text = timed([ceiling_bin, conf, POOL, str(inflight)])
    got, _bytes, inner = text.split()
    assert int(got) == n, (got, n)
    out["ceiling"] = n / took
    out["ceiling_inner"] = n / float(inner)
    took, text = timed([sys.executable, "-m", "verify", "scan", "--backend", "rados", "--pool", POOL, "-c", conf,
                        "--inflight", str(inflight), "--format", "jsonl", "--no-progress"], env)
    doc = json.loads(text.splitlines()[-1])  # jsonl: the findings, then the summary
    assert doc["summary"]["per_store"]["maps"] == n, doc["summary"]["per_store"]
    out["scan"] = n / took
    out["scan_inner"] = n / doc["summary"]["elapsed_s"]
    done, took = baseline(conf, base_s)
    out["baseline"] = done / took
    out["baseline_objects"] = done
    return out


def report(r: dict) -> None:
    print(f"\n== {r['label']}")
    print(f"  rados ls (listing only)         {r['rados_ls']:>10,.0f} objects/s  (wall, incl. connect)")
    print(f"  C ceiling (list + aio 32 B)     {r['ceiling']:>10,.0f} objects/s  (wall; {r['ceiling_inner']:,.0f} after exec)")
    print(f"  archverify scan --backend rados {r['scan']:>10,.0f} objects/s  (wall; {r['scan_inner']:,.0f} scan phase)")
    print(f"  provided loop (sync read each)  {r['baseline']:>10,.0f} objects/s  ({r['baseline_objects']:,} objects timed)")
    print(f"  scan / provided loop: {r['scan'] / r['baseline']:.1f}x wall, {r['scan_inner'] / r['baseline']:.1f}x scan phase")
    print(f"  scan / C ceiling:     {100 * r['scan'] / r['ceiling']:.0f}% wall, "
          f"{100 * r['scan_inner'] / r['ceiling_inner']:.0f}% scan phase vs ceiling after exec")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--conf", help="an existing cluster's ceph.conf (with a client.admin keyring); default: start one")
    ap.add_argument("--inflight", type=int, default=256)
    ap.add_argument("--delay-max", type=float, default=0.008,
                    help="ms_inject_delay_max in seconds (uniform 0..max per message from an OSD) [0.008]")
    ap.add_argument("--baseline-seconds", type=float, default=15.0)
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
        subprocess.run(["gcc", "-O2", "-o", str(ceiling), str(ROOT / "benchmarks" / "rados_ceiling.c"), "-lrados"],
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
        results = [
            round_("local cluster", conf, a.objects, str(ceiling), a.inflight, a.baseline_seconds),
            round_(f"latency injected (ms_inject_delay_max={a.delay_max}s on OSD replies)", str(delayed),
                   a.objects, str(ceiling), a.inflight, a.baseline_seconds),
        ]
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
