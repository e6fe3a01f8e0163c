#!/usr/bin/env python3
"""``pithos-check`` on a RADOS maps pool: rows/s against baselines doing the same reads.

Writes --rows v0 maps (1-4 entries each; 1 in 1000 missing, 1 in 1000 one entry too
long) into a pool of a throwaway single-node Ceph (scripts/ceph-dev-cluster, or
--conf), loads a Pithos-shaped database naming them on a throwaway PostgreSQL
(scripts/pg-dev-cluster), and times, each in a fresh process:

* ``check``: ``pithosdb.check`` over ``RadosBackend.maps_lookup`` (what the command runs);
* ``aio floor``: the same names read with ``verify.native._radosread.read_whole`` alone, in the
  same windows, rows fetched by the same server-side cursor, no verdicts (the reads
  and the row stream the check cannot avoid; its findings column counts the names
  absent, read again as ``archip_NAME``);
* ``sync loop``: what a plain script does: every row fetched client-side, then one
  synchronous python-rados read of 4 KiB per map (and of ``archip_NAME`` when absent),
  the v0 entries counted in Python; stopped after --baseline-seconds, its rate taken
  over the rows it did.

The check and the floor are run alternately (--pairs), the ratio is the median of
the pairs'. All of it runs twice: on the local cluster as is (where a round trip costs
less than the CPU around it), and with client-side latency injected (Ceph's
``ms_inject_delay_*``, up to --delay-max seconds per message), which stands for a
cluster across a network.

    python benchmarks/pithos_rados_bench.py                  # 50,000 rows
    python benchmarks/pithos_rados_bench.py --rows 200000 --conf /path/ceph.conf
"""

from __future__ import annotations

import argparse
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

POOL = "bench-pithos-maps"

CHILD = r"""
import errno, json, resource, sys, time
from verify.ops.pithos import db as pithosdb
from verify.backends.rados.backend import RadosBackend
mode, url, conf, keyring, jobs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] or None, int(sys.argv[5])
t0 = time.monotonic()
if mode == "check":
    be = RadosBackend(sys.argv[6], None, conf, None, keyring)
    be.validate()
    with be.maps_lookup(jobs) as lookup:
        s = pithosdb.check(pithosdb.resolve_url(url), lookup)
    rows, findings = s.counters["pithos.rows"], len(s.findings)
elif mode == "floor":
    from concurrent.futures import ThreadPoolExecutor
    from verify.native import _radosread
    from verify.backends.rados.check import HEAD_FIRST
    from verify.backends.rados.io import MAP_MAX
    be = RadosBackend(sys.argv[6], None, conf, None, keyring)
    be.validate()
    io = be.ioctx("maps")
    rows = findings = 0
    def window(names):
        got = _radosread.read_whole(io, names, MAP_MAX, HEAD_FIRST)
        again = [b"archip_" + n for n, (d, e) in zip(names, got) if e == errno.ENOENT]
        return len(again) and len(_radosread.read_whole(io, again, MAP_MAX, HEAD_FIRST))
    with ThreadPoolExecutor(jobs) as ex:
        for part in pithosdb.stream_rows(pithosdb.resolve_url(url), columns=("mapfile", "size")):
            names = [r[0].encode() for r in part]
            rows += len(names)
            findings += sum(ex.map(window, [names[i:i + be.inflight] for i in range(0, len(names), be.inflight)]))
else:
    import psycopg, rados
    from verify.core import formats as F
    with psycopg.connect(url) as conn:
        data = conn.execute("SELECT size, mapfile FROM versions WHERE mapfile IS NOT NULL").fetchall()
    c = rados.Rados(conffile=conf, conf={"keyring": keyring} if keyring else {})
    c.connect(timeout=30)
    io = c.open_ioctx(sys.argv[6])
    findings = 0
    limit, rows = float(sys.argv[7]), 0
    for size, name in data:
        if limit and time.monotonic() - t0 > limit:
            break
        rows += 1
        try:
            body = io.read(name, 4096, 0)
        except rados.ObjectNotFound:
            try:
                body = io.read("archip_" + name, 4096, 0)
            except rados.ObjectNotFound:
                findings += 1
                continue
        n = 0
        while n * 32 + 32 <= len(body) and body[n * 32:n * 32 + 32] != bytes(32):
            n += 1
        findings += n != F.nr_objs(size)
    c.shutdown()
dt = time.monotonic() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"rows": rows, "seconds": dt, "cpu_s": ru.ru_utime + ru.ru_stime, "findings": findings}))
"""


