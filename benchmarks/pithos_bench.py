"""pithos-check throughput and memory: rows/s and peak RSS at 250k, 500k and 1M rows.

Writes a filed maps store of v0 maps (1-4 entries each, at their v0.4 paths) and
one Pithos-shaped database per row count on a throwaway PostgreSQL started with
scripts/pg-dev-cluster, then runs the check in a fresh process per size (so peak
RSS is that run's alone). The naive baseline, measured in the same run on the
smallest size, is what a plain script would do: fetch every row client-side,
then open and read each map in Python. Prints one line per run and the ratios.

The floor, measured alternately with the check on the smallest size (--pairs
pairs, median of the pairs' ratios): benchmarks/pithos_ceiling.c, one C thread
doing the lookup per row (sha256 path, openat, fstat, pread, close, count the v0
entries) on the same rows, fetched by ``psql ... COPY TO STDOUT``; and the same
program with ``--old-path``, which also tries each 64-hex name's old Pithos path
first (one more openat per row), as the check must: the same lookups as the check's.

    python benchmarks/pithos_bench.py                 # 250k, 500k, 1M rows
    python benchmarks/pithos_bench.py --sizes 100000  # quicker
"""

from __future__ import annotations

import argparse
import shlex
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

from verify.cli.store_options import default_read_jobs  # noqa: E402

CHILD = r"""
import json, resource, sys, time
from verify.ops.pithos import db as pithosdb
from verify.backends.filed.maplookup import FiledMaps
mode, url, maps, jobs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
t0 = time.monotonic()
if mode == "fast":
    with FiledMaps(maps, jobs) as fm:
        s = pithosdb.check(pithosdb.resolve_url(url), fm)
    rows, findings = s.counters["pithos.rows"], len(s.findings)
else:
    # naive: client-side cursor (every row in memory), one Python open/read/classify per row
    import os, psycopg
    from verify.core import formats as F, layout
    with psycopg.connect(url) as conn:
        data = conn.execute("SELECT serial, node, size, mapfile FROM versions WHERE mapfile IS NOT NULL").fetchall()
    findings = 0
    for serial, node, size, mapfile in data:
        raw = mapfile.encode()
        p = os.path.join(maps, layout.v04_path(raw).decode())
        try:
            with open(p, "rb") as fh:
                body = fh.read()
        except FileNotFoundError:
            findings += 1
            continue
        h = F.classify(body[:64], len(body), raw)
        if h.cls is F.HeaderClass.V0 and len(F.parse_v0(body).entries) != F.nr_objs(size):
            findings += 1
    rows = len(data)
dt = time.monotonic() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
# VmHWM, not ru_maxrss: Linux keeps the parent's ru_maxrss across fork and exec
hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps({"rows": rows, "seconds": dt, "rss_mib": hwm / 1024, "cpu_s": ru.ru_utime + ru.ru_stime,
                  "findings": findings}))
"""


def write_store(maps: Path, count: int) -> list[tuple[str, int]]:
    """``count`` v0 maps; returns (name, size) per map. 1 in 1000 sizes disagree, 1 in 1000 maps are absent."""
    from verify.ops.pithos.sample import bench_rows

    made: set[str] = set()
    out = []
    root = os.fspath(maps)
    for i, (name, body, size) in enumerate(bench_rows(count)):
        out.append((name, size))
        if i % 1000 == 7:
            continue  # a missing map
        h = hashlib.sha256(name.encode()).hexdigest()
        d = f"{root}/{h[0:2]}/{h[2:4]}/{h[4:6]}"
        if d not in made:
            os.makedirs(d, exist_ok=True)
            made.add(d)
        with open(f"{d}/{name}", "wb") as fh:
            fh.write(body if i % 1000 != 500 else body + body[:32])  # one entry too many
    return out


