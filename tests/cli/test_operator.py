"""archverify as an operator runs it: at a terminal (progress bars on), piped into
``head``, and when something inside it breaks.

Every command runs as a real process (``python -m verify``): what matters here is
what a shell sees: the exit status, no traceback, and the report on the screen.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pg_server import analysed_sample
from terminal import drain, open_terminal
from verify.core.findings import KINDS
from verify.ops.sample import write_sample

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(REPO))
ENV.pop("ARCHVERIFY_DEBUG", None)
KIND_ROW = re.compile(r"^(?:info|warn|ERROR|UNREAD)\s+(\w+)\s+[\d,]+\s", re.M)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def at_terminal(*args, env=None, timeout=300) -> tuple[int, str]:
    """Runs ``archverify ARGS`` with stdin, stdout and stderr on one pty of 100x30; returns (code, screen text)."""
    return on_pty([sys.executable, "-m", "verify", *map(str, args)], env, timeout)


def on_pty(argv: list[str], env=None, timeout=300) -> tuple[int, str]:
    """Runs ``argv`` with stdin, stdout and stderr on one pty of 100x30; returns (code, screen text)."""
    master, slave = open_terminal(30, 100)
    chunks: list[bytes] = []

    reader = threading.Thread(target=drain, args=(master, chunks), daemon=True)
    reader.start()
    try:
        p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env or ENV, cwd=REPO,
                             start_new_session=True)
        os.close(slave)
        slave = None
        code = p.wait(timeout=timeout)
        reader.join(timeout=60)
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    return code, text


def screen_kinds(text: str) -> set[str]:
    """The kinds of the human report's table, as a person reads them off the screen."""
    return {m.group(1) for m in KIND_ROW.finditer(ANSI.sub("", text)) if m.group(1) in KINDS}


def run(*args, stdout=subprocess.PIPE, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "verify", *map(str, args)], stdout=stdout, stderr=subprocess.PIPE,
                          env=env or ENV, cwd=REPO, timeout=timeout)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("operator") / "store"
    assert run("sample", d).returncode == 0
    s = write_sample(tmp_path_factory.mktemp("again"))  # the same seed plants the same findings
    planted_kinds = {k for k, items in s.planted.items() if items}
    return d, d / "archipelago.conf", planted_kinds


@pytest.fixture(scope="module")
def clean_store(tmp_path_factory):
    d = tmp_path_factory.mktemp("clean")
    (d / "maps").mkdir()
    (d / "blocks").mkdir()
    return d


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text and "Error:" not in text.replace("ERROR", ""), text


# ---- at a terminal, with the progress bar on ------------------------------------------------


@pytest.mark.parametrize("extra", [[], ["--verify-data"]], ids=["check", "check--verify-data"])
def test_check_at_a_terminal(store, extra):
    d, conf, planted = store
    code, text = at_terminal("check", "--config", conf, *extra)
    assert_no_traceback(text)
    assert code == 1, text
    shown = screen_kinds(text)
    assert planted <= shown, (planted - shown, text)
    assert "check stages:" in text


def test_check_bars_know_their_totals_from_the_previous_run(store, tmp_path):
    d, conf, planted = store
    for _ in range(2):
        code, text = at_terminal("check", "--config", conf, "--state", tmp_path / "st", "--verify-data")
        assert_no_traceback(text)
        assert code == 1, text
        assert planted <= screen_kinds(text)
    # the second run's bars show done/total, the total being what the first run counted
    assert re.search(r"\d/\d+(\.\d+)?k? \[", ANSI.sub("", text)), text


def test_forced_progress_at_a_terminal_is_a_bar_not_lines(store, tmp_path):
    d, conf, _ = store
    env = dict(ENV, ARCHVERIFY_PROGRESS_INTERVAL="0")
    code, text = at_terminal("check", "--config", conf, "--state", tmp_path / "st", "--progress", env=env)
    assert_no_traceback(text)
    assert code == 1 and "archverify: progress:" not in text
    # a bar per stage, redrawn in place with a carriage return, then cleared for the summary
    plain = ANSI.sub("", text)
    assert re.search(r"\rscan \(filed\):[^\r]*\d/~\d+ \[", plain), text  # a total: the store's estimate
    assert re.search(r"\rcheck: references \(filed\): [\d.]+k?item \[", plain), text
    assert plain.index("\rscan (filed):") < plain.index("scanned ") < plain.index("check stages:"), text


def test_scan_at_a_terminal(store):
    d, conf, planted = store
    code, text = at_terminal("scan", "--config", conf)
    assert_no_traceback(text)
    assert code == 1, text
    # the scan decides every planted kind but the reference ones
    assert planted - {"object_missing", "object_orphan", "object_content_mismatch"} <= screen_kinds(text)


