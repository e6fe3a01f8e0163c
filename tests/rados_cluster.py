"""The session's throwaway Ceph cluster (scripts/ceph-dev-cluster) and a generated
RADOS store with every map finding planted, loaded with python-rados.

Tests that use these fixtures skip, loudly, only when the Ceph packages are absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from verify.core import formats as F

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "ceph-dev-cluster"
NEEDED = ("ceph-mon", "ceph-osd", "ceph-authtool", "monmaptool", "ceph")


def missing_packages() -> str | None:
    absent = [t for t in NEEDED if shutil.which(t) is None]
    try:
        import rados  # noqa: F401
    except ImportError:
        absent.append("python3-rados (import rados)")
    if absent:
        return ("SKIPPED: Ceph is not installed here (missing " + ", ".join(absent) + "); "
                "apt-get install ceph-mon ceph-osd ceph-common python3-rados librados-dev")
    return None


@dataclass
class Cluster:
    dir: Path
    conf: Path
    keyring: Path

    def rados(self):
        """A connected python-rados client; the caller shuts it down (the session's end does, if not:
        it is made as archverify makes its own, verify/backends/rados/clients.py)."""
        from verify.backends.rados import clients as rados_clients

        c = rados_clients.open_client(conffile=str(self.conf), conf={"keyring": str(self.keyring)})
        c.connect(timeout=10)
        return c

    def close_clients(self) -> None:
        """Shut down every client of this process still connected (the fixtures' and the backends'
        the tests made) while the cluster is up: one still connected at exit can abort the process."""
        from verify.backends.rados import backend as rados_backend
        from verify.backends.rados import clients as rados_clients

        rados_backend.close_all()
        rados_clients.shutdown_all()
        ext = sys.modules.get("verify.native._rados")
        if ext is not None:
            ext._shutdown_all()

    def load_pools(self, maps_pool: str, blocks_pool: str, maps_dir: Path, blocks_dir: Path) -> None:
        """A filed store's maps and blocks dirs copied object by object into two pools (made if missing)."""
        self.ensure_pools(maps_pool, blocks_pool)
        c = self.rados()
        try:
            with c.open_ioctx(maps_pool) as m, c.open_ioctx(blocks_pool) as b:
                copy_into(m, maps_dir)
                copy_into(b, blocks_dir)
        finally:
            c.shutdown()

    def user(self, name: str, caps: list[str], keyring: Path) -> Path:
        """A cephx user ``client.NAME`` with ``caps`` (``["mon", "allow r", ...]``), its keyring written."""
        c = self.rados()
        try:
            r, buf, err = c.mon_command(json.dumps({"prefix": "auth get-or-create", "entity": f"client.{name}",
                                                    "caps": caps, "format": "plain"}), b"")
        finally:
            c.shutdown()
        assert r == 0, err
        keyring.write_bytes(buf)
        return keyring

    def ensure_pools(self, *names: str) -> None:
        c = self.rados()
        try:
            for p in names:
                if not c.pool_exists(p):
                    c.create_pool(p)
        finally:
            c.shutdown()


def _started() -> tuple[Path, subprocess.CompletedProcess]:
    """A dev cluster in a fresh dir. A start that fails is tried once more in another dir (another
    port block), with a warning that quotes why: the daemons rarely fail to start on a loaded
    machine, and a session's every RADOS test then errors, which says nothing of archverify."""
    why = ""
    for attempt in (1, 2):
        d = Path(tempfile.mkdtemp(prefix="archverify-ceph-"))
        try:
            out = subprocess.run([str(SCRIPT), "start", str(d)], check=True, capture_output=True, text=True,
                                 timeout=120, env=dict(os.environ))
        except subprocess.CalledProcessError as e:
            subprocess.run([str(SCRIPT), "purge", str(d)], capture_output=True, timeout=60)
            why = (e.stderr or e.stdout or f"exit {e.returncode}, nothing said").strip()
            if attempt == 1:
                import warnings

                warnings.warn(f"ceph-dev-cluster start failed, trying again: {why}", stacklevel=1)
            continue
        return d, out
    raise RuntimeError(f"ceph-dev-cluster start failed twice: {why}")


@pytest.fixture(scope="session")
def ceph_cluster():
    why = missing_packages()
    if why:
        print("\n" + "!" * 20 + " " + why, flush=True)
        pytest.skip(why)
    d, out = _started()
    conf = Path(out.stdout.strip().splitlines()[-1])
    cluster = Cluster(d, conf, d / "keyring")
    try:
        yield cluster
    finally:
        cluster.close_clients()
        left = librados_threads()
        subprocess.run([str(SCRIPT), "purge", str(d)], capture_output=True, timeout=120)
    # a client that no guard knows of would still be connected at exit: the crash it can cause there
    # comes once in many runs, this failure every time
    assert left == 0, (f"{left} librados messenger threads run after every known client was shut down: "
                       "a client made outside verify/backends/rados/clients.py is still connected")


