"""``--memory`` and ``--tmpdir`` as real processes: a spilled scan and check report exactly what a run
in RAM reports, and a spill dir that is full or cannot be made ends the run with one line, exit 2,
no report and no spill file left."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from one_line import one_line_error
from planted_check import build_store
from verify.core import layout

REPO = Path(__file__).resolve().parents[2]
ORPHANS = 3000  # ~1.4 MB of findings: past a 1M budget's share (256 KiB) several times


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """tests/ops/test_check.py's planted store, plus ORPHANS Pithos blocks no map names (the check's
    findings) and as many files at the wrong depth (stray entries: the scan's)."""
    p = build_store(tmp_path_factory.mktemp("memory") / "s")
    for i in range(ORPHANS):
        name = hashlib.sha256(b"orphan %d" % i).hexdigest().encode()
        path = Path(p.blocks) / os.fsdecode(layout.v04_path(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        stray = Path(p.blocks) / "ab" / "cd" / f"stray-{i:05d}"
        stray.parent.mkdir(parents=True, exist_ok=True)
        stray.write_bytes(b"")
    return p


def archverify(*args, limit_fsize: int | None = None) -> subprocess.CompletedProcess:
    def pre():
        if limit_fsize is not None:  # EFBIG past the limit (Python ignores SIGXFSZ)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_fsize, limit_fsize))

    return subprocess.run([sys.executable, "-m", "verify", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=pre, timeout=600)


def stores(p):
    return ["--maps-dir", p.maps, "--blocks-dir", p.blocks, "--no-progress"]


def _stable(doc: dict) -> dict:
    for k in ("elapsed_s", "files_per_s"):
        doc["summary"].pop(k)
    return doc


@pytest.mark.parametrize("command", ["check", "scan"])
@pytest.mark.parametrize("fmt", ["json", "jsonl", "human"])
def test_a_spilled_run_reports_what_a_run_in_ram_reports(store, tmp_path, command, fmt):
    spill = tmp_path / "spill"
    spill.mkdir()
    ram = archverify(command, *stores(store), "--format", fmt, "-v")
    small = archverify(command, *stores(store), "--format", fmt, "-v", "--memory", "1M", "--tmpdir", spill)
    assert ram.returncode == small.returncode == 1, (ram.stderr, small.stderr)
    if fmt == "json":
        a, b = json.loads(ram.stdout), json.loads(small.stdout)
        assert _stable(a) == _stable(b)
        if command == "check":
            assert a["summary"]["findings"]["object_orphan"] >= ORPHANS
    elif fmt == "jsonl":
        a, b = ram.stdout.splitlines(), small.stdout.splitlines()
        assert a[:-1] == b[:-1] and len(a) > ORPHANS
        assert _stable(json.loads(a[-1])) == _stable(json.loads(b[-1]))
    else:
        drop_time = [ln for ln in ram.stdout.splitlines() if not ln.startswith("scanned ")]
        assert drop_time == [ln for ln in small.stdout.splitlines() if not ln.startswith("scanned ")]
    assert list(spill.iterdir()) == []


def test_max_shown_bounds_the_human_listing_of_a_spilled_run(store, tmp_path):
    r = archverify("check", *stores(store), "--memory", "1M", "--tmpdir", tmp_path, "--max-shown", "2")
    assert r.returncode == 1
    listed = [ln for ln in r.stdout.splitlines() if ln.startswith("    ")]
    kinds = [ln for ln in r.stdout.splitlines() if ln.startswith("  ") and not ln.startswith("    ")]
    assert 0 < len(listed) <= 2 * len(kinds)


def _refused(r, out: Path, spill: Path, reason: str) -> None:
    line = one_line_error(r.returncode, r.stdout, r.stderr)
    assert "cannot write spill files" in line and reason in line, line
    assert not out.exists()
    assert not [p for p in spill.rglob("*")], list(spill.rglob("*"))


def test_a_full_tmpdir_ends_with_one_line_and_leaves_nothing(store, tmp_path):
    """A 64 KiB tmpfs (real ENOSPC) where one can be mounted; else a file-size limit (EFBIG) on the process."""
    spill, out = tmp_path / "small", tmp_path / "report.json"
    spill.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(spill)], capture_output=True).returncode == 0
    try:
        if mounted:
            r = archverify("check", *stores(store), "--memory", "1M", "--tmpdir", spill, "--format", "json", "-o", out)
            _refused(r, out, spill, "No space left on device")
        # the limit applies to the report too, so the report goes to stdout (a pipe)
        r = archverify("check", *stores(store), "--memory", "1M", "--tmpdir", spill, "--format", "json",
                       limit_fsize=64 << 10)
        _refused(r, out, spill, "File too large")
    finally:
        if mounted:
            subprocess.run(["umount", str(spill)], check=True)


def test_a_tmpdir_that_cannot_hold_a_dir_ends_with_one_line(store, tmp_path):
    not_dir = tmp_path / "a-file"
    not_dir.write_text("")
    out = tmp_path / "report.json"
    r = archverify("check", *stores(store), "--memory", "1M", "--tmpdir", not_dir / "sub", "-o", out)
    line = one_line_error(r.returncode, r.stdout, r.stderr)
    assert "cannot write spill files" in line and str(not_dir) in line
    assert not out.exists()


def test_a_memory_size_that_is_no_size_is_refused(store):
    r = archverify("check", *stores(store), "--memory", "lots")
    assert r.returncode == 2 and "--memory" in r.stderr and "Traceback" not in r.stderr


def test_a_reference_index_past_its_share_takes_the_sharded_join_with_the_same_findings(tmp_path):
    """30,000 objects want about 600 KB of reference index, past half of a 1M budget: the check
    joins shard by shard through the spill dir (``refs.shards`` says how many) and reports exactly
    what the check holding the index whole reports."""
    p = build_store(tmp_path / "s")
    for i in range(30000):
        name = hashlib.sha256(b"unnamed %d" % i).hexdigest().encode()
        path = Path(p.blocks) / os.fsdecode(layout.v04_path(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    spill = tmp_path / "spill"
    spill.mkdir()
    whole = archverify("check", *stores(p), "--format", "json", "--memory", "1G")
    bounded = archverify("check", *stores(p), "--format", "json", "--memory", "1M", "--tmpdir", spill)
    assert whole.returncode == bounded.returncode == 1, (whole.stderr, bounded.stderr)
    a, b = json.loads(whole.stdout), json.loads(bounded.stdout)
    assert "refs.shards" not in a["summary"]["counters"]
    assert b["summary"]["counters"]["refs.shards"] >= 2
    assert a["findings"] == b["findings"] and a["summary"]["findings"] == b["summary"]["findings"]
    assert a["summary"]["findings"]["object_orphan"] >= 30000
    assert list(spill.iterdir()) == []
