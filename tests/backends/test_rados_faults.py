"""Faults and bad input on RADOS, as real ``scan`` and ``check`` processes on real Ceph, with the
librados extension and the python-rados engine.

The OSD stopped in the middle of a run (SIGSTOP: a hung OSD; SIGKILL: a crashed one) is tried on
a throwaway cluster of this module's own (scripts/ceph-dev-cluster), so that the session's
cluster is never disturbed: the run ends within its ``--op-timeout`` with one line and exit 2,
never a hang and never a report. A missing pool, a key without read caps, zero-length,
oversized and garbage map objects and names that are not valid map names use the session's
cluster (pools and namespaces of their own).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from one_line import one_line_error
from rados_cluster import SCRIPT, Cluster, aio_write_all, missing_packages, volumes
from verify.core import findings as K
from verify.core import formats as F
from verify.ops.sample import pithos_hash

ROOT = Path(__file__).resolve().parents[2]
ENGINES = ["c", "python"]
# objects of the maps store that are no map: empty, garbage, a signed header cut to 13 bytes
NOT_MAPS = {"zero-length-vol": "0 bytes, no map signature; starts (empty)",
            "archip_zero-length": "0 bytes, no map signature; starts (empty)",
            "garbage-vol": "4096 bytes, no map signature; starts ",
            "archip_garbage": "100 bytes, no map signature; starts "}
# names that are not UTF-8 (librados takes any bytes but NUL): stray entries in either pool, as on filed
NOT_UTF8 = {b"bad-\xff\xfe-vol": "maps", b"caf\xe9-latin1-vol": "maps", b"blk-\xc0\x80-obj": "blocks"}
OP_TIMEOUT = 2  # --op-timeout of the runs whose OSD is stopped
# the stop to the end: the op timeout, a window of reads begun just before the stop (its own
# timeout), and the interpreter's exit; a run that retried or went on object by object takes minutes
DEADLINE_S = 2 * OP_TIMEOUT + 4
PROGRESS = re.compile(r"^archverify: progress: (.*?): (?:started|done: |([\d,]+)[/ ])")  # "N files" or "N/~T files"


def _engine_env(engine: str) -> dict:
    if engine == "c":
        pytest.importorskip("verify.native._rados", reason="the librados extension is not built (librados-dev missing)")
    return {**os.environ, "PYTHONPATH": str(ROOT), "ARCHVERIFY_RADOS_ENGINE": engine}


def _archverify(engine: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "verify", *args], capture_output=True, text=True, cwd=ROOT,
                          env=_engine_env(engine), timeout=timeout)


def _cluster_args(c: Cluster, *more: str) -> list[str]:
    return ["--backend", "rados", "-c", str(c.conf), "-k", str(c.keyring), "--no-progress", *more]


# ---- the OSD stopped mid-run, on a cluster of this module's own -------------------------------


class Lone:
    """A throwaway single-node cluster with pools ``maps`` and ``blocks``: 1500 v2 maps of two
    entries each, naming 3000 Pithos blocks. A test that kills the OSD marks it broken (memstore
    keeps nothing across a crash): the next one makes it anew."""

    MAPS = 1500

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="archverify-ceph-faults-"))
        self.cluster: Cluster | None = None

    def up(self) -> Cluster:
        if self.cluster is not None:
            return self.cluster
        self.purge()
        out = subprocess.run([str(SCRIPT), "start", str(self.dir)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        self.cluster = Cluster(self.dir, Path(out.stdout.strip().splitlines()[-1]), self.dir / "keyring")
        self._load()
        return self.cluster

    def _load(self) -> None:
        maps, blocks = volumes(random.Random(20500), self.MAPS, 2, 64)
        self.cluster.ensure_pools("maps", "blocks")
        c = self.cluster.rados()
        try:
            for pool, items in (("maps", maps), ("blocks", blocks)):
                with c.open_ioctx(pool) as io:
                    aio_write_all(io, items)
        finally:
            c.shutdown()

    def osd_pid(self) -> int:
        return int((self.dir / "run" / "osd.0.pid").read_text())

    def broken(self) -> None:
        self.cluster = None

    def purge(self) -> None:
        subprocess.run([str(SCRIPT), "purge", str(self.dir)], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def lone():
    why = missing_packages()
    if why:
        pytest.skip(why)
    one = Lone()
    try:
        yield one
    finally:
        one.purge()
        shutil.rmtree(one.dir, ignore_errors=True)


class Watched:
    """A real run whose stderr is read as it comes, so that the OSD is stopped mid-stage."""

    def __init__(self, engine: str, args: list[str]):
        env = {**_engine_env(engine), "ARCHVERIFY_PROGRESS_INTERVAL": "0.05"}
        self.p = subprocess.Popen([sys.executable, "-m", "verify", *args], cwd=ROOT, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self.seen: dict[str, threading.Event] = {}
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.p.stderr:
            self.lines.append(line.rstrip("\n"))
            m = PROGRESS.match(line)
            if m and m.group(2) and int(m.group(2).replace(",", "")) > 0:
                self.seen.setdefault(m.group(1), threading.Event()).set()
        for ev in self.seen.values():
            ev.set()

    def wait_for(self, stage: str, timeout: float = 60) -> None:
        """Until the stage has shown progress past its start."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if any(s.startswith(stage) for s in self.seen) or self.p.poll() is not None:
                return
            time.sleep(0.005)
        self.p.kill()
        pytest.fail(f"no progress of {stage} within {timeout}s: {self.lines}")

    def finish(self) -> tuple[int, str, str]:
        try:
            self.p.wait(timeout=DEADLINE_S + 30)  # stdout is empty or short (-o takes the report)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            pytest.fail(f"still running {DEADLINE_S + 30}s after the OSD stopped: a hang\n{self.lines}")
        out = self.p.stdout.read()
        self.reader.join(5)
        err = "\n".join(ln for ln in self.lines if not ln.startswith("archverify: progress:"))
        return self.p.returncode, out, err


