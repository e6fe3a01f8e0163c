"""The ``archverify`` command line: exit codes, machine-readable output, bad input.

Through click's CliRunner for most cases, and as a real ``python -m verify``
process where what matters is what a shell sees (exit status, stderr, no traceback).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from one_line import one_line_error
from terminal import run_at_terminal
from verify.config import archipelago as config_mod
from verify.core import formats as F
from verify.cli.main import COMMANDS, cli
from verify.core.findings import KINDS
from verify.ops.sample import AT_RISK_NAMES, FiledStoreWriter, pithos_hash, write_sample

REPO = Path(__file__).resolve().parents[2]
FINDING_KEYS = {"kind", "name", "store", "path", "detail"}
M4 = F.BLOCK_SIZE_4M


def invoke(*args) -> "click.testing.Result":  # noqa: F821
    r = CliRunner().invoke(cli, [str(a) for a in args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r


def assert_one_line_error(r, code=2):
    one_line_error(r.exit_code, r.stdout, r.stderr, code)


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli") / "store"
    r = invoke("sample", d)
    assert r.exit_code == 0, r.output
    assert (d / "archipelago.conf").is_file()
    return d


@pytest.fixture(scope="module")
def planted(tmp_path_factory, sample_dir):
    """What `archverify sample` planted (same seed, same store)."""
    s = write_sample(tmp_path_factory.mktemp("again"))
    return {(k, st, n) for k, items in s.planted.items() for st, n in items}


def conf_for(tmp_path, maps, blocks, blockerb_extra="", blockerm_extra="", blockerm_type="file_blocker"):
    p = tmp_path / "archipelago.conf"
    p.write_text(
        "[ARCHIPELAGO]\nUSER = archipelago\n\n[PEERS]\nROLES = blockerb blockerm mapperd vlmcd\n\n"
        f"[blockerb]\ntype = file_blocker\narchip_dir = {blocks}\n{blockerb_extra}\n"
        f"[blockerm]\ntype = {blockerm_type}\narchip_dir = {maps}\n{blockerm_extra}\n"
    )
    return p


# ---- exit codes ---------------------------------------------------------------------


def test_exit_0_on_a_clean_store(tmp_path):
    maps, blocks = FiledStoreWriter(tmp_path / "maps"), FiledStoreWriter(tmp_path / "blocks")
    h = pithos_hash(b"data")
    blocks.put(h, b"data")
    maps.put_v2("a-volume", M4, [F.Entry(h, 0)])
    r = invoke("scan", "--maps-dir", tmp_path / "maps", "--blocks-dir", tmp_path / "blocks")
    assert r.exit_code == 0, r.output
    r = invoke("scan", "--maps-dir", tmp_path / "maps", "--blocks-dir", tmp_path / "blocks", "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["findings"] == [] and doc["summary"]["exit_code"] == 0 and r.exit_code == 0


def test_exit_1_with_findings_and_json_document(sample_dir, planted):
    r = invoke("scan", "--config", sample_dir / "archipelago.conf", "--format", "json", "-j", "3")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert {"tool", "version", "backend", "stores", "summary", "findings"} <= set(doc)
    assert doc["tool"] == "archverify" and doc["backend"] == "filed"
    assert set(doc["stores"]) == {"maps", "blocks"}
    assert all(set(f) == FINDING_KEYS for f in doc["findings"])
    assert {(f["kind"], f["store"], f["name"]) for f in doc["findings"]} == planted
    assert doc["summary"]["findings"] == dict(Counter(f["kind"] for f in doc["findings"]))
    assert doc["summary"]["exit_code"] == 1
    assert doc["summary"]["lock_owners"] == [{"store": "maps", "name": "vol-000_lock", "owner": "node1_1234"}]


def test_human_output_lists_every_kind_found(sample_dir, planted):
    r = invoke("scan", "--config", sample_dir / "archipelago.conf", "--max-shown", "1000")
    assert r.exit_code == 1
    for kind, _store, name in planted:
        assert kind in r.stdout and name in r.stdout


def test_jsonl_ends_with_a_summary_line(sample_dir, planted):
    r = invoke("scan", "--config", sample_dir / "archipelago.conf", "--format", "jsonl")
    assert r.exit_code == 1
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    *findings, last = lines
    assert all(set(f) == FINDING_KEYS for f in findings)
    assert {(f["kind"], f["store"], f["name"]) for f in findings} == planted
    assert last["summary"]["findings_total"] == len(findings) and last["tool"] == "archverify"


def test_output_file_is_replaced_atomically(sample_dir, tmp_path):
    out = tmp_path / "report.json"
    out.write_text("old report\n")
    os.chmod(out, 0o640)
    r = invoke("scan", "--config", sample_dir / "archipelago.conf", "--format", "json", "--output", out)
    assert r.exit_code == 1 and r.stdout == ""
    assert json.loads(out.read_text())["tool"] == "archverify"
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]  # no temp file left
    new = tmp_path / "new.json"
    old_umask = os.umask(0o022)
    try:
        invoke("scan", "--config", sample_dir / "archipelago.conf", "--format", "jsonl", "-o", new)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o644
    assert "summary" in json.loads(new.read_text().splitlines()[-1])


def test_output_to_a_fifo_is_written_not_replaced(sample_dir, tmp_path):
    """Only regular files are replaced atomically: a FIFO or a device is written in place."""
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    try:
        r = invoke("scan", "--config", sample_dir / "archipelago.conf", "--format", "json", "-o", fifo)
    finally:
        reader.join(timeout=60)
    assert r.exit_code == 1
    assert json.loads(got[0])["tool"] == "archverify"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.fifo"]


def test_output_errors_fail_before_the_scan(sample_dir, tmp_path):
    r = invoke("scan", "--config", sample_dir / "archipelago.conf", "-o", tmp_path / "no-such-dir" / "r.json")
    assert_one_line_error(r)
    (tmp_path / "a-file").write_text("")
    r = invoke("scan", "--config", sample_dir / "archipelago.conf", "--logdir", tmp_path / "a-file" / "logs")
    assert_one_line_error(r)
    assert_one_line_error(invoke("scan", "--config", sample_dir / "archipelago.conf", "--logdir", tmp_path / "a-file"))
    assert_one_line_error(invoke("scan", "--config", sample_dir / "archipelago.conf", "-o", tmp_path))
    if Path("/dev/full").exists() and stat.S_ISCHR(os.stat("/dev/full").st_mode):
        r = invoke("scan", "--config", sample_dir / "archipelago.conf", "-o", "/dev/full")
        assert_one_line_error(r)
        assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_logdir_has_one_log_per_kind(sample_dir, planted, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "object_missing.log").write_text("from an earlier run\n")  # a kind not found now: removed
    (logs / "notes.txt").write_text("mine\n")  # not ours: kept
    r = invoke("scan", "--config", sample_dir / "archipelago.conf", "--logdir", logs)
    assert r.exit_code == 1
    per_kind = Counter(k for k, _, _ in planted)
    assert sorted(p.name for p in logs.iterdir()) == sorted([f"{k}.log" for k in per_kind] + ["notes.txt"])
    for kind, n in per_kind.items():
        lines = (logs / f"{kind}.log").read_text().splitlines()
        assert len(lines) == n
        assert {ln.split("\t")[0] for ln in lines} == {name for k, _, name in planted if k == kind}


# ---- pithos_migrate from the config and the flag ----------------------------------------


def _at_risk_store(tmp_path):
    maps, blocks = FiledStoreWriter(tmp_path / "maps"), FiledStoreWriter(tmp_path / "blocks")
    maps.put_v2("a-volume", M4, [F.Entry(F.ZERO_HASH, F.OF_ZERO)])
    blocks.put(AT_RISK_NAMES[1], b"only copy", "pithos")
    return tmp_path / "maps", tmp_path / "blocks"


def _kinds(r):
    return {f["kind"] for f in json.loads(r.stdout)["findings"]}


@pytest.mark.parametrize(
    ("extra", "flag", "at_risk", "warns"),
    [
        ("pithos_migrate = True\n", [], True, False),
        ("pithos_migrate = False\n", [], False, False),
        ("", [], False, False),  # Archipelago's default is off
        ("pithos-migrate = True\n", [], True, True),  # off, but meant on: warn, and still at risk
        ("pithos-migrate = False\n", [], False, True),  # off, and meant off
        ("pithos_migrate = False\n", ["--pithos-migrate", "on"], True, False),
        ("pithos_migrate = True\n", ["--pithos-migrate", "off"], False, False),
    ],
)
def test_pithos_migrate(tmp_path, extra, flag, at_risk, warns):
    maps, blocks = _at_risk_store(tmp_path)
    conf = conf_for(tmp_path, maps, blocks, blockerb_extra=extra, blockerm_extra=extra)
    r = invoke("scan", "--config", conf, "--format", "json", *flag)
    assert ("object_at_risk" in _kinds(r)) is at_risk
    assert r.exit_code == (1 if at_risk else 0)
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("archverify: warning:")]
    assert bool(warnings) is warns
    if warns:
        assert len(warnings) == 2 and all(str(conf) in w for w in warnings)  # one per section
    assert "Traceback" not in r.stderr


def test_without_config_at_risk_is_assumed_possible(tmp_path):
    maps, blocks = _at_risk_store(tmp_path)
    r = invoke("scan", "--maps-dir", maps, "--blocks-dir", blocks, "--format", "json")
    assert _kinds(r) == {"object_at_risk"} and r.exit_code == 1


def test_flags_override_the_config(tmp_path, sample_dir):
    maps, blocks = _at_risk_store(tmp_path)
    conf = conf_for(tmp_path, maps, blocks, "pithos_migrate = True\n", "pithos_migrate = True\n")
    r = invoke("scan", "--config", conf, "--maps-dir", sample_dir / "maps", "--blocks-dir",
               sample_dir / "blocks", "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["stores"]["maps"]["dir"] == str(sample_dir / "maps")
    assert r.exit_code == 1 and "map_v1" in _kinds(r)


# ---- bad input: one line, exit 2, never a traceback -----------------------------------


def test_missing_store_dir(tmp_path):
    assert_one_line_error(invoke("scan", "--maps-dir", tmp_path / "nope"))
    (tmp_path / "maps").mkdir()
    assert_one_line_error(invoke("scan", "--maps-dir", tmp_path / "maps", "--blocks-dir", tmp_path / "nope"))
    (tmp_path / "file").write_text("")
    assert_one_line_error(invoke("scan", "--maps-dir", tmp_path / "file"))


@pytest.mark.parametrize(
    "text",
    [
        "[blockerb]\ntype = file_blocker\narchip_dir = /srv/archip/blocks\n",  # no [blockerm]
        "[blockerm]\ntype = file_blocker\narchip_dir = /srv/archip/maps\n",  # no [blockerb]
        "[blockerb]\ntype = nfs_blocker\narchip_dir = /x\n[blockerm]\ntype = nfs_blocker\narchip_dir = /y\n",
        "[blockerb]\ntype = file_blocker\n[blockerm]\ntype = file_blocker\narchip_dir = /y\n",  # no archip_dir
        "[blockerb]\ntype = file_blocker\narchip_dir = /x\npithos_migrate = maybe\n"
        "[blockerm]\ntype = file_blocker\narchip_dir = /y\n",
        "this is not an ini file\n",
        "",
    ],
)
def test_bad_configs(tmp_path, text):
    p = tmp_path / "archipelago.conf"
    p.write_text(text)
    r = invoke("scan", "--config", p)
    assert_one_line_error(r)
    assert str(p) in r.stderr


def test_config_that_cannot_be_read(tmp_path):
    assert_one_line_error(invoke("scan", "--config", tmp_path / "missing.conf"))
    assert_one_line_error(invoke("scan", "--config", tmp_path))  # a directory
    p = tmp_path / "latin1.conf"
    p.write_bytes(b"[blockerb]\ntype = file_blocker\narchip_dir = /caf\xe9\n")
    assert_one_line_error(invoke("scan", "--config", p))


def test_config_naming_a_missing_store_dir(tmp_path):
    conf = conf_for(tmp_path, tmp_path / "no-maps", tmp_path / "no-blocks")
    r = invoke("scan", "--config", conf)
    assert_one_line_error(r)
    assert "no-maps" in r.stderr


def test_no_store_given(tmp_path):
    if config_mod.DEFAULT_PATH.exists():
        pytest.skip("this machine has a default archipelago.conf")
    assert_one_line_error(invoke("scan"))


def test_sample_refuses_a_non_empty_dir(sample_dir):
    assert_one_line_error(invoke("sample", sample_dir))


def test_sample_where_it_cannot_write(tmp_path):
    (tmp_path / "a-file").write_text("")
    assert_one_line_error(invoke("sample", tmp_path / "a-file" / "store"))


def test_corrupt_truncated_and_empty_map_objects(tmp_path):
    maps = FiledStoreWriter(tmp_path / "maps")
    v1 = F.write_v1(3 * M4, [(0, F.ZERO_HASH)] * 3)
    objects = {
        "empty-object": b"",
        "one-byte": b"\x01",
        "sig-only": b"AMF.",
        "sig-31-bytes": F.pack_v2_header(M4)[:31],
        "unknown-version": F.V2_HEADER.pack(F.V2_SIGNATURE, 9, M4, M4, 0, 1),
        "blocksize-zero": F.pack_v2_header(M4, blocksize=0),
        "archip_v1-header-only": v1[:12],
        "archip_v1-cut": v1[:-10],
        "archip_v1-marker-only": v1[:4],
        "random-garbage": bytes(range(256)) * 2,
    }
    for name, data in objects.items():
        maps.put(name, data)
    r = invoke("scan", "--maps-dir", tmp_path / "maps", "--format", "json")
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    found = {(f["kind"], f["name"]) for f in json.loads(r.stdout)["findings"]}
    not_maps = ("empty-object", "one-byte", "random-garbage")
    assert found == {("map_corrupt", n) for n in objects if n not in not_maps} | {("not_a_map", n) for n in not_maps}
    details = {f["name"]: f["detail"] for f in json.loads(r.stdout)["findings"] if f["kind"] == "not_a_map"}
    assert details == {"empty-object": "0 bytes, no map signature; starts (empty)",
                       "one-byte": "1 bytes, no map signature; starts 01",
                       "random-garbage": "512 bytes, no map signature; starts 000102030405060708090a0b0c0d0e0f"}


def test_non_utf8_names_in_every_output(tmp_path):
    blocks = os.fsencode(tmp_path / "blocks")
    d = os.path.join(blocks, b"ab", b"cd", b"ef")
    os.makedirs(d)
    with open(os.path.join(d, b"obj-\xff\xfe-bad"), "wb") as fh:
        fh.write(b"x")
    (tmp_path / "maps").mkdir()
    for fmt in ("human", "json", "jsonl"):
        r = invoke("scan", "--maps-dir", tmp_path / "maps", "--blocks-dir", tmp_path / "blocks", "--format", fmt,
                   "--logdir", tmp_path / "logs")
        assert r.exit_code == 1 and "Traceback" not in r.stderr
        if fmt == "human":
            assert "obj-\\xff\\xfe-bad" in r.stdout
        else:
            last = json.loads(r.stdout) if fmt == "json" else {"findings": [json.loads(r.stdout.splitlines()[0])]}
            assert [(f["kind"], f["name"], f["path"]) for f in last["findings"]] == [
                ("stray_entry", "obj-\\xff\\xfe-bad", "ab/cd/ef/obj-\\xff\\xfe-bad")]
    assert (tmp_path / "logs" / "stray_entry.log").read_text().startswith("obj-\\xff\\xfe-bad\t")


def test_objects_that_are_no_map_in_every_output(tmp_path):
    """An empty object, 4 KiB of random bytes and a real v2 header cut to 13 bytes, beside a
    healthy map: scan and check name each (not_a_map with its size and first bytes; the cut
    signed header is a corrupt map), in the human summary, JSON, JSONL, the Prometheus textfile
    and the HTML report; exit 1, as for any corrupt map."""
    maps, blocks = FiledStoreWriter(tmp_path / "maps"), tmp_path / "blocks"
    blocks.mkdir()
    garbage = bytes([0x5A]) + os.urandom(4095)  # never a signature: 5a is no v1 or v2 first byte
    maps.put_v2("healthy-volume", 0, [])
    maps.put("empty-volume", b"")
    maps.put("garbage-volume", garbage)
    maps.put("cut-volume", F.pack_v2_header(M4)[:13])
    want = {("not_a_map", "empty-volume"): "0 bytes, no map signature; starts (empty)",
            ("not_a_map", "garbage-volume"): f"4096 bytes, no map signature; starts {garbage[:16].hex()}",
            ("map_corrupt", "cut-volume"): "signed header of 13 bytes (32 needed)"}
    store = ("--maps-dir", tmp_path / "maps", "--blocks-dir", blocks)
    for cmd in ("scan", "check"):
        more = ("--state", tmp_path / "state", "--prometheus-textfile", tmp_path / "m.prom") if cmd == "check" else ()
        doc = json.loads(invoke(cmd, *store, "--format", "json", *more).stdout)
        assert {(f["kind"], f["name"]): f["detail"] for f in doc["findings"]} == want, cmd
        assert doc["summary"]["maps"]["other"] == 2 and doc["summary"]["exit_code"] == 1
        lines = [json.loads(ln) for ln in invoke(cmd, *store, "--format", "jsonl").stdout.splitlines()]
        assert {(f["kind"], f["name"]) for f in lines if "kind" in f} == set(want), cmd
        r = invoke(cmd, *store)
        assert r.exit_code == 1, (cmd, r.stderr)
        assert "not maps 2" in r.stdout and "empty-volume  (0 bytes, no map signature; starts (empty))" in r.stdout
        assert KINDS["not_a_map"].advice in r.stdout
    prom = (tmp_path / "m.prom").read_text()
    assert re.search(r'^archverify_check_findings\{[^}]*kind="not_a_map"[^}]*severity="error"[^}]*\} 2\.0$', prom, re.M), prom
    assert invoke("report", "--state", tmp_path / "state", "--html", tmp_path / "r.html").exit_code == 0
    assert '<tr data-kind="not_a_map">' in (tmp_path / "r.html").read_text()


def test_every_kind_has_advice():
    for k in KINDS.values():
        assert k.advice and k.meaning


# ---- a real process ------------------------------------------------------------------------


def _run(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "verify", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


def test_real_process(sample_dir, planted, tmp_path):
    p = _run("scan", "--config", sample_dir / "archipelago.conf", "--format", "json", "--no-progress")
    assert p.returncode == 1, p.stderr
    assert {(f["kind"], f["store"], f["name"]) for f in json.loads(p.stdout)["findings"]} == planted
    p = _run("scan", "--maps-dir", tmp_path / "missing")
    assert p.returncode == 2
    assert p.stderr.startswith("archverify: error:") and len(p.stderr.strip().splitlines()) == 1
    assert p.stdout == ""
    (tmp_path / "empty").mkdir()
    p = _run("scan", "--maps-dir", tmp_path / "empty")
    assert p.returncode == 0 and p.stderr.startswith("archverify: warning: only the maps store was read")
    assert len(p.stderr.splitlines()) == 1  # what was not read is said, once
    p = _run("--version")
    assert p.returncode == 0 and "archverify" in p.stdout


def test_help_of_every_command():
    for args in ([], ["scan"], ["sample"]):
        r = invoke(*args, "--help")
        assert r.exit_code == 0 and "Usage:" in r.stdout


_LOADED_COMMANDS = """
import json, sys
from verify.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
sys.stderr.write(json.dumps({"exit": code, "modules": sorted(m for m in sys.modules if m.endswith("_cmd"))}))
"""


def _loaded_commands(*args):
    """(exit code, stdout, the verify.cli.*_cmd modules loaded) of one real run of the command line."""
    p = subprocess.run([sys.executable, "-c", _LOADED_COMMANDS, *map(str, args)], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    doc = json.loads(p.stderr.splitlines()[-1])
    return doc["exit"], p.stdout, doc["modules"]


def test_a_command_loads_no_other_commands_module(sample_dir, planted):
    code, out, modules = _loaded_commands("scan", "--config", sample_dir / "archipelago.conf", "--format", "json",
                                          "--no-progress")
    assert code == 1
    assert {(f["kind"], f["store"], f["name"]) for f in json.loads(out)["findings"]} == planted
    assert modules == ["verify.cli.scan_cmd"]
    code, out, modules = _loaded_commands("--help")  # lists every command with its short help: loads them all
    assert code == 0
    assert modules == sorted(f"verify.cli.{m}" for m in COMMANDS.values())
    for name in COMMANDS:
        assert f"  {name} " in out, name


def test_every_command_module_is_registered_under_its_own_name():
    on_disk = {p.stem for p in (REPO / "verify" / "cli").glob("*_cmd.py")}
    assert set(COMMANDS.values()) == on_disk
    for name in cli.list_commands(None):
        assert cli.get_command(None, name).name == name
    assert cli.get_command(None, "no-such-command") is None


def test_progress_bar_goes_to_stderr_only(sample_dir, planted):
    r = invoke("scan", "--config", sample_dir / "archipelago.conf", "--format", "json", "--progress")
    assert r.exit_code == 1
    assert {(f["kind"], f["store"], f["name"]) for f in json.loads(r.stdout)["findings"]} == planted


def test_from_a_terminal(sample_dir, planted):
    """stderr on a terminal turns the progress bar on by default."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    code, out, err = run_at_terminal([sys.executable, "-m", "verify", "scan", "--config",
                                      str(sample_dir / "archipelago.conf"), "--format", "json"], env)
    assert b"Traceback" not in err
    assert re.search(rb"\rscan \(filed\):[^\r]*\d/~\d+ \[", err), err  # the bar with its estimate, redrawn in place
    assert re.search(rb"\r +\r", err.split(b"\rscan (filed):")[-1]), err  # and cleared when the scan ends
    assert code == 1
    assert {(f["kind"], f["store"], f["name"]) for f in json.loads(out)["findings"]} == planted


def test_an_error_naming_a_path_with_control_characters_is_one_line(tmp_path):
    """A store path holding a newline or an escape sequence cannot forge a second stderr line."""
    bad = tmp_path / "maps\narchverify: error: forged\x1b[2J"
    r = subprocess.run([sys.executable, "-m", "verify", "scan", "--maps-dir", str(bad)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("archverify: error:")
    assert "\x1b" not in r.stderr and "\\n" in lines[0]