_ESTIMATED_BAR = """
import sys, time
from verify.core.progress import Measure, Progress
bars = Progress(True, {"scan": Measure(250000, 0.0, estimated=True)})
with bars.stage("scan", "scan (rados)") as st:
    for _ in range(5):
        st.update(1000)
        time.sleep(0.12)
"""


def test_an_estimated_total_is_shown_as_one_at_a_terminal():
    code, text = on_pty([sys.executable, "-c", _ESTIMATED_BAR])
    assert code == 0, text
    screen = ANSI.sub("", text)
    assert re.search(r"scan \(rados\): +\d+%.*\d(\.\d+)?k/~250k \[", screen), screen


def test_clean_store_at_a_terminal(clean_store):
    for cmd in ("scan", "check"):
        code, text = at_terminal(cmd, "--maps-dir", clean_store / "maps", "--blocks-dir", clean_store / "blocks")
        assert_no_traceback(text)
        assert code == 0, text
        assert screen_kinds(text) == set()


def test_quiet_check_at_a_terminal(store):
    d, conf, _ = store
    code, text = at_terminal("check", "--config", conf, "--quiet")
    assert_no_traceback(text)
    assert code == 1 and "archverify check:" in text


@pytest.mark.parametrize("args", [
    ["config", "--config", "{conf}"],
    ["pithos-migrate", "status", "--config", "{conf}"],
])
def test_config_commands_at_a_terminal(store, args):
    d, conf, _ = store
    code, text = at_terminal(*[a.format(conf=conf) for a in args])
    assert_no_traceback(text)
    assert code == 0, text
    assert "blockerm" in text


def test_sample_at_a_terminal(tmp_path):
    code, text = at_terminal("sample", tmp_path / "s")
    assert_no_traceback(text)
    assert code == 0 and (tmp_path / "s" / "archipelago.conf").is_file()


COMMANDS = ["scan", "check", "pithos-check", "config", "pithos-migrate", "pithos-migrate status", "restart",
            "finalize", "migrate-objects", "upgrade-maps", "sample"]


@pytest.mark.parametrize("cmd", [""] + COMMANDS)
def test_help_at_a_terminal(cmd):
    code, text = at_terminal(*cmd.split(), "--help")
    assert_no_traceback(text)
    assert code == 0 and "Usage:" in text


@pytest.mark.postgres
def test_pithos_check_at_a_terminal(pg_admin, tmp_path_factory):
    import psycopg

    from verify.ops.pithos.sample import create_schema, load_rows, write_pithos_sample

    sample = write_pithos_sample(tmp_path_factory.mktemp("pithos") / "maps")
    url = pg_admin("pithos_operator")
    with psycopg.connect(url) as conn:
        create_schema(conn)
        load_rows(conn, sample.rows, nodes=len(sample.rows))
    code, text = at_terminal("pithos-check", "--db", url, "--maps-dir", sample.maps_dir, "--max-shown", "1000")
    assert_no_traceback(text)
    assert code == 1, text
    assert {k for k, _ in sample.planted} <= screen_kinds(text)
    for kind, name in sample.planted:
        assert name in text, name
    # piped into head: silent, and the exit code of the findings
    p = subprocess.run(f"{sys.executable} -m verify pithos-check --db '{url}' --maps-dir '{sample.maps_dir}' "
                       "--format jsonl | head -1", shell=True, env=ENV, capture_output=True, text=True, timeout=300,
                       executable="/bin/bash")
    assert p.stderr == "" and json.loads(p.stdout)["kind"] in KINDS


@pytest.mark.postgres
def test_pithos_check_bar_totals_with_the_databases_estimate_and_an_eta(pg_admin, tmp_path_factory):
    """The bar's total is PostgreSQL's row estimate ("~"), and once rows are counted it shows the
    ETA of the rest at their rate (tqdm's)."""
    sample, url, estimate = analysed_sample(pg_admin, "pithos_operator_bar", tmp_path_factory.mktemp("pithos-bar"))
    env = dict(ENV, ARCHVERIFY_PROGRESS_INTERVAL="0")
    code, text = at_terminal("pithos-check", "--db", url, "--maps-dir", sample.maps_dir, "--objects-per-second", "20",
                             env=env)
    assert_no_traceback(text)
    assert code == 1, text
    screen = ANSI.sub("", text)
    assert "archverify: progress:" not in screen  # a bar, not lines
    assert re.search(rf"checking Pithos versions: +0%\|.*\| 0(\.00)?/~{estimate}(\.0)? \[", screen), screen
    assert re.search(rf"checking Pithos versions: +\d+%\|.*\| [1-9][\d.]*/~{estimate}(\.0)? "
                     rf"\[00:0\d<00:\d\d, [\d.]+row/s\]", screen), screen


