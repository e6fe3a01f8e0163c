"""``archverify finalize --yes --fix`` as a real process, stopped again and again, then run to its end.

Against the stand-in nodes and ``clean_store`` (tests/ops/test_finalize.py), SIGINT (Ctrl-C), then
SIGTERM (systemd stopping a unit) comes at
seeded moments: once the journal (``STATE/finalize.journal``) has grown to a seeded number of
records, plus a seeded fraction of a second, so that it lands between two steps or in the
middle of one (a restart, the fixes). Sent to the process alone (``kill``) or to its
process group, as a terminal or a unit's control group does, where the node commands it runs
get it too. Each interrupted run exits 130 or 143 with one line and no traceback, and loses no object; each
rerun says it resumes; the last ends finished with exit 0, ``pithos_migrate`` off on every
node, every object there and the store clean.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from standins.harness import REPO
from test_finalize import archipelago_reads, blocks_content, clean_store, journal_steps, object_file, running  # noqa: F401
from verify.durable.journal import Journal

SEED = 20300
DEADLINE_S = 60  # a stopped finalize waits for the node command it is in; this only catches a hang


def _records(journal) -> int:
    try:
        return journal.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _finalize(c, args: list[str]) -> subprocess.Popen:
    env = {**os.environ, **c.env, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "verify", "finalize", *args], env=env, cwd=c.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait(p: subprocess.Popen, what: str) -> tuple[str, str]:
    try:
        return p.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"{what}: finalize still running {DEADLINE_S}s after SIGINT\n{out}\n{err}")


def test_finalize_interrupted_again_and_again_then_finished(tmp_path, running):
    pytest.importorskip("verify.ops.fixes.migrate")
    pytest.importorskip("verify.ops.fixes.upgrade")
    store, info, c = running(clean_store)
    before = blocks_content(store)
    journal = tmp_path / "state" / "finalize.journal"
    args = [*c.nodes_arg(), "--state-dir", str(tmp_path / "state"), "--yes", "--fix"]
    rng = random.Random(SEED)
    # journal records ("begin", then one a step) to wait for: seeded, up to the restart with
    # pithos_migrate off; and 7 (the scan done) then a first object migrated: inside the fixes
    moments = sorted(rng.sample([n for n in range(2, 12) if n != 7], 3) + [7])
    stopped = []
    for k, n in enumerate(moments):
        p = _finalize(c, args)
        n = max(n, _records(journal) + 1)
        while p.poll() is None and _records(journal) < n:
            time.sleep(0.002)
        if n == 7:
            while p.poll() is None and not any(b'"ev":"done"' in j.read_bytes()
                                               for j in (tmp_path / "state").rglob("migrate-objects.journal")):
                time.sleep(0.001)
        else:
            time.sleep(rng.uniform(0, 0.3))  # between two steps or inside one
        # SIGINT as Ctrl-C sends it, SIGTERM as systemd stops a service: to the process alone, or to its
        # whole group (a terminal, or a unit's control group: the node commands get it too)
        sig = signal.SIGINT if k < 2 else signal.SIGTERM
        if p.poll() is None:
            if k % 2:
                os.killpg(p.pid, sig)
            else:
                p.send_signal(sig)
        out, err = _wait(p, f"run {k} at {n} records")
        where = f"run {k}, {sig.name} after {n} records: exit {p.returncode}\n{out}\n{err}"
        assert p.returncode in (0, 128 + sig), where
        assert "Traceback" not in err and "Traceback" not in out, where
        if k:  # the journal had grown: the run said it resumes
            assert any(line.startswith("resuming") for line in out.splitlines()), where
        if p.returncode == 128 + sig:
            assert len(err.strip().splitlines()) == 1, where
            stopped.append((sig.name, journal_steps(tmp_path)[-1]))
            for fix in (tmp_path / "state" / "fixes").rglob("*.journal"):
                assert Journal(fix).pending() == [], f"{fix.name}: a step begun and not finished\n{where}"
        now = blocks_content(store)
        assert {name: now.get(name) for name in before} == before, f"an object lost or changed\n{where}"
        if p.returncode == 0:
            break
    assert len(stopped) >= 2, stopped  # most runs were stopped, at different steps, by both signals
    assert len({step for _, step in stopped}) >= 2, stopped
    assert {name for name, _ in stopped} == {"SIGINT", "SIGTERM"}, stopped
    if p.returncode != 0:  # the same command again, to the end
        r = c.archverify("finalize", *args)
        assert r.returncode == 0, r.stdout + r.stderr
        assert any(line.startswith("resuming") for line in r.stdout.splitlines()), r.stdout
    assert journal_steps(tmp_path)[-1] == "finished"
    for node in c.nodes:
        assert archipelago_reads(c.conf(node)) == {"blockerb": False, "blockerm": False}
    after = blocks_content(store)
    assert {name: after.get(name) for name in before} == before
    for name in info["at_risk"]:
        assert object_file(store, name).exists()
    scan = c.archverify("scan", "--config", str(c.conf("n1")), "--format", "json")
    assert scan.returncode == 0 and json.loads(scan.stdout)["findings"] == []
