"""pithos-check on a RADOS maps pool: the real PostgreSQL and the session's real single-node Ceph.

The Pithos database and maps store of tests/ops/test_pithosdb.py, the maps copied
object by object into a pool (a namespace of its own): the same rows against the
same maps must give the same findings, counters and exit code on filed and on RADOS
(the paths aside: a pool has none), with either RADOS engine, with ``--orphans`` too.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from one_line import one_line_error
from pg_server import pithos_database
from verify.core import formats as F
from verify.backends.rados import backend as rb
from verify.cli.main import cli
from verify.backends.maplookup import LookupError_
from verify.ops.pithos.sample import create_schema, load_rows, write_pithos_sample

pytestmark = [pytest.mark.postgres, pytest.mark.rados]
POOL = "pithos-maps"
ENGINES = ["c", "python"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_pithos_sample(tmp_path_factory.mktemp("pithos-rados") / "maps")


@pytest.fixture(scope="module")
def db(pg_admin, sample):
    return pithos_database(pg_admin, "pithos_rados", sample.rows)


@pytest.fixture(scope="module")
def pool(ceph_cluster, sample):
    """The sample's maps store in a namespace of POOL: every file ROOT/d1/d2/d3/NAME as object NAME."""
    ns = f"pithos-{uuid.uuid4().hex[:8]}"
    ceph_cluster.ensure_pools(POOL)
    c = ceph_cluster.rados()
    copied = set()
    try:
        with c.open_ioctx(POOL) as io:
            io.set_namespace(ns)
            for dirpath, _dirs, files in os.walk(sample.maps_dir):
                for f in files:
                    assert f not in copied  # one file per name, or the copy would lose one
                    io.write_full(f, (Path(dirpath) / f).read_bytes())
                    copied.add(f)
    finally:
        c.shutdown()
    return ns


def cluster_flags(cluster, ns, pool=POOL):
    return ["--pool", pool, "-c", str(cluster.conf), "--keyring", str(cluster.keyring), "--namespace", ns]


def run(*args, env=None):
    r = CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def check_json(db_url, store_flags, *extra, engine=None):
    env = {"ARCHVERIFY_RADOS_ENGINE": engine} if engine == "python" else None
    code, out, err = run("pithos-check", "--db", db_url, *store_flags, "--format", "json", "-j", "2", *extra, env=env)
    assert out, err
    return code, json.loads(out)


def placeless(doc) -> list:
    """The findings without their paths (a pool has none), in a stable order."""
    return sorted(json.dumps({k: v for k, v in f.items() if k != "path"}, sort_keys=True) for f in doc["findings"])


def pithos_counters(doc) -> dict:
    return {k: v for k, v in doc["summary"]["counters"].items() if k.startswith("pithos.")}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("orphans", [False, True], ids=["rows", "orphans"])
def test_same_findings_as_filed_for_the_same_maps(db, sample, ceph_cluster, pool, engine, orphans):
    extra = ["--orphans"] if orphans else []
    fcode, fdoc = check_json(db, ["--maps-dir", sample.maps_dir], *extra)
    rcode, rdoc = check_json(db, cluster_flags(ceph_cluster, pool), *extra, engine=engine)
    assert rcode == fcode == 1
    assert placeless(rdoc) == placeless(fdoc)
    assert pithos_counters(rdoc) == pithos_counters(fdoc)
    got = {(f["kind"], f["name"]) for f in rdoc["findings"]}
    want = sample.planted | ({("pithos_map_orphan", n) for n in sample.orphans} if orphans else set())
    assert got == want
    assert all(f["path"] is None for f in rdoc["findings"])
    assert rdoc["stores"]["maps"]["type"] == "rados" and rdoc["stores"]["maps"]["pool"] == POOL
    assert ("python-rados" in rdoc["stores"]["maps"]["engine"]) == (engine == "python")


def test_mixed_config_reads_the_maps_pool(db, sample, ceph_cluster, pool, tmp_path):
    """Filed blocks, RADOS maps: the maps part answers."""
    (tmp_path / "blocks").mkdir()
    code, doc = check_json(db, [*cluster_flags(ceph_cluster, pool), "--blocks-dir", tmp_path / "blocks"])
    assert code == 1 and {(f["kind"], f["name"]) for f in doc["findings"]} == sample.planted
    assert doc["stores"]["maps"]["type"] == "rados"


