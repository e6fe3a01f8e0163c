"""A nightly ``check`` run as the shipped systemd unit runs it (its ExecStart, stderr not a
terminal) writes plain progress lines into the journal at a steady interval, even while a
stage counts nothing, and its --help says so; so do ``scan``, ``pithos-check`` (its total
PostgreSQL's row estimate, with an ETA) and a RADOS ``check`` (its total the pools' count)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pg_server import analysed_sample

from verify.core.progress import INTERVAL_ENV

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "systemd" / "archverify-check.service"
INTERVAL = 0.02  # the unit's 10 s, shortened so that a store of a few seconds' work shows many lines
LINE = re.compile(r"^archverify: progress: (?P<stage>.+?): (?P<what>started.*|done: .*|[\d,]+[ /].*)$")


def exec_start() -> list[str]:
    text = UNIT.read_text().replace("\\\n", " ")
    return shlex.split(next(ln for ln in text.splitlines() if ln.startswith("ExecStart=")).partition("=")[2])


def as_the_unit_runs_it(tmp_path: Path, conf: Path) -> list[str]:
    """The unit's command line, its paths moved below ``tmp_path``, run by this checkout."""
    argv = exec_start()[1:]
    places = {"--config": str(conf), "--lock": str(tmp_path / "lock"), "--state": str(tmp_path / "state"),
              "--prometheus-textfile": str(tmp_path / "archverify.prom")}
    out = []
    for i, a in enumerate(argv):
        out.append(places[argv[i - 1]] if i and argv[i - 1] in places else a)
    return [sys.executable, "-m", "verify", *out, "-j", "1"]  # one thread: stages of a second or more


def test_the_units_run_writes_progress_lines_at_a_steady_interval(tmp_path):
    assert "--progress" in exec_start()
    store = tmp_path / "store"
    subprocess.run([sys.executable, "-m", "verify", "sample", str(store), "--volumes", "2000"], check=True,
                   capture_output=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    env = dict(os.environ, PYTHONPATH=str(ROOT), **{INTERVAL_ENV: str(INTERVAL)})
    code, out, lines = with_stderr_lines(as_the_unit_runs_it(tmp_path, store / "archipelago.conf"), env)
    assert code == 1, out  # the sample's findings
    assert out.count("\n") == 1  # --quiet: the one line, progress only on stderr
    stages = steady(lines)
    assert len(stages) >= 3, stages  # scan, references, data


def with_stderr_lines(argv: list[str], env: dict) -> tuple[int, str, list[tuple[float, str]]]:
    """Runs ``argv`` with stderr a pipe (not a terminal); its exit code, stdout, and stderr's lines as they came."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    lines: list[tuple[float, str]] = []

    def read():
        for line in p.stderr:
            lines.append((time.monotonic(), line.rstrip("\n")))

    reader = threading.Thread(target=read)
    reader.start()
    out = p.stdout.read()
    code = p.wait(timeout=300)
    reader.join()
    return code, out, lines


def steady(lines: list[tuple[float, str]]) -> dict[str, list[tuple[float, str]]]:
    """Every line a plain progress line; per stage started, a line per interval, done: its lines by stage."""
    stages: dict[str, list[tuple[float, str]]] = {}
    for t, line in lines:
        if line.startswith("archverify: limits: "):  # a capped run's start line
            continue
        m = LINE.match(line)
        assert m, line  # nothing else on stderr, and every line is a plain one (no bar, no escape)
        stages.setdefault(m["stage"], []).append((t, m["what"]))
    for stage, seen in stages.items():
        assert seen[0][1].startswith("started") and seen[-1][1].startswith("done: "), (stage, seen)
        ticks = [t for t, what in seen[1:-1]]
        took = seen[-1][0] - seen[0][0]
        if took > 5 * INTERVAL:
            # one line per interval, whether or not the stage's count moved
            assert len(ticks) >= took / INTERVAL / 3, (stage, took, len(ticks))
            gaps = [b - a for a, b in zip([seen[0][0], *ticks], [*ticks, seen[-1][0]])]
            assert max(gaps) < INTERVAL + 5.0, (stage, gaps)  # (loose: a loaded machine may pause a process)
    assert any(seen[-1][0] - seen[0][0] > 5 * INTERVAL for seen in stages.values()), stages
    return stages


def env_with(**more) -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), **{INTERVAL_ENV: str(INTERVAL)}, **more)


def test_scan_writes_progress_lines_at_a_steady_interval(tmp_path):
    store = tmp_path / "store"
    subprocess.run([sys.executable, "-m", "verify", "sample", str(store), "--volumes", "2000"], check=True,
                   capture_output=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    code, out, lines = with_stderr_lines([sys.executable, "-m", "verify", "scan", "--config",
                                          str(store / "archipelago.conf"), "--progress", "--quiet", "-j", "1",
                                          "--objects-per-second", "4000"], env_with())
    assert code == 1, out
    stages = steady(lines)
    assert list(stages) == ["scan (filed)"], stages


@pytest.mark.postgres
def test_pithos_check_writes_lines_with_the_databases_estimate_and_an_eta(pg_admin, tmp_path):
    sample, url, estimate = analysed_sample(pg_admin, "pithos_progress_lines", tmp_path)
    code, out, lines = with_stderr_lines([sys.executable, "-m", "verify", "pithos-check", "--db", url, "--maps-dir",
                                          str(sample.maps_dir), "--progress", "--quiet", "--objects-per-second",
                                          "20"], env_with())
    assert code == 1, out
    stages = steady(lines)
    (seen,) = stages.values()
    assert seen[0][1] == f"started; about {estimate:,} rows expected"
    ticks = [what for _t, what in seen[1:-1]]
    assert ticks and all(re.match(rf"[\d,]+/~{estimate:,} rows \(\d+%\), [\d,]+ rows/s", w) for w in ticks), ticks
    # before its first batch of rows is done, the ETA is the estimate's duration at the cap (40 rows at 20/s)
    assert re.search(r", ETA 0:00:0[12]$", ticks[0]), ticks
    assert seen[-1][0] - seen[0][0] >= 1.5, seen  # the cap held
