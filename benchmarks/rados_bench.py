#!/usr/bin/env python3
"""Objects/s, CPU seconds and OSD ops of ``archverify scan --backend rados`` against, in the same run:

* the ceiling: a minimal C program making the same librados calls as the scan
  (benchmarks/rados_ceiling.c, compiled here with the scanner's own name rules from
  verify/native/_rules.h): the listing, then aio reads of exactly the objects the scan reads
  (header candidates 64 B, locks 255 B, the 8-byte upgrade probe of ``archip_NAME``, a
  stat of a v1 map read in full), --inflight ops in flight. No findings, no output;
* the peer: the same reads and decisions written with python-rados' aio calls
  (benchmarks/rados_aio_peer.py), the same number in flight, reaped oldest first;
* the old tool's loop: ``rados.ObjectIterator`` and one synchronous 32-byte read per
  object, sequentially (timed for --baseline-seconds);
* listing alone (``rados ls``).

The three sides alternate (C, scan, peer), --pairs runs of each, each a whole process
(start-up and connect included), measured by the kernel's accounting of the finished
child (wall, user + sys CPU of all its threads, peak RSS); the OSD's own op counters
(``perf dump`` on its admin socket) are read before and after every run, so a gap in
time can be told from a gap in work. Ratios are medians of the per-run ratios. The load
average is printed with each round: these figures are only comparable within a run.

Run twice: on the local cluster as is, and with client-side latency injected (Ceph's
``ms_inject_delay_*`` messenger options), which stands for a remote cluster.

    python benchmarks/rados_bench.py                 # starts its own cluster, 100k objects
    python benchmarks/rados_bench.py --mix migrated  # a pool after the upgrade: no findings
    python benchmarks/rados_bench.py --objects 20000 --conf /path/ceph.conf   # an existing cluster
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

from verify.core import formats as F  # noqa: E402

POOL = "bench-maps"


def objects(n: int, mix: str = "mixed"):
    """(name, bytes) pairs in cycles of 20. ``mixed``: 6 v2 headers + their map-data, 2 v1, 2 v0,
    3 locks, 1 hash (a store mid-upgrade: a fifth of the objects are findings). ``migrated``: 8 v2
    headers + their map-data, 3 locks, 1 hash (a store after the upgrade: no findings)."""
    i = 0
    emitted = 0
    zero = [F.Entry(F.ZERO_HASH, F.OF_ZERO)] * 4
    v2_end = 12 if mix == "mixed" else 16
    while emitted < n:
        for k in range(20):
            if emitted >= n:
                return
            if k < v2_end:
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


def load(conf: str, n: int, mix: str) -> None:
    import rados

    c = rados.Rados(conffile=conf)
    c.connect(timeout=30)
    if c.pool_exists(POOL):
        c.delete_pool(POOL)
    c.create_pool(POOL)
    io = c.open_ioctx(POOL)
    t0 = time.monotonic()
    pending = []
    for name, data in objects(n, mix):
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


def timed(cmd, env=None) -> dict:
    """One whole process: wall seconds, CPU seconds (user + sys, all its threads) and peak RSS
    from the kernel's accounting of that child alone (wait4), and what it printed."""
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        out = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        p.stdout.close()
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode not in (0, 1):
            err.seek(0)
            raise SystemExit(f"{cmd[0]} failed ({p.returncode}): {err.read().strip()}")
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_mib": ru.ru_maxrss / 1024, "out": out}


class OsdOps:
    """The OSD's own op counters (``perf dump`` on its admin socket), read before and after a
    run: what the cluster served, whichever client asked. None where the socket is not there."""

    def __init__(self, conf: str):
        self.sock = Path(conf).parent / "run" / "osd.0.asok"

    def read(self) -> dict | None:
        if not self.sock.exists():
            return None
        p = subprocess.run(["ceph", "--admin-daemon", str(self.sock), "perf", "dump"], capture_output=True, text=True)
        if p.returncode != 0:
            return None
        osd = json.loads(p.stdout)["osd"]
        return {k: osd.get(k, 0) for k in ("op", "op_r", "op_w")}

    def during(self, fn):
        before = self.read()
        r = fn()
        after = self.read()
        r["osd"] = {k: after[k] - before[k] for k in after} if before and after else None
        return r