STAGES = {"scan": "scan (rados)", "check": "check: references"}


def _stopped_midway(lone: Lone, engine: str, cmd: str, sig: signal.Signals, tmp_path: Path) -> str:
    c = lone.up()
    report = tmp_path / f"{cmd}-{engine}.json"
    args = [cmd, *_cluster_args(c, "--pool", "maps", "--blocks-pool", "blocks", "--op-timeout", str(OP_TIMEOUT),
                                "--inflight", "2", "--format", "json", "-o", str(report))]
    args[args.index("--no-progress")] = "--progress"
    run = Watched(engine, args)
    run.wait_for(STAGES[cmd])
    assert run.p.poll() is None, f"the {cmd} ended before the OSD was stopped: {run.lines}"
    pid = lone.osd_pid()
    t0 = time.monotonic()
    os.kill(pid, sig)
    try:
        code, out, err = run.finish()
        took = time.monotonic() - t0
    finally:
        if sig == signal.SIGSTOP:
            os.kill(pid, signal.SIGCONT)
        else:
            lone.broken()
    line = one_line_error(code, out, err)
    assert "--op-timeout" in line and "pool 'maps'" in line or "pool 'blocks'" in line, line
    assert took < DEADLINE_S, f"{took:.1f}s after the OSD stopped: {line}"
    assert not report.exists()  # no report of the part read, which would read as a whole store
    return line


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("cmd", ["scan", "check"])
def test_osd_hung_mid_run(lone, engine, cmd, tmp_path):
    """SIGSTOP to the OSD while the scan reads map headers, or the check its references."""
    _stopped_midway(lone, engine, cmd, signal.SIGSTOP, tmp_path)


@pytest.mark.parametrize("engine", ENGINES)
def test_osd_killed_mid_check(lone, engine, tmp_path):
    """SIGKILL to the OSD in the check's reference pass: the client's ops wait for an OSD that is gone."""
    _stopped_midway(lone, engine, "check", signal.SIGKILL, tmp_path)


