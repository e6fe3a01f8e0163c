"""pithos_migrate edits: preserved layout, hyphen key replaced, atomic, idempotent, refusals; config checks."""

from __future__ import annotations

import configparser
import difflib
import os
import stat
import subprocess
import sys

import pytest

from standins.harness import REPO, conf_text, make_cluster
from verify.config import confedit
from verify.config import archipelago as config_mod
from verify.core.errors import ConfigError, Refused
from verify.ops.nodes import Runner


def archipelago_reads(text: str) -> dict[str, bool]:
    """What Archipelago's own parser makes of the file: only ``pithos_migrate``, getboolean."""
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.read_string(text)
    return {s: cp.getboolean(s, "pithos_migrate") if cp.has_option(s, "pithos_migrate") else False
            for s in ("blockerb", "blockerm")}


def changed_lines(a: str, b: str) -> list[str]:
    return [ln for ln in difflib.ndiff(a.splitlines(), b.splitlines()) if ln[:1] in "+-"]


def test_enable_adds_only_two_lines_keeping_everything_else():
    text = conf_text("filed")
    new, changes = confedit.set_pithos_migrate(text, True, "x.conf")
    assert len(changes) == 2
    assert changed_lines(text, new) == ["+ pithos_migrate = True", "+ pithos_migrate = True"]
    assert archipelago_reads(new) == {"blockerb": True, "blockerm": True}
    # right after each section's last option, before the comment block of the next section
    lines = new.splitlines()
    i = lines.index("#lock_dir = /srv/archip/locks")
    assert lines[i - 1] == "pithos_migrate = True"
    again, changes2 = confedit.set_pithos_migrate(new, True, "x.conf")
    assert changes2 == [] and again == new  # idempotent
    off, _ = confedit.set_pithos_migrate(new, False, "x.conf")
    assert sorted(changed_lines(new, off)) == ["+ pithos_migrate = False", "+ pithos_migrate = False",
                                               "- pithos_migrate = True", "- pithos_migrate = True"]
    assert archipelago_reads(off) == {"blockerb": False, "blockerm": False}


def test_hyphen_key_is_replaced_not_duplicated():
    text = conf_text("filed").replace("direct = True\numask = 007\n\n[blockerm]",
                                      "direct = True\numask = 007\npithos-migrate = True\n\n[blockerm]")
    text = text.replace("#lock_dir", "pithos-migrate = yes\npithos_migrate = False\n#lock_dir")
    assert archipelago_reads(text) == {"blockerb": False, "blockerm": False}  # the trap: looks on, is off
    st = {s.section: s for s in confedit.status(text, "x")[0]}
    assert st["blockerb"].hyphen and st["blockerb"].value is False and st["blockerb"].raw is None
    new, changes = confedit.set_pithos_migrate(text, True, "x")
    assert "pithos-migrate =" not in new and "#   pithos-migrate:" in new  # the comment stays
    assert new.count("pithos_migrate =") == 2
    assert archipelago_reads(new) == {"blockerb": True, "blockerm": True}
    assert len(changes) == 3  # rename in blockerb; remove the hyphen key and flip the value in blockerm


def test_mixed_config_edits_the_file_blocker_section_alone():
    """Filed blocks, RADOS maps: pithos_migrate is set in [blockerb]; [blockerm] stays byte for byte."""
    text = conf_text("mixed")
    new, changes = confedit.set_pithos_migrate(text, True, "x")
    assert changes == ["[blockerb] pithos_migrate = True added"]
    assert archipelago_reads(new)["blockerb"] is True
    section = lambda t: t[t.index("[blockerm]"):t.index("[mapperd]")]  # noqa: E731
    assert section(new) == section(text) and "pithos_migrate" not in section(new)
    assert confedit.set_pithos_migrate(new, True, "x") == (new, [])  # idempotent
    assert [s.value for s in confedit.status(new, "x")[0]] == [True, None]


def test_rados_refused_and_bad_files():
    with pytest.raises(Refused):
        confedit.set_pithos_migrate(conf_text("rados"), True, "x")
    st, _ = confedit.status(conf_text("rados"), "x")
    assert [s.value for s in st] == [None, None]
    with pytest.raises(ConfigError):
        confedit.set_pithos_migrate("[blockerb]\ntype = file_blocker\n", True, "x")  # no [blockerm]
    with pytest.raises(ConfigError):
        confedit.set_pithos_migrate(conf_text().replace("type = file_blocker", "type = nfs_blocker", 1), True, "x")
    with pytest.raises(ConfigError):
        confedit.set_pithos_migrate(conf_text().replace("umask = 007\n", "umask = 007\npithos_migrate = maybe\n", 1),
                                    False, "x")


def test_atomic_write_keeps_mode_and_backs_up(tmp_path):
    p = tmp_path / "archipelago.conf"
    p.write_text("old\n")
    os.chmod(p, 0o604)
    link = tmp_path / "link.conf"
    link.symlink_to(p)
    bak = confedit.backup_path(str(p))
    (tmp_path / ".archipelago.conf.x1y2.archverify-tmp").write_text("left by a killed run")
    confedit.atomic_write(str(link), b"new\n", expect=b"old\n", backup=bak)
    assert link.is_symlink() and p.read_bytes() == b"new\n"  # the link still points at the real file
    assert stat.S_IMODE(p.stat().st_mode) == 0o604
    assert open(bak, "rb").read() == b"old\n"
    assert [f.name for f in tmp_path.iterdir() if "tmp" in f.name] == []
    with pytest.raises(Refused):
        confedit.atomic_write(str(p), b"x", expect=b"old\n")
    assert p.read_bytes() == b"new\n"