def librados_threads() -> int:
    """This process's librados messenger threads (each connected client runs its own)."""
    n = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            n += (task / "comm").read_text().startswith("msgr-worker")
        except OSError:  # the thread ended meanwhile
            pass
    return n


def copy_into(ioctx, root: Path) -> int:
    """Every file of a filed store (ROOT/d1/d2/d3/NAME) as the RADOS object NAME."""
    n = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            ioctx.write_full(f, (Path(dirpath) / f).read_bytes())
            n += 1
    return n


def aio_write_all(io, items) -> None:
    """(name, bytes) pairs written whole, 512 aio writes in flight at most."""
    pending = []
    for name, data in items:
        pending.append(io.aio_write_full(name, data))
        if len(pending) >= 512:
            for c in pending:
                c.wait_for_complete()
            pending = []
    for c in pending:
        c.wait_for_complete()


def volumes(rng: random.Random, count: int, entries: int, block_bytes: int) -> tuple[list, list]:
    """``count`` healthy v2 maps ``vol-NNNNN`` of ``entries`` entries each, every entry a Pithos block
    of ``block_bytes`` random bytes: the maps pool's (name, bytes) pairs and the blocks pool's."""
    maps, blocks = [], []
    for v in range(count):
        ents = []
        for _ in range(entries):
            data = rng.randbytes(block_bytes)
            blocks.append((hashlib.sha256(data.rstrip(b"\0")).hexdigest(), data))  # its Pithos name
            ents.append(F.Entry(blocks[-1][0], 0))
        header, md = F.write_v2(entries * F.BLOCK_SIZE_4M, ents, name=f"vol-{v:05d}")
        maps += [(f"vol-{v:05d}", header), *md.items()]
    return maps, blocks


@dataclass
class RadosStore:
    maps_pool: str
    blocks_pool: str
    planted: set[tuple[str, str]] = field(default_factory=set)  # (kind, name) in the maps pool
    locks: dict[str, str] = field(default_factory=dict)  # lock name -> owner ("" for radosd's leftovers)
    maps_objects: int = 0
    blocks_objects: int = 0


