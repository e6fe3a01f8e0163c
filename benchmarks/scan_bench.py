"""``archverify scan`` on a filed tree against its floor, in one run, warm cache.

    python benchmarks/scan_bench.py [--files 200000] [--pairs 3] [--tree DIR]

Each round runs, one after the other (so a noisy neighbour slows all alike):

* ``archverify scan`` with the default ``--jobs`` (the CLI, Python start-up included);
* benchmarks/walk_ceiling.c, compiled here: one C thread making the syscalls the scan
  makes (openat/getdents64/close per directory, openat/fstat/pread/close per map
  header and lock, fstatat per map-data object, sha256 of every block name);
* the naive pure-Python scan (benchmarks/naive_scan.py);
* ``find MAPS BLOCKS -type f``.

The ratios are medians over the rounds of each round's ratio. Then one round per
``--jobs`` value of --sweep (the default's justification), and ``strace -c -f`` of
the scan and of the C walk: syscalls per file of each, per syscall. As root, the
sweep is repeated on a cold cache (the page cache dropped before each run), the
I/O-bound case the default --jobs is chosen for. Each command's line also says how
much was read from disk meanwhile (/proc/vmstat), so a "warm" run that was not is seen.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.caches import disk_kb, drop_caches  # noqa: E402
from benchmarks.run import CPUS, ENV, ensure_tree, find_cmd, naive_cmd, same_findings, timed  # noqa: E402


def scan_cmd(maps: str, blocks: str, out: str, jobs: int | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "verify", "scan", "--maps-dir", maps, "--blocks-dir", blocks,
           "--format", "json", "--output", out, "--no-progress"]
    return cmd + (["--jobs", str(jobs)] if jobs else [])


def measured(cmd: list[str], **kw) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak RSS MiB, KiB read from disk meanwhile: by anyone, so an upper bound)."""
    before = disk_kb()
    wall, cpu, rss = timed(cmd, **kw)
    return wall, cpu, rss, disk_kb() - before


def load() -> str:
    return "%.1f" % os.getloadavg()[0]


