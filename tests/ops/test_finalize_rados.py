"""finalize on a RADOS config, against stand-in nodes and the real test Ceph."""

from __future__ import annotations

import json
import random
import sys
import uuid
from pathlib import Path

import pytest

from standins.harness import make_cluster
from test_finalize import Crash
from verify.core import formats as F
from verify.backends.rados.backend import RadosBackend
from verify.core.errors import Refused
from verify.ops.finalize.flow import PITHOS_MIGRATE_SKIPPED, RADOS_STEPS, Finalizer, Options
from verify.ops.nodes import Runner

POOLS = {"maps": "maps", "blocks": "blocks"}  # what tests/fixtures/archipelago-rados.conf names


@pytest.fixture
def pools(ceph_cluster, tmp_path, monkeypatch):
    return make_pools(ceph_cluster, tmp_path, monkeypatch)


def make_pools(ceph_cluster, tmp_path, monkeypatch):
    """The config's pools, a namespace of its own in them, a healthy store plus two v1 maps; the
    stand-in nodes (stopped) below ``tmp_path``."""
    ceph_cluster.ensure_pools(*POOLS.values())
    ns = f"fin-{uuid.uuid4().hex[:10]}"
    be = RadosBackend("maps", "blocks", str(ceph_cluster.conf), None, str(ceph_cluster.keyring), namespace=ns)
    rng = random.Random(5)

    def block() -> str:
        data = rng.randbytes(512)
        name = __import__("hashlib").sha256(data).hexdigest()
        be.write("blocks", name.encode(), data)
        return name

    for v in range(3):
        header, md = F.write_v2(2 * F.BLOCK_SIZE_4M, [F.Entry(block(), 0), F.Entry(F.ZERO_HASH, F.OF_ZERO)],
                                name=f"vol-{v:03d}")
        be.write("maps", f"vol-{v:03d}".encode(), header)
        for k, d in md.items():
            be.write("maps", k.encode(), d)
    be.write("maps", b"vol-000_lock", b"")  # radosd's leftover after an unlock: not held
    for n in ("legacy-vol", "older-vol"):
        digest = rng.randbytes(32).hex()
        be.write("blocks", f"archip_{digest}".encode(), rng.randbytes(512))
        be.write("maps", f"archip_{n}".encode(), F.write_v1(2 * F.BLOCK_SIZE_4M, [(1, digest), (0, block())]))
    c = make_cluster(tmp_path, "unused", "unused", variant="rados", monkeypatch=monkeypatch)
    return be, c


def options(be, c, tmp_path, log, **kw) -> Options:
    rados = {"ceph_conf": be.ceph_conf, "keyring": be.keyring, "namespace": be.namespace}
    return Options(c.config, c.nodes, Runner(c.template), tmp_path / "state", log=log.append, rados=rados, **kw)


def test_plan_then_offline_run_ends_clean_and_resumes_after_a_crash(pools, tmp_path):
    be, c = pools
    log: list[str] = []
    out = Finalizer(options(be, c, tmp_path, log)).run(yes=False)
    assert out.state == "plan" and PITHOS_MIGRATE_SKIPPED in log
    assert be.read("maps", b"archip_legacy-vol")[:4] == b"\x01\x00\x00\x00"  # the plan wrote nothing

    def crash(step):
        if step == "preflight":
            raise Crash

    with pytest.raises(Crash):
        Finalizer(options(be, c, tmp_path, log, after_step=crash)).run(yes=True)
    log.clear()
    out = Finalizer(options(be, c, tmp_path, log)).run(yes=True)  # every node stopped: offline
    assert out.state == "finished" and out.exit_code == 0, log
    assert {f.kind for f in out.summary.findings} <= {"object_orphan"} or not out.summary.findings
    assert out.summary.exit_code == 0
    steps = [json.loads(x).get("step") for x in (tmp_path / "state" / "finalize.journal").read_text().splitlines()]
    assert [s for s in steps if s in RADOS_STEPS] == list(RADOS_STEPS) and steps[-1] == "finished"
    assert json.loads((tmp_path / "state" / "finalize.journal").read_text().splitlines()[2])["mode"] == "offline"
    for n in ("legacy-vol", "older-vol"):
        assert F.parse_v2_header(be.read("maps", n.encode())).epoch == 1
        assert be.read("maps", f"archip_{n}".encode()) is None
    assert c.events("stop") == []  # nothing restarted: pithos_migrate is not a pool's setting


def test_online_run_upgrades_through_vlmc(pools, tmp_path, monkeypatch):
    """Archipelago runs on the nodes: the maps are upgraded by vlmc open/close (the stand-in over the
    same pool), nothing is restarted, and the final check is clean."""
    be, c = pools
    for k, v in {"VLMC_RADOS_POOL": be.pool, "VLMC_RADOS_CONF": be.ceph_conf, "VLMC_RADOS_KEYRING": be.keyring,
                 "VLMC_RADOS_NAMESPACE": be.namespace}.items():
        monkeypatch.setenv(k, v)
    for n in c.nodes:
        c.standin(n, "archipelago", "start")
    vlmc = (sys.executable, str(Path(__file__).parents[1] / "standins" / "vlmc_rados"))
    out = Finalizer(options(be, c, tmp_path, [], vlmc=vlmc)).run(yes=True)
    assert out.state == "finished" and out.exit_code == 0
    upgrade = next(json.loads(ln) for ln in (tmp_path / "state" / "finalize.journal").read_text().splitlines()
                   if json.loads(ln).get("step") == "upgrade")
    assert upgrade["mode"] == "vlmc" and upgrade["counts"] == {"upgraded": 2}
    for n in ("legacy-vol", "older-vol"):
        assert F.parse_v2_header(be.read("maps", n.encode())).epoch == 1
        assert be.read("maps", f"{n}_lock".encode()) == b""  # vlmc close leaves radosd's lock object empty
    assert c.events("stop") == []


def test_a_held_lock_refuses(pools, tmp_path):
    be, c = pools
    io = be._pool_objects("maps").io
    io.lock_exclusive("vol-000_lock", "RadosLock", "foo")
    try:
        with pytest.raises(Refused):
            Finalizer(options(be, c, tmp_path, [])).run(yes=True)
    finally:
        io.unlock("vol-000_lock", "RadosLock", "foo")
    assert be.read("maps", b"archip_legacy-vol")[:4] == b"\x01\x00\x00\x00"


def test_cli_plan_on_a_rados_config(pools, tmp_path):
    be, c = pools
    r = c.archverify("finalize", *c.nodes_arg(), "-c", be.ceph_conf, "--keyring", be.keyring, "--namespace",
                     be.namespace, "--state-dir", str(tmp_path / "state"))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "state" / "finalize.journal").exists()
