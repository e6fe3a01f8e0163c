"""Load caps on a filed store, the estimate and ETA of a capped run, and the sample slice kept by runs.

A capped run is a real ``archverify`` process on real files: it must find exactly
what an uncapped run finds and take at least ``objects / cap`` seconds (only a lower
bound on the elapsed time is asserted: that is what a limiter guarantees). The
``--verify-data-sample`` slice is keyed on the sampled runs ``--state`` keeps, so N
runs in a row read every block once, whatever the dates between them.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from planted_check import build_store
from one_line import one_line_error
from terminal import run_at_terminal
from verify.native import limits as L

REPO = Path(__file__).resolve().parents[2]


def run(*args, timeout=120):
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "verify", *map(str, args)], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=timeout, cwd=REPO)
    return p, time.monotonic() - t0


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("limits"))


def stores(p):
    return ["--maps-dir", p.maps, "--blocks-dir", p.blocks]


def found(doc) -> set:
    return {(f["kind"], f["store"], f["name"]) for f in doc["findings"]}


# ---------------------------------------------------------------- the parsing and the words


@pytest.mark.parametrize("text,value", [("2000", 2000), ("2k", 2000), ("0.5", 0.5), ("1.5M", 1.5e6),
                                        ("300/s", 300)])
def test_objects_rate(text, value):
    assert L.parse_count(text, "--objects-per-second") == value


@pytest.mark.parametrize("text,value", [("50M", 50 << 20), ("50MiB", 50 << 20), ("50M/s", 50 << 20),
                                        ("1.5G", 1.5 * (1 << 30)), ("2000000", 2_000_000), ("64k", 65536)])
def test_byte_rate(text, value):
    assert L.parse_size(text, "--bytes-per-second") == value


def test_the_start_line_and_the_estimate():
    caps = L.Limits(2000, 50 << 20)
    assert caps.describe() == "limits: 2000 objects/s, 50 MiB/s"
    assert L.estimate_line(200_000_000, caps) == "estimate: about 200,000,000 objects; at 2000 objects/s about 27 h 47 min"
    assert L.estimate_line(200_000_000, L.Limits(bytes=1 << 20)) == "estimate: about 200,000,000 objects"
    assert L.estimate_line(None, caps) is None  # a store that cannot count its objects


@pytest.mark.parametrize("command", ["scan", "check", "pithos-check"])
@pytest.mark.parametrize("flag,value", [("--objects-per-second", "0"), ("--objects-per-second", "fast"),
                                        ("--objects-per-second", "-5"), ("--bytes-per-second", "50X"),
                                        ("--bytes-per-second", "0M")])
def test_a_bad_cap_is_one_line_and_exit_2(planted, command, flag, value):
    db = ["--pithos-db", "postgresql://nobody@127.0.0.1:1/none"] if command == "pithos-check" else []
    p, _ = run(command, *db, *stores(planted), flag, value)
    line = one_line_error(p.returncode, p.stdout, p.stderr)
    assert flag in line and repr(value) in line


def test_caps_are_refused_with_dask(planted):
    p, _ = run("scan", *stores(planted), "--objects-per-second", "100", "--dask", "tcp://127.0.0.1:1")
    assert "not with --dask" in one_line_error(p.returncode, p.stdout, p.stderr)


# ---------------------------------------------------------------- the caps hold, the findings stay


def test_capped_scan_finds_the_same_and_takes_objects_over_cap(planted):
    free, _ = run("scan", *stores(planted), "--format", "json", "--no-progress")
    cap = 60
    capped, elapsed = run("scan", *stores(planted), "--format", "json", "--no-progress",
                          "--objects-per-second", cap)
    assert capped.returncode == free.returncode == 1, capped.stderr
    a, b = json.loads(free.stdout), json.loads(capped.stdout)
    assert found(a) == found(b)
    objects = b["summary"]["files_scanned"]
    assert objects > 50
    assert elapsed >= objects / cap
    assert "archverify: limits: 60 objects/s" in capped.stderr


def test_capped_check_reads_at_most_the_byte_cap(planted):
    free, _ = run("check", *stores(planted), "--verify-data", "--format", "json", "--no-progress")
    cap = 512 << 10
    capped, elapsed = run("check", *stores(planted), "--verify-data", "--format", "json", "--no-progress",
                          "--bytes-per-second", "512k")
    assert capped.returncode == free.returncode == 1, capped.stderr
    a, b = json.loads(free.stdout), json.loads(capped.stdout)
    assert found(a) == found(b)
    counters = b["summary"]["counters"]
    read = counters["data.bytes"] + counters["refs.map_bytes"]
    assert read > cap
    assert elapsed >= read / cap
    assert "archverify: limits: 512 KiB/s" in capped.stderr


def test_one_bucket_for_all_threads():
    """Four threads taking from the C bucket together get the cap between them, not four times it."""
    L.apply(L.Limits(objects=400))
    try:
        t0 = time.monotonic()
        threads = [threading.Thread(target=lambda: [L.take(1) for _ in range(50)]) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert time.monotonic() - t0 >= 200 / 400
    finally:
        L.apply(L.Limits())
    t0 = time.monotonic()
    for _ in range(1000):
        L.take(1)
    assert time.monotonic() - t0 < 0.5  # no cap: nothing waits


# ---------------------------------------------------------------- the estimate and the ETA


def test_a_capped_check_says_its_estimate(planted, tmp_path):
    state = tmp_path / "state"
    first, _ = run("check", *stores(planted), "--state", state, "--no-progress", "--objects-per-second", "2000")
    assert first.returncode == 1, first.stderr
    # no run counted the store yet: the estimate is its own count of its first top-level dirs (all here)
    first_line = next(x for x in first.stderr.splitlines() if x.startswith("archverify: limits:"))
    second, _ = run("check", *stores(planted), "--state", state, "--no-progress", "--objects-per-second", "2000")
    line = next(x for x in second.stderr.splitlines() if x.startswith("archverify: limits:"))
    scanned = json.loads(gzip.decompress(sorted((state / "runs").iterdir())[-1].read_bytes()))
    count = scanned["progress"]["scan"]["count"]
    assert line == (f"archverify: limits: 2000 objects/s; estimate: about {count:,} objects, gone over 2 times; "
                    f"at 2000 objects/s about {L.human_duration(2 * count / 2000)}")
    assert first_line == line
    quiet, _ = run("check", *stores(planted), "--state", state, "-q", "--objects-per-second", "2000")
    assert "limits" not in quiet.stderr  # -q: one line, the summary
    journal, _ = run("check", *stores(planted), "--state", state, "-q", "--progress", "--objects-per-second", "2000")
    assert journal.stderr.startswith("archverify: limits: 2000 objects/s; estimate:")  # as the unit runs it


def test_a_terminal_shows_the_eta(planted, tmp_path):
    state = tmp_path / "state"
    base = [sys.executable, "-m", "verify", "check", *map(str, stores(planted)), "--state", str(state),
            "--objects-per-second", "120", "--format", "json"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    assert subprocess.run(base + ["--no-progress"], capture_output=True, env=env, timeout=120).returncode == 1
    code, _out, err = run_at_terminal(base, env)
    assert code == 1
    text = err.decode(errors="replace")
    # done/total [elapsed<remaining, as tqdm writes them with unit_scale: "12.0/68.0 [00:00<00:00", "1.2k/40.0k"
    assert re.search(r"\d[\d.]*[kMG]?/\d[\d.]*[kMG]? \[\d\d:\d\d<\d\d:\d\d", text), text
    assert "Traceback" not in text


# ---------------------------------------------------------------- the sample slice follows the runs


def sampled_run(planted, state, fraction="0.25"):
    p, _ = run("check", *stores(planted), "--verify-data-sample", fraction, "--state", state, "--format", "json",
               "--no-progress")
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    counters = doc["summary"]["counters"]
    assert counters["check.stage.data"] == 1
    return {f["name"] for f in doc["findings"] if f["kind"] == "object_content_mismatch"}, counters["data.objects"]


def test_n_runs_read_every_block_once(planted, tmp_path):
    total = json.loads(run("check", *stores(planted), "--verify-data", "--format", "json", "--no-progress")[0]
                       .stdout)["summary"]["counters"]["data.objects"]
    state = tmp_path / "state"
    seen, read = [], 0
    for _ in range(4):
        mismatched, n = sampled_run(planted, state)
        seen.append(mismatched)
        read += n
    assert read == total  # every sampled-eligible block read once in the cycle
    assert set().union(*seen) == planted.flipped
    assert sum(len(s) for s in seen) == len(planted.flipped)
    assert sampled_run(planted, state)[0] == seen[0]  # the next cycle starts over


def test_a_missed_night_changes_nothing(planted, tmp_path):
    """Runs on days far apart (their state files moved back in time), and a night whose check did not
    read a sample, still take the slices in order."""
    state = tmp_path / "state"
    first, _ = sampled_run(planted, state)
    runs = state / "runs"
    for f in runs.iterdir():  # that run happened ten days ago
        doc = json.loads(gzip.decompress(f.read_bytes()))
        doc["time"] -= 10 * 86400
        f.with_name("20000101T000000.000000000Z-1.json.gz").write_bytes(gzip.compress(json.dumps(doc).encode()))
        f.unlink()
    plain, _ = run("check", *stores(planted), "--state", state, "--no-progress", "-q")  # a night without the sample
    assert plain.returncode == 1, plain.stderr
    second, _ = sampled_run(planted, state)
    straight = tmp_path / "straight"
    expect = [sampled_run(planted, straight)[0] for _ in range(2)]
    assert [first, second] == expect
    assert first != second


def test_ctrl_c_ends_a_capped_run_at_once(planted):
    """Threads waiting for the bucket look at the stop flag: a run capped to hours still ends on SIGINT."""
    import signal

    p = subprocess.Popen([sys.executable, "-m", "verify", "scan", *map(str, stores(planted)), "--no-progress",
                          "--objects-per-second", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=REPO)
    time.sleep(3)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert time.monotonic() - t0 < 5
    assert "Traceback" not in err and out == ""
