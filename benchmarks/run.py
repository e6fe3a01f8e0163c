"""archverify's benchmark: one run, ratios against baselines measured in the same run.

    python benchmarks/run.py [--files 200000] [--nfs-files 20000] [--rss-1m] [--json OUT]

1. Local disk, warm cache: ``archverify scan`` (the CLI, --jobs = CPUs) against
   the naive pure-Python scan (benchmarks/naive_scan.py) and ``find -type f`` over
   the same two store dirs of a generated tree (benchmarks/gen_tree.py). Each
   command runs once to warm the cache, then --repeat times; the median wall time
   counts. Peak RSS of each command comes from wait4().
2. NFS-like: a smaller tree behind delayfs (benchmarks/fuse_delay), which delays
   every lookup, getattr, open, read and readdir by --delay-us with kernel caching
   off. First the mount's own ceiling (C threads doing stat through it), then the
   naive scan and ``archverify scan --jobs J`` for several J. Each command gets a
   fresh mount, so the requests it cost are counted too.
3. With --rss-1m: peak RSS of ``archverify scan`` over a 1M-file tree.

The machine may be shared and noisy: read ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from benchmarks import gen_tree  # noqa: E402

CPUS = os.cpu_count() or 1
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}


def log(msg: str) -> None:
    print(msg, flush=True)


# ---- running one command ----


def _pdeathsig() -> None:
    """Children die with this process: a killed benchmark leaves no mount behind."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


def timed(cmd: list[str], stdout=subprocess.DEVNULL, ok=(0, 1)) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of one command, from wait4's rusage of that child.

    Linux keeps a process's peak RSS across exec, so a child forked from this
    Python process would start at this process's size: GNU time (a small C
    program) forks the command instead when it is installed, and its own
    rusage line gives the command's true peak."""
    rss_file = None
    if GNU_TIME:
        fd, rss_file = tempfile.mkstemp(prefix="rss-")
        os.close(fd)
        cmd = [GNU_TIME, "-q", "-f", "%M", "-o", rss_file, *cmd]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, env=ENV)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    rss = ru.ru_maxrss / 1024
    if rss_file:
        text = Path(rss_file).read_text().split()
        os.unlink(rss_file)
        rss = int(text[-1]) / 1024 if text and text[-1].isdigit() else rss
    if p.returncode not in ok:
        raise RuntimeError(f"{cmd[:4]}... exited {p.returncode}: {err.decode(errors='replace')[-2000:]}")
    return wall, ru.ru_utime + ru.ru_stime, rss


def scan_cmd(maps: str, blocks: str, jobs: int, out: str) -> list[str]:
    return [sys.executable, "-m", "verify", "scan", "--maps-dir", maps, "--blocks-dir", blocks,
            "--jobs", str(jobs), "--format", "json", "--output", out, "--no-progress"]


def naive_cmd(maps: str, blocks: str, out: str) -> list[str]:
    return [sys.executable, str(HERE / "naive_scan.py"), "--maps-dir", maps, "--blocks-dir", blocks,
            "--json", "--output", out]


def find_cmd(maps: str, blocks: str) -> list[str]:
    return ["find", maps, blocks, "-type", "f"]


def same_findings(a: str, b: str) -> bool:
    """The two scans reported the same counts per kind (a cheap check that both did the work)."""
    sa, sb = json.loads(Path(a).read_text())["summary"], json.loads(Path(b).read_text())["summary"]
    return sa["findings"] == sb["findings"] and sa["files_scanned"] == sb["files_scanned"]


# ---- trees ----


def ensure_tree(path: Path, files: int, seed: int) -> dict:
    manifest = path / "tree.json"
    if manifest.exists():
        m = json.loads(manifest.read_text())
        if m.get("seed") == seed and abs(m["files_total"] - files) < gen_tree.CHUNK_FILES:
            log(f"  reusing {path} ({m['files_total']} files)")
            return m
        raise SystemExit(f"{path} holds another tree ({m['files_total']} files, seed {m.get('seed')})")
    log(f"  generating {files} files into {path} ...")
    m = gen_tree.generate(path, files, seed)
    log(f"  {m['files_total']} files ({m['files']}) in {m['elapsed_s']} s, "
        f"{sum(len(v) for v in m['planted'].values())} planted findings")
    return m


# ---- the FUSE mount ----


def build(workdir: Path) -> tuple[Path, Path]:
    src = HERE / "fuse_delay"
    fs, ceil = workdir / "delayfs", workdir / "ceiling"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse3"], check=True, capture_output=True,
                           text=True).stdout.split()
    subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", str(src / "delayfs.c"), *flags, "-o", str(fs)], check=True)
    subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-pthread", str(src / "ceiling.c"), "-o", str(ceil)],
                   check=True)
    return fs, ceil


