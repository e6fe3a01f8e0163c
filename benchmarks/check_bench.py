"""How fast ``archverify check`` is, against ``scan`` and ``cat``, and how much memory it takes.

    python benchmarks/check_bench.py [--objects 60000] [--jobs 2] [--data-mb 256] [--refs 5000000] [--dir DIR]

Three measurements, each printed as a ratio against its baseline measured in the same run:

1. **check vs scan** on one generated filed tree (Pithos blocks, archip objects,
   copy-ups; v2 volumes with snapshots and clones sharing them, v0 and v1 maps):
   wall time of each, the ratio (target: check <= 2x scan; the median of alternated pairs), maps/s, references/s and
   the peak RSS of each in a fresh process.
2. **--verify-data vs sha256 alone**: the data stage over a tree of real Pithos
   blocks (4 MiB each, named by their content) against one thread reading and
   hashing the same files (hashlib, OpenSSL's sha256) times the cores --jobs can use:
   the most any verifier can do on this machine. Alternated pairs from the page
   cache, then (as root, which can drop the page cache) the same from disk.
   Target: >= 90%.
3. **memory**: the reference stage's peak RSS with ``--refs`` distinct references
   (v0 maps of random digests) over an empty blocks store, minus the RSS of the
   same process before the stage; bytes per reference (target: <= 24). The pass that
   names missing objects is left out: with every object missing it would measure
   findings, not the index.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.caches import drop_caches  # noqa: E402
from verify.core import formats as F  # noqa: E402
from verify.cli.store_options import default_read_jobs  # noqa: E402


class Writer:
    """Files at their v0.4 paths, with the dirs made once."""

    def __init__(self, root: Path):
        self.root = root
        self.dirs: set[str] = set()

    def put(self, name: str, data: bytes = b"") -> None:
        h = hashlib.sha256(name.encode()).hexdigest()
        d = f"{self.root}/{h[0:2]}/{h[2:4]}/{h[4:6]}"
        if d not in self.dirs:
            os.makedirs(d, exist_ok=True)
            self.dirs.add(d)
        with open(f"{d}/{name}", "wb") as fh:
            fh.write(data)


def gen_tree(root: Path, objects: int, seed: int = 1) -> dict:
    """A healthy upgraded store: ~objects data objects, one volume map per 64 of them."""
    rng = random.Random(seed)
    maps, blocks = Writer(root / "maps"), Writer(root / "blocks")
    names = []
    for i in range(objects):
        r = rng.random()
        if r < 0.75:
            nm = hashlib.sha256(b"block %d" % i).hexdigest()
        elif r < 0.9:
            nm = "archip_" + hashlib.sha256(b"archip %d" % i).hexdigest()
        else:
            nm = F.copyup_name(f"volume-{i % 997:04d}", 1, i)
        blocks.put(nm)
        names.append(nm)
    nmaps = 0
    per = 64
    for v in range(0, objects, per):
        vol = f"volume-{v // per:06d}"
        ents = [F.Entry(nm, 0 if len(nm) == 64 else F.OF_ARCHIP) for nm in names[v : v + per]]
        ents += [F.Entry(F.ZERO_HASH, F.OF_ZERO)] * 8
        size = len(ents) * F.BLOCK_SIZE_4M
        header, md = F.write_v2(size, ents, name=vol)
        maps.put(vol, header)
        for k, b in md.items():
            maps.put(k, b)
        nmaps += 1
        if v % (per * 4) == 0:  # a snapshot and a clone of every fourth volume share its objects
            for snap, flags, epoch in ((vol + "-snap", F.MF_READONLY, 0), (vol + "-clone", 0, 1)):
                header, md = F.write_v2(size, ents, flags=flags, epoch=epoch, name=snap)
                maps.put(snap, header)
                for k, b in md.items():
                    maps.put(k, b)
                nmaps += 1
    return {"objects": objects, "maps": nmaps}


def gen_data(root: Path, mb: int) -> list[str]:
    """Real 4 MiB Pithos blocks (random bytes, a zero tail on some), named by their content."""
    w = Writer(root / "blocks")
    (root / "maps").mkdir(parents=True, exist_ok=True)
    rng = random.Random(2)
    paths = []
    for i in range(max(1, mb // 4)):
        data = rng.randbytes(F.BLOCK_SIZE_4M - (i % 3) * 65536) + bytes((i % 3) * 65536)
        nm = hashlib.sha256(data.rstrip(b"\0")).hexdigest()
        w.put(nm, data)
        h = hashlib.sha256(nm.encode()).hexdigest()
        paths.append(f"{root}/blocks/{h[0:2]}/{h[2:4]}/{h[4:6]}/{nm}")
    return paths


def gen_refs(root: Path, refs: int) -> None:
    """v0 maps of random digests: ``refs`` distinct references, 16384 per map."""
    w = Writer(root / "maps")
    (root / "blocks").mkdir(parents=True, exist_ok=True)
    per = 16384
    for m in range(0, refs, per):
        body = os.urandom(32 * min(per, refs - m))
        w.put(hashlib.sha256(b"map %d" % m).hexdigest(), body)


def child(code: str) -> dict:
    """Runs ``code`` in a fresh interpreter; its JSON result plus its peak RSS."""
    prog = (
        "import json, resource, sys, time\n"
        + code
        + "\nout['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    r = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, env=env, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def bench_scan_vs_check(root: Path, jobs: int, reps: int = 3) -> dict:
    common = (
        "from verify.backends.filed.backend import FiledBackend\n"
        f"be = FiledBackend({str(root / 'maps')!r}, {str(root / 'blocks')!r})\n"
    )
    cpu = "(lambda r: r.ru_utime + r.ru_stime)(resource.getrusage(resource.RUSAGE_SELF))"
    scan_code = common + ("from verify.ops import scan\nc0 = %s; t=time.monotonic(); s = scan.scan(be, %d, False)\n"
                          "out = {'s': time.monotonic()-t, 'cpu': %s - c0, 'files': s.files_scanned}" % (cpu, jobs, cpu))
    check_code = common + ("from verify.ops import check\nc0 = %s; t=time.monotonic(); s = check.check(be, %d, False)\n"
                           "c = s.counters\nout = {'s': time.monotonic()-t, 'cpu': %s - c0, 'findings': len(s.findings),\n"
                           " 'maps': sum(c.get('refs.maps_'+v, 0) for v in ('v0','v1','v2')),\n"
                           " 'refs': c.get('refs.references', 0), 'stored': c.get('refs.stored_objects', 0)}" % (cpu, jobs, cpu))
    child(scan_code)  # warm the dentry and page caches for both
    runs = {"scan": [], "check": []}
    for _ in range(reps):  # alternated pairs: a noisy neighbour slows both alike
        runs["scan"].append(child(scan_code))
        runs["check"].append(child(check_code))
    ratios = [c["s"] / s["s"] for s, c in zip(runs["scan"], runs["check"])]
    out = {k: sorted(v, key=lambda r: r["s"])[len(v) // 2] for k, v in runs.items()}  # the median run of each
    out["ratio"] = statistics.median(ratios)
    out["ratios"] = ratios
    return out


HASH_LOOP = """
import hashlib, sys, time
from concurrent.futures import ThreadPoolExecutor
threads = int(sys.argv[1])
paths = sys.stdin.read().split("\\0")
def run(mine):
    buf, total = bytearray(1 << 20), 0
    for p in mine:
        h = hashlib.sha256()
        with open(p, "rb", buffering=0) as fh:
            while n := fh.readinto(buf):
                h.update(memoryview(buf)[:n]); total += n
    return total