def run_ceiling(ceiling_bin: str, conf: str, n: int, inflight: int) -> dict:
    r = timed([ceiling_bin, conf, POOL, str(inflight)])
    listed, reads, probes, inner = r["out"].split()
    assert int(listed) == n, (listed, n)
    return dict(r, inner=float(inner), reads=int(reads), probes=int(probes))


def run_peer(conf: str, n: int, inflight: int) -> dict:
    r = timed([sys.executable, str(ROOT / "benchmarks" / "rados_aio_peer.py"), conf, POOL, str(inflight)])
    listed, reads, probes, inner = r["out"].split()
    assert int(listed) == n, (listed, n)
    return dict(r, inner=float(inner), reads=int(reads), probes=int(probes))


def run_scan(conf: str, n: int, inflight: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = timed([sys.executable, "-m", "verify", "scan", "--backend", "rados", "--pool", POOL, "-c", conf,
               "--inflight", str(inflight), "--format", "jsonl", "--no-progress"], env)
    doc = json.loads(r["out"].splitlines()[-1])  # jsonl: the findings, then the summary
    s = doc["summary"]
    assert s["per_store"]["maps"] == n, s["per_store"]
    c = s.get("counters", {})
    return dict(r, inner=s["elapsed_s"], reads=c.get("maps.reads", c.get("reads", 0)),
                probes=c.get("maps.probes", c.get("probes", 0)), findings=s["findings_total"])


SIDES = ("ceiling", "scan", "peer")


def round_(label: str, conf: str, n: int, ceiling_bin: str, inflight: int, base_s: float, pairs: int) -> dict:
    """Alternated runs (C ceiling, scan, python-rados peer), whole process each, ``pairs`` of each;
    ratios are medians of the per-run ratios, so that a drift of the machine hits both sides alike."""
    osd = OsdOps(conf)
    out: dict = {"label": label, "load": os.getloadavg()[0]}
    t = timed(["rados", "-c", conf, "-p", POOL, "ls"])
    out["rados_ls"] = n / t["wall"]
    run_ceiling(ceiling_bin, conf, n, inflight)  # warm the OSD's caches and this host's
    runs: dict[str, list[dict]] = {k: [] for k in SIDES}
    for _ in range(pairs):
        runs["ceiling"].append(osd.during(lambda: run_ceiling(ceiling_bin, conf, n, inflight)))
        runs["scan"].append(osd.during(lambda: run_scan(conf, n, inflight)))
        runs["peer"].append(osd.during(lambda: run_peer(conf, n, inflight)))
    med = statistics.median
    out["runs"] = {k: [{x: r[x] for x in ("wall", "cpu", "rss_mib", "inner", "reads", "probes", "osd")}
                       for r in v] for k, v in runs.items()}
    c, s, p = runs["ceiling"], runs["scan"], runs["peer"]
    out["rate"] = {k: n / med(r["wall"] for r in runs[k]) for k in SIDES}
    out["cpu"] = {k: med(r["cpu"] for r in runs[k]) for k in SIDES}
    out["rss"] = {k: med(r["rss_mib"] for r in runs[k]) for k in SIDES}
    out["ratio"] = med(a["wall"] / b["wall"] for a, b in zip(c, s))  # scan's rate as a share of C's
    out["ratio_inner"] = med(a["inner"] / b["inner"] for a, b in zip(c, s))
    out["cpu_ratio"] = med(b["cpu"] / a["cpu"] for a, b in zip(c, s))
    out["vs_peer"] = med(a["wall"] / b["wall"] for a, b in zip(p, s))  # scan's rate over the peer's
    out["ops"] = {k: {"reads": runs[k][0]["reads"], "probes": runs[k][0]["probes"],
                      "osd": [r["osd"] for r in runs[k]]} for k in SIDES}
    out["findings"] = s[0]["findings"]
    out["load_end"] = os.getloadavg()[0]
    if base_s > 0:
        done, took = baseline(conf, base_s)
        out["baseline"] = done / took
        out["baseline_objects"] = done
    return out


def _osd_ops(r: dict, side: str) -> str:
    osd = [x for x in r["ops"][side]["osd"] if x]
    if not osd:
        return "OSD counters not read"
    return f"OSD ops {statistics.median(x['op'] for x in osd):,.0f} (reads {statistics.median(x['op_r'] for x in osd):,.0f})"


def report(r: dict) -> None:
    print(f"\n== {r['label']} (load average {r['load']:.1f} -> {r['load_end']:.1f})")
    ops = r["ops"]
    same = all((ops[k]["reads"], ops[k]["probes"]) == (ops["ceiling"]["reads"], ops["ceiling"]["probes"])
               for k in SIDES)
    print(f"  client ops per run: {ops['ceiling']['reads']:,} reads + {ops['ceiling']['probes']:,} probes "
          f"({'the same on every side' if same else 'DIFFERENT: the ratios compare different work'}); "
          f"the scan reported {r['findings']:,} findings")
    print(f"  rados ls (listing only)          {r['rados_ls']:>9,.0f} objects/s")
    names = {"ceiling": "C ceiling (same librados calls)", "scan": "archverify scan --backend rados",
             "peer": "python-rados aio loop (same ops)"}
    for k in SIDES:
        print(f"  {names[k]:<33}{r['rate'][k]:>9,.0f} objects/s  CPU {r['cpu'][k]:.2f} s  "
              f"peak RSS {r['rss'][k]:.0f} MiB  {_osd_ops(r, k)}")
    for i, (c, s, p) in enumerate(zip(*(r["runs"][k] for k in SIDES)), 1):
        print(f"    run {i}: C {c['wall']:.2f}s/{c['cpu']:.2f} CPU, scan {s['wall']:.2f}s/{s['cpu']:.2f} CPU, "
              f"peer {p['wall']:.2f}s/{p['cpu']:.2f} CPU")
    if "baseline" in r:
        print(f"  old tool's loop (sync read each) {r['baseline']:>9,.0f} objects/s  ({r['baseline_objects']:,} "
              f"objects timed); scan / loop: {r['rate']['scan'] / r['baseline']:.1f}x")
    print(f"  scan / C ceiling: rate {r['ratio']:.0%} whole process (target >= 90%), {r['ratio_inner']:.0%} after "
          f"start-up; CPU {r['cpu_ratio']:.2f}x (target <= 1.2x)")
    print(f"  scan / python-rados aio loop: rate {r['vs_peer']:.2f}x (target >= 1.1x)")
    print(f"  (medians of {len(r['runs']['scan'])} alternated runs of each side)")


def main() -> None:
    global POOL
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--conf", help="an existing cluster's ceph.conf (with a client.admin keyring); default: start one")
    ap.add_argument("--inflight", type=int, default=256)
    ap.add_argument("--delay-max", type=float, default=0.008,
                    help="ms_inject_delay_max in seconds (uniform 0..max per message from an OSD) [0.008]")
    ap.add_argument("--baseline-seconds", type=float, default=15.0,
                    help="time the provided loop for this long (0: skip it)")
    ap.add_argument("--pairs", type=int, default=3, help="alternated runs of each side per round [3]")
    ap.add_argument("--mix", choices=("mixed", "migrated"), default="mixed",
                    help="the pool's objects: mid-upgrade (a fifth are findings) or after it (none) [mixed]")
    ap.add_argument("--no-latency", action="store_true", help="skip the round with latency injected")
    ap.add_argument("--keep", action="store_true", help="keep the cluster this script started")
    ap.add_argument("--reuse", action="store_true",
                    help="with --conf: keep the pool (bench-maps, bench-maps-migrated) when it already holds "
                         "--objects objects")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    POOL = "bench-maps" if a.mix == "mixed" else "bench-maps-migrated"

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
        # an installed archverify has its bytecode (Debian and pip compile it at install): without
        # it, every run of the scan would first compile ~25 modules (~50 ms of CPU)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "verify")], check=True,
                       stdout=subprocess.DEVNULL)
        ceiling = tmp / "rados_ceiling"
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(ceiling), str(ROOT / "benchmarks" / "rados_ceiling.c"),
                        "-lrados"],
                       check=True)
        if not (a.reuse and a.conf and pool_size(conf) == a.objects):
            load(conf, a.objects, a.mix)
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