@pytest.mark.parametrize("cmd", ["scan", "check"])
def test_rados_runs_at_a_terminal_total_with_the_pools_object_count(ceph_cluster, rados_store, cmd):
    """scan and check alike: the scan bar's total is Ceph's object count of the pools, shown as an
    estimate ("~"); a cluster that reports 0 (the test cluster has no ceph-mgr to keep pool
    statistics) has it counted from the listing's first slices: all of them in a pool this small."""
    c = ceph_cluster.rados()
    try:
        counts = []
        for pool in (rados_store.maps_pool, rados_store.blocks_pool):
            with c.open_ioctx(pool) as io:
                counts.append(io.get_stats()["num_objects"])
    finally:
        c.shutdown()
    code, text = at_terminal(cmd, "--backend", "rados", "--pool", rados_store.maps_pool, "--blocks-pool",
                             rados_store.blocks_pool, "-c", ceph_cluster.conf, "-k", ceph_cluster.keyring)
    assert_no_traceback(text)
    assert code == 1, text
    assert {k for k, _ in rados_store.planted} <= screen_kinds(text)
    screen = ANSI.sub("", text)
    assert "scan (rados)" in screen  # the bar was drawn
    total = sum(counts) if all(counts) else rados_store.maps_objects + rados_store.blocks_objects
    assert re.search(rf"scan \(rados\):.*\d/~{total}(\.0)? \[", screen), screen  # tqdm's unit_scale: 92.0


# ---- a reader that goes away: `| head` ------------------------------------------------------


def _closed_pipe_run(*args):
    """stdout is a pipe whose reader is already gone: the first write gets EPIPE."""
    r, w = os.pipe()
    os.close(r)
    try:
        return run(*args, stdout=w)
    finally:
        os.close(w)


@pytest.mark.parametrize("cmd", ["scan", "check"])
@pytest.mark.parametrize("fmt", ["human", "json", "jsonl"])
def test_closed_stdout_exits_as_if_done(clean_store, store, cmd, fmt):
    p = _closed_pipe_run(cmd, "--maps-dir", clean_store / "maps", "--blocks-dir", clean_store / "blocks",
                         "--format", fmt)
    assert p.returncode == 0 and p.stderr == b"", p.stderr
    d, conf, _ = store
    p = _closed_pipe_run(cmd, "--config", conf, "--format", fmt)
    assert p.returncode == 1 and p.stderr == b"", p.stderr


def test_closed_stdout_of_check_still_writes_its_other_outputs(store, tmp_path):
    d, conf, _ = store
    p = _closed_pipe_run("check", "--config", conf, "--logdir", tmp_path / "logs", "--prometheus-textfile",
                         tmp_path / "m.prom", "--state", tmp_path / "state")
    assert p.returncode == 1 and p.stderr == b""
    assert (tmp_path / "m.prom").is_file() and list((tmp_path / "logs").glob("*.log"))
    assert list((tmp_path / "state" / "runs").glob("*.json.gz"))


def test_closed_stdout_of_small_commands(store):
    d, conf, _ = store
    for args in (["config", "--config", conf], ["pithos-migrate", "status", "--config", conf], ["--help"]):
        p = _closed_pipe_run(*args)
        assert p.returncode == 0 and p.stderr == b"", (args, p.stderr)


def test_piped_into_head(store):
    d, conf, _ = store
    for fmt in ("human", "jsonl"):
        p = subprocess.run(f"{sys.executable} -m verify check --config '{conf}' --format {fmt} --max-shown 100000 "
                           f"| head -1; exit ${{PIPESTATUS[0]}}", shell=True, env=ENV, capture_output=True,
                           text=True, timeout=300, executable="/bin/bash", cwd=REPO)
        assert p.returncode == 1 and p.stderr == "", p.stderr
        assert len(p.stdout.splitlines()) == 1


# ---- an internal error ----------------------------------------------------------------------

BUG = ("import sys, verify.ops.scan; "
       "verify.ops.scan.run_shards = lambda *a, **k: {}['a bug']; "
       "from verify.cli.main import main; sys.argv[0] = 'archverify'; main()")


def _with_bug(*args, env=None):
    return subprocess.run([sys.executable, "-c", BUG, *map(str, args)], capture_output=True, text=True,
                          env=env or ENV, cwd=REPO, timeout=120)


def test_internal_error_is_one_line_and_exit_2(clean_store):
    stores = ["--maps-dir", clean_store / "maps", "--blocks-dir", clean_store / "blocks"]
    for cmd in ("scan", "check"):
        p = _with_bug(cmd, *stores)
        assert p.returncode == 2, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("archverify: internal error:"), p.stderr
        assert p.stdout == ""


