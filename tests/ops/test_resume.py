"""``--state``, ``--resume`` and ``--max-duration``: a stopped scan or check continues where it stopped.

Real runs (``python -m verify``) on the planted check store (tests/planted_check.py), on
filed and copied into two pools of the session's real Ceph. A run is stopped after its
k-th finished part, deterministically: a wrapper makes the process SIGSTOP itself right
after that part's checkpoint is written, the test sends SIGINT or SIGKILL, then SIGCONT
(or lets the time box run out there). The run that continues with ``--resume`` must give
the JSON report, exit code and state of an uninterrupted run, timings aside.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crashpoints import run_crashing
from planted_check import build_store
from verify.durable import atomic
from verify.ops import resume

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
MAPS, BLOCKS = "resume-maps", "resume-blocks"

# Stops the process (SIGSTOP) right after its k-th newly written checkpoint part, or, with
# ARCHVERIFY_TEST_BOX_AFTER, lets the time box run out there: provably between two parts,
# however loaded the machine is.
STOP_AFTER = """
import os, runpy, signal, sys
from verify.core import signals; from verify.ops import resume

k, box, part = int(os.environ["ARCHVERIFY_TEST_STOP_AFTER"]), os.environ.get("ARCHVERIFY_TEST_BOX_AFTER"), resume.Checkpoint.part

def stopping_part(self, name, run, progress=None):
    before = self.done_now
    out = part(self, name, run, progress)
    if self.done_now > before and self.done_now == k:
        if box:
            signals.time_box(0)
        else:
            os.kill(os.getpid(), signal.SIGSTOP)
    return out

resume.Checkpoint.part = stopping_part
sys.argv[0] = "archverify"
runpy.run_module("verify", run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("resume"))


@pytest.fixture(scope="module")
def rados_pools(planted, ceph_cluster):
    ceph_cluster.load_pools(MAPS, BLOCKS, planted.maps, planted.blocks)
    return ceph_cluster


def filed_args(p) -> list[str]:
    return ["--maps-dir", str(p.maps), "--blocks-dir", str(p.blocks)]


def rados_args(cluster, maps=MAPS) -> list[str]:
    return ["--backend", "rados", "-c", str(cluster.conf), "--keyring", str(cluster.keyring), "--pool", maps,
            "--blocks-pool", BLOCKS]


def command(cmd: str, store: list[str], state: Path, *more: str) -> list[str]:
    extra = ["--verify-data"] if cmd == "check" else []
    # -j 2: resume.default_shards(2) is DEFAULT_SHARDS, whatever this machine's CPU count
    return [cmd, *store, *extra, "-j", "2", "--format", "json", "--no-progress", "--state", str(state), *more]


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "verify", *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=300)


