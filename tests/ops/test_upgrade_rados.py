"""upgrade-maps on a RADOS pool of the real test Ceph: the mapper's bytes (unpadded), locks, crashes, vlmc."""

from __future__ import annotations

import json
import os
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from crashpoints import run_crashing
from test_upgrade import P, P_SIZE, Q, Q_SIZE, ZERO, files, unpack, v04
from verify.core import formats as F
from verify.backends.rados import io as rados_io
from verify.backends.rados.backend import RadosBackend
from verify.cli.main import cli
from verify.ops.fixes.upgrade import upgrade_maps

GOLDEN = Path(__file__).parents[1] / "fixtures"
STANDINS = Path(__file__).parents[1] / "standins"
POOLS = ("upgrade-maps", "upgrade-blocks")
SIZES = {P: P_SIZE, Q: Q_SIZE}


@pytest.fixture(scope="module")
def pools(ceph_cluster):
    ceph_cluster.ensure_pools(*POOLS)
    return ceph_cluster


def backend(cluster, namespace: str) -> RadosBackend:
    return RadosBackend(*POOLS, str(cluster.conf), None, str(cluster.keyring), namespace=namespace)


@pytest.fixture
def be(pools):
    b = backend(pools, f"u-{uuid.uuid4().hex[:12]}")
    b.validate()
    return b


def load(be, tree: dict[str, bytes]) -> None:
    """A filed maps tree into the pool: each file becomes the object of its name (a pool has no paths)."""
    for rel, data in tree.items():
        be.write("maps", os.path.basename(rel).encode(), data)


def pool(be) -> dict[str, bytes]:
    out, cursor = {}, None
    while True:
        page, cursor = be.list_page("maps", cursor)
        for n in page:
            out[n.decode()] = be.read("maps", n)
        if cursor is None:
            return out


def by_name(tree: dict[str, bytes]) -> dict[str, bytes]:
    return {os.path.basename(k): v for k, v in tree.items()}


# ---- the real mapper's bytes -------------------------------------------------------------


def golden_maps(tmp_path, source: str) -> Path:
    dst = tmp_path / source.split(".")[0]
    if source.startswith("golden_steps/"):
        return unpack(source.split("/", 1)[1], dst)
    with tarfile.open(GOLDEN / source) as t:
        t.extractall(dst, members=[m for m in t.getmembers() if m.name.startswith("maps")])
    return dst / "maps"


@pytest.mark.parametrize("source", ["golden_steps/before.maps.tar.gz", "golden/before.tar.gz"])
def test_offline_upgrade_on_rados_equals_filed_minus_padding(be, tmp_path, source):
    """The same maps upgraded on filed (plain and direct I/O) and in a pool: object by object
    the pool holds the unpadded bytes, which the real mapper's unpadded run wrote too."""
    maps = golden_maps(tmp_path, source)
    load(be, files(maps))
    s = upgrade_maps(be, apply=True, backup_dir=str(tmp_path / "bk"), logdir=None, pithos_sizes=SIZES, jobs=2)
    assert s["exit_code"] == 0 and s["counts"] == {"upgraded": 5}, s["results"]
    got = pool(be)
    plain, direct = tmp_path / "plain", tmp_path / "direct"
    for d, pad in ((plain, False), (direct, True)):
        os.system(f"cp -a {maps} {d}")
        upgrade_maps(str(d), apply=True, backup_dir=str(tmp_path / f"bk-{pad}"), logdir=None, pithos_sizes=SIZES,
                     direct=pad)
    want, padded = by_name(files(plain)), by_name(files(direct))
    assert got == want
    for name, data in got.items():
        assert padded[name] == data + bytes(-len(data) % 512) or padded[name] == data, name
    if source.startswith("golden_steps"):
        real = by_name(files(unpack("10_open_v0_Q_no_size.maps.tar.gz", tmp_path / "real")))
        for obj in ("alpha-vol1", "alpha-vol1_0000000000000000", "alpha-vol2", "alpha-vol2_0000000000000000",
                    P, P + "_0000000000000000", Q, Q + "_0000000000000000"):
            assert got[obj] == real[obj], obj
        assert not any(n.startswith("archip_") for n in got)  # purged in the mapper's order
    # the v0 header went over the first 32 bytes: the old object's tail is kept
    original = by_name(files(maps))[Q]
    assert got[Q][32:] == original[32:] and F.parse_v2_header(got[Q]).flags == F.MF_READONLY