def write_pool(conf: str, keyring: str | None, count: int) -> list[tuple[str, int]]:
    """``count`` v0 maps with aio writes (256 in flight); returns (name, size) per row."""
    import rados

    from verify.ops.pithos.sample import bench_rows

    c = rados.Rados(conffile=conf, conf={"keyring": keyring} if keyring else {})
    c.connect(timeout=30)
    try:
        if c.pool_exists(POOL):
            c.delete_pool(POOL)
        c.create_pool(POOL)
        io = c.open_ioctx(POOL)
        out, pending = [], []
        for i, (name, body, size) in enumerate(bench_rows(count)):
            out.append((name, size))
            if i % 1000 == 7:
                continue  # a missing map
            pending.append(io.aio_write_full(name, body if i % 1000 != 500 else body + body[:32]))
            if len(pending) >= 256:
                for comp in pending:
                    comp.wait_for_complete()
                pending.clear()
        for comp in pending:
            comp.wait_for_complete()
        io.close()
        return out
    finally:
        c.shutdown()


def run_child(mode: str, url: str, conf: str, keyring: str | None, jobs: int, limit_s: float = 0) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-c", CHILD, mode, url, conf, keyring or "", str(jobs), POOL, str(limit_s)],
                       capture_output=True, text=True, env=env, check=True)
    return json.loads(p.stdout)


def line(label: str, r: dict) -> str:
    return (f"{label:<11}{r['rows']:>9,}{r['seconds']:>9.2f}{r['rows'] / r['seconds']:>10,.0f}"
            f"{r['cpu_s'] / r['rows'] * 1e6:>12.1f}{r['findings']:>10}")


def measure(label: str, url: str, conf: str, keyring: str | None, args) -> None:
    load0 = os.getloadavg()[0]
    print(f"\n{label}\n{'run':<11}{'rows':>9}{'seconds':>9}{'rows/s':>10}{'CPU us/row':>12}{'findings':>10}")
    pairs = []
    for _ in range(args.pairs):
        r = run_child("check", url, conf, keyring, args.jobs)
        f = run_child("floor", url, conf, keyring, args.jobs)
        print(line("check", r), flush=True)
        print(line("aio floor", f), flush=True)
        pairs.append((r, f))
    naive = run_child("sync", url, conf, keyring, 1, args.baseline_seconds)
    print(line("sync loop", naive), flush=True)
    assert all(r["findings"] == pairs[0][0]["findings"] for r, _ in pairs)
    floor_ratio = statistics.median(f["seconds"] / r["seconds"] for r, f in pairs)
    check_rate = statistics.median(r["rows"] / r["seconds"] for r, _ in pairs)
    print(f"check / aio floor (same reads, same row stream): {floor_ratio:.0%} of the floor's rate "
          f"(median of {len(pairs)} alternated pairs)")
    print(f"check / synchronous python-rados loop: {check_rate / (naive['rows'] / naive['seconds']):.1f}x its rate "
          f"(median check run)")
    print(f"machine: {os.cpu_count()} CPUs, -j {args.jobs}, load average {load0:.1f} -> {os.getloadavg()[0]:.1f}",
          flush=True)


def main() -> int:
    from benchmarks.pithos_bench import load_db
    from verify.cli.store_options import default_read_jobs

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=50000)
    ap.add_argument("-j", "--jobs", type=int, default=default_read_jobs(), help="threads [the CLI's default]")
    ap.add_argument("--pairs", type=int, default=3, help="alternated (check, aio floor) pairs")
    ap.add_argument("--conf", help="an existing cluster's ceph.conf (client.admin keyring); default: start one")
    ap.add_argument("--delay-max", type=float, default=0.004, help="injected latency per message, seconds")
    ap.add_argument("--baseline-seconds", type=float, default=20.0, help="the sync loop stops after this long")
    ap.add_argument("--port", type=int, default=55441, help="the throwaway PostgreSQL's port")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pithos-rados-bench-"))
    os.chmod(work, 0o711)
    pg = ROOT / "scripts" / "pg-dev-cluster"
    ceph = ROOT / "scripts" / "ceph-dev-cluster"
    started = None
    try:
        conf, keyring = args.conf, None
        if conf is None:
            started = work / "ceph"
            conf = subprocess.run([str(ceph), "start", str(started)], capture_output=True, text=True,
                                  check=True).stdout.strip().splitlines()[-1]
            keyring = str(started / "keyring")
        admin = subprocess.run([str(pg), "start", str(work / "pg"), str(args.port)], check=True, capture_output=True,
                               text=True).stdout.strip()
        t0 = time.monotonic()
        maps = write_pool(conf, keyring, args.rows)
        print(f"pool: {args.rows:,} v0 maps written ({time.monotonic() - t0:.1f}s)", flush=True)
        url = load_db(admin, "pithos_rados_bench", maps)
        delayed = work / "delayed.conf"
        inject = f"ms inject delay type = osd\nms inject delay max = {args.delay_max}\nms inject delay probability = 1\n"
        text = Path(conf).read_text()
        delayed.write_text(text.replace("[client]\n", "[client]\n" + inject, 1) if "[client]\n" in text
                           else text + "\n[client]\n" + inject)
        for label, cf in (("local cluster", conf), (f"latency injected (up to {args.delay_max}s)", str(delayed))):
            measure(label, url, cf, keyring, args)
    finally:
        subprocess.run([str(pg), "stop", str(work / "pg")], capture_output=True)
        if started is not None:
            subprocess.run([str(ceph), "purge", str(started)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
