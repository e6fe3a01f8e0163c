#!/usr/bin/env python3
"""``archverify check --backend rados``: maps/s, references/s, peak RSS, against in the same run:

* ``scan`` on the same pools, alternated with the check in pairs (``--pairs``, 3 by
  default): the median ratio of wall and of CPU seconds (user + system of the whole
  process), the OSD's op counters (``perf dump`` on its admin socket) read before and
  after each side, and the load average (target: the whole check within 2x the scan);
* the python-rados engine of the same check (a thread pool of synchronous reads);
* a naive loop: list the maps pool, read each map and its map-data objects one
  synchronous read at a time, then stat every referenced object one by one (the
  baseline); it stops after --baseline-seconds and its rate is taken over what it did;
* for ``--verify-data``: MB/s of the data stage against reading the same blocks with
  python-rados, one synchronous read each, without hashing (the ``cat`` of RADOS).

Each is run on the local cluster as is and with client-side latency injected (Ceph's
``ms_inject_delay_*`` options), which stands for a cluster across a network.

    python benchmarks/rados_check_bench.py                     # starts its own cluster
    python benchmarks/rados_check_bench.py --volumes 500 --conf /path/ceph.conf
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from verify.core import formats as F  # noqa: E402

MAPS, BLOCKS = "bench-check-maps", "bench-check-blocks"


def load(conf: str, volumes: int, entries: int, block_kb: int) -> dict:
    """Volumes and their snapshots (two maps naming each block), every block a Pithos block."""
    import rados

    rng = random.Random(1)
    c = rados.Rados(conffile=conf)
    c.connect(timeout=30)
    for p in (MAPS, BLOCKS):
        if c.pool_exists(p):
            c.delete_pool(p)
        c.create_pool(p)
    mi, bi = c.open_ioctx(MAPS), c.open_ioctx(BLOCKS)
    pending = []

    def put(io, name, data):
        pending.append(io.aio_write_full(name, data))
        if len(pending) >= 256:
            for comp in pending:
                comp.wait_for_complete()
            pending.clear()

    t0 = time.monotonic()
    nblocks = nbytes = 0
    for v in range(volumes):
        names = []
        for _ in range(entries):
            data = rng.randbytes(block_kb * 1024)
            names.append(hashlib.sha256(data).hexdigest())
            put(bi, names[-1], data)
            nblocks += 1
            nbytes += len(data)
        ents = [F.Entry(n, 0) for n in names]
        for name, flags, epoch in ((f"vol-{v:06d}", 0, 2), (f"snap-{v:06d}", F.MF_READONLY, 0)):
            header, md = F.write_v2(entries * F.BLOCK_SIZE_4M, ents, flags=flags, epoch=epoch, name=name)
            put(mi, name, header + bytes(512 - len(header)))
            for k, d in md.items():
                put(mi, k, d)
    for comp in pending:
        comp.wait_for_complete()
    mi.close()
    bi.close()
    c.shutdown()
    print(f"loaded {2 * volumes:,} maps, {nblocks:,} blocks ({nbytes / 1e6:.0f} MB) in {time.monotonic() - t0:.1f}s",
          flush=True)
    return {"maps": 2 * volumes, "references": 2 * volumes * entries, "blocks": nblocks, "bytes": nbytes}


def osd_ops(conf: str) -> dict:
    """The OSD's op counters now (``ceph daemon osd.0 perf dump`` through its admin socket)."""
    asok = None
    for line in Path(conf).read_text().splitlines():
        k, _, v = line.partition("=")
        if k.strip() == "admin socket":
            asok = v.strip().replace("$name", "osd.0")
    if asok is None:
        return {}
    p = subprocess.run(["ceph", "--admin-daemon", asok, "perf", "dump"], capture_output=True, text=True)
    if p.returncode != 0:
        return {}
    osd = json.loads(p.stdout).get("osd", {})
    return {k: osd.get(k, 0) for k in ("op", "op_r", "op_w", "op_rw")}


def reused(conf: str, a) -> dict | None:
    """The facts of pools loaded by an earlier run with the same sizes, or None (then they are loaded)."""
    import rados

    c = rados.Rados(conffile=conf)
    c.connect(timeout=30)
    try:
        if not (c.pool_exists(MAPS) and c.pool_exists(BLOCKS)):
            return None
        heads = sum(1 for o in c.open_ioctx(MAPS).list_objects() if F.name_class(o.key.encode()) is F.NameClass.PLAIN)
        if heads != 2 * a.volumes:
            return None
    finally:
        c.shutdown()
    nblocks = a.volumes * a.entries
    return {"maps": 2 * a.volumes, "references": 2 * nblocks, "blocks": nblocks, "bytes": nblocks * a.block_kb * 1024}