# ---- refused runs on the session's cluster -----------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_missing_pool(ceph_cluster, engine):
    ceph_cluster.ensure_pools("maps", "blocks")
    for cmd in ("scan", "check"):
        for pools, missing in ((("no-such-maps", "blocks"), "no-such-maps"), (("maps", "no-such-blocks"), "no-such-blocks")):
            r = _archverify(engine, cmd, *_cluster_args(ceph_cluster, "--pool", pools[0], "--blocks-pool", pools[1]))
            line = one_line_error(r.returncode, r.stdout, r.stderr)
            assert f"pool {missing!r}" in line and "does not exist" in line, (cmd, line)


@pytest.fixture(scope="module")
def users(ceph_cluster, tmp_path_factory) -> dict[str, Path]:
    """client.noread (mon 'allow r', no osd caps) and client.otherpool (osd caps on another pool)."""
    d = tmp_path_factory.mktemp("keys")
    return {user: ceph_cluster.user(user, caps, d / f"{user}.keyring") for user, caps in
            (("noread", ["mon", "allow r"]), ("otherpool", ["mon", "allow r", "osd", "allow r pool=elsewhere"]))}


@pytest.mark.parametrize("engine", ENGINES)
def test_key_without_read_caps(ceph_cluster, users, engine):
    ceph_cluster.ensure_pools("maps", "blocks")
    for user, keyring in users.items():
        for cmd in ("scan", "check"):
            r = _archverify(engine, cmd, "--backend", "rados", "-c", str(ceph_cluster.conf), "-k", str(keyring),
                            "--id", user, "--pool", "maps", "--blocks-pool", "blocks", "--no-progress")
            line = one_line_error(r.returncode, r.stdout, r.stderr)
            assert f"client.{user}" in line and "pool 'maps'" in line and "allow r pool=maps" in line, line


# ---- bad map objects and names, on the session's cluster ----------------------------------------