class Mount:
    """delayfs over ``source`` at ``mnt`` for the duration of a with-block; always unmounted."""

    live: set = set()

    def __init__(self, delayfs: Path, source: Path, mnt: Path, delay_us: int):
        self.cmd = [str(delayfs), str(source), str(mnt), "-f", f"--delay-us={delay_us}"]
        self.mnt = mnt
        self.requests = ""

    def __enter__(self):
        self.mnt.mkdir(parents=True, exist_ok=True)
        dev = os.stat(self.mnt).st_dev
        self.proc = subprocess.Popen(self.cmd, stderr=subprocess.PIPE, preexec_fn=_pdeathsig)
        Mount.live.add(str(self.mnt))
        deadline = time.monotonic() + 10
        while os.stat(self.mnt).st_dev == dev:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"delayfs did not mount: {self.proc.stderr.read().decode(errors='replace')}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        unmount(str(self.mnt))
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        for line in err.decode(errors="replace").splitlines():
            if line.startswith("delayfs: requests:"):
                self.requests = line.split(":", 2)[2].strip()
        return False


def unmount(mnt: str) -> None:
    if mnt in Mount.live:
        subprocess.run(["fusermount3", "-u", "-z", mnt], stderr=subprocess.DEVNULL)
        Mount.live.discard(mnt)


def unmount_all(*_):
    for m in list(Mount.live):
        unmount(m)


def total_requests(reqs: str) -> int:
    return int(reqs.rsplit("total=", 1)[1]) if "total=" in reqs else 0


# ---- the three parts ----


def local(tree: Path, repeat: int, jobs: int, results: dict) -> None:
    maps, blocks = str(tree / "maps"), str(tree / "blocks")
    out_s, out_n = str(tree.parent / "scan-local.json"), str(tree.parent / "naive-local.json")
    cmds = {
        "archverify scan": scan_cmd(maps, blocks, jobs, out_s),
        "naive": naive_cmd(maps, blocks, out_n),
        "find -type f": find_cmd(maps, blocks),
    }
    for name, cmd in cmds.items():  # warm-up: cache, and the .pyc files
        timed(cmd)
    runs: dict[str, list] = {k: [] for k in cmds}
    for _ in range(repeat):  # interleaved, so a noisy neighbour hurts all three alike
        for name, cmd in cmds.items():
            runs[name].append(timed(cmd))
    if not same_findings(out_s, out_n):
        raise SystemExit("archverify scan and the naive scan disagree on this tree: not benchmarking a wrong answer")
    scan_s = json.loads(Path(out_s).read_text())["summary"]
    res = {k: {"median_s": statistics.median(w for w, _, _ in v), "min_s": min(w for w, _, _ in v),
               "cpu_s": statistics.median(c for _, c, _ in v), "peak_rss_mib": max(r for _, _, r in v)}
           for k, v in runs.items()}
    base = res["archverify scan"]["median_s"]
    log(f"\nlocal disk, warm cache: {scan_s['files_scanned']} files, {scan_s['findings_total']} findings, "
        f"scan --jobs {jobs}, median of {repeat}")
    log(f"  {'command':<18}{'median s':>10}{'min s':>9}{'CPU s':>8}{'peak RSS MiB':>14}{'time / scan':>13}")
    for k, v in res.items():
        log(f"  {k:<18}{v['median_s']:>10.2f}{v['min_s']:>9.2f}{v['cpu_s']:>8.2f}{v['peak_rss_mib']:>14.1f}"
            f"{v['median_s'] / base:>12.2f}x")
    log(f"  scan's own elapsed (inside the process): {scan_s['elapsed_s']} s, {scan_s['files_per_s']} files/s")
    ratios = {"naive_over_scan": res["naive"]["median_s"] / base, "find_over_scan": res["find -type f"]["median_s"] / base}
    log(f"  => {ratios['naive_over_scan']:.1f}x the naive scan (target >= 4x), "
        f"{ratios['find_over_scan']:.2f}x find -type f (target > 1x)")
    results["local"] = {"files": scan_s["files_scanned"], "jobs": jobs, "repeat": repeat, "commands": res,
                        "ratios": ratios, "scan_internal_s": scan_s["elapsed_s"]}