def run(args, conf: str, engine: str = "c") -> dict:
    """One CLI run in a child; wall time, CPU seconds, the OSD ops it caused and the child's peak RSS."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), ARCHVERIFY_RADOS_ENGINE=engine)
    if engine == "c":
        env.pop("ARCHVERIFY_RADOS_ENGINE")
    cmd = [sys.executable, "-m", "verify", *args, "--backend", "rados", "--pool", MAPS, "--blocks-pool", BLOCKS,
           "-c", conf, "--format", "json", "--no-progress"]
    ops0 = osd_ops(conf)
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env)
        _pid, status, usage = os.wait4(p.pid, 0)  # this child's own peak RSS
        took = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    if p.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(args)} failed ({p.returncode}): {err.decode().strip()}")
    ops1 = osd_ops(conf)
    rss = usage.ru_maxrss  # KiB
    doc = json.loads(out)
    return {"s": took, "cpu_s": usage.ru_utime + usage.ru_stime, "inner_s": doc["summary"]["elapsed_s"],
            "rss_mb": rss / 1024, "ops": {k: ops1[k] - ops0.get(k, 0) for k in ops1}, "doc": doc}


def pairs(conf: str, n: int) -> dict:
    """``check`` then ``scan``, ``n`` times alternated; the median of the pairs' ratios."""
    load0 = os.getloadavg()[0]
    run(["scan"], conf)  # warm the OSD and this host
    got = []
    for _ in range(n):
        got.append((run(["check"], conf), run(["scan"], conf)))
    return {"load": load0, "load_end": os.getloadavg()[0],
            "wall": statistics.median(c["s"] / s["s"] for c, s in got),
            "cpu": statistics.median(c["cpu_s"] / s["cpu_s"] for c, s in got),
            "runs": [{"check": {k: c[k] for k in ("s", "cpu_s", "ops")}, "scan": {k: s[k] for k in ("s", "cpu_s", "ops")}}
                     for c, s in got]}


def report_pairs(r: dict) -> None:
    print(f"\n== check / scan, {len(r['runs'])} alternated pairs (load average {r['load']:.1f} -> "
          f"{r['load_end']:.1f})")
    for k, p in enumerate(r["runs"], 1):
        c, s = p["check"], p["scan"]
        print(f"  pair {k}: check {c['s']:.2f}s wall {c['cpu_s']:.2f}s CPU, OSD ops {c['ops']}; "
              f"scan {s['s']:.2f}s wall {s['cpu_s']:.2f}s CPU, OSD ops {s['ops']}")
    print(f"  check / scan: {r['wall']:.2f}x wall, {r['cpu']:.2f}x CPU (median of pairs; target <= 2x)", flush=True)


def naive(conf: str, seconds: float) -> tuple[int, int, float]:
    """Maps and references checked by one synchronous read or stat at a time."""
    import rados

    c = rados.Rados(conffile=conf)
    c.connect(timeout=30)
    mi, bi = c.open_ioctx(MAPS), c.open_ioctx(BLOCKS)
    maps = refs = 0
    t0 = time.monotonic()
    for obj in mi.list_objects():
        if F.name_class(obj.key.encode()) is not F.NameClass.PLAIN:
            continue
        head = mi.read(obj.key, 512, 0)
        info = F.classify(head, len(head), obj.key.encode())
        if info.cls is not F.HeaderClass.V2:
            continue
        for b in range(F.mapdata_blocks(info.size, info.blocksize)):
            md = mi.read(F.mapdata_name(obj.key, b), info.blocksize, 0)
            for off in range(0, len(md) - F.V2_ENTRY_LEN + 1, F.V2_ENTRY_LEN):
                e = F.parse_v2_entry(md, off)
                if not e.flags & F.OF_ZERO:
                    bi.stat(e.name)
                    refs += 1
        maps += 1
        if time.monotonic() - t0 > seconds:
            break
    took = time.monotonic() - t0
    c.shutdown()
    return maps, refs, took


def read_all(conf: str, seconds: float) -> tuple[int, float]:
    """Bytes/s of reading every block once, one synchronous read each, no hashing."""
    import rados

    c = rados.Rados(conffile=conf)
    c.connect(timeout=30)
    bi = c.open_ioctx(BLOCKS)
    n = 0
    t0 = time.monotonic()
    for obj in bi.list_objects():
        size = bi.stat(obj.key)[0]
        n += len(bi.read(obj.key, size, 0))
        if time.monotonic() - t0 > seconds:
            break
    took = time.monotonic() - t0
    c.shutdown()
    return n, took