def test_healthy_rows_exit_0(pg_admin, sample, ceph_cluster, pool):
    url = pg_admin("pithos_rados_healthy")
    healthy = [r for r in sample.rows if r.mapfile is None or not any(r.mapfile.endswith(n) for _, n in sample.planted)]
    with psycopg.connect(url) as conn:
        create_schema(conn)
        load_rows(conn, healthy, nodes=max(r.node for r in sample.rows))
    code, doc = check_json(url, cluster_flags(ceph_cluster, pool))
    assert code == 0 and doc["findings"] == []
    assert pithos_counters(doc)["pithos.rows"] == sum(r.mapfile is not None for r in healthy)


@pytest.mark.parametrize("engine", ENGINES)
def test_names_only_a_pool_holds_and_names_it_cannot(ceph_cluster, engine):
    """radosd has no shortest name (filed's 6 bytes), and names RADOS cannot hold are bad names,
    never errors: empty, NUL, longer than the OSDs allow (python-rados: not UTF-8 either)."""
    ceph_cluster.ensure_pools(POOL)
    be = rb.RadosBackend(POOL, None, str(ceph_cluster.conf), None, str(ceph_cluster.keyring), engine=engine,
                         namespace=f"names-{uuid.uuid4().hex[:8]}")
    be.validate()
    be.write("maps", b"v2", F.pack_v2_header(F.BLOCK_SIZE_4M, flags=F.MF_READONLY, epoch=0))
    be.write("maps", b"archip_v1", F.write_v1(F.BLOCK_SIZE_4M, [(0, F.ZERO_HASH)]))
    be.write("maps", "\u03bb-vol".encode(), F.write_v0([F.ZERO_HASH]))
    long_name = "x" * 5000
    with be.maps_lookup(2) as lookup:
        got = lookup.lookup_maps(["v2", "v1", "\u03bb-vol", "", "a\0b", long_name, "gone"], [None, None, 2, 1, 1, 1, 1])
        assert (got["v2"].object, got["v2"].where, got["v2"].header.cls) == ("v2", "pool", F.HeaderClass.V2)
        assert (got["v1"].object, got["v1"].header.cls) == ("archip_v1", F.HeaderClass.V1)
        assert (got["\u03bb-vol"].v0_entries, got["\u03bb-vol"].v0_first_zero) == (1, True)
        assert got[""] == LookupError_("", 0) and got["a\0b"] == LookupError_("a\0b", 0)
        assert got[long_name] == LookupError_(long_name, 0)
        assert got["gone"] is None
        if engine == "python":
            bad = "vol-\udcff"  # a name from bytes that are not UTF-8
            assert lookup.lookup_maps([bad])[bad] == LookupError_(bad, 0)
        assert {n for n, _p, _h in lookup.list_maps()} == {"v2", "archip_v1"}  # v0 only by a 64-hex name


def _osd_bytes_out(cluster) -> int:
    """Bytes the OSD has sent in replies to reads so far (its perf counters, through its admin socket)."""
    import subprocess

    p = subprocess.run(["ceph", "--admin-daemon", str(cluster.dir / "run" / "osd.0.asok"), "perf", "dump"],
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout)["osd"]["op_out_bytes"]


@pytest.mark.parametrize("engine", ENGINES)
def test_large_maps_sized_by_stat_and_read_only_as_far_as_a_count_needs(ceph_cluster, engine):
    """Maps of 4 KiB or more: their size from a stat, never a read of their whole length; a v0
    map's entries read only up to what its row's count needs."""
    ceph_cluster.ensure_pools(POOL)
    be = rb.RadosBackend(POOL, None, str(ceph_cluster.conf), None, str(ceph_cluster.keyring), engine=engine,
                         namespace=f"large-{uuid.uuid4().hex[:8]}")
    be.validate()
    digests = [bytes([1 + i % 250]) * 31 + bytes([i % 256]) for i in range(40000)]  # no zero entry
    v0 = b"".join(digests)  # 1.28 MB
    v1 = F.write_v1(200 * F.BLOCK_SIZE_4M, [(0, F.ZERO_HASH)] * 200)  # 6,612 bytes
    v2 = F.pack_v2_header(F.BLOCK_SIZE_4M, flags=F.MF_READONLY, epoch=0) + bytes(1 << 20)
    for name, data in (("v0-big", v0), ("v1-big", v1), ("v1-cut", v1[:5000]), ("v2-big", v2)):
        be.write("maps", name.encode(), data)
    with be.maps_lookup(1) as lookup:
        before = _osd_bytes_out(ceph_cluster)
        got = lookup.lookup_maps(["v0-big", "v1-big", "v1-cut", "v2-big"], [None, None, None, None])
        unsized = _osd_bytes_out(ceph_cluster) - before
        counted = lookup.lookup_maps(["v0-big"], [300])["v0-big"]
        counted_bytes = _osd_bytes_out(ceph_cluster) - before - unsized
    assert (got["v0-big"].header.cls, got["v0-big"].object_size, got["v0-big"].v0_entries) == \
        (F.HeaderClass.V0, len(v0), None)
    assert (got["v1-big"].header.cls, got["v1-big"].object_size) == (F.HeaderClass.V1, len(v1))
    assert (got["v1-cut"].header.cls, got["v1-cut"].object_size) == (F.HeaderClass.CORRUPT_V1_SHORT, 5000)
    assert (got["v2-big"].header.cls, got["v2-big"].object_size) == (F.HeaderClass.V2, len(v2))
    assert (counted.v0_entries, counted.object_size) == (300, len(v0))
    if engine == "c":  # python-rados reads objects whole: the fallback, not the measure
        assert unsized <= 4 * (4096 + 64), unsized  # the first 4 KiB of each, and a stat reply
        assert counted_bytes <= 4096 + 32 * 300 + 2 * 64, counted_bytes