def nfs_like(tree: Path, workdir: Path, delay_us: int, jobs_list: list[int], ceiling_threads: list[int],
             skip_naive: bool, results: dict) -> None:
    delayfs, ceiling = build(workdir)
    mnt = workdir / "mnt"
    subprocess.run(find_cmd(str(tree / "maps"), str(tree / "blocks")), stdout=subprocess.DEVNULL, check=True)
    log(f"\nNFS-like: {delay_us} us per lookup/getattr/open/read/readdir, kernel caching off")
    with Mount(delayfs, tree, mnt, delay_us) as m:
        ceil = {}
        for t in ceiling_threads:
            out = subprocess.run([str(ceiling), str(mnt / "maps"), str(t), "2"], capture_output=True, text=True,
                                 check=True).stdout.split()
            stats = float(out[1])
            # each stat through the mount is 2 requests (LOOKUP + GETATTR): see docs/benchmarks.md
            ceil[t] = {"stats_per_s": stats, "requests_per_s": 2 * stats, "theoretical_requests_per_s": t * 1e6 / delay_us}
            log(f"  ceiling, {t:>3} C threads doing stat: {2 * stats:>8.0f} requests/s "
                f"(a perfect server: {t * 1e6 / delay_us:.0f})")
    runs = {}
    maps, blocks = str(mnt / "maps"), str(mnt / "blocks")
    cmds = [(f"scan --jobs {j}", scan_cmd(maps, blocks, j, str(workdir / f"scan-nfs-{j}.json"))) for j in jobs_list]
    if not skip_naive:
        cmds.insert(0, ("naive", naive_cmd(maps, blocks, str(workdir / "naive-nfs.json"))))
    for name, cmd in cmds:
        with Mount(delayfs, tree, mnt, delay_us) as m:
            wall, cpu, rss = timed(cmd)
        runs[name] = {"s": wall, "cpu_s": cpu, "peak_rss_mib": rss, "requests": total_requests(m.requests), "detail": m.requests}
        log(f"  {name:<16}{wall:>8.2f} s {runs[name]['requests']:>9} requests "
            f"({runs[name]['requests'] / wall:,.0f}/s)")
    if not skip_naive:
        base = runs["naive"]["s"]
        log("  " + ", ".join(f"{k}: {base / v['s']:.1f}x naive" for k, v in runs.items() if k != "naive")
            + " (target >= 20x)")
        for j in jobs_list:
            if not same_findings(str(workdir / f"scan-nfs-{j}.json"), str(workdir / "naive-nfs.json")):
                raise SystemExit(f"scan --jobs {j} and the naive scan disagree through the mount")
    results["nfs_like"] = {"delay_us": delay_us, "ceiling": ceil, "runs": runs,
                           "ratios": {k: runs["naive"]["s"] / v["s"] for k, v in runs.items()
                                      if k != "naive" and "naive" in runs}}


def rss_1m(tree: Path, jobs: int, results: dict) -> None:
    out = str(tree.parent / "scan-1m.json")
    timed(find_cmd(str(tree / "maps"), str(tree / "blocks")))
    wall, _cpu, rss = timed(scan_cmd(str(tree / "maps"), str(tree / "blocks"), jobs, out))
    s = json.loads(Path(out).read_text())["summary"]
    log(f"\n1M-file tree: scan --jobs {jobs} of {s['files_scanned']} files, {s['findings_total']} findings: "
        f"{wall:.1f} s, peak RSS {rss:.1f} MiB (target < 200 MB)")
    results["rss_1m"] = {"files": s["files_scanned"], "findings": s["findings_total"], "s": wall, "peak_rss_mib": rss}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", help="where trees, binaries and the mount go [a new temp dir, removed after]")
    ap.add_argument("--keep", action="store_true", help="keep the workdir (trees are reused by the next run)")
    ap.add_argument("--files", type=int, default=200_000, help="files in the local tree [%(default)s]")
    ap.add_argument("--nfs-files", type=int, default=20_000, help="files in the tree behind delayfs [%(default)s]")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per local command [%(default)s]")
    ap.add_argument("--jobs", type=int, default=CPUS, help="scan --jobs on local disk [CPUs = %(default)s]")
    ap.add_argument("--delay-us", type=int, default=1000, help="delay per FUSE request [%(default)s]")
    ap.add_argument("--nfs-jobs", default="1,8,32,64,128", help="scan --jobs values on the mount [%(default)s]")
    ap.add_argument("--ceiling-threads", default="1,64,128")
    ap.add_argument("--skip-local", action="store_true")
    ap.add_argument("--skip-nfs", action="store_true")
    ap.add_argument("--skip-nfs-naive", action="store_true", help="the naive scan through the mount takes minutes")
    ap.add_argument("--rss-1m", action="store_true", help="also scan a 1M-file tree for peak RSS (~10 GB of disk)")
    ap.add_argument("--json", dest="json_out", help="write all numbers to this file")
    a = ap.parse_args(argv)

    own = a.workdir is None
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix="archverify-bench-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    atexit.register(unmount_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: dict = {"cpus": CPUS, "python": sys.version.split()[0]}
    log(f"archverify benchmark in {workdir} ({CPUS} CPUs)")
    try:
        if not a.skip_local:
            tree = workdir / f"tree-{a.files}"
            ensure_tree(tree, a.files, a.seed)
            local(tree, a.repeat, a.jobs, results)
        if not a.skip_nfs:
            tree = workdir / f"tree-{a.nfs_files}"
            ensure_tree(tree, a.nfs_files, a.seed)
            nfs_like(tree, workdir, a.delay_us, [int(x) for x in a.nfs_jobs.split(",")],
                     [int(x) for x in a.ceiling_threads.split(",")], a.skip_nfs_naive, results)
        if a.rss_1m:
            tree = workdir / "tree-1000000"
            ensure_tree(tree, 1_000_000, a.seed)
            rss_1m(tree, a.jobs, results)
    finally:
        unmount_all()
        if own and not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