t = time.monotonic()
with ThreadPoolExecutor(threads) as ex:
    total = sum(ex.map(run, [paths[i::threads] for i in range(threads)]))
print(time.monotonic() - t, total)
"""


def sha256_loop(listing: bytes, threads: int = 1) -> tuple[float, int]:
    """Threads reading and hashing the files (hashlib = OpenSSL's sha256, GIL released): (seconds, bytes)."""
    r = subprocess.run([sys.executable, "-c", HASH_LOOP, str(threads)], input=listing, capture_output=True,
                       check=True)
    t, n = r.stdout.split()
    return float(t), int(n)


def bench_data(root: Path, paths: list[str], jobs: int, reps: int = 3) -> dict:
    """verify-data against single-core sha256 x cores, alternated pairs, warm and (as root) cold."""
    total = sum(os.path.getsize(p) for p in paths)
    listing = "\0".join(paths).encode()
    cores = min(jobs, os.cpu_count() or 1)
    code = (
        "from verify.backends.filed.backend import FiledBackend\n"
        f"be = FiledBackend({str(root / 'maps')!r}, {str(root / 'blocks')!r})\n"
        "t = time.monotonic(); r = be.verify_data(%d, (0, 0, True)); dt = time.monotonic() - t\n"
        "out = {'s': dt, 'bytes': r.counters['data.bytes'], 'mismatch': len(r.findings)}\n" % jobs
    )
    out = {"bytes": total, "cores": cores}
    for temp in ("warm", "cold"):
        if temp == "cold" and not drop_caches():
            out["cold"] = None
            continue
        if temp == "warm":
            sha256_loop(listing)  # fill the page cache
        pairs = []
        for _ in range(reps):
            if temp == "cold":
                drop_caches()
            ours = child(code)
            assert ours["bytes"] == total and ours["mismatch"] == 0, ours
            if temp == "cold":
                drop_caches()
            t1, n = sha256_loop(listing)
            assert n == total, (n, total)
            if temp == "cold":
                drop_caches()
            tn, _ = sha256_loop(listing, cores)
            pairs.append((ours["s"], t1, tn))
        ceiling_s = [t1 / cores for _, t1, _ in pairs]  # single-core rate x cores
        out[temp] = {
            "check_mb_s": total / statistics.median(s for s, _, _ in pairs) / 1e6,
            "one_core_mb_s": total / statistics.median(t1 for _, t1, _ in pairs) / 1e6,
            "ceiling_mb_s": total / statistics.median(ceiling_s) / 1e6,
            "ratio": statistics.median(c / s for (s, _, _), c in zip(pairs, ceiling_s)),
            "threads_mb_s": total / statistics.median(tn for _, _, tn in pairs) / 1e6,
            "ratio_threads": statistics.median(tn / s for s, _, tn in pairs),
            "load": os.getloadavg()[0],
        }
    return out


def bench_memory(root: Path, refs: int, jobs: int) -> dict:
    code = (
        "from verify.native import _check\n"
        "def rss():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmRSS:'): return int(line.split()[1]) * 1024\n"
        "base = rss()\n"
        f"rc = _check.FiledRefCheck({str(root / 'maps')!r}, {str(root / 'blocks')!r}, {jobs})\n"
        "t = time.monotonic(); rc.read_maps(); n = rc.freeze(); missing = rc.mark_stored()\n"
        "out = {'s': time.monotonic() - t, 'unique': n, 'missing': missing, 'index_bytes': rc.memory(),\n"
        "       'base_rss': base, 'refs': rc.counters()['references']}\n"
    )
    r = child(code)
    peak = r["peak_rss_mb"] * 1024 * 1024
    r["bytes_per_ref_peak"] = (peak - r["base_rss"]) / r["refs"]
    r["bytes_per_ref_index"] = r["index_bytes"] / r["unique"]
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=60000)
    ap.add_argument("--jobs", type=int, default=default_read_jobs(),
                    help="threads [the CLI's default]")
    ap.add_argument("--data-mb", type=int, default=256)
    ap.add_argument("--refs", type=int, default=5_000_000)
    ap.add_argument("--dir", type=Path, help="work dir [default: a temp dir, removed after]")
    ap.add_argument("--only", choices=["tree", "data", "memory"], action="append")
    a = ap.parse_args(argv)
    print(f"jobs {a.jobs}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (median of 3 alternated pairs each)")
    only = set(a.only or ["tree", "data", "memory"])
    work = a.dir or Path(tempfile.mkdtemp(prefix="check-bench-"))
    try:
        if "tree" in only:
            t = time.monotonic()
            info = gen_tree(work / "tree", a.objects)
            print(f"tree: {info['objects']:,} objects, {info['maps']:,} maps (written in {time.monotonic() - t:.1f}s)")
            r = bench_scan_vs_check(work / "tree", a.jobs)
            s, c = r["scan"], r["check"]
            print(f"scan : {s['s']:.2f}s, {s['files'] / s['s']:,.0f} files/s, peak RSS {s['peak_rss_mb']:.0f} MB")
            print(f"check: {c['s']:.2f}s, {c['maps'] / c['s']:,.0f} maps/s, {c['refs'] / c['s']:,.0f} references/s, "
                  f"peak RSS {c['peak_rss_mb']:.0f} MB ({c['maps']:,} maps, {c['refs']:,} references, "
                  f"{c['stored']:,} objects, {c['findings']} findings)")
            print(f"check / scan = {r['ratio']:.2f}x wall, median of {len(r['ratios'])} alternated pairs "
                  f"({', '.join(f'{x:.2f}' for x in r['ratios'])}; target <= 2x); CPU time {c['cpu']:.2f}s vs "
                  f"{s['cpu']:.2f}s = {c['cpu'] / s['cpu']:.2f}x; load average {os.getloadavg()[0]:.1f}")
        if "data" in only:
            paths = gen_data(work / "data", a.data_mb)
            d = bench_data(work / "data", paths, a.jobs)
            for temp in ("warm", "cold"):
                x = d[temp]
                if x is None:
                    print("verify-data, cold cache: skipped (dropping the page cache needs root)")
                    continue
                print(f"verify-data, {temp} cache: {x['check_mb_s']:,.0f} MB/s; sha256 alone on one core "
                      f"{x['one_core_mb_s']:,.0f} MB/s x {d['cores']} cores = {x['ceiling_mb_s']:,.0f} MB/s "
                      f"({d['bytes'] / 1e6:,.0f} MB) -> {x['ratio']:.0%} (target >= 90%; median of alternated "
                      f"pairs, load average {x['load']:.1f})")
                print(f"  sha256 alone on {d['cores']} threads in the same run: {x['threads_mb_s']:,.0f} MB/s -> "
                      f"verify-data runs at {x['ratio_threads']:.0%} of it")
        if "memory" in only:
            gen_refs(work / "refs", a.refs)
            m = bench_memory(work / "refs", a.refs, a.jobs)
            print(f"memory: {m['refs']:,} references ({m['unique']:,} distinct) in {m['s']:.1f}s: "
                  f"peak RSS {m['peak_rss_mb']:.0f} MB, {m['bytes_per_ref_peak']:.1f} bytes/reference over the "
                  f"process before the stage (target <= 24); index {m['bytes_per_ref_index']:.1f} bytes/object")
    finally:
        if a.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