def test_lock_owner_sees_radosds_lock(be):
    """radosd's lock: rados_lock_exclusive on an empty NAME_lock; unlocked, the empty object holds nothing."""
    io = be._pool_objects("maps").io
    be.write("maps", b"vol-b_lock", b"")
    io.lock_exclusive("vol-b_lock", rados_io.RADOS_LOCK_NAME, "foo")
    try:
        assert (be.lock_owner("maps", b"vol-b") or "").startswith("client.")
    finally:
        io.unlock("vol-b_lock", rados_io.RADOS_LOCK_NAME, "foo")
    assert be.lock_owner("maps", b"vol-b") is None


def test_locked_maps_are_left_alone_and_reported(be, tmp_path):
    v1 = F.write_v1(F.BLOCK_SIZE_4M, [(0, ZERO)])
    for n in ("held-vol", "owned-vol", "free-vol"):
        be.write("maps", f"archip_{n}".encode(), v1)
    be.write("maps", b"held-vol_lock", b"")
    be.write("maps", b"owned-vol_lock", b"node1_1234")
    be.write("maps", b"free-vol_lock", b"")  # what radosd leaves after unlock
    io = be._pool_objects("maps").io
    io.lock_exclusive("held-vol_lock", rados_io.RADOS_LOCK_NAME, "foo")
    try:
        before = pool(be)
        s = upgrade_maps(be, apply=True, backup_dir=str(tmp_path / "bk"), logdir=str(tmp_path / "logs"))
    finally:
        io.unlock("held-vol_lock", rados_io.RADOS_LOCK_NAME, "foo")
    by = {r["target"]: r["status"] for r in s["results"]}
    assert by == {"held-vol": "failed", "owned-vol": "failed", "free-vol": "upgraded"}
    assert s["exit_code"] == 1
    now = pool(be)
    for n in ("archip_held-vol", "archip_owned-vol", "held-vol_lock", "owned-vol_lock"):
        assert now[n] == before[n]
    assert "held-vol" not in now and "free-vol" in now and "archip_free-vol" not in now
    failed = (tmp_path / "logs" / "failed.log").read_text()
    assert "held-vol" in failed and "owned-vol" in failed


# ---- crashes before each librados write ---------------------------------------------------


def crash_store(be) -> None:
    a = "5" * 64
    be.write("maps", b"archip_crash-vol", F.write_v1(2 * F.BLOCK_SIZE_4M, [(1, a), (0, ZERO)]))
    v0 = bytes.fromhex(a) + bytes.fromhex(ZERO)
    be.write("maps", b"c" * 64, v0)
    header, md = F.write_v2(F.BLOCK_SIZE_4M, [F.Entry(ZERO, F.OF_ZERO)], flags=F.MF_DELETED, epoch=0,
                            name="archip_half-vol")
    be.write("maps", b"archip_half-vol", header)
    for k, v in md.items():
        be.write("maps", k.encode(), v)
    header, md = F.write_v2(F.BLOCK_SIZE_4M, [F.Entry(ZERO, F.OF_ZERO)], name="half-vol")
    be.write("maps", b"half-vol", header)
    for k, v in md.items():
        be.write("maps", k.encode(), v)


def run_in_child(cluster, ns: str, work: Path, crash_at: int | None) -> bool:
    """upgrade-maps --offline --yes in a forked child with its own librados connection, killed
    (os._exit: no cleanup) just before its crash_at-th librados write or remove."""
    def run():
        s = upgrade_maps(backend(cluster, ns), apply=True, backup_dir=str(work / "bk"), logdir=None,
                         pithos_sizes={"c" * 64: 2 * F.BLOCK_SIZE_4M - 7}, jobs=1)
        if s["exit_code"]:
            raise SystemExit(s["exit_code"])

    writes = [(rados_io.PoolObjects, m) for m in ("write_at", "remove", "write")]
    return run_crashing(run, crash_at or 0, after=False, calls=writes)


