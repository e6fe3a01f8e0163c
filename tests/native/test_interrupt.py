"""Ctrl-C and SIGTERM at random moments into real runs: a clean stop, never a crash.

Each command runs as an operator runs it (``python -m verify``, a real 50k-file store,
``-j 2`` so that the GIL-free loops run in several threads) and gets one SIGINT or
SIGTERM at a seeded random moment within its normal run time, counted from when the
command has loaded its first GIL-free extension. Every run must end in 130/143 with the one line,
or, when the signal came after the work, as a normal run (0/1); never an abort or a
segfault (134/139), never a traceback; an interrupted run leaves no report, log
files, metrics or state behind, and a normal end leaves complete ones.
"""

from __future__ import annotations

import json
import re
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SEED = 20100
DEADLINE_S = 120  # a stopped run ends in well under a second; this only catches a hang


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """~50k files over both stores; data objects of 256 bytes so that --verify-data reads."""
    out = tmp_path_factory.mktemp("big")
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_tree.py"), str(out), "--files", "50000",
                    "--jobs", "2", "--block-bytes", "256"], check=True, capture_output=True, timeout=600)
    return out


def _working(pid: int) -> bool:
    """The command has loaded a GIL-free extension (verify/_scan, _check, _probe): its work begins."""
    try:
        return "/verify/_" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return True  # already gone: nothing to wait for


def _run(args: list[str], out: Path, sig: int | None = None, delay: float = 0.0):
    """Start the command, wait until it works, sleep ``delay``, send ``sig``; (exit, stderr, seconds of work)."""
    p = subprocess.Popen([sys.executable, "-m", "verify", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    t0 = time.monotonic()
    while not _working(p.pid) and p.poll() is None:
        time.sleep(0.005)
    t1 = time.monotonic()
    if sig is not None:
        time.sleep(delay)
        if p.poll() is None:
            p.send_signal(sig)
    try:
        _, err = p.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail(f"{args[0]} hung after signal {sig} at {delay:.2f}s")
    return p.returncode, err.decode("utf-8", "replace"), time.monotonic() - t1 if sig is None else t1 - t0


def _outputs(out: Path) -> dict[str, Path]:
    return {"report": out / "report.json", "logdir": out / "logs", "prom": out / "metrics.prom",
            "state": out / "state"}


def _assert_clean_end(code: int, err: str, out: Path, cmd: str, sig: int, delay: float,
                      normal: tuple[int, ...] = (0, 1)) -> None:
    where = f"{cmd}: signal {sig} at {delay:.3f}s gave exit {code}; stderr:\n{err[-3000:]}"
    assert code in (*normal, 130, 143), where
    assert "Traceback" not in err and "Fatal Python error" not in err, where
    assert "malloc" not in err and "double free" not in err and "corrupted" not in err, where
    o = _outputs(out)
    if code in (130, 143):
        line = "archverify: interrupted" if code == 130 else "archverify: terminated"
        assert err.strip().splitlines()[-1] == line, where
        assert code == (130 if sig == signal.SIGINT else 143), where
        assert not o["report"].exists(), where
        if o["prom"].exists():  # the textfile says how the run ended, and nothing of a run it did not finish
            text = o["prom"].read_text()
            assert re.search(r'^archverify_check_exit_code\{archverify_instance="[^"]+"\} ' + f"{float(code)}$", text,
                             re.M) and "archverify_check_findings" not in text, where
        assert not o["logdir"].exists() or not any(o["logdir"].iterdir()), where
        # no run in the state; only the checkpoint of the finished shards, for --resume (tests/ops/test_resume.py)
        assert not o["state"].exists() or not any(p.is_file() for p in o["state"].rglob("*")
                                                  if p.relative_to(o["state"]).parts[0] != "checkpoint"), where
        assert not list(out.glob(".archverify-tmp*")) and not list(out.glob("*.tmp")), where
    else:  # the signal came after the work: a complete report
        doc = json.loads(o["report"].read_text())
        assert doc["summary"]["exit_code"] == code, where


COMMANDS = {
    # name: (argument list builder, runs)
    "scan": (lambda s, o: ["scan", "--maps-dir", str(s / "maps"), "--blocks-dir", str(s / "blocks"), "-j", "2",
                           "--format", "json", "-o", str(o / "report.json"), "--logdir", str(o / "logs")], 9),
    "check": (lambda s, o: ["check", "--maps-dir", str(s / "maps"), "--blocks-dir", str(s / "blocks"), "-j", "2",
                            "--format", "json", "-o", str(o / "report.json"), "--logdir", str(o / "logs"),
                            "--prometheus-textfile", str(o / "metrics.prom"), "--state", str(o / "state")], 7),
    "check-data": (lambda s, o: ["check", "--verify-data", "--maps-dir", str(s / "maps"), "--blocks-dir",
                                 str(s / "blocks"), "-j", "2", "--format", "json", "-o", str(o / "report.json"),
                                 "--prometheus-textfile", str(o / "metrics.prom")], 7),
}


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_signals_stop_filed_commands_cleanly(store, tmp_path, cmd):
    build, runs = COMMANDS[cmd]
    rng = random.Random(f"{SEED}-{cmd}")
    base = tmp_path / "base"
    base.mkdir()
    code, err, took = _run(build(store, base), base)
    assert code == 1 and "Traceback" not in err, err  # the store has findings: a normal run says so
    for i in range(runs):
        out = tmp_path / f"run{i}"
        out.mkdir()
        sig = rng.choice((signal.SIGINT, signal.SIGTERM))
        delay = rng.uniform(0, min(took, 1.0))
        code, err, _ = _run(build(store, out), out, sig, delay)
        _assert_clean_end(code, err, out, cmd, sig, delay)


@pytest.mark.postgres
def test_signals_stop_pithos_check_cleanly(store, tmp_path, pg_admin):
    """The map probes run in a thread pool between database batches: stopped and waited for too."""
    import psycopg

    from verify.ops.pithos.sample import create_schema, load_rows

    names = [e.name for d1 in (store / "maps").iterdir() if d1.is_dir() for d2 in d1.iterdir()
             for d3 in d2.iterdir() for e in d3.iterdir()]
    rng = random.Random(SEED)
    names += [rng.randbytes(32).hex() for _ in range(30_000 - len(names))]  # missing maps: probed at 3 paths
    rows = [(i + 1, n, rng.randrange(1 << 24), n, False, 0, 1, "user@example.org", 1700000000.5)
            for i, n in enumerate(names)]
    url = pg_admin("pithos_interrupt")
    with psycopg.connect(url) as conn:
        create_schema(conn)
        load_rows(conn, rows, nodes=len(rows))

    def build(o: Path) -> list[str]:
        return ["pithos-check", "--db", url, "--maps-dir", str(store / "maps"), "-j", "2", "--format", "json",
                "-o", str(o / "report.json"), "--logdir", str(o / "logs")]

    base = tmp_path / "base"
    base.mkdir()
    code, err, took = _run(build(base), base)
    assert code in (1, 2) and "Traceback" not in err, err
    for i in range(7):
        out = tmp_path / f"run{i}"
        out.mkdir()
        sig = rng.choice((signal.SIGINT, signal.SIGTERM))
        delay = rng.uniform(0, min(took, 1.0))
        code, err, _ = _run(build(out), out, sig, delay)
        _assert_clean_end(code, err, out, "pithos-check", sig, delay, normal=(0, 1, 2))
