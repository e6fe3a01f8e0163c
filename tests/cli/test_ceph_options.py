"""The Ceph CLI's conventions against the session's real Ceph: ``--user``, ``-p``, ``$CEPH_ARGS``
read as the ceph and rados tools read it, and a connection that fails for want of a monitor
address said as such, with nothing of librados' own on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.one_line import one_line_error
from verify.cli.store_options import ceph_args

ROOT = Path(__file__).resolve().parents[2]


def run(*args, env=None):
    e = {k: v for k, v in os.environ.items() if k not in ("CEPH_ARGS", "CEPH_CONF")}
    e.update(PYTHONPATH=str(ROOT), **(env or {}))
    p = subprocess.run([sys.executable, "-m", "verify", *args], capture_output=True, text=True, env=e,
                       timeout=120, cwd=ROOT)
    return p.returncode, p.stdout, p.stderr


def test_ceph_args_words():
    assert ceph_args("--id a -c /x.conf --keyring=/k --cluster c --mon-host 1.2.3.4") == \
        {"client_id": "a", "ceph_conf": "/x.conf", "keyring": "/k", "cluster": "c"}
    assert ceph_args("--user b -n client.b -k /k2") == {"client_id": "b", "ceph_name": "client.b", "keyring": "/k2"}
    assert ceph_args("") == {}


@pytest.fixture(scope="module")
def user(ceph_cluster, rados_store, tmp_path_factory):
    """A cephx user of its own (not admin), so that a run proves which user it connected as."""
    keyring = tmp_path_factory.mktemp("cephargs") / "client.cephargs.keyring"
    c = ceph_cluster.rados()
    try:
        r, buf, err = c.mon_command(json.dumps({"prefix": "auth get-or-create", "entity": "client.cephargs",
                                                "caps": ["mon", "allow r", "osd", "allow r"], "format": "plain"}), b"")
        assert r == 0, err
    finally:
        c.shutdown()
    keyring.write_bytes(buf)
    return keyring


def scanned_user(out: str) -> set[str]:
    return {s["user"] for s in json.loads(out)["stores"].values()}


@pytest.mark.rados
def test_ceph_args_name_the_user_conf_and_keyring(ceph_cluster, user):
    for words in (f"--id cephargs -c {ceph_cluster.conf} -k {user}",
                  f"--user=cephargs --conf={ceph_cluster.conf} --keyring={user}",
                  f"-n client.cephargs --conf {ceph_cluster.conf} --keyring {user}"):
        code, out, err = run("scan", "-p", "maps", "--format", "json", "--no-progress", env={"CEPH_ARGS": words})
        assert code in (0, 1), err
        assert scanned_user(out) == {"client.cephargs"}, words


@pytest.mark.rados
def test_the_command_line_wins_over_ceph_args(ceph_cluster, user):
    env = {"CEPH_ARGS": f"--id nobody -c {ceph_cluster.conf} -k /nonexistent.keyring"}
    one_line_error(*run("scan", "-p", "maps", "--no-progress", env=env))  # CEPH_ARGS alone: it is read
    code, out, err = run("scan", "-p", "maps", "--user", "cephargs", "-k", str(user), "--format", "json",
                         "--no-progress", env=env)
    assert code in (0, 1), err
    assert scanned_user(out) == {"client.cephargs"}


@pytest.mark.rados
def test_no_mon_host_says_so_and_nothing_from_librados(ceph_cluster, rados_store, tmp_path):
    conf = tmp_path / "ceph.conf"
    conf.write_text("".join(ln for ln in ceph_cluster.conf.read_text().splitlines(True)
                            if not ln.strip().startswith(("mon host", "mon_host"))))
    for engine in ("c", "python"):
        line = one_line_error(*run("scan", "--backend", "rados", "-p", "maps", "-c", str(conf),
                                   "-k", str(ceph_cluster.keyring), "--no-progress",
                                   env={"ARCHVERIFY_RADOS_ENGINE": engine}))
        assert "mon host" in line and "keyring" not in line, line