def load_db(admin_url: str, dbname: str, maps: list[tuple[str, int]]) -> str:
    import psycopg

    from verify.ops.pithos.sample import create_schema

    url = admin_url.rsplit("/", 1)[0] + "/" + dbname
    try:  # reuse a database loaded by an earlier run with --workdir
        with psycopg.connect(url) as conn:
            if conn.execute("SELECT count(*) FROM versions").fetchone()[0] == len(maps):
                return url
    except psycopg.Error:
        pass
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
        conn.execute(f'CREATE DATABASE "{dbname}"')
    with psycopg.connect(url) as conn:
        create_schema(conn)
        with conn.cursor() as cur:
            with cur.copy("COPY nodes (node, path) FROM STDIN") as cp:
                for n in range(1, len(maps) + 1):
                    cp.write_row((n, f"a/c/o{n}"))
            with cur.copy("COPY versions (node, hash, size, mapfile, cluster, available, muser) FROM STDIN") as cp:
                for n, (name, size) in enumerate(maps, 1):
                    cp.write_row((n, name, size, name, 0, 1, "bench"))
        conn.execute("ANALYZE versions")
    return url


def run_child(mode: str, url: str, maps: Path, jobs: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-c", CHILD, mode, url, str(maps), str(jobs)], capture_output=True, text=True,
                       env=env, check=True)
    return json.loads(p.stdout)