def test_apply_on_nodes_all_or_nothing(tmp_path, monkeypatch):
    c = make_cluster(tmp_path, tmp_path / "b", tmp_path / "m", monkeypatch=monkeypatch)
    r = Runner(c.template)
    c.conf("n2").write_text(conf_text("rados"))
    before = c.conf("n1").read_text()
    with pytest.raises(Refused):
        confedit.apply_on_nodes(r, c.nodes, c.config, True)
    assert c.conf("n1").read_text() == before  # n1 untouched: n2 was refused before any write
    c.conf("n2").write_text(before)
    out = confedit.apply_on_nodes(r, c.nodes, c.config, True)
    assert [bool(o.changes) for o in out] == [True, True]
    for n in c.nodes:
        assert archipelago_reads(c.conf(n).read_text()) == {"blockerb": True, "blockerm": True}
        baks = list((c.root / n).glob("archipelago.conf.archverify-*Z"))
        assert len(baks) == 1 and baks[0].read_text() == before
    out = confedit.apply_on_nodes(r, c.nodes, c.config, True)
    assert [o.changes for o in out] == [[], []] and [o.backup for o in out] == [None, None]


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "verify", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def test_pithos_migrate_cli(tmp_path, monkeypatch):
    c = make_cluster(tmp_path, tmp_path / "b", tmp_path / "m", monkeypatch=monkeypatch)
    r = cli("pithos-migrate", "enable", "--dry-run", *c.nodes_arg())
    assert r.returncode == 0, r.stderr
    assert "pithos_migrate =" not in c.conf("n1").read_text()
    r = cli("pithos-migrate", "enable", *c.nodes_arg())  # a preview without --yes
    assert r.returncode == 0, r.stderr
    assert "pithos_migrate =" not in c.conf("n1").read_text()
    r = cli("pithos-migrate", "enable", *c.nodes_arg(), "--yes")
    assert r.returncode == 0, r.stderr
    assert all(archipelago_reads(c.conf(n).read_text())["blockerm"] for n in c.nodes)
    r = cli("pithos-migrate", "status", *c.nodes_arg())
    assert r.returncode == 0 and r.stdout.count(" on") == 4
    local = tmp_path / "local.conf"
    local.write_text(conf_text("rados"))
    r = cli("pithos-migrate", "disable", "--config", str(local))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    r = cli("pithos-migrate", "enable", "--nodes", "n1;reboot", "--node-cmd", c.template)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    # 'config' through the nodes: store dirs missing here, then present
    r = cli("config", *c.nodes_arg())
    assert r.returncode == 2 and "Traceback" not in r.stderr
    (tmp_path / "b").mkdir()
    (tmp_path / "m").mkdir()
    r = cli("config", *c.nodes_arg())
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("pithos_migrate=on") == 4


def test_config_check_kinds(tmp_path):
    b, m = tmp_path / "blocks", tmp_path / "maps"
    b.mkdir()
    m.mkdir()
    good = conf_text("filed", b, m)
    cfg, problems = config_mod.check(good, "x")
    assert problems == [] and cfg.stores["blocks"].archip_dir == str(b)
    bad = good.replace(str(m), str(tmp_path / "nope")).replace("umask = 007\n\n[blockerm]",
                                                                "umask = 007\npithos-migrate = True\n\n[blockerm]")
    cfg, problems = config_mod.check(bad, "x")
    assert sorted((p.level, p.kind) for p in problems) == [("error", "dir_missing"), ("warning", "hyphen_key")]
    assert cfg is None
    _, problems = config_mod.check(good.replace("direct = True", "direct = True\npithos_migrate = True  # on", 1), "x")
    assert [(p.level, p.kind) for p in problems] == [("error", "inline_comment")]  # Archipelago has no '#' comments
    _, problems = config_mod.check(good.replace("type = file_blocker", "type = foo", 1), "x")
    assert [(p.level, p.kind) for p in problems] == [("error", "unknown_type")]
    _, problems = config_mod.check("[blockerb]\ntype = rados_blocker\npool = p\n", "x", pool_exists=lambda p: False)
    assert sorted(p.kind for p in problems) == ["missing_section", "no_peers", "pool_missing"]
    # load() keeps its API
    f = tmp_path / "a.conf"
    f.write_text(good)
    assert config_mod.load(f).stores["maps"].archip_dir == str(m)


def test_config_cli_exit_codes(tmp_path):
    b, m = tmp_path / "blocks", tmp_path / "maps"
    b.mkdir()
    m.mkdir()
    f = tmp_path / "a.conf"
    f.write_text(conf_text("filed", b, m))
    assert cli("config", "--config", str(f)).returncode == 0
    f.write_text(conf_text("filed", b, m).replace("direct = True\n", "direct = True\npithos-migrate = True\n", 1))
    assert cli("config", "--config", str(f)).returncode == 1
    f.write_text(conf_text("filed", b, tmp_path / "gone"))
    r = cli("config", "--config", str(f))
    assert r.returncode == 2 and "Traceback" not in r.stderr