def test_missing_pool_is_one_line(db, ceph_cluster):
    one_line_error(*run("pithos-check", "--db", db, *cluster_flags(ceph_cluster, "default", "no-such-pool")))


def test_unreachable_cluster_is_one_line(db, ceph_cluster, tmp_path):
    conf = tmp_path / "ceph.conf"
    lines = ceph_cluster.conf.read_text().splitlines()
    conf.write_text("\n".join("mon host = [v2:127.0.0.1:1]" if ln.startswith("mon host") else ln for ln in lines) + "\n")
    one_line_error(*run("pithos-check", "--db", db, "--pool", POOL, "-c", conf, "--keyring", ceph_cluster.keyring,
                          "--connect-timeout", "2"))


# ---- as operators run it: at a terminal, and stopped by Ctrl-C / SIGTERM -------------------

ROOT = Path(__file__).resolve().parents[2]


def _process(db_url, cluster, ns, *extra):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "verify", "pithos-check", "--db", db_url,
                             *map(str, cluster_flags(cluster, ns)), "-j", "2", *map(str, extra)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": "1"})


@pytest.fixture(scope="module")
def many_rows_db(pg_admin, sample):
    """60,000 rows, each naming one of the sample's maps: enough work to be interrupted in."""
    import random

    url = pg_admin("pithos_rados_many")
    rows = [r for r in sample.rows if r.mapfile is not None]
    rng = random.Random(7)
    many = [rows[rng.randrange(len(rows))] for _ in range(60000)]
    with psycopg.connect(url) as conn:
        create_schema(conn)
        load_rows(conn, many, nodes=max(r.node for r in sample.rows))
    return url


def _working(pid: int) -> bool:
    """The command has loaded a compiled extension (verify/_rados, _probe): its work begins."""
    try:
        return "/verify/_" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return True  # already gone: nothing to wait for


def test_signals_stop_it_cleanly(many_rows_db, ceph_cluster, pool, tmp_path):
    """SIGINT/SIGTERM at seeded moments of a run: 130/143 and the one line, no report left; or,
    after the work, a normal end with its report. Never a traceback or a crash."""
    import random
    import signal
    import time

    def start(out):
        return _process(many_rows_db, ceph_cluster, pool, "--format", "json", "-o", out / "report.json")

    base = tmp_path / "base"
    base.mkdir()
    t0 = time.monotonic()
    p = start(base)
    _, err = p.communicate(timeout=300)
    took = time.monotonic() - t0
    assert p.returncode == 1 and "Traceback" not in err.decode(), err
    assert json.loads((base / "report.json").read_text())["summary"]["counters"]["pithos.rows"] == 60000
    rng = random.Random(2026)
    stopped = 0
    for i in range(4):
        out = tmp_path / f"run{i}"
        out.mkdir()
        sig = (signal.SIGINT, signal.SIGTERM)[i % 2]
        p = start(out)
        while not _working(p.pid) and p.poll() is None:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, took / 2))
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
        text = err.decode("utf-8", "replace")
        assert "Traceback" not in text and "Fatal Python error" not in text, text
        if p.returncode in (130, 143):
            assert p.returncode == (130 if sig == signal.SIGINT else 143)
            assert text.strip().splitlines()[-1] == ("archverify: interrupted" if sig == signal.SIGINT
                                                     else "archverify: terminated")
            assert not (out / "report.json").exists()
            stopped += 1
        else:
            assert p.returncode == 1, text
            assert json.loads((out / "report.json").read_text())["summary"]["exit_code"] == 1
    assert stopped  # signals within the first half of a run's time: some must have stopped one
