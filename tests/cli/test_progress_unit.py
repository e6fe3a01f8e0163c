"""A nightly ``check`` run as the shipped systemd unit runs it (its ExecStart, stderr not a
terminal) writes plain progress lines into the journal at a steady interval, even while a
stage counts nothing, and its --help says so."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

from verify.progress import INTERVAL_ENV

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "systemd" / "archverify-check.service"
INTERVAL = 0.02  # the unit's 10 s, shortened so that a store of a few seconds' work shows many lines
LINE = re.compile(r"^archverify: progress: (?P<stage>.+?): (?P<what>started.*|done: .*|[\d,]+ .*)$")


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
    p = subprocess.Popen(as_the_unit_runs_it(tmp_path, store / "archipelago.conf"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    lines: list[tuple[float, str]] = []

    def read():
        for line in p.stderr:
            lines.append((time.monotonic(), line.rstrip("\n")))

    reader = threading.Thread(target=read)
    reader.start()
    out = p.stdout.read()
    assert p.wait(timeout=300) == 1, out  # the sample's findings
    reader.join()
    assert out.count("\n") == 1  # --quiet: the one line, progress only on stderr
    stages: dict[str, list[tuple[float, str]]] = {}
    for t, line in lines:
        m = LINE.match(line)
        assert m, line  # nothing else on stderr, and every line is a plain one (no bar, no escape)
        stages.setdefault(m["stage"], []).append((t, m["what"]))
    assert len(stages) >= 3, stages  # scan, references, data
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
