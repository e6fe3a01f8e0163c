"""No archverify process exits with a librados client still connected.

A client left connected lets its threads run on while exit() destroys libceph-common's static
state: the process crashes (boost::bad_get, SIGABRT; or SIGSEGV) after its work is done, once in
many runs. tests/exit_window.py holds that moment open for seconds, so a client left connected
crashes the process every time: each command and backend that reaches Ceph is run there as a
real process, and must exit with the program's own status and nothing from libstdc++ on stderr.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from exit_window import HOLD_S
from rados_cluster import librados_threads

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "tests" / "exit_window.py"
pytestmark = pytest.mark.rados
# every way archverify reaches Ceph: commands run in the process, and backends left open to the end
CASES = ["config", "scan-c", "scan-python", "check", "backend-c", "backend-python", "extension"]
ROUNDS = 2
CRASHED = ("terminate called", "bad_get", "Aborted", "Segmentation fault")


def held_exits(cluster, cases) -> list[tuple[str, int, str, str]]:
    """(case, exit status, stdout, stderr) of each case run at once in its own process."""
    procs = [(case, subprocess.Popen([sys.executable, str(PROGRAM), case, str(cluster.conf), str(cluster.keyring)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT))
             for case in cases]
    out = []
    for case, p in procs:
        so, se = p.communicate(timeout=180)
        out.append((case, p.returncode, so, se))
    return out


def test_the_held_exit_crashes_a_process_that_leaves_a_client_connected(ceph_cluster, rados_store):
    """The instrument works: python-rados shuts nothing down by itself, and the held exit crashes
    the process that drops its client connected (else the test below could not fail)."""
    for case, code, so, se in held_exits(ceph_cluster, ["leaked"] * ROUNDS):
        assert so.strip() == "ok", se
        assert code in (-6, -11), (code, se[-2000:])


def test_every_command_and_backend_shuts_its_clients_down_before_exit(ceph_cluster, rados_store):
    bad = []
    for case, code, so, se in held_exits(ceph_cluster, [c for c in CASES for _ in range(ROUNDS)]):
        if code != HOLD_S or any(s in se for s in CRASHED) or not so.strip():
            bad.append((case, code, so.strip(), se[-1500:]))
    assert bad == []


def test_config_leaves_no_client_connected(ceph_cluster, rados_store):
    """`archverify config -c` asks librados whether the pools exist, and shuts that client down."""
    from click.testing import CliRunner

    from verify.cli.main import cli

    before = librados_threads()
    r = CliRunner().invoke(cli, ["config", "--config", str(ROOT / "tests" / "fixtures" / "archipelago-rados.conf"),
                                 "-c", str(ceph_cluster.conf), "-k", str(ceph_cluster.keyring)])
    assert r.exit_code == 0, r.output
    assert "OK" in r.output and "does not exist" not in r.output  # the pools were looked up
    assert librados_threads() == before