def round_(label: str, conf: str, facts: dict, base_s: float) -> dict:
    out: dict = {"label": label}
    scan = run(["scan"], conf)
    check = run(["check"], conf)
    py = run(["check"], conf, engine="python")
    data = run(["check", "--verify-data"], conf)
    c = check["doc"]["check"]
    assert c["references"] == facts["references"], (c["references"], facts)
    assert data["doc"]["check"]["data_bytes"] == facts["bytes"]
    out.update(scan_s=scan["s"], check_s=check["s"], python_s=py["s"], data_s=data["s"], check_rss_mb=check["rss_mb"])
    out.update(scan_inner_s=scan["inner_s"], check_inner_s=check["inner_s"], python_inner_s=py["inner_s"])
    # rates over the run itself (after the interpreter started and connected), as the baselines are timed
    out["maps_per_s"] = facts["maps"] / check["inner_s"]
    out["refs_per_s"] = facts["references"] / check["inner_s"]
    out["data_mb_per_s"] = facts["bytes"] / 1e6 / max(1e-9, data["inner_s"] - check["inner_s"])
    maps, refs, took = naive(conf, base_s)
    out["naive_maps_per_s"] = maps / took
    out["naive_refs_per_s"] = refs / took
    n, took = read_all(conf, base_s)
    out["read_mb_per_s"] = n / 1e6 / took
    return out


def report(r: dict, facts: dict) -> None:
    print(f"\n== {r['label']}")
    print(f"  scan                      {r['scan_s']:8.2f} s wall, {r['scan_inner_s']:.2f} s run")
    print(f"  check (scan + references) {r['check_s']:8.2f} s wall, {r['check_inner_s']:.2f} s run: "
          f"{r['maps_per_s']:,.0f} maps/s, {r['refs_per_s']:,.0f} references/s; "
          f"peak RSS {r['check_rss_mb']:.0f} MB")
    print(f"  check / scan:             {r['check_s'] / r['scan_s']:.2f}x wall, "
          f"{r['check_inner_s'] / r['scan_inner_s']:.2f}x run  (target <= 3x)")
    print(f"  check, python-rados engine {r['python_inner_s']:7.2f} s run  "
          f"(aio engine {r['python_inner_s'] / r['check_inner_s']:.1f}x faster)")
    print(f"  naive loop (sync each)    {r['naive_maps_per_s']:,.0f} maps/s, {r['naive_refs_per_s']:,.0f} references/s"
          f"  -> check is {r['maps_per_s'] / r['naive_maps_per_s']:.1f}x faster (its run includes the scan stage)")
    print(f"  --verify-data stage       {r['data_mb_per_s']:,.0f} MB/s  vs sync read-all {r['read_mb_per_s']:,.1f} MB/s"
          f"  ({100 * r['data_mb_per_s'] / r['read_mb_per_s']:.0f}%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--volumes", type=int, default=500, help="volumes (each with a snapshot naming the same blocks)")
    ap.add_argument("--entries", type=int, default=8, help="blocks per volume")
    ap.add_argument("--block-kb", type=int, default=64)
    ap.add_argument("--conf", help="an existing cluster's ceph.conf (with a client.admin keyring); default: start one")
    ap.add_argument("--delay-max", type=float, default=0.004)
    ap.add_argument("--baseline-seconds", type=float, default=10.0)
    ap.add_argument("--pairs", type=int, default=3, help="alternated (check, scan) pairs [3]")
    ap.add_argument("--pairs-only", action="store_true", help="only the alternated pairs on the local cluster")
    ap.add_argument("--reuse", action="store_true", help="with --conf: keep the pools when they hold --volumes maps")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="archverify-rados-check-bench-"))
    started = None
    try:
        conf = a.conf
        if conf is None:
            started = tmp / "cluster"
            p = subprocess.run([str(ROOT / "scripts" / "ceph-dev-cluster"), "start", str(started)],
                               capture_output=True, text=True, check=True)
            conf = p.stdout.strip().splitlines()[-1]
            print(f"cluster started: {conf}", flush=True)
        facts = reused(conf, a) if a.reuse and a.conf else None
        facts = facts or load(conf, a.volumes, a.entries, a.block_kb)
        pr = pairs(conf, a.pairs)
        report_pairs(pr)
        if a.pairs_only:
            if a.json:
                Path(a.json).write_text(json.dumps({"facts": facts, "pairs": pr}, indent=2) + "\n")
            return
        delayed = tmp / "delayed.conf"
        inject = f"ms inject delay type = osd\nms inject delay max = {a.delay_max}\nms inject delay probability = 1\n"
        text = Path(conf).read_text()
        text = text.replace("[client]\n", "[client]\n" + inject, 1) if "[client]\n" in text else \
            text + "\n[client]\n" + inject
        delayed.write_text(text)
        results = [round_("local cluster", conf, facts, a.baseline_seconds),
                   round_(f"latency injected (ms_inject_delay_max={a.delay_max}s)", str(delayed), facts,
                          a.baseline_seconds)]
        print(f"\n{facts['maps']:,} maps, {facts['references']:,} references, {facts['blocks']:,} blocks "
              f"({facts['bytes'] / 1e6:.0f} MB), {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        for r in results:
            report(r, facts)
        if a.json:
            Path(a.json).write_text(json.dumps({"facts": facts, "pairs": pr, "rounds": results}, indent=2) + "\n")
    finally:
        if started is not None:
            subprocess.run([str(ROOT / "scripts" / "ceph-dev-cluster"), "purge", str(started)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