def test_internal_error_traceback_with_debug(clean_store):
    stores = ["--maps-dir", clean_store / "maps", "--blocks-dir", clean_store / "blocks"]
    p = _with_bug("--debug", "scan", *stores)
    assert p.returncode == 2 and "Traceback" in p.stderr and "KeyError" in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("archverify: internal error:")
    p = _with_bug("scan", *stores, env=dict(ENV, ARCHVERIFY_DEBUG="1"))
    assert p.returncode == 2 and "Traceback" in p.stderr


# ---- outputs checked before any work --------------------------------------------------------


def _one_line_error(p, code=2):
    err = p.stderr.decode() if isinstance(p.stderr, bytes) else p.stderr
    assert p.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archverify: error:"), err


@pytest.mark.parametrize("option,what", [
    ("--logdir", "dir"), ("--state", "dir"), ("--output", "file"), ("--lock", "file"),
    ("--prometheus-textfile", "file")])
def test_check_output_that_cannot_be_made_fails_before_the_run(store, tmp_path, option, what):
    d, conf, _ = store
    p = run("check", "--config", conf, option, "/dev/null/x", "--state", tmp_path / "st") if option != "--state" \
        else run("check", "--config", conf, option, "/dev/null/x")
    _one_line_error(p)
    assert p.stdout == b""
    assert not (tmp_path / "st").exists()  # failed before the state dir was made: before any work


@pytest.mark.parametrize("cmd,option", [("scan", "--output"), ("scan", "--logdir")] + [
    ("check", o) for o in ("--output", "--logdir", "--state", "--lock", "--prometheus-textfile")])
def test_outputs_inside_a_store_are_refused(clean_store, cmd, option):
    for store_dir in ("maps", "blocks"):
        target = clean_store / store_dir / "sub" / "out"
        p = run(cmd, "--maps-dir", clean_store / "maps", "--blocks-dir", clean_store / "blocks", option, target)
        _one_line_error(p)
        assert not target.exists() and not (clean_store / store_dir / "sub").exists()
    # through a symlink outside that leads into the store
    link = clean_store / "into-maps"
    if not link.exists():
        link.symlink_to(clean_store / "maps")
    p = run(cmd, "--maps-dir", clean_store / "maps", "--blocks-dir", clean_store / "blocks", option, link / "out")
    _one_line_error(p)


def test_output_dash_is_stdout(clean_store, tmp_path):
    p = subprocess.run([sys.executable, "-m", "verify", "scan", "--maps-dir", clean_store / "maps", "--blocks-dir",
                        clean_store / "blocks", "-o", "-", "--format", "json"], capture_output=True, env=ENV,
                       cwd=tmp_path, timeout=120)
    assert p.returncode == 0 and json.loads(p.stdout)["summary"]["exit_code"] == 0
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("maps,blocks", [("s", "s"), ("s/maps", "s"), ("s", "s/blocks"), ("s", "s/./")])
def test_nesting_stores_are_refused(tmp_path, maps, blocks):
    (tmp_path / "s" / "maps").mkdir(parents=True)
    (tmp_path / "s" / "blocks").mkdir()
    for cmd in ("scan", "check"):
        p = run(cmd, "--maps-dir", tmp_path / maps, "--blocks-dir", tmp_path / blocks)
        _one_line_error(p)
    conf = tmp_path / "a.conf"
    conf.write_text(f"[blockerb]\ntype = file_blocker\narchip_dir = {tmp_path / blocks}\n"
                    f"[blockerm]\ntype = file_blocker\narchip_dir = {tmp_path / maps}\n")
    _one_line_error(run("scan", "--config", conf))


# ---- a full disk ----------------------------------------------------------------------------


def _tiny_fs(tmp_path):
    """A 64 KiB tmpfs filled to the last byte; None when mounting is not allowed here."""
    d = tmp_path / "full"
    d.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)], capture_output=True).returncode:
        return None
    fd = os.open(d / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 512):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    return d


@pytest.mark.parametrize("option", ["--output", "--logdir", "--state", "--prometheus-textfile"])
def test_full_disk_leaves_no_temp_file(store, tmp_path, option):
    full = _tiny_fs(tmp_path)
    if full is None:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        d, conf, _ = store
        target = full / ("out" if option in ("--logdir", "--state") else "out.file")
        p = run("check", "--config", conf, "--format", "json", option, target)
        err = p.stderr.decode()
        assert "Traceback" not in err
        assert p.returncode == 2 and err.startswith("archverify: error:"), err
        left = [os.path.relpath(os.path.join(r, f), full) for r, _, fs in os.walk(full) for f in fs]
        assert left == ["filler"], left
    finally:
        subprocess.run(["umount", str(full)], check=False)
