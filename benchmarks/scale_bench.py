"""Does the cost per object stay flat as a store grows, and the peak RSS bounded by --memory?

    python benchmarks/scale_bench.py [--sizes 100000,1000000] [--memory 256M] [--pairs 1] [--dir DIR] [--keep]

For each size, two generated filed stores of about that many files:

* **heavy**: benchmarks/gen_tree.py's mix (most Pithos blocks named by no map: a
  findings-heavy store, about 60% orphans, plus every scan finding planted);
* **clean**: benchmarks/check_bench.py's healthy store (every object referenced by a
  volume map, no finding but the few its snapshots make).

On each, ``scan`` and ``check`` (``--format json -o FILE --memory M``) alternate
``--pairs`` times as whole processes; CPU seconds (user + system of all threads) and
peak RSS come from wait4 (through GNU time when installed, which forks the command
from a small process). Per size and store it prints CPU microseconds and RSS bytes per
file, check/scan, and how much each figure moved from the smallest size (target: per-file
CPU flat within 10%, RSS flat once --memory is reached, check <= 1.5x scan), and the CPU
per file once each command's fixed cost, measured on an empty store in the same run, is
taken off (a cost that falls with size only as start-up spreads thinner is not flat, but it
is not growing either). Last, the
extrapolation to 2x10^8 objects from the largest size measured: CPU time on this machine
and the spill disk the findings would need (their JSON Lines bytes, twice: sorted runs and
the merged file). The load average is printed with every row: on a shared machine read
the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks import check_bench, gen_tree  # noqa: E402
from benchmarks.run import timed  # noqa: E402
from benchmarks.scan_bench import load  # noqa: E402

TARGET = 2 * 10**8


def cmd(command: str, root: Path, out: Path, memory: str, tmpdir: Path) -> list[str]:
    return [sys.executable, "-m", "verify", command, "--maps-dir", str(root / "maps"), "--blocks-dir",
            str(root / "blocks"), "--format", "json", "-o", str(out), "--no-progress", "--memory", memory,
            "--tmpdir", str(tmpdir)]


def files_in(root: Path) -> int:
    return sum(len(fs) for _d, _s, fs in os.walk(root))


def make(kind: str, root: Path, size: int) -> None:
    if (root / "done").exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    if kind == "heavy":
        gen_tree.generate(root, files=size)
    else:
        check_bench.gen_tree(root, objects=int(size / 1.04))  # 1 v2 map + its map-data per 64 objects
    (root / "done").write_text("")


def measure(kind: str, root: Path, memory: str, pairs: int, work: Path) -> dict:
    files = files_in(root / "maps") + files_in(root / "blocks")
    tmpdir = work / "spill"
    tmpdir.mkdir(exist_ok=True)
    runs: dict[str, list] = {"scan": [], "check": []}
    loads = []
    for _ in range(pairs):
        for c in ("scan", "check"):
            out = work / f"{c}.json"
            runs[c].append(timed(cmd(c, root, out, memory, tmpdir)))
            loads.append(float(load()))
    doc = json.loads((work / "check.json").read_text())
    s = doc["summary"]
    row = {"store": kind, "files": files, "findings": s["findings_total"], "load": max(loads),
           "orphans_pct": round(100 * s["findings"].get("object_orphan", 0) / (s["per_store"]["blocks"] or 1), 1),
           "jsonl_bytes": sum(len(json.dumps(f)) + 1 for f in doc["findings"])}
    del doc
    for c, rs in runs.items():
        wall = statistics.median(r[0] for r in rs)
        cpu = statistics.median(r[1] for r in rs)
        rss = max(r[2] for r in rs)
        row[c] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "rss_mib": round(rss, 1),
                  "cpu_us_per_file": round(1e6 * cpu / files, 2), "rss_b_per_file": round(rss * 2**20 / files, 1)}
    row["check_over_scan_cpu"] = round(row["check"]["cpu_s"] / row["scan"]["cpu_s"], 2)
    row["check_over_scan_wall"] = round(row["check"]["wall_s"] / row["scan"]["wall_s"], 2)
    return row


def table(rows: list[dict]) -> str:
    head = ("| store | files | findings (orphans % of blocks) | scan CPU us/file | check CPU us/file | check/scan CPU "
            "(wall) | scan peak RSS MiB | check peak RSS MiB | check RSS B/file | load |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(f"| {r['store']} | {r['files']:,} | {r['findings']:,} ({r['orphans_pct']}%) | "
                     f"{r['scan']['cpu_us_per_file']} | {r['check']['cpu_us_per_file']} | "
                     f"{r['check_over_scan_cpu']}x ({r['check_over_scan_wall']}x) | {r['scan']['rss_mib']} | "
                     f"{r['check']['rss_mib']} | {r['check']['rss_b_per_file']} | {r['load']:.1f} |")
    return "\n".join(lines)


def _ends(rows: list[dict]):
    """(kind of store, command, smallest row, largest row) where a kind was measured at two sizes or more."""
    for kind in ("heavy", "clean"):
        rs = sorted((r for r in rows if r["store"] == kind), key=lambda r: r["files"])
        if len(rs) >= 2:
            for c in ("scan", "check"):
                yield kind, c, rs[0], rs[-1]


def flatness(rows: list[dict]) -> list[str]:
    out = []
    for kind, c, first, last in _ends(rows):
        a, b = first[c]["cpu_us_per_file"], last[c]["cpu_us_per_file"]
        out.append(f"{kind} {c}: CPU per file {a} -> {b} us ({100 * (b - a) / a:+.0f}% from "
                   f"{first['files']:,} to {last['files']:,} files; target within 10%)")
    return out


def after_startup(rows: list[dict], fixed: dict[str, float]) -> list[str]:
    """Per kind of store and command: CPU per file once the fixed cost is taken off, smallest to largest."""
    out = []
    for kind, c, first, last in _ends(rows):
        a, b = ((1e6 * (r[c]["cpu_s"] - fixed[c]) / r["files"]) for r in (first, last))
        out.append(f"{kind} {c}: CPU per file after the fixed {fixed[c]:.2f} s: {a:.2f} -> {b:.2f} us "
                   f"({100 * (b - a) / a:+.0f}%; target within 10%)")
    return out


def extrapolate(rows: list[dict]) -> list[str]:
    out = []
    for kind in ("heavy", "clean"):
        rs = [r for r in rows if r["store"] == kind]
        if not rs:
            continue
        r = max(rs, key=lambda r: r["files"])
        k = TARGET / r["files"]
        spill = 2 * r["jsonl_bytes"] * k
        out.append(f"{kind}, 2x10^8 objects from {r['files']:,}: scan {r['scan']['cpu_s'] * k / 3600:.1f} CPU h "
                   f"({r['scan']['wall_s'] * k / 3600:.1f} h wall here), check {r['check']['cpu_s'] * k / 3600:.1f} "
                   f"CPU h ({r['check']['wall_s'] * k / 3600:.1f} h wall here); findings "
                   f"{r['findings'] * k:,.0f}, spill disk about {spill / 1e9:.0f} GB")
    return out


def fixed_cost(base: Path, memory: str, work: Path) -> dict[str, float]:
    """CPU seconds of each command on an empty store: start-up and the walk of two empty dirs."""
    root = base / "empty"
    for d in ("maps", "blocks"):
        (root / d).mkdir(parents=True, exist_ok=True)
    tmpdir = work / "spill"
    tmpdir.mkdir(parents=True, exist_ok=True)
    return {c: statistics.median(timed(cmd(c, root, work / f"{c}.json", memory, tmpdir))[1] for _ in range(3))
            for c in ("scan", "check")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000", help="files per store, comma-separated [%(default)s]")
    ap.add_argument("--stores", default="heavy,clean")
    ap.add_argument("--memory", default="256M")
    ap.add_argument("--pairs", type=int, default=1)
    ap.add_argument("--dir", help="where the stores are made (kept with --keep, reused when complete)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", help="write the rows to this file too")
    a = ap.parse_args(argv)
    base = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="scale-bench-"))
    rows = []
    print(f"--memory {a.memory}, load average {load()} at start", flush=True)
    try:
        fixed = fixed_cost(base, a.memory, base / "work")
        print(f"fixed cost (empty store): scan {fixed['scan']:.2f} s CPU, check {fixed['check']:.2f} s CPU", flush=True)
        for size in (int(s) for s in a.sizes.split(",")):
            for kind in a.stores.split(","):
                root = base / f"{kind}-{size}"
                make(kind, root, size)
                work = base / "work"
                work.mkdir(exist_ok=True)
                row = measure(kind, root, a.memory, a.pairs, work)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if a.json:
                    Path(a.json).write_text(json.dumps(rows, indent=1))
                if not a.keep:
                    shutil.rmtree(root, ignore_errors=True)
        print()
        print(table(rows))
        print()
        for line in flatness(rows) + after_startup(rows, fixed) + extrapolate(rows):
            print(line)
    finally:
        if not a.keep and not a.dir:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