def strace_counts(cmd: list[str], work: Path) -> dict[str, int]:
    """Calls per syscall of ``cmd`` and its threads (strace -c -f), start-up included."""
    out = work / "strace.txt"
    subprocess.run(["strace", "-f", "-c", "-o", str(out), *cmd], check=False, env=ENV,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    counts: dict[str, int] = {}
    for line in out.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            calls = parts[3]
            if calls.isdigit():
                counts[parts[-1]] = int(calls)
    return counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pairs", type=int, default=3, help="alternated rounds [3]")
    ap.add_argument("--tree", type=Path, help="tree dir, kept and reused [a temp dir, removed]")
    ap.add_argument("--sweep", default="1,2,4,8,16", help="--jobs values timed once each after the rounds")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--skip-strace", action="store_true")
    ap.add_argument("--skip-cold", action="store_true", help="no cold-cache sweep (it empties the page cache)")
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="scan-bench-"))
    tree = a.tree or work / "tree"
    try:
        m = ensure_tree(tree, a.files, a.seed)
        maps, blocks = str(tree / "maps"), str(tree / "blocks")
        walk_bin = work / "walk_ceiling"
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(walk_bin), str(HERE / "walk_ceiling.c"), "-lcrypto"],
                       check=True)
        ours, theirs = str(work / "scan.json"), str(work / "naive.json")
        walk = [str(walk_bin), maps, blocks]
        print(f"{m['files_total']:,} files, {CPUS} CPUs, default --jobs of the CLI; load average {load()} at start",
              flush=True)
        timed(scan_cmd(maps, blocks, ours))  # warm the dentry and page caches
        timed(find_cmd(maps, blocks))
        if not a.skip_naive:
            timed(naive_cmd(maps, blocks, theirs))
            if not same_findings(ours, theirs):
                raise SystemExit("the scan and the naive scan disagree: no timing")
        rounds = []
        for k in range(a.pairs):
            r = {"load": load()}
            r["scan"] = measured(scan_cmd(maps, blocks, ours))
            r["walk"] = measured(walk, stdout=subprocess.DEVNULL)
            if not a.skip_naive:
                r["naive"] = measured(naive_cmd(maps, blocks, theirs))
            r["find"] = measured(find_cmd(maps, blocks))
            rounds.append(r)
            print(f"  round {k + 1} (load {r['load']}): " + ", ".join(
                f"{name} {v[0]:.2f}s ({v[3] / 1024:.0f} MiB from disk)" for name, v in r.items() if name != "load"),
                  flush=True)
        med = {name: statistics.median(r[name][0] for r in rounds) for name in rounds[0] if name != "load"}
        ratio = {name: statistics.median(r[name][0] / r["scan"][0] for r in rounds) for name in med}
        print(f"\n{'command':<34}{'median s':>9}{'CPU s':>8}{'RSS MiB':>9}{'time / scan':>12}")
        labels = {"scan": "archverify scan (default --jobs)", "walk": "C walk, 1 thread, same syscalls",
                  "naive": "naive Python scan", "find": "find -type f"}
        for name in med:
            cpu = statistics.median(r[name][1] for r in rounds)
            rss = max(r[name][2] for r in rounds)
            print(f"{labels[name]:<34}{med[name]:>9.2f}{cpu:>8.2f}{rss:>9.1f}{ratio[name]:>12.2f}")
        print(f"\nscan / C walk: {1 / ratio['walk']:.2f}x the time (target <= 0.6x)")
        if "naive" in ratio:
            print(f"naive scan / scan: {ratio['naive']:.2f}x the time (target >= 4x)")
        print(f"find / scan:       {ratio['find']:.2f}x the time")
        print(f"(median of {a.pairs} alternated rounds; load average {rounds[0]['load']} -> {load()})")

        jobs = [int(j) for j in a.sweep.split(",") if j]
        for temp in ("warm", "cold"):
            if temp == "cold" and a.skip_cold:
                continue
            if temp == "cold" and not drop_caches():
                print("\n--jobs sweep, cold cache: skipped (needs root to drop the page cache)")
                continue
            print(f"\n--jobs sweep, {temp} cache (alternated, median of {a.pairs}; wall s / CPU s / MiB from disk):")
            sweep: dict[int, list] = {j: [] for j in jobs}
            for _ in range(a.pairs):
                for j in jobs:
                    if temp == "cold":
                        drop_caches()
                    sweep[j].append(measured(scan_cmd(maps, blocks, ours, j)))
            if temp == "cold":
                drop_caches()
                cw = measured(walk, stdout=subprocess.DEVNULL)
                print(f"  C walk, 1 thread: {cw[0]:6.2f}s {cw[1]:6.2f}s {cw[3] / 1024:6.0f}")
            for j in jobs:
                w = statistics.median(x[0] for x in sweep[j])
                c = statistics.median(x[1] for x in sweep[j])
                d = statistics.median(x[3] for x in sweep[j])
                print(f"  --jobs {j:<4} {w:6.2f}s {c:6.2f}s {d / 1024:6.0f}")
            print(f"  (load average {load()})")

        if not a.skip_strace and shutil.which("strace"):
            files = m["files_total"]
            sc = strace_counts(scan_cmd(maps, blocks, ours), work)
            wc = strace_counts(walk, work)
            keys = sorted({k for k, v in (*sc.items(), *wc.items()) if v > files // 1000},
                          key=lambda k: -(sc.get(k, 0) + wc.get(k, 0)))
            print(f"\nsyscalls per file (strace -c -f, {files:,} files):")
            print(f"  {'syscall':<16}{'scan':>10}{'C walk':>10}")
            for k in keys:
                print(f"  {k:<16}{sc.get(k, 0) / files:>10.3f}{wc.get(k, 0) / files:>10.3f}")
            print(f"  {'all':<16}{sum(sc.values()) / files:>10.3f}{sum(wc.values()) / files:>10.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