def stop_after(args: list[str], k: int, box: bool = False) -> subprocess.Popen:
    """Start the command; return once it has stopped itself after its k-th part (or, ``box``, is running on)."""
    env = {**ENV, "ARCHVERIFY_TEST_STOP_AFTER": str(k), **({"ARCHVERIFY_TEST_BOX_AFTER": "1"} if box else {})}
    p = subprocess.Popen([sys.executable, "-c", STOP_AFTER, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    if box:
        return p
    _, status = os.waitpid(p.pid, os.WUNTRACED)
    if not os.WIFSTOPPED(status):
        p.returncode = os.waitstatus_to_exitcode(status)
        raise AssertionError(f"{args[0]} ended before its part {k} (exit {p.returncode}): {p.stderr.read()}")
    return p


# what a RADOS check's reference stage read again itself: none of the headers its own scan stage
# read, all of those of the scan shards a resumed run took from its checkpoint
READ_AGAIN = ("refs.header_reads", "refs.map_bytes")


def comparable(stdout: str) -> dict:
    """The JSON report without what depends on the clock (two uninterrupted runs differ there too):
    durations, rates, and the microseconds a RADOS listing waited (``*.list_wait_us``); nor what
    the reference stage read again (READ_AGAIN), which is work done, not what the store holds."""

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in ("elapsed_s", "files_per_s")
                    and not k.endswith("_us") and k not in READ_AGAIN}
        return [strip(v) for v in x] if isinstance(x, list) else x

    return strip(json.loads(stdout))


def differences(a, b, where: str = "") -> list[str]:
    """Where two reports differ, as paths: what an assertion message can show whole."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in differences(a.get(k), b.get(k), f"{where}.{k}")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def parts(state: Path, cmd: str) -> list[str]:
    d = state / "checkpoint" / cmd
    return sorted(p.name for p in d.glob("*.json.gz")) if d.is_dir() else []


def runs_findings(state: Path) -> list:
    out = []
    for f in sorted((state / "runs").glob("*.json.gz")):
        with gzip.open(f, "rt") as fh:
            doc = json.load(fh)
        out.append((doc["exit_code"], doc["findings"]))
    return out


def reference(cmd: str, store: list[str], tmp_path: Path) -> tuple[subprocess.CompletedProcess, int]:
    """An uninterrupted run with a state dir of its own, and how many parts it checkpointed."""
    state = tmp_path / f"ref-{cmd}"
    r = run(command(cmd, store, state))
    assert r.returncode == 1, r.stderr
    assert r.stderr == ""
    assert not (state / "checkpoint" / cmd).exists()  # a complete run leaves nothing to resume
    return r, resume.DEFAULT_SHARDS * 2 + (2 if cmd == "check" else 0)


def assert_resumes_to(ref: subprocess.CompletedProcess, args: list[str], state: Path, cmd: str,
                      kept: int) -> None:
    r = run([*args, "--resume"])
    assert r.returncode == ref.returncode, r.stderr
    assert f"resuming the run begun " in r.stderr and f": {resume.parts_done(kept)}" in r.stderr, r.stderr
    assert differences(comparable(r.stdout), comparable(ref.stdout)) == []
    assert parts(state, cmd) == [] and not (state / "checkpoint" / cmd).exists()
    if cmd == "check":  # the stopped runs left no run in the state, the finished one its own
        assert [code for code, _ in runs_findings(state)] == [1]


def _stopped_runs(cmd: str, store: list[str], tmp_path: Path, sig: int, k_values) -> None:
    ref, total = reference(cmd, store, tmp_path)
    for k in k_values(total):
        state = tmp_path / f"{cmd}-{sig}-{k}"
        args = command(cmd, store, state)
        p = stop_after(args, k)
        if sig == signal.SIGKILL:
            p.kill()
        else:
            p.send_signal(sig)
            os.kill(p.pid, signal.SIGCONT)
        _, err = p.communicate(timeout=120)
        if sig == signal.SIGKILL:
            assert p.returncode == -9
            assert len(parts(state, cmd)) == k
        else:
            assert p.returncode == 130, err
            assert err.strip().splitlines() == ["archverify: interrupted"], err
            assert k <= len(parts(state, cmd)) < total
        assert not (state / "runs").exists() or runs_findings(state) == []  # nothing of a finished run
        assert_resumes_to(ref, args, state, cmd, len(parts(state, cmd)))


# a scan shard early, one in the blocks store, and (check) after the references stage
K_VALUES = lambda total: (1, resume.DEFAULT_SHARDS + 3, total - 1)  # noqa: E731


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("cmd", ["scan", "check"])
def test_filed_run_stopped_by_a_signal_resumes_to_the_uninterrupted_report(planted, tmp_path, cmd, sig):
    _stopped_runs(cmd, filed_args(planted), tmp_path, sig, K_VALUES)


@pytest.mark.rados
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_rados_check_stopped_by_a_signal_resumes_to_the_uninterrupted_report(rados_pools, tmp_path, sig):
    _stopped_runs("check", rados_args(rados_pools), tmp_path, sig, lambda total: (2, total - 1))


@pytest.mark.rados
def test_rados_scan_killed_resumes_to_the_uninterrupted_report(rados_pools, tmp_path):
    _stopped_runs("scan", rados_args(rados_pools), tmp_path, signal.SIGKILL, lambda total: (5,))


def _time_boxed(cmd: str, store: list[str], tmp_path: Path) -> None:
    """The time box runs out after part k: exit 75, the one line, then --resume finishes the run."""
    ref, total = reference(cmd, store, tmp_path)
    for k in (3, total - 1):
        state = tmp_path / f"box-{cmd}-{k}"
        prom = tmp_path / f"box-{cmd}-{k}.prom"
        args = command(cmd, store, state, "--max-duration", "6h",
                       *(["--prometheus-textfile", str(prom)] if cmd == "check" else []))
        p = stop_after(args, k, box=True)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 75, err
        assert out == ""  # no report
        assert err.strip().splitlines() == [
            f"archverify: stopped at the time box (--max-duration 6h): {resume.parts_done(k)} ({k} in this run) are kept in "
            f"{state / 'checkpoint' / cmd}; run the same command with --resume to continue"], err
        assert len(parts(state, cmd)) == k
        if cmd == "check":  # the night's metrics say it stopped at the box, not that it failed or finished
            assert re.search(r"^archverify_check_exit_code\{[^}]*\} 75\.0$", prom.read_text(), re.M), prom.read_text()
        assert_resumes_to(ref, args, state, cmd, k)
        if cmd == "check":
            assert re.search(r"^archverify_check_exit_code\{[^}]*\} 1\.0$", prom.read_text(), re.M), prom.read_text()


@pytest.mark.parametrize("cmd", ["scan", "check"])
def test_filed_time_box_stops_and_resume_finishes(planted, tmp_path, cmd):
    _time_boxed(cmd, filed_args(planted), tmp_path)


@pytest.mark.rados
def test_rados_time_box_stops_and_resume_finishes(rados_pools, tmp_path):
    _time_boxed("check", rados_args(rados_pools), tmp_path)


def test_a_tiny_time_box_night_after_night_ends_in_the_uninterrupted_report(planted, tmp_path):
    """A real clock: each run gets 0.2 s; run after run continues until one completes."""
    ref, total = reference("check", filed_args(planted), tmp_path)
    state = tmp_path / "nightly"
    args = command("check", filed_args(planted), state, "--max-duration", "0.2s", "--resume")
    codes = []
    for _ in range(total + 1):
        r = run(args)
        codes.append(r.returncode)
        if r.returncode != 75:
            break
        assert r.stdout == "" and "run the same command with --resume" in r.stderr
    assert codes[-1] == 1, codes
    assert differences(comparable(r.stdout), comparable(ref.stdout)) == []


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("big")
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_tree.py"), str(out), "--files", "20000",
                    "--jobs", "2", "--block-bytes", "256"], check=True, capture_output=True, timeout=600)
    return out


def test_the_time_box_stops_a_native_pass_within_its_shard(big, tmp_path):
    """One shard per store, the box shorter than its walk: the run stops inside it, keeping nothing."""
    state = tmp_path / "state"
    args = ["check", "--maps-dir", str(big / "maps"), "--blocks-dir", str(big / "blocks"), "-j", "1", "--shards",
            "1", "--verify-data", "--no-progress", "--state", str(state)]
    t0 = time.monotonic()
    full = run(args)
    full_s = time.monotonic() - t0
    assert full.returncode == 1, full.stderr
    t0 = time.monotonic()
    r = run([*args, "--max-duration", "0.2s"])
    boxed_s = time.monotonic() - t0
    assert r.returncode == 75, r.stderr
    # the box ran out inside the blocks store's one shard (the maps store's may have ended before)
    assert "scan.blocks.0-256.json.gz" not in parts(state, "check"), parts(state, "check")
    assert parts(state, "check") in ([], ["scan.maps.0-256.json.gz"])
    assert boxed_s < full_s, (boxed_s, full_s)


def test_resume_against_another_store_or_options_refuses_with_one_line(planted, tmp_path):
    state = tmp_path / "state"
    args = command("check", filed_args(planted), state)
    p = stop_after(args, 4)
    p.kill()
    p.communicate()
    other = tmp_path / "other"
    shutil.copytree(planted.blocks, other)
    for changed, what in ((["--blocks-dir", str(other)], "stores.blocks.dir"), (["--shards", "8"], "options.shards")):
        r = run([*command("check", [*filed_args(planted), *changed], state), "--resume"])
        assert r.returncode == 2, r.stderr
        line = r.stderr.strip()
        assert len(line.splitlines()) == 1, line
        assert line.startswith(f"archverify: error: {state / 'checkpoint' / 'check'}: the checkpoint is of another "
                               "store or options"), line
        assert what in line and "run without --resume to start afresh" in line, line
        assert r.stdout == ""
    no_data = [a for a in args if a != "--verify-data"]
    r = run([*no_data, "--resume"])
    assert r.returncode == 2 and "options.verify_data True -> False" in r.stderr, r.stderr
    assert len(parts(state, "check")) == 4  # a refusal leaves the checkpoint as it was


def test_a_stale_checkpoint_or_a_run_without_resume_starts_afresh_and_says_so(planted, tmp_path):
    ref, total = reference("check", filed_args(planted), tmp_path)
    for case in ("stale", "no-resume"):
        state = tmp_path / case
        args = command("check", filed_args(planted), state)
        p = stop_after(args, 5)
        p.kill()
        p.communicate()
        meta = state / "checkpoint" / "check" / "meta.json"
        if case == "stale":
            doc = json.loads(meta.read_text())
            doc["began"] -= resume.MAX_AGE_S + 60
            meta.write_text(json.dumps(doc))
            r = run([*args, "--resume"])
            want = "days; starting afresh"
        else:
            r = run(args)
            want = "(5 parts done); starting afresh (give --resume to continue it)"
        assert r.returncode == 1, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("archverify: warning: ") and want in lines[0], lines
        assert "resuming" not in r.stderr
        report = comparable(r.stdout)
        assert report.pop("warnings") == [lines[0].removeprefix("archverify: warning: ")]
        expected = comparable(ref.stdout)
        expected.pop("warnings")
        assert report == expected


def test_resume_and_max_duration_need_a_state_dir(planted):
    for flag in (["--resume"], ["--max-duration", "1h"]):
        r = run(["scan", *filed_args(planted), *flag])
        assert r.returncode == 2
        assert r.stderr.strip() == f"archverify: error: {flag[0]} needs --state DIR (where the finished shards are kept)"
    r = run(["scan", *filed_args(planted), "--max-duration", "soon"])
    assert r.returncode == 2 and "give a duration such as 6h, 90m, 3600s" in r.stderr, r.stderr


@pytest.mark.parametrize("text, seconds", [("6h", 21600), ("90m", 5400), ("3600s", 3600), ("1h30m", 5400),
                                           ("45", 45), ("0.5s", 0.5), ("2d", 172800)])
def test_durations(text, seconds):
    assert resume.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "6x", "h", "-1h", "1h 30m"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        resume.parse_duration(text)


def test_a_crash_while_writing_a_checkpoint_leaves_a_usable_one(planted, tmp_path):
    """The run dies at its k-th write-side call (the part's temp, its fsync, its rename, the dir's fsync);
    the next --resume ends in the uninterrupted report and no temp is left behind."""
    from verify.cli.main import main

    ref, total = reference("check", filed_args(planted), tmp_path)
    calls = [(os, n) for n in ("fchmod", "fsync", "replace")]
    for k in (1, 2, 3, 4, 5, 7, 9, 10, 11, 14, 25, 60):
        for after in (False, True):
            state = tmp_path / f"crash-{k}-{after}"
            args = command("check", filed_args(planted), state)

            def fn():
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the child's own, gone with it
                try:
                    main(args)
                except SystemExit as e:
                    assert e.code == 1, e.code

            assert run_crashing(fn, k, after, calls), (k, after)
            r = run([*args, "--resume"])
            assert r.returncode == 1, (k, after, r.stderr)
            assert differences(comparable(r.stdout), comparable(ref.stdout)) == [], (k, after)
            left = [f for _, _, fs in os.walk(state) for f in fs if f.startswith(atomic.TMP_PREFIX)]
            assert left == [], (k, after, left)


@pytest.mark.rados
def test_rados_resume_against_another_pool_refuses(rados_pools, tmp_path):
    state = tmp_path / "state"
    p = stop_after(command("check", rados_args(rados_pools), state), 3)
    p.kill()
    p.communicate()
    rados_pools.ensure_pools("resume-other")
    r = run([*command("check", rados_args(rados_pools, maps="resume-other"), state), "--resume"])
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"archverify: error: {state / 'checkpoint' / 'check'}: the checkpoint is of another store or options "
        f"(stores.maps.pool '{MAPS}' -> 'resume-other'); not resuming: run without --resume to start afresh"]
    assert len(parts(state, "check")) == 3
