"""Ctrl-C and SIGTERM into real RADOS runs: a clean stop, never a crash, never a late one.

``scan``, ``check`` and ``check --verify-data`` with ``--backend rados`` run as an operator
runs them (``python -m verify``, ``--progress`` for journald, ``--objects-per-second``) on a namespace of the
session's real Ceph holding 30k objects, and get one SIGINT or SIGTERM at a seeded
random moment after their first progress line: 130/143 with the one line (progress lines
aside), or a normal end; never an abort or a segfault, never a traceback, no report, log
files or state, and gone within a deadline. The stop comes between two pages or windows
of reads: a stage seen less than half done at the signal, or begun after it, never runs
to its end (the count of an uninterrupted run). The same with the python-rados fallback.

``upgrade-maps --backend rados --offline --yes`` on a few hundred v1 maps is interrupted
the same way, then run again: every map upgraded and the pool byte for byte as an
uninterrupted run leaves it.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from rados_cluster import aio_write_all, volumes
from verify.core import formats as F
from verify.durable.journal import Journal

ROOT = Path(__file__).resolve().parents[2]
SEED = 20200
POOLS = ("sig-maps", "sig-blocks")
DEADLINE_S = 20  # a stopped run ends in well under a second; this only catches a hang
PROGRESS = re.compile(r"^archverify: progress: (.*?\)): "
                      r"(?:(started)|done: ([\d,]+) |([\d,]+)[/ ]|(interrupted) after ([\d,]+) )")


@pytest.fixture(scope="module")
def big_ns(ceph_cluster) -> str:
    """5000 v2 maps of 4 entries (header and map-data) naming 20000 Pithos blocks of 256 bytes: 30k objects."""
    ceph_cluster.ensure_pools(*POOLS)
    ns = f"sig-{uuid.uuid4().hex[:8]}"
    maps, blocks = volumes(random.Random(SEED), 5000, 4, 256)
    c = ceph_cluster.rados()
    try:
        for pool, items in zip(POOLS, (maps, blocks)):
            with c.open_ioctx(pool) as io:
                io.set_namespace(ns)
                aio_write_all(io, items)
    finally:
        c.shutdown()
    return ns


def _rados_args(cluster, ns: str) -> list[str]:
    return ["--backend", "rados", "--pool", POOLS[0], "--blocks-pool", POOLS[1], "-c", str(cluster.conf),
            "-k", str(cluster.keyring), "--namespace", ns]


COMMANDS = {
    "scan": ["scan"],
    "check": ["check", "--state", "{out}/state"],
    "check-data": ["check", "--verify-data", "--state", "{out}/state"],
}
# Every stage is capped to last seconds: the progress lines a test has read when it signals may be
# a few tenths of a second old (the 0.1 s ticker, this reader, a loaded machine), and uncapped the
# 30k-object scan ends in 0.6 s: a stage already done would look under way.
CAP = ["--objects-per-second", "15000"]


def _args(cmd: str, cluster, ns: str, out: Path) -> list[str]:
    return [a.format(out=out) for a in COMMANDS[cmd]] + CAP + _rados_args(cluster, ns) + [
        "--format", "json", "--progress", "-o", str(out / "report.json"), "--logdir", str(out / "logs")]


class Run:
    """A real process whose stderr is read as it comes: progress lines before and after the signal."""

    def __init__(self, args: list[str], engine: str):
        env = {**os.environ, "PYTHONFAULTHANDLER": "1", "ARCHVERIFY_PROGRESS_INTERVAL": "0.1"}
        if engine == "python":
            env["ARCHVERIFY_RADOS_ENGINE"] = "python"
        self.p = subprocess.Popen([sys.executable, "-m", "verify", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env=env)
        self.lines: list[str] = []
        self.first = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for raw in self.p.stderr:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
            self.first.set()
        self.first.set()

    def finish(self, what: str) -> int:
        try:
            self.p.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            pytest.fail(f"{what}: still running {DEADLINE_S}s after the signal; stderr:\n" + "\n".join(self.lines))
        self.reader.join()
        return self.p.returncode


def _stages(lines: list[str]) -> dict[str, dict]:
    """Per stage: started (bool), the last count seen, the done count (None if not done), the count
    an interrupted stage said it stopped at (None if it did not say so)."""
    out: dict[str, dict] = {}
    for ln in lines:
        m = PROGRESS.match(ln)
        if m:
            st = out.setdefault(m[1], {"started": False, "seen": 0, "done": None, "interrupted": None})
            if m[2]:
                st["started"] = True
            elif m[3]:
                st["done"] = int(m[3].replace(",", ""))
            elif m[5]:
                st["interrupted"] = int(m[6].replace(",", ""))
            else:
                st["seen"] = int(m[4].replace(",", ""))
    return out


@pytest.fixture(scope="module")
def baselines(ceph_cluster, big_ns, tmp_path_factory) -> dict[str, tuple[float, dict[str, int]]]:
    """Each command run to its end once: (seconds from its first progress line, count per stage)."""
    out = {}
    for cmd in COMMANDS:
        d = tmp_path_factory.mktemp(f"base-{cmd}")
        r = Run(_args(cmd, ceph_cluster, big_ns, d), "c")
        r.first.wait()
        t0 = time.monotonic()
        code = r.finish(cmd)
        took = time.monotonic() - t0
        assert code == 0, "\n".join(r.lines)  # a healthy store: the run says so
        assert json.loads((d / "report.json").read_text())["summary"]["exit_code"] == 0
        out[cmd] = (took, {k: v["done"] for k, v in _stages(r.lines).items()})
    return out


def _assert_clean_stop(cmd: str, engine: str, out: Path, lines_before: list[str], lines: list[str], code: int,
                       sig: int, totals: dict[str, int]) -> None:
    where = f"{cmd} ({engine}): signal {sig} gave exit {code}; stderr:\n" + "\n".join(lines[-40:])
    assert code in (0, 130, 143), where  # never -6/-11 (abort, segfault) or 134/139
    text = "\n".join(lines)
    for bad in ("Traceback", "Fatal Python error", "malloc", "double free", "corrupted", "core dumped"):
        assert bad not in text, where
    others = [ln for ln in lines if not ln.startswith(("archverify: progress: ", "archverify: limits: "))]
    if code == 0:  # the signal came after the work: a complete report
        assert json.loads((out / "report.json").read_text())["summary"]["exit_code"] == 0, where
        return
    assert code == 128 + sig, where
    assert others == ["archverify: interrupted" if sig == signal.SIGINT else "archverify: terminated"], where
    assert not (out / "report.json").exists(), where
    assert not (out / "logs").exists() or not any((out / "logs").iterdir()), where
    # no run in the state; only the checkpoint of the finished shards, for --resume (tests/ops/test_resume.py)
    assert not (out / "state").exists() or not any(p.is_file() for p in (out / "state").rglob("*")
                                                   if p.relative_to(out / "state").parts[0] != "checkpoint"), where
    assert not [p for p in out.rglob("*") if p.is_file() and "checkpoint" not in p.relative_to(out).parts], where
    # stopped between two pages or windows, not at the end of the stage or of the run
    before, after = _stages(lines_before), _stages(lines)
    for stage, st in after.items():
        under_way = stage in before and before[stage]["seen"] < totals[stage] // 2 and before[stage]["done"] is None
        if not under_way and stage in before:
            continue
        assert st["done"] is None, f"{stage} said done though interrupted\n{where}"
        assert st["interrupted"] is not None and st["interrupted"] < totals[stage], \
            f"{stage} did not say it was interrupted\n{where}"


RUNS = [("c", "scan", 4), ("c", "check", 3), ("c", "check-data", 3), ("python", "scan", 2), ("python", "check-data", 2)]


@pytest.mark.parametrize("engine,cmd,runs", RUNS, ids=[f"{e}-{c}" for e, c, _ in RUNS])
def test_signals_stop_rados_commands_cleanly(ceph_cluster, big_ns, baselines, tmp_path, engine, cmd, runs):
    took, totals = baselines[cmd]
    rng = random.Random(f"{SEED}-{engine}-{cmd}")
    for i in range(runs):
        out = tmp_path / f"run{i}"
        out.mkdir()
        sig = rng.choice((signal.SIGINT, signal.SIGTERM))
        delay = rng.uniform(0, took * 0.9)
        r = Run(_args(cmd, ceph_cluster, big_ns, out), engine)
        r.first.wait()  # the first progress line: the command is at work
        time.sleep(delay)
        before = list(r.lines)
        if r.p.poll() is None:
            r.p.send_signal(sig)
        code = r.finish(f"{cmd} ({engine}) signal {sig} at {delay:.2f}s")
        _assert_clean_stop(cmd, engine, out, before, r.lines, code, sig, totals)


# ---- upgrade-maps: stopped between two journaled steps, then run again to the same pool ----------------


def _v1_maps(n: int) -> dict[str, bytes]:
    rng = random.Random(SEED + 1)
    out = {}
    for v in range(n):
        entries = [(rng.random() < 0.5, rng.randbytes(32).hex()) for _ in range(3)] + [(0, F.ZERO_HASH)]
        out[f"archip_sig-vol-{v:03d}"] = F.write_v1(4 * F.BLOCK_SIZE_4M, entries)
    return out


def _pool(cluster, ns: str) -> dict[str, bytes]:
    c = cluster.rados()
    try:
        with c.open_ioctx(POOLS[0]) as io:
            io.set_namespace(ns)
            names = [o.key for o in io.list_objects()]
            return {n: io.read(n, 1 << 24) for n in names}
    finally:
        c.shutdown()


def _load(cluster, ns: str, objects: dict[str, bytes]) -> None:
    c = cluster.rados()
    try:
        with c.open_ioctx(POOLS[0]) as io:
            io.set_namespace(ns)
            aio_write_all(io, objects.items())
    finally:
        c.shutdown()


def test_upgrade_maps_on_rados_stopped_by_sigint_resumes_to_the_same_pool(ceph_cluster, tmp_path):
    ceph_cluster.ensure_pools(*POOLS)
    maps = _v1_maps(300)

    def args(ns: str, work: Path) -> list[str]:
        return ["upgrade-maps", "--backend", "rados", "--offline", "--yes", "-j", "2", "--pool", POOLS[0], "-c",
                str(ceph_cluster.conf), "-k", str(ceph_cluster.keyring), "--namespace", ns, "--backup-dir",
                str(work / "bk"), "--journal-dir", str(work / "j"), "--format", "json"]

    def run(ns: str, work: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "verify", *args(ns, work)], cwd=ROOT, capture_output=True,
                              timeout=300)

    ref_ns = f"up-ref-{uuid.uuid4().hex[:8]}"
    _load(ceph_cluster, ref_ns, maps)
    r = run(ref_ns, tmp_path / "ref")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["counts"] == {"upgraded": len(maps)}
    reference = _pool(ceph_cluster, ref_ns)
    assert not any(n.startswith("archip_") for n in reference)  # every v1 map upgraded and purged
    rng = random.Random(SEED + 2)
    partial = 0
    for i in range(3):
        ns, work = f"up-{i}-{uuid.uuid4().hex[:8]}", tmp_path / f"run{i}"
        _load(ceph_cluster, ns, maps)
        journal = work / "j" / "upgrade-maps.journal"
        r = Run(args(ns, work), "c")
        want = rng.randrange(1, len(maps) // 2)  # finished steps journaled before the signal
        while r.p.poll() is None:
            try:
                if journal.read_bytes().count(b'"ev":"done"') >= want:
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.002)
        r.p.send_signal(signal.SIGINT)
        code = r.finish(f"upgrade-maps, SIGINT after {want} steps")
        err = "\n".join(r.lines)
        assert code in (0, 130), err
        assert "Traceback" not in err
        now = _pool(ceph_cluster, ns)
        if code == 130:
            assert len(r.lines) == 1, err
            assert Journal(journal).pending() == []  # stopped between two steps, none half done
            partial += now != reference
        for name, data in now.items():  # every object as it was, or as the uninterrupted run leaves it
            assert data in (maps.get(name), reference.get(name)), (i, name)
        r = run(ns, work)
        assert r.returncode == 0, r.stderr
        assert _pool(ceph_cluster, ns) == reference, i
        for name, data in maps.items():  # the backups hold the original bytes of every map upgraded
            backup = work / "bk" / "maps" / name
            assert not backup.exists() or backup.read_bytes() == data, name
    assert partial, "no signal landed in the middle of the upgrade"
