"""archipelago.conf: read as Archipelago reads it, and the same verdict from every command.

The reader is held to Python 2 ConfigParser's rules on hand-made bytes; then each odd
file goes through every command that reads the config (click's CliRunner), which must
all refuse an error with exit 2 and the same kind, or print the same warning; a FIFO
and /dev/zero as --config go through real processes under a deadline.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from standins.harness import REPO, conf_text
from verify.config import confedit
from verify.config import archipelago as config_mod
from verify.cli.main import cli
from verify.cli.upgrade_cmd import direct_from_config
from verify.core.errors import ConfigError
from verify.ops.finalize.flow import Options, read_cluster
from verify.ops.nodes import Runner

KIND_AT_END = re.compile(r"\[([a-z_0-9]+)\]$")


def read(data: bytes):
    return config_mod.read(data, "a.conf")


def kinds(problems) -> list[tuple[str, str]]:
    return sorted((p.level, p.kind) for p in problems)


# ---- the reader: Python 2 ConfigParser, byte for byte ----------------------------------


def test_values_as_python2_configparser_reads_them():
    ini = config_mod.parse(
        b"[s]\n"
        b"a = /srv/x # maps\n"  # no '#' inline comments
        b"b = /srv/y ; maps\n"  # ' ;' starts one
        b"c = x;y ;z\n"  # only the first ';' counts, and it follows no space here
        b'd = ""\n'  # "" is the empty string
        b"MixedCase : v\n"  # keys are case-insensitive, ':' is a delimiter
        b"e = one\n"
        b"\n"
        b"   # indented: continues e, even after a blank line\n"
        b"rem a comment\n"
        b"REM another\n"
        b"f = last\r\n"
        b"[t] trailing words after the header\n"
        b"g = 1\n"
        b"[DEFAULT]\n"
        b"h = from-default\n"
    )
    s = ini.sections["s"]
    assert {e.key: e.value for e in s.entries} == {
        "a": b"/srv/x # maps", "b": b"/srv/y", "c": b"x;y ;z", "d": b"", "mixedcase": b"v",
        "e": b"one\n# indented: continues e, even after a blank line", "f": b"last"}
    assert ini.get("t", "g").value == b"1" and ini.get("t", "h").value == b"from-default"
    assert ini.errors == []


def test_lines_end_at_newline_only():
    ini = config_mod.parse(b"[blockerb]\rtype = file_blocker\rarchip_dir = /x\r")
    assert list(ini.sections) == ["blockerb"] and ini.sections["blockerb"].entries == []


def test_shipped_file_is_clean(tmp_path):
    b, m = tmp_path / "b", tmp_path / "m"
    b.mkdir(), m.mkdir()
    cfg, problems = config_mod.check(conf_text("filed", b, m), "a.conf")
    assert problems == []
    assert cfg.stores["maps"].direct is True and cfg.stores["maps"].pithos_migrate is False


@pytest.mark.parametrize("text, direct", [("", True), ("direct = False\n", False), ("DIRECT = off\n", False),
                                          ("direct = 1\n", True)])
def test_direct_default_is_the_shipped_true(tmp_path, text, direct):
    """One reader, one default: upgrade-maps and finalize agree (True when absent, as shipped)."""
    b, m = tmp_path / "b", tmp_path / "m"
    b.mkdir(), m.mkdir()
    conf = tmp_path / "a.conf"
    conf.write_text(conf_text("filed", b, m).replace("direct = True\n", "") + f"[blockerm]\n{text}")
    assert config_mod.load(conf).stores["maps"].direct is direct
    assert direct_from_config(str(conf)) is direct
    assert read_cluster(Options(str(conf), None, Runner(), tmp_path / "state")).direct is direct
    assert direct_from_config(None) is True


def test_stores_overlap(tmp_path):
    a, b = tmp_path / "maps", tmp_path / "maps2"
    (a / "sub").mkdir(parents=True)
    b.mkdir()
    (tmp_path / "link").symlink_to(a)
    assert config_mod.stores_overlap(a, a)
    assert config_mod.stores_overlap(a, str(a) + "/")
    assert config_mod.stores_overlap(a, a / "sub") and config_mod.stores_overlap(a / "sub", a)
    assert config_mod.stores_overlap(tmp_path / "link", a)
    assert config_mod.stores_overlap(tmp_path / "link" / "sub", a)
    assert not config_mod.stores_overlap(a, b)  # a common prefix of the names is not nesting
    assert config_mod.stores_overlap(tmp_path / "x" / "y", tmp_path / "x")  # missing dirs: by name


def test_every_kind_is_in_the_docs_table():
    doc = (REPO / "docs" / "config.md").read_text()
    table = re.findall(r"^\| `([a-z_0-9]+)` \|", doc, flags=re.M)
    assert table == list(config_mod.KINDS)


# ---- the same verdict from every command -------------------------------------------------


def _conf(tmp_path, edit=None) -> Path:
    b, m = tmp_path / "blocks", tmp_path / "maps"
    b.mkdir(exist_ok=True), m.mkdir(exist_ok=True)
    p = tmp_path / "archipelago.conf"
    text = conf_text("filed", b, m).encode()
    if edit is not None:
        edited = edit(text)
        assert edited != text  # the case is really in the file
        text = edited
    p.write_bytes(text)
    return p


def _sub(old: bytes, new: bytes, count=1):
    return lambda t: t.replace(old, new, count)


def _maps_line(t: bytes) -> bytes:
    return re.search(rb"\[blockerm\][^[]*?(archip_dir = [^\n]*)", t, re.S).group(1)


ERRORS = {
    "inline_comment_dir": (lambda t: t.replace(_maps_line(t), _maps_line(t) + b" # the maps"), "inline_comment"),
    "inline_comment_bool": (_sub(b"umask = 007\n#lock_dir", b"umask = 007\npithos_migrate = True # on\n#lock"),
                            "inline_comment"),
    "indented_comment": (lambda t: t.replace(_maps_line(t), _maps_line(t) + b"\n    # the maps"), "continuation"),
    "duplicate_dir": (lambda t: t.replace(_maps_line(t), _maps_line(t) + b"\n" + _maps_line(t) + b"2"),
                      "duplicate_key"),
    "duplicate_section": (lambda t: t + b"\n[blockerm]\n" + _maps_line(t) + b"-other\n", "duplicate_key"),
    "same_dirs": (lambda t: t.replace(_maps_line(t), _maps_line(t).replace(b"maps", b"blocks")), "stores_overlap"),
    "nested_dirs": (lambda t: t.replace(_maps_line(t), _maps_line(t).replace(b"maps", b"blocks/maps")),
                    "stores_overlap"),
    "latin1_dir": (lambda t: t.replace(_maps_line(t), _maps_line(t) + b"-caf\xe9"), "not_utf8"),
    "empty_bool": (_sub(b"direct = True\n", b"direct =\n"), "not_boolean"),
    "no_blockerm": (_sub(b"[blockerm]", b"[ blockerm ]"), "missing_section"),
}
WARNINGS = {
    "duplicate_same": (_sub(b"direct = True\n", b"direct = True\ndirect = True\n"), "duplicate_key"),
    "duplicate_section_merged": (lambda t: t + b"\n[blockerm]\nlogfile = /var/log/archipelago/blockerm.log\n",
                                 "duplicate_section"),
    "hyphen": (_sub(b"umask = 007\n#lock_dir", b"umask = 007\npithos-migrate = True\n#lock"), "hyphen_key"),
    "comment_elsewhere": (_sub(b"nr_ops = 512", b"nr_ops = 512 # ops"), "inline_comment"),
}
CLEAN = {
    "latin1_comment": _sub(b"# blktap support", b"# blktap support, caf\xe9"),
    "semicolon_comment": lambda t: t.replace(_maps_line(t), _maps_line(t) + b" ; the maps"),
    "crlf": lambda t: t.replace(b"\n", b"\r\n"),
}


def commands(conf, tmp_path, warnings_too=False):
    """Every command that reads the config, with what it needs to get that far."""
    cmds = {
        "scan": ["scan", "--config", conf],
        "check": ["check", "--config", conf],
        "migrate-objects": ["migrate-objects", "--config", conf, "--journal-dir", tmp_path / "j"],
        "upgrade-maps": ["upgrade-maps", "--config", conf, "--journal-dir", tmp_path / "j",
                         "--backup-dir", tmp_path / "bk"],
        "pithos-migrate status": ["pithos-migrate", "status", "--config", conf],
        "pithos-migrate enable": ["pithos-migrate", "enable", "--dry-run", "--config", conf],
    }
    if not warnings_too:  # these go on to a database or to Archipelago itself once the config is fine
        cmds["pithos-check"] = ["pithos-check", "--db", "postgresql://nobody@127.0.0.1:9/none", "--config", conf]
        cmds["finalize"] = ["finalize", "--config", conf, "--state-dir", tmp_path / "state"]
    return cmds


def invoke(args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    assert "Traceback" not in r.output
    return r


def config_kinds(conf) -> tuple[int, list[tuple[str, str]]]:
    r = invoke(["config", "--config", conf, "--format", "json"])
    doc = json.loads(r.stdout)
    return r.exit_code, kinds(config_mod.Problem(**p) for p in doc["nodes"][0]["problems"])


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_an_error_is_refused_by_every_command(tmp_path, case):
    edit, kind = ERRORS[case]
    conf = _conf(tmp_path, edit)
    code, found = config_kinds(conf)
    assert code == 2 and ("error", kind) in found, found
    before = conf.read_bytes()
    for name, args in commands(conf, tmp_path).items():
        r = invoke(args)
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("archverify: error:")]
        assert r.exit_code == 2 and len(errors) == 1, (name, r.output)
        named = {m.group(1) for ln in r.output.splitlines() if (m := KIND_AT_END.search(ln.split(" (and ")[0]))}
        assert kind in named and named <= {k for _, k in found}, (name, r.output)  # finalize lists them all
    assert conf.read_bytes() == before


@pytest.mark.parametrize("case", sorted(WARNINGS))
def test_a_warning_is_printed_by_every_command(tmp_path, case):
    edit, kind = WARNINGS[case]
    conf = _conf(tmp_path, edit)
    code, found = config_kinds(conf)
    assert code == 1 and found == [("warning", kind)], found
    for name, args in commands(conf, tmp_path, warnings_too=True).items():
        r = invoke(args)
        warned = {KIND_AT_END.search(ln).group(1) for ln in r.stderr.splitlines()
                  if ln.startswith("archverify: warning:")}
        assert r.exit_code == 0 and warned == {kind}, (name, r.output)


@pytest.mark.parametrize("case", sorted(CLEAN))
def test_a_clean_file_is_clean_everywhere(tmp_path, case):
    conf = _conf(tmp_path, CLEAN[case])
    assert config_kinds(conf) == (0, [])
    for name, args in commands(conf, tmp_path, warnings_too=True).items():
        r = invoke(args)
        assert r.exit_code == 0 and "archverify:" not in r.stderr, (name, r.output)
    r = invoke(["scan", "--config", conf, "--format", "json"])
    assert json.loads(r.stdout)["stores"]["maps"]["dir"] == str(tmp_path / "maps")  # ' ; the maps' is a comment


def test_unreadable_configs_are_one_line_everywhere(tmp_path):
    big = tmp_path / "big.conf"
    big.write_bytes(b"#" * config_mod.MAX_BYTES + b"\n")
    cases = {tmp_path / "missing.conf": "unreadable", tmp_path: "not_regular", big: "too_large"}
    for conf, kind in cases.items():
        assert config_kinds(conf) == (2, [("error", kind)])
        for name, args in commands(conf, tmp_path).items():
            r = invoke(args)
            named = {m.group(1) for ln in r.output.splitlines() if (m := KIND_AT_END.search(ln))}
            assert r.exit_code == 2 and named == {kind}, (name, r.output)


def test_symlinked_config_is_followed(tmp_path):
    conf = _conf(tmp_path)
    link = tmp_path / "link.conf"
    link.symlink_to(conf)
    assert config_kinds(link) == (0, [])


def test_fifo_and_dev_zero_as_config_never_hang(tmp_path):
    """Real processes, all at once, each under a deadline: a FIFO with no writer, and /dev/zero."""
    fifo = tmp_path / "fifo.conf"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = []
    for conf in (fifo, Path("/dev/zero")):
        for name, args in {"config": ["config", "--config", conf], **commands(conf, tmp_path)}.items():
            p = subprocess.Popen([sys.executable, "-m", "verify", *map(str, args)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, text=True)
            procs.append((conf, name, p))
    hung = []
    for conf, name, p in procs:
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            hung.append((str(conf), name))
            continue
        assert p.returncode == 2 and "Traceback" not in err, (conf, name, out, err)
        assert "[not_regular]" in out + err, (conf, name, out, err)
    assert hung == []


# ---- the editor: same reader, same verdicts ----------------------------------------------


def test_editor_refuses_what_config_calls_an_error(tmp_path):
    for case, (edit, kind) in ERRORS.items():
        text = edit(conf_text("filed", tmp_path / "blocks", tmp_path / "maps").encode()).decode("utf-8", "surrogateescape")
        with pytest.raises(ConfigError, match=r"\[[a-z_]+\]"):
            confedit.set_pithos_migrate(text, True, "a.conf")


def test_editor_keeps_bytes_and_sets_every_copy(tmp_path):
    conf = _conf(tmp_path, lambda t: _sub(b"# blktap support", b"# blktap support, caf\xe9")(t)
                 .replace(b"direct = True\n", b"direct = True\npithos_migrate = False\n")
                 + b"\n[blockerm]\npithos_migrate = False\n")
    before = conf.read_bytes()
    r = invoke(["pithos-migrate", "enable", "--config", conf, "--yes"])
    assert r.exit_code == 0, r.output
    after = conf.read_bytes()
    assert b"# blktap support, caf\xe9" in after  # the latin-1 comment is kept byte for byte
    assert after.count(b"pithos_migrate = True") == 3 and b"pithos_migrate = False" not in after
    cfg = config_mod.load(conf)
    assert all(sc.pithos_migrate for sc in cfg.stores.values())
    assert len(after.splitlines()) == len(before.splitlines())  # values changed in place, no line added
