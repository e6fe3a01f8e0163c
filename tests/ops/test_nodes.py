"""Node names, the node command template, and Archipelago's commands through it (stand-ins on PATH)."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from standins.harness import make_cluster
from verify.config.archipelago import UnreadableConfig
from verify.core.errors import UsageError
from verify.ops.nodes import NodeError, Runner, parse_nodes, validate_node


@pytest.mark.parametrize("name", ["node1", "node-1.example.org", "10.0.0.7", "fe80::1", "root@node1", "n1.", "a" * 63])
def test_valid_node_names(name):
    assert validate_node(name) == name


@pytest.mark.parametrize("name", ["-oProxyCommand=sh", "node;rm -rf /", "$(id)", "a b", "node`x`", "", "a" * 64,
                                  "node|x", "-", "node1 -v", "x@", "Root;@n", "1.2.3.4.5", "n'1", "n\n1"])
def test_invalid_node_names(name):
    with pytest.raises(UsageError):
        validate_node(name)


def test_parse_nodes():
    assert parse_nodes("a, b ,c") == ["a", "b", "c"]
    assert parse_nodes(None) is None
    with pytest.raises(UsageError):
        parse_nodes("a,a")
    with pytest.raises(UsageError):
        parse_nodes(" , ")


def test_template_argv():
    r = Runner()
    # ssh hands its arguments to the remote shell: the command travels as one quoted string
    assert r.argv("n1", ["cat", "--", "/etc/a b.conf"]) == ["ssh", "-o", "BatchMode=yes", "n1", "cat -- '/etc/a b.conf'"]
    assert r.argv(None, ["archipelago", "status"]) == ["archipelago", "status"]
    loc = Runner("env X={node}-y ARCHIP_NODE={node}")
    assert loc.argv("n2", ["sh", "-c", "echo $X"]) == ["env", "X=n2-y", "ARCHIP_NODE=n2", "sh", "-c", "echo $X"]
    with pytest.raises(UsageError):
        Runner("ssh somehost")  # no {node}
    with pytest.raises(UsageError):
        Runner("ssh 'unclosed {node}")
    with pytest.raises(UsageError):
        loc.argv("-oProxyCommand=x", ["true"])


def test_remote_shell_round_trip(tmp_path):
    """Through a shell (as ssh's remote side does), the argv arrives unchanged, metacharacters and all."""
    fake_ssh = tmp_path / "ssh"
    fake_ssh.write_text('#!/bin/sh\n# fake ssh: drop options and host, run the rest through a shell like sshd\n'
                        'while [ "$#" -gt 1 ]; do case "$1" in -o) shift 2;; *) shift; break;; esac; done\n'
                        'exec sh -c "$1"\n')
    fake_ssh.chmod(0o755)
    r = Runner(f"{fake_ssh} -o BatchMode=yes {{node}}")
    weird = "a b;$(touch PWNED)'\"`x`"
    res = r.run("n1", ["printf", "%s|", "x", weird])
    assert res.ok, res.stderr
    assert res.stdout == f"x|{weird}|"
    assert not (tmp_path / "PWNED").exists() and not os.path.exists("PWNED")


def test_read_write_file_on_node(tmp_path, monkeypatch):
    c = make_cluster(tmp_path, tmp_path / "b", tmp_path / "m", monkeypatch=monkeypatch)
    r = Runner(c.template)
    p = c.conf("n2")
    os.chmod(p, 0o640)
    old = r.read_file("n2", c.config)
    assert old == p.read_bytes()
    ino = p.stat().st_ino
    r.write_file("n2", c.config, b"new\n", expect=old, backup=c.config + ".bak")
    assert p.read_bytes() == b"new\n"
    assert p.stat().st_ino != ino  # replaced by rename, not rewritten in place
    assert stat.S_IMODE(p.stat().st_mode) == 0o640
    assert (c.root / "n2" / (c.config + ".bak")).read_bytes() == old
    assert not (c.root / "n2" / (c.config + ".archverify-tmp")).exists()
    # changed since it was read: nothing written
    with pytest.raises(NodeError):
        r.write_file("n2", c.config, b"other\n", expect=old)
    assert p.read_bytes() == b"new\n"
    with pytest.raises(UnreadableConfig):  # a config that cannot be read is a config error, on a node as here
        r.read_file("n1", "no-such-file")
    os.mkfifo(c.root / "n1" / "fifo.conf")
    with pytest.raises(UnreadableConfig):  # test -f first: never opened, so it cannot hang
        r.read_file("n1", "fifo.conf")


def test_archipelago_commands(tmp_path, monkeypatch):
    c = make_cluster(tmp_path, tmp_path / "b", tmp_path / "m", monkeypatch=monkeypatch)
    r = Runner(c.template)
    assert r.status("n1").state == "stopped"
    assert r.start("n1").ok
    st = r.status("n1")
    assert st.state == "running" and st.peers["blockerb"] and "blktap" not in st.peers
    assert not r.start("n1").ok  # the real start refuses when peers run
    assert r.showmapped("n1") == []
    c.standin("n1", "vlmc", "map", "vol-000")
    assert r.showmapped("n1") == ["vol-000"]
    assert r.showmapped("n2") == []
    res = r.stop("n1")
    assert res.rc == 255  # mapped volumes: refused
    assert r.status("n1").state == "running"
    assert r.stop("n1", force=True).ok
    assert r.status("n1").state == "stopped"
    assert [(e["force"], e.get("refused", False)) for e in c.events("stop")] == [(False, True), (True, False)]


def test_missing_command_and_status_unknown(tmp_path):
    r = Runner("env PATH=" + str(tmp_path) + " ARCHIP_NODE={node}")
    res = r.run("n1", ["archipelago", "status"])
    assert res.rc == 127
    assert r.status("n1").state == "unknown"


def test_local_execution_without_nodes(tmp_path, monkeypatch):
    c = make_cluster(tmp_path, tmp_path / "b", tmp_path / "m", monkeypatch=monkeypatch)
    r = Runner()
    assert r.start(None).ok  # ARCHIP_NODE=n1 in our environment: runs here, no template
    assert c.state()["nodes"]["n1"]["running"]
    assert subprocess.run(["archipelago", "status"], capture_output=True, text=True).stdout.count("running") == 5


def test_restart_cli_failure_table_and_dry_run(tmp_path, monkeypatch):
    c = make_cluster(tmp_path, tmp_path / "b", tmp_path / "m", monkeypatch=monkeypatch)
    for n in c.nodes:
        c.standin(n, "archipelago", "start")
    r = c.archverify("restart", *c.nodes_arg(), "--dry-run")
    assert r.returncode == 0 and r.stdout.count("would run") == 4
    assert c.events("stop") == []
    r = c.archverify("restart", *c.nodes_arg())  # without --yes: the same preview
    assert r.returncode == 0 and r.stdout.count("would run") == 4
    assert c.events("stop") == []
    c.standin("n1", "vlmc", "map", "vol-000")
    r = c.archverify("restart", *c.nodes_arg(), "--yes")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    rows = {ln.split()[0]: ln.split()[1] for ln in r.stderr.splitlines() if ln[:2] in ("n1", "n2")}
    assert rows == {"n1": "running", "n2": "running"}  # n1 refused to stop: nothing else was touched
    r = c.archverify("restart", *c.nodes_arg(), "--force", "--yes")
    assert r.returncode == 0, r.stderr
    st = c.state()
    assert all(st["nodes"][n]["running"] and st["nodes"][n]["starts"] == 2 for n in c.nodes)
    assert [(e["node"], e["force"]) for e in c.events("stop") if not e.get("refused")] == [("n1", True), ("n2", True)]


@pytest.mark.parametrize("name", ["fe80::1%eth0;rm -rf /", "fe80::1%eth0;reboot", "fe80::1%$(reboot)", "fe80::1%eth0 x", "fe80::1%`id`",
                                  "root@fe80::1%a|b", "fe80::1%-o"])
def test_ipv6_scope_id_with_shell_syntax_is_refused(name):
    with pytest.raises(UsageError):
        validate_node(name)


@pytest.mark.parametrize("name", ["fe80::1%eth0", "fe80::1%2", "fe80::1%enp0s31f6", "root@fe80::1%br-lan.10"])
def test_ipv6_scope_id_of_an_interface_is_accepted(name):
    assert validate_node(name) == name