def write_rados_store(ioctx_maps, ioctx_blocks, seed: int = 3) -> RadosStore:
    """Every map kind planted, beside healthy maps, locks, hash and temp objects."""
    rng = random.Random(seed)
    st = RadosStore(ioctx_maps.get_pool_name(), ioctx_blocks.get_pool_name())
    maps: dict[str, bytes] = {}

    def v2(name, size, entries, flags=0, epoch=1, blocksize=F.BLOCK_SIZE_4M, drop=()):
        header, data = F.write_v2(size, entries, blocksize, flags, epoch, name=name)
        maps[name] = header + bytes(512 - len(header))  # direct I/O pads headers to 512 bytes
        for k, v in data.items():
            if k not in drop:
                maps[k] = v

    def zeros(n):
        return [F.Entry(F.ZERO_HASH, F.OF_ZERO)] * n

    blocks = {}
    for v in range(10):
        ents = []
        for i in range(4):
            nm = rng.randbytes(32).hex()
            blocks[nm] = rng.randbytes(64)
            ents.append(F.Entry(nm, 0))
        v2(f"vol-{v:03d}", 4 * F.BLOCK_SIZE_4M, ents)
    # a v0 map upgraded in place: read-only v2 header over stale digests, keeps its 64-hex name
    hs = [rng.randbytes(32).hex() for _ in range(3)]
    up = hashlib.sha256(b"upgraded-v0").hexdigest()
    maps[up] = F.pack_v2_header(3 * F.BLOCK_SIZE_4M, flags=F.MF_READONLY, epoch=0) + F.write_v0(hs)[32:]
    _, md = F.write_v2(3 * F.BLOCK_SIZE_4M, [F.Entry(h, 0) for h in hs], flags=1, epoch=0, name=up)
    maps.update(md)
    # a multi-block v2 map (small blocksize), complete
    v2("small-bs-vol", 5 * 256, zeros(5), blocksize=256)

    def plant(kind, name):
        st.planted.add((kind, name))

    # map_v1: entries past the 64 bytes read (the size needs a stat), and a short one
    maps["archip_legacy-vol"] = F.write_v1(3 * F.BLOCK_SIZE_4M, [(0, F.ZERO_HASH), (1, hs[0]), (0, hs[1])])
    plant("map_v1", "archip_legacy-vol")
    maps["archip_tiny-v1"] = F.write_v1(F.BLOCK_SIZE_4M, [(1, hs[2])])
    plant("map_v1", "archip_tiny-v1")
    # map_v0: a Pithos map never upgraded
    v0 = [rng.randbytes(32).hex() for _ in range(2)]
    nm = hashlib.sha256(b"never-upgraded").hexdigest()
    maps[nm] = F.write_v0(v0)
    plant("map_v0", nm)
    # map_upgrade_incomplete: v2 (purge begun) and v1 leftovers next to the upgraded maps
    v2("archip_vol-001", 2 * F.BLOCK_SIZE_4M, zeros(2), flags=F.MF_DELETED, epoch=0)
    plant("map_upgrade_incomplete", "archip_vol-001")
    maps["archip_vol-002"] = F.write_v1(F.BLOCK_SIZE_4M, [(0, F.ZERO_HASH)])
    plant("map_upgrade_incomplete", "archip_vol-002")
    # map_invalid_name: a rename that failed (name under 6 bytes), and a _<16 hex> inside the name
    v2("archip_vm", F.BLOCK_SIZE_4M, zeros(1), epoch=0)
    plant("map_invalid_name", "archip_vm")
    v2("snap_0123456789abcdef_x", F.BLOCK_SIZE_4M, zeros(1), epoch=0)
    plant("map_invalid_name", "snap_0123456789abcdef_x")
    # map_data_missing: none of it, and the second of two blocks
    maps["lost-mapdata-vol"] = F.pack_v2_header(2 * F.BLOCK_SIZE_4M)
    plant("map_data_missing", "lost-mapdata-vol")
    v2("half-mapdata-vol", 4 * 256, zeros(4), blocksize=256, drop=("half-mapdata-vol_0000000000000001",))
    plant("map_data_missing", "half-mapdata-vol")
    # map_corrupt: unknown version, bad blocksize, truncated v1 (short and past the read), short header
    maps["corrupt-version"] = F.V2_HEADER.pack(F.V2_SIGNATURE, 7, 0, F.BLOCK_SIZE_4M, 0, 1)
    maps["corrupt-blocksize"] = F.V2_HEADER.pack(F.V2_SIGNATURE, 2, 4096, 1000, 0, 1)
    maps["archip_truncated"] = F.write_v1(2 * F.BLOCK_SIZE_4M, [(0, F.ZERO_HASH)] * 2)[:40]
    maps["archip_truncated-long"] = F.write_v1(10 * F.BLOCK_SIZE_4M, [(0, F.ZERO_HASH)] * 10)[:200]
    maps["corrupt-short"] = F.pack_v2_header(0)[:20]
    for nm in ("corrupt-version", "corrupt-blocksize", "archip_truncated", "archip_truncated-long",
               "corrupt-short"):
        plant("map_corrupt", nm)
    # locks: radosd's empty leftovers are normal; one held
    maps["vol-003_lock"] = b""
    maps["vol-004_lock"] = b""
    maps["vol-000_lock"] = b"node1_1234"
    st.locks = {"vol-003_lock": "", "vol-004_lock": "", "vol-000_lock": "node1_1234"}
    # neither maps nor findings: a hash and a temp object
    maps["vol-005_hash"] = hashlib.sha256(b"x").hexdigest().encode()
    maps["vol-005_locknode2_77_01"] = b"node2_77"
    # not_a_map: plain names whose bytes the mapper finds no signature in
    maps["README-not-a-map"] = b"hello\n"
    maps["empty-object"] = b""
    plant("not_a_map", "README-not-a-map")
    plant("not_a_map", "empty-object")
    for k, v in maps.items():
        ioctx_maps.write_full(k, v)
    blocks["some-object_lock"] = b""
    for k, v in blocks.items():
        ioctx_blocks.write_full(k, v)
    st.maps_objects, st.blocks_objects = len(maps), len(blocks)
    return st


@pytest.fixture(scope="session")
def rados_store(ceph_cluster):
    """Pools ``maps`` and ``blocks`` loaded once per session."""
    c = ceph_cluster.rados()
    try:
        for p in ("maps", "blocks"):
            if not c.pool_exists(p):
                c.create_pool(p)
        with c.open_ioctx("maps") as m, c.open_ioctx("blocks") as b:
            st = write_rados_store(m, b)
    finally:
        c.shutdown()
    return st