@pytest.fixture(scope="module")
def bad_ns(ceph_cluster) -> tuple[str, dict]:
    """A namespace of zero-length, oversized and garbage map objects and of names no map should have,
    beside one healthy map; returns it and what scan reports of each name (kind, or None)."""
    ceph_cluster.ensure_pools("maps", "blocks")
    ns = f"bad-{uuid.uuid4().hex[:8]}"
    rng = random.Random(20501)
    block = rng.randbytes(64)
    ok_hdr, ok_md = F.write_v2(F.BLOCK_SIZE_4M, [F.Entry(pithos_hash(block), 0)], name="healthy-vol")

    def v2(name: str) -> dict[str, bytes]:
        header, md = F.write_v2(F.BLOCK_SIZE_4M, [F.Entry(pithos_hash(block), 0)], name=name)
        return {name: header, **md}

    objs: dict[str | bytes, bytes] = {"healthy-vol": ok_hdr, **ok_md}
    expect: dict[str | bytes, str | None] = {"healthy-vol": None}
    # zero-length and garbage under map names, plain and archip_: no map (the mapper finds no signature)
    for name, data in (("zero-length-vol", b""), ("archip_zero-length", b""), ("garbage-vol", rng.randbytes(4096)),
                       ("archip_garbage", rng.randbytes(100))):
        if data and data[:4] in (F.V2_SIGNATURE.to_bytes(4, "big"), b"\x01\x00\x00\x00"):
            data = b"\x00" + data[1:]  # random bytes that happen to be signed would be another kind
        objs[name], expect[name] = data, "not_a_map"
    # garbage behind a v2 signature, and a real v2 header cut to 13 bytes: corrupt maps (a signature
    # that does not parse is the mapper's "corrupt map", not "no signature")
    objs["garbage-signed"], expect["garbage-signed"] = b"AMF." + rng.randbytes(60), "map_corrupt"
    objs["cut-v2-header"], expect["cut-v2-header"] = ok_hdr[:13], "map_corrupt"
    # hash and temp objects: neither maps nor findings, whatever their bytes
    objs["healthy-vol_hash"], expect["healthy-vol_hash"] = pithos_hash(block).encode(), None
    objs["healthy-vol_locknode1_5_01"], expect["healthy-vol_locknode1_5_01"] = b"node1_5", None
    # names that are not UTF-8, holding a v2 map (maps pool) or a block (blocks pool)
    for name, store in NOT_UTF8.items():
        if store == "maps":
            objs[name] = ok_hdr
        expect[name] = "stray_entry"
    # oversized: a v2 header followed by 8 MiB of junk (the mapper reads the header only), a v1 map
    # past its entries (its size decides), and a short v2 header object of a map 1 TiB large
    objs.update(v2("oversized-v2"))
    objs["oversized-v2"] += rng.randbytes(8 << 20)
    expect["oversized-v2"] = None
    objs["archip_oversized-v1"] = F.write_v1(F.BLOCK_SIZE_4M, [(0, F.ZERO_HASH)]) + rng.randbytes(8 << 20)
    expect["archip_oversized-v1"] = "map_v1"
    objs["huge-vol"], expect["huge-vol"] = F.pack_v2_header(1 << 40), "map_data_missing"
    # names: a _<16 hex> inside (map_invalid_name); a newline, a tab, spaces and 600 bytes (the
    # pool holds them: a map's name is what radosd was given)
    objs.update(v2("snap_0123456789abcdef_x"))
    expect["snap_0123456789abcdef_x"] = "map_invalid_name"
    for name in ("line\nbreak-vol", "tab\tvol", " spaced vol ", "x" * 600):
        objs.update(v2(name))
        expect[name] = None
    c = ceph_cluster.rados()
    try:
        with c.open_ioctx("maps") as io, c.open_ioctx("blocks") as bio:
            io.set_namespace(ns)
            bio.set_namespace(ns)
            for k, v in objs.items():
                if isinstance(k, str):
                    io.write_full(k, v)
            bio.write_full(pithos_hash(block), block)
    finally:
        c.shutdown()
    # python-rados names objects by str only: the rados tool writes the names that are not UTF-8
    payload = ceph_cluster.dir / f"{ns}.payload"
    for name, store in NOT_UTF8.items():
        payload.write_bytes(objs[name] if store == "maps" else block)
        subprocess.run([b"rados", b"-c", os.fsencode(ceph_cluster.conf), b"-k", os.fsencode(ceph_cluster.keyring),
                        b"-p", store.encode(), b"-N", ns.encode(), b"put", name, os.fsencode(payload)],
                       check=True, timeout=60, capture_output=True)
    return ns, expect


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_map_objects_and_names(ceph_cluster, bad_ns, engine):
    """Each bad object named by its finding (escaped, one line each), the others none; the check
    adds what it finds of the same objects; nothing unreadable, no traceback, exit 1."""
    ns, expect = bad_ns
    flags = _cluster_args(ceph_cluster, "--pool", "maps", "--blocks-pool", "blocks", "--namespace", ns)
    for cmd in ("scan", "check"):
        r = _archverify(engine, cmd, *flags, "--format", "json")
        assert r.returncode == 1 and r.stderr == "", (cmd, r.stderr)
        doc = json.loads(r.stdout)
        got: dict[str, set[str]] = {}
        for f in doc["findings"]:
            blocks_name = f["name"] == K.escape_name(b"blk-\xc0\x80-obj")
            assert f["store"] == ("blocks" if blocks_name else "maps"), f
            got.setdefault(f["name"], set()).add(f["kind"])
        named = {K.escape_name(n): k for n, k in expect.items()}
        assert set(got) <= set(named), (cmd, set(got) - set(named))
        for name, kind in named.items():
            assert got.get(name, set()) == ({kind} if kind else set()), (cmd, name)
        details = {f["name"]: f["detail"] for f in doc["findings"] if f["kind"] in ("not_a_map", "stray_entry")}
        for name, text in NOT_MAPS.items():
            assert details[name].startswith(text), (cmd, name, details[name])
        assert len(details["garbage-vol"]) == len(NOT_MAPS["garbage-vol"]) + 32  # its first 16 bytes in hex
        for name in NOT_UTF8:
            assert details[K.escape_name(name)] == "name is not valid UTF-8", (cmd, name)
        assert "unreadable" not in {k for ks in got.values() for k in ks}
        human = _archverify(engine, cmd, *flags)
        assert human.returncode == 1 and "Traceback" not in human.stderr, human.stderr
        assert all(ln.isprintable() for ln in human.stdout.splitlines()), human.stdout  # names escaped