def test_kill_before_every_librados_write_then_rerun_ends_as_an_uninterrupted_run(pools, tmp_path):
    ref_ns = f"ref-{uuid.uuid4().hex[:8]}"
    ref = backend(pools, ref_ns)
    crash_store(ref)
    original = pool(ref)
    ref._objects[0]._conn.shutdown()  # no live librados threads in this process while it forks
    assert not run_in_child(pools, ref_ns, tmp_path / "ref", None)
    ref = backend(pools, ref_ns)
    reference = pool(ref)
    ref._objects[0]._conn.shutdown()
    assert reference != original and "archip_crash-vol" not in reference
    k = 0
    while True:
        k += 1
        ns = f"k{k}-{uuid.uuid4().hex[:8]}"
        b = backend(pools, ns)
        crash_store(b)
        b._objects[0]._conn.shutdown()
        crashed = run_in_child(pools, ns, tmp_path / f"k{k}", k)
        assert not run_in_child(pools, ns, tmp_path / f"k{k}", None), k  # the rerun finishes
        b = backend(pools, ns)
        assert pool(b) == reference, k
        if k > 1:
            assert (tmp_path / f"k{k}" / "bk" / "maps" / "archip_crash-vol").read_bytes() == \
                original["archip_crash-vol"]
        b._objects[0]._conn.shutdown()
        if not crashed:
            break
    assert k > 10


# ---- online: through a stand-in vlmc on the pool -----------------------------------------------


def test_online_upgrade_through_vlmc_reads_the_result_back_from_the_pool(be, tmp_path, monkeypatch):
    maps = unpack("before.maps.tar.gz", tmp_path / "src")
    load(be, files(maps))
    for k, v in {"VLMC_RADOS_POOL": be.pool, "VLMC_RADOS_CONF": be.ceph_conf, "VLMC_RADOS_KEYRING": be.keyring,
                 "VLMC_RADOS_NAMESPACE": be.namespace, "VLMC_FIXES_FAIL": "alpha-vol2"}.items():
        monkeypatch.setenv(k, v)
    vlmc = (sys.executable, str(STANDINS / "vlmc_rados"))
    s = upgrade_maps(be, apply=True, backup_dir=str(tmp_path / "bk"), logdir=str(tmp_path / "logs"), mode="vlmc",
                     vlmc=vlmc, jobs=2, pithos_sizes={Q: Q_SIZE})
    by = {r["target"]: r["status"] for r in s["results"]}
    assert by == {"alpha-vol1": "upgraded", "alpha-vol2": "failed", "bravo-legacy": "upgraded", Q: "upgraded",
                  P: "failed"}  # P: size unknown
    got = pool(be)
    plain = tmp_path / "plain"
    os.system(f"cp -a {maps} {plain}")
    upgrade_maps(str(plain), apply=True, backup_dir=str(tmp_path / "bk2"), logdir=None, direct=False,
                 pithos_sizes={Q: Q_SIZE})
    want = by_name(files(plain))
    for obj in ("alpha-vol1", "alpha-vol1_0000000000000000", "bravo-legacy", Q, Q + "_0000000000000000"):
        assert got[obj] == want[obj], obj
    assert got["alpha-vol1_lock"] == b""  # closed: radosd's empty leftover


# ---- the command ---------------------------------------------------------------------------


def test_cli_rados_preview_then_offline_apply(be, tmp_path):
    load(be, files(unpack("before.maps.tar.gz", tmp_path / "src")))
    base = ["upgrade-maps", "--backend", "rados", "--pool", be.pool, "-c", be.ceph_conf, "--keyring", be.keyring,
            "--namespace", be.namespace, "--backup-dir", str(tmp_path / "bk"), "--journal-dir", str(tmp_path / "j"),
            "--v0-size", f"{P}={P_SIZE}", "--v0-size", f"{Q}={Q_SIZE}", "--format", "json"]
    before = pool(be)
    r = CliRunner().invoke(cli, base)
    assert r.exit_code == 1, r.output
    assert json.loads(r.stdout)["counts"] == {"planned": 5} and pool(be) == before
    r = CliRunner().invoke(cli, base + ["--offline", "--yes"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["counts"] == {"upgraded": 5}
    r = CliRunner().invoke(cli, ["scan", "--backend", "rados", "--pool", be.pool, "-c", be.ceph_conf, "--keyring",
                                 be.keyring, "--namespace", be.namespace, "--format", "json", "--no-progress"])
    assert r.exit_code == 0, r.output