def run_ceiling(binary: Path, url: str, maps: Path, work: Path, old_path: bool = False) -> dict:
    """The C floor over the same rows, whole pipeline timed; peak RSS and CPU of the C program (GNU time)."""
    rss = work / "ceiling.rss"
    copy = "COPY (SELECT mapfile, size FROM versions WHERE mapfile IS NOT NULL) TO STDOUT"
    flag = "--old-path " if old_path else ""
    cmd = (f"psql -X -q {shlex.quote(url)} -c {shlex.quote(copy)} | "
           f"/usr/bin/time -f '%M %U %S' -o {rss} {binary} {flag}{shlex.quote(str(maps))}")
    t0 = time.monotonic()
    out = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, check=True).stdout
    dt = time.monotonic() - t0
    rows, missing, mismatch = (int(x) for x in out.split())
    kib, user, system = rss.read_text().split()[-3:]
    return {"rows": rows, "seconds": dt, "rss_mib": int(kib) / 1024, "cpu_s": float(user) + float(system),
            "findings": missing + mismatch}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="250000,500000,1000000", help="row counts, comma-separated")
    ap.add_argument("--naive-rows", type=int, default=None, help="rows for the naive baseline [smallest size]")
    ap.add_argument("-j", "--jobs", type=int, default=default_read_jobs(),
                    help="threads [the CLI's default]")
    ap.add_argument("--port", type=int, default=55439)
    ap.add_argument("--pairs", type=int, default=3, help="alternated (check, C floor) pairs on the smallest size")
    ap.add_argument("--workdir", help="keep the store and cluster here (reused when it exists) [a temp dir, removed]")
    args = ap.parse_args()
    sizes = sorted(int(x) for x in args.sizes.split(","))
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="pithos-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o711)
    script = ROOT / "scripts" / "pg-dev-cluster"
    cluster = work / "pg"
    maps = work / "maps"
    try:
        admin = subprocess.run([str(script), "start", str(cluster), str(args.port)], check=True, capture_output=True,
                               text=True).stdout.strip()
        t0 = time.monotonic()
        stamp = work / f"store-{sizes[-1]}"
        if not stamp.exists():
            shutil.rmtree(maps, ignore_errors=True)
            all_maps = write_store(maps, sizes[-1])
            stamp.write_text("")
        else:
            from verify.ops.pithos.sample import bench_rows

            all_maps = [(n, s) for n, _b, s in bench_rows(sizes[-1])]
        print(f"store: {sizes[-1]:,} v0 maps in {maps} ({time.monotonic() - t0:.1f}s)", flush=True)
        urls = {}
        for n in sorted(set(sizes + ([args.naive_rows] if args.naive_rows else []))):
            t0 = time.monotonic()
            urls[n] = load_db(admin, f"pithos_bench_{n}", all_maps[:n])
            print(f"database: {n:,} rows loaded ({time.monotonic() - t0:.1f}s)", flush=True)
        print(f"\n{'run':<8}{'rows':>10}{'seconds':>9}{'rows/s':>11}{'CPU us/row':>12}{'peak RSS MiB':>14}"
              f"{'findings':>10}")
        results = {}
        for n in sizes:
            r = run_child("fast", urls[n], maps, args.jobs)
            results[n] = r
            print(f"{'fast':<8}{r['rows']:>10,}{r['seconds']:>9.2f}{r['rows'] / r['seconds']:>11,.0f}"
                  f"{r['cpu_s'] / r['rows'] * 1e6:>12.1f}{r['rss_mib']:>14.1f}{r['findings']:>10}", flush=True)
        binary = work / "pithos_ceiling"
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(binary), str(ROOT / "benchmarks" / "pithos_ceiling.c"),
                        "-lcrypto"], check=True)
        n0, pairs = sizes[0], []
        load0 = os.getloadavg()[0]
        for _ in range(args.pairs):
            c = run_ceiling(binary, urls[n0], maps, work)
            r = run_child("fast", urls[n0], maps, args.jobs)
            o = run_ceiling(binary, urls[n0], maps, work, old_path=True)
            assert c["rows"] == r["rows"] == o["rows"] and c["findings"] == r["findings"] == o["findings"], (c, r, o)
            pairs.append((r, c, o))
        for r, c, o in pairs:
            for label, f in (("C floor", c), ("C+old", o)):
                print(f"{label:<8}{f['rows']:>10,}{f['seconds']:>9.2f}{f['rows'] / f['seconds']:>11,.0f}"
                      f"{f['cpu_s'] / f['rows'] * 1e6:>12.1f}"
                      f"{f['rss_mib']:>14.1f}{f['findings']:>10}  (pair: check {r['rows'] / r['seconds']:,.0f} rows/s)")
        ratio = statistics.median(c["seconds"] / r["seconds"] for r, c, _ in pairs)
        ratio_old = statistics.median(o["seconds"] / r["seconds"] for r, _, o in pairs)
        cpu = {k: statistics.median(f[k]["cpu_s"] / f[k]["rows"] * 1e6 for f in
                                    ({"r": r, "c": c, "o": o} for r, c, o in pairs)) for k in "rco"}
        nn = args.naive_rows or sizes[0]
        naive = run_child("naive", urls[nn], maps, 1)
        print(f"{'naive':<8}{naive['rows']:>10,}{naive['seconds']:>9.2f}{naive['rows'] / naive['seconds']:>11,.0f}"
              f"{naive['cpu_s'] / naive['rows'] * 1e6:>12.1f}{naive['rss_mib']:>14.1f}{naive['findings']:>10}")
        fast_same = results.get(nn) or results[sizes[0]]
        print(f"\nspeed ratio fast/naive at {nn:,} rows: "
              f"{(fast_same['rows'] / fast_same['seconds']) / (naive['rows'] / naive['seconds']):.1f}x wall, "
              f"{(naive['cpu_s'] / naive['rows']) / (fast_same['cpu_s'] / fast_same['rows']):.1f}x less CPU per row")
        with open("/proc/loadavg") as fh:
            print(f"machine: {os.cpu_count()} CPUs, load average {fh.read().split()[0]} at the end (others' work "
                  "slows the wall-clock numbers)")
        print(f"peak RSS {sizes[0]:,} -> {sizes[-1]:,} rows: {results[sizes[0]]['rss_mib']:.1f} -> "
              f"{results[sizes[-1]]['rss_mib']:.1f} MiB (naive at {nn:,} rows: {naive['rss_mib']:.1f} MiB)")
        print(f"pithos-check / C floor (same rows, same lookups) at {n0:,} rows: {ratio:.0%} of the floor's rate "
              f"(median of {len(pairs)} alternated pairs, whole process; target >= 80%); {ratio_old:.0%} of the "
              f"floor that also tries the old Pithos path (--old-path); load average "
              f"{load0:.1f} -> {os.getloadavg()[0]:.1f}")
        print(f"CPU per row (median of the pairs; the C side without psql's): check {cpu['r']:.1f} us, "
              f"C floor {cpu['c']:.1f} us, C+old {cpu['o']:.1f} us")
    finally:
        subprocess.run([str(script), "stop", str(cluster)], capture_output=True)
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
