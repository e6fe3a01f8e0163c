"""pithos-check against a real PostgreSQL (scripts/pg-dev-cluster) and a generated maps store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from one_line import one_line_error
from pg_server import pithos_database
from verify.core import formats as F
from verify.core import layout
from verify.backends import maplookup
from verify.ops.pithos import db as pithosdb
from verify.backends.filed import maplookup as filed_maplookup
from verify.cli.main import cli
from verify.core.errors import ConfigError, StoreError
from verify.ops.pithos.sample import create_schema, load_rows, write_pithos_sample

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_pithos_sample(tmp_path_factory.mktemp("pithos") / "maps")


@pytest.fixture(scope="module")
def db(pg_admin, sample):
    url = pithos_database(pg_admin, "pithos_planted", sample.rows)
    with psycopg.connect(url) as conn:
        # a role that may only read: the check must work with it
        conn.execute("DROP ROLE IF EXISTS pithos_reader")
        conn.execute("CREATE ROLE pithos_reader LOGIN")
        conn.execute("GRANT SELECT ON versions, nodes TO pithos_reader")
    return url


def run(*args, env=None):
    r = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def check_json(db_url, maps_dir, *extra):
    code, out, err = run("pithos-check", "--db", db_url, "--maps-dir", str(maps_dir), "--format", "json", "-j", "2",
                         *extra)
    return code, json.loads(out), err


def found(doc) -> set[tuple[str, str]]:
    return {(f["kind"], f["name"]) for f in doc["findings"]}


def test_reports_exactly_the_planted_problems(db, sample):
    code, doc, _ = check_json(db, sample.maps_dir)
    assert found(doc) == sample.planted
    assert code == 1
    c = doc["summary"]["counters"]
    rows_with_map = [r for r in sample.rows if r.mapfile is not None]
    assert c["pithos.rows"] == len(rows_with_map)
    assert c["pithos.snapshots"] == sum(r.is_snapshot for r in rows_with_map)
    assert c["pithos.unavailable_skipped"] == 1
    # every row is counted once under the version found (or none)
    versions = {k: v for k, v in c.items() if k in ("pithos.v0", "pithos.v1", "pithos.v2", "pithos.corrupt",
                                                     "pithos.none")}
    assert sum(versions.values()) == len(rows_with_map)
    assert c["pithos.v1"] == 2  # the legacy snapshot and the resized one, both found as archip_NAME
    assert c["pithos.none"] == 5  # the missing map (2 rows), the snf_file_, the snapshot, the pending one


def test_finding_details_name_the_rows(db, sample):
    _, doc, _ = check_json(db, sample.maps_dir)
    by_name = {f["name"]: f for f in doc["findings"]}
    missing = [n for k, n in sample.planted if k == "pithos_map_missing" and len(n) == 64][0]
    d = by_name[missing]["detail"]
    assert d.count("serial ") == 2 and "node " in d and f"size {5 * F.BLOCK_SIZE_4M}" in d
    snap = [n for k, n in sample.planted if k == "pithos_map_missing" and n.startswith("snap-gone")][0]
    assert f"mapfile archip:{snap}" in by_name[snap]["detail"]
    # v0 maps found at their old Pithos path carry that path
    many = [r.mapfile for r in sample.rows if r.mapfile and ("pithos_size_mismatch", r.mapfile) in sample.planted
            and len(r.mapfile) == 64 and (sample.maps_dir / r.mapfile[:2] / r.mapfile[2:4] / r.mapfile[4:6]
                                          / r.mapfile).exists()]
    assert many and by_name[many[0]]["path"].startswith(many[0][:2] + "/")


def test_orphans_only_when_asked(db, sample):
    _, doc, _ = check_json(db, sample.maps_dir)
    assert not any(f["kind"] == "pithos_map_orphan" for f in doc["findings"])
    code, doc, _ = check_json(db, sample.maps_dir, "--orphans")
    orphans = {n for k, n in found(doc) if k == "pithos_map_orphan"}
    assert orphans == sample.orphans
    assert found(doc) - {("pithos_map_orphan", n) for n in orphans} == sample.planted
    assert code == 1


def test_healthy_database_exits_0(pg_admin, sample, tmp_path):
    url = pg_admin("pithos_healthy")
    healthy = [r for r in sample.rows if r.mapfile is None or not any(r.mapfile.endswith(n) for _, n in sample.planted)]
    with psycopg.connect(url) as conn:
        create_schema(conn)
        load_rows(conn, healthy, nodes=max(r.node for r in sample.rows))
    code, doc, _ = check_json(url, sample.maps_dir)
    assert doc["findings"] == [] and code == 0
    code, out, _ = run("pithos-check", "--db", url, "--maps-dir", str(sample.maps_dir))
    assert code == 0 and "pithos-check" in out


def test_fast_path_agrees_with_generic_lookup(db, sample):
    """The C verdicts (check_rows) against the Python rules over lookup_maps, row by row."""
    rows = [r for part in pithosdb.stream_rows(pithosdb.resolve_url(db), batch=7) for r in part]
    assert len(rows) == sum(r.mapfile is not None for r in sample.rows)
    with filed_maplookup.FiledMaps(str(sample.maps_dir), jobs=2) as fm:
        mapfiles = [r[pithosdb.MAPFILE] for r in rows]
        sizes = [r[pithosdb.SIZE_COL] for r in rows]
        fast = fm.check_rows(mapfiles, sizes)
        names = [maplookup.map_name(m) for m in mapfiles]
        infos = fm.lookup_maps(names, [maplookup.v0_limit(s) for s in sizes])
        slow = bytes(maplookup.verdict(infos[n], s) for n, s in zip(names, sizes))
        assert fast == slow
        assert set(fast) >= {0x10, 0x20, 0x30, 0x01, 0x12, 0x22, 0x32, 0x43}

        class GenericOnly:  # a lookup whose check_rows goes through lookup_maps, as RADOS's does
            lookup_maps = fm.lookup_maps
            list_maps = fm.list_maps

            def check_rows(self, mapfiles, sizes):
                return maplookup.rows_by_lookup(self, mapfiles, sizes)

        a = pithosdb.check(pithosdb.resolve_url(db), fm, orphans=True, batch=5)
        b = pithosdb.check(pithosdb.resolve_url(db), GenericOnly(), orphans=True, batch=5)
    assert a.findings == b.findings and a.counters == b.counters


def test_lookup_reads_the_bytes_it_classifies(tmp_path):
    """Hand-made bytes, not the project's writers: v0 entry counting, padding, the empty file."""
    root = tmp_path / "maps"
    name = "ab" * 32
    d = root / name[:2] / name[2:4] / name[4:6]  # the old Pithos path
    d.mkdir(parents=True)
    (d / name).write_bytes(b"\x11" * 32 + b"\x22" * 32 + b"\x00" * 32 + b"\x33" * 32)  # 2 entries, then the end
    with filed_maplookup.FiledMaps(str(root)) as fm:
        info = fm.lookup_maps([name], [10])[name]
        assert (info.where, info.header.cls, info.v0_entries) == ("pithos", F.HeaderClass.V0, 2)
        assert fm.check_rows([name, name, name], [2 * F.BLOCK_SIZE_4M, F.BLOCK_SIZE_4M + 1, 3 * F.BLOCK_SIZE_4M]) \
            == bytes([0x10, 0x10, 0x12])
        assert fm.check_rows([name], [F.BLOCK_SIZE_4M]) == bytes([0x12])
        assert fm.check_rows(["x/y", ""], [1, 1]) == bytes([0x05, 0x05])
    # a directory where the map should be is no map: the mapper's archip_NAME retry answers
    vol = "volume-with-a-dir"
    (root / layout.v04_path(vol.encode()).decode()).mkdir(parents=True)
    p = root / layout.v04_path(b"archip_" + vol.encode()).decode()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(F.V1_HEADER.pack(1, 5) + b"\0" * 33)
    with filed_maplookup.FiledMaps(str(root)) as fm:
        info = fm.lookup_maps([vol])[vol]
        assert (info.where, info.header.cls, info.object) == ("archip", F.HeaderClass.V1, "archip_" + vol)
        assert fm.check_rows([vol, vol], [5, 6]) == bytes([0x20, 0x22])


def test_v0_sizes_for_the_map_upgrade(db, sample):
    conflicts: dict = {}
    sizes = pithosdb.v0_sizes(pithosdb.resolve_url(db), conflicts)
    want = {r.mapfile: r.size for r in sample.rows if r.mapfile and not r.is_snapshot}
    assert sizes == want and conflicts == {}
    assert not any(k.startswith("archip:") for k in sizes)


def test_v0_sizes_leaves_out_disagreeing_rows(pg_admin, sample):
    url = pg_admin("pithos_conflict")
    name = "cd" * 32
    with psycopg.connect(url) as conn:
        create_schema(conn)
        load_rows(conn, [(1, name, 10, name, False, 0, 1, "u", 1.0), (2, name, 11, name, False, 0, 1, "u", 1.0),
                         (3, "ef" * 32, 12, "ef" * 32, False, 0, 1, "u", 1.0)], nodes=3)
    conflicts: dict = {}
    assert pithosdb.v0_sizes(pithosdb.resolve_url(url), conflicts) == {"ef" * 32: 12}
    assert conflicts == {name: {10, 11}}


def test_works_with_a_select_only_role_and_never_writes(db, sample):
    """The database's write counters do not move while its read counters do."""
    reader = db.replace("postgresql://postgres@", "postgresql://pithos_reader@")

    def stats():
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            return conn.execute(
                "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0), coalesce(sum(seq_scan), 0) "
                "FROM pg_stat_user_tables").fetchone()

    writes0, scans0 = stats()
    code, doc, _ = check_json(reader, sample.maps_dir)
    assert found(doc) == sample.planted and code == 1
    for _ in range(50):  # the checker's backend flushes its statistics when it exits
        writes1, scans1 = stats()
        if scans1 > scans0:
            break
        time.sleep(0.1)
    assert scans1 > scans0 and writes1 == writes0


def test_transaction_is_read_only(pg_admin, sample):
    """A 'versions' that tries to write when read: the server must refuse, so nothing is written."""
    url = pg_admin("pithos_trap")
    with psycopg.connect(url) as conn:
        create_schema(conn)
        load_rows(conn, sample.rows, nodes=len(sample.rows))
        conn.execute("ALTER TABLE versions RENAME TO versions_real")
        conn.execute("CREATE TABLE audit (n integer)")
        conn.execute("CREATE FUNCTION trap() RETURNS SETOF versions_real LANGUAGE plpgsql AS $$ "
                     "BEGIN INSERT INTO audit VALUES (1); RETURN QUERY SELECT * FROM versions_real; END $$")
        conn.execute("CREATE VIEW versions AS SELECT * FROM trap()")
        conn.commit()
        # the trap works outside a read-only transaction
        assert len(conn.execute("SELECT * FROM versions").fetchall()) == len(sample.rows)
        conn.rollback()
    with pytest.raises(StoreError, match="read-only"):
        list(pithosdb.stream_rows(pithosdb.resolve_url(url)))
    code, out, err = run("pithos-check", "--db", url, "--maps-dir", str(sample.maps_dir))
    one_line_error(code, out, err)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM audit").fetchone()[0] == 0


def test_pithos_db_url_from_the_environment(db, sample):
    code, out, _ = run("pithos-check", "--maps-dir", str(sample.maps_dir), "--format", "json",
                       env={"PITHOS_DB_URL": db})
    assert code == 1 and found(json.loads(out)) == sample.planted


# ---- errors: exit 2, one line ------------------------------------------------------


@pytest.mark.parametrize("url", ["not a url", "mysql://u@h/db", "postgresql://u@h:notaport/db", "postgresql://u@h"])
def test_bad_urls(url, sample):
    line = one_line_error(*run("pithos-check", "--db", url, "--maps-dir", str(sample.maps_dir)))
    assert "Traceback" not in line


@pytest.mark.parametrize("url, shown, args", [
    ("postgresql://pithos@db.example:5433/pithos", "postgresql+psycopg://pithos@db.example:5433/pithos",
     {"user": "pithos", "host": "db.example", "port": 5433, "dbname": "pithos"}),
    ("postgres+psycopg://u%40corp@[::1]/p%20db?sslmode=require",
     "postgresql+psycopg://u%40corp@[::1]/p db?sslmode=require",
     {"user": "u@corp", "host": "::1", "dbname": "p db", "sslmode": "require"}),
    ("postgresql:///pithos?host=/run/postgresql", "postgresql+psycopg:///pithos?host=%2Frun%2Fpostgresql",
     {"dbname": "pithos", "host": "/run/postgresql"}),
])
def test_url_forms_operators_write(url, shown, args):
    """What libpq is handed, and how the URL appears in reports (never with its password)."""
    u = pithosdb.resolve_url(url)
    _, kwargs = pithosdb.engine_for(u).dialect.create_connect_args(u)  # what psycopg.connect is given
    kwargs.pop("context", None)
    assert pithosdb.safe(u) == shown and kwargs == args
    env = pithosdb.resolve_url(None, {"PITHOS_DB_URL": url.replace("//", "//x:s3cret@", 1) if "@" not in url else
                                      url.replace("@", ":s3cret@", 1)})
    assert env.password == "s3cret" and "s3cret" not in pithosdb.safe(env)


def test_password_on_the_command_line_is_refused(db, sample):
    url = db.replace("postgres@", "postgres:s3cret@")
    line = one_line_error(*run("pithos-check", "--db", url, "--maps-dir", str(sample.maps_dir)))
    assert "s3cret" not in line
    with pytest.raises(ConfigError):
        pithosdb.resolve_url(url)
    assert pithosdb.resolve_url(None, {"PITHOS_DB_URL": url}).password == "s3cret"


def test_no_database_url_at_all(sample, monkeypatch):
    monkeypatch.delenv("PITHOS_DB_URL", raising=False)
    one_line_error(*run("pithos-check", "--maps-dir", str(sample.maps_dir)))


def test_unreachable_server(sample):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    line = one_line_error(*run("pithos-check", "--db", f"postgresql://postgres@127.0.0.1:{port}/pithos",
                                "--maps-dir", str(sample.maps_dir)))
    assert f"127.0.0.1:{port}" in line


def test_no_such_database(db, sample):
    one_line_error(*run("pithos-check", "--db", db.rsplit("/", 1)[0] + "/no_such_db", "--maps-dir",
                         str(sample.maps_dir)))


def test_missing_table(pg_admin, sample):
    url = pg_admin("pithos_empty")
    one_line_error(*run("pithos-check", "--db", url, "--maps-dir", str(sample.maps_dir)))
    with pytest.raises(StoreError):
        list(pithosdb.stream_rows(pithosdb.resolve_url(url)))


def test_missing_column(pg_admin, sample):
    url = pg_admin("pithos_old")
    with psycopg.connect(url) as conn:
        create_schema(conn)
        conn.execute("ALTER TABLE versions DROP COLUMN mapfile")
    line = one_line_error(*run("pithos-check", "--db", url, "--maps-dir", str(sample.maps_dir)))
    assert "mapfile" in line


def test_missing_maps_dir(db, tmp_path):
    one_line_error(*run("pithos-check", "--db", db, "--maps-dir", str(tmp_path / "nope")))


def test_cli_process_end_to_end(db, sample, tmp_path):
    """The installed entry point, in a real process, with --logdir."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "verify", "pithos-check", "--db", db, "--maps-dir",
                        str(sample.maps_dir), "--logdir", str(tmp_path / "logs"), "--format", "jsonl"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 1, p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert {(x["kind"], x["name"]) for x in lines[:-1]} == sample.planted
    assert (tmp_path / "logs" / "pithos_map_missing.log").exists()


def test_dev_cluster_script_is_idempotent(pg_server):
    admin_url, cluster = pg_server
    port = admin_url.rsplit(":", 1)[1].split("/")[0]
    again = subprocess.run([str(ROOT / "scripts" / "pg-dev-cluster"), "start", cluster, port], capture_output=True,
                           text=True, timeout=60, check=True)
    assert again.stdout.strip() == admin_url
    status = subprocess.run([str(ROOT / "scripts" / "pg-dev-cluster"), "status", cluster], capture_output=True,
                            text=True, timeout=60)
    assert status.returncode == 0 and status.stdout.strip() == admin_url
    with psycopg.connect(admin_url) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"


def reference_lookup(root: Path, name: str, size: int | None) -> int:
    """The lookup rules in plain Python (layout + formats.classify), slow and obvious."""
    raw = name.encode()
    if not raw or b"/" in raw or b"\0" in raw:
        return maplookup.BADNAME
    candidates = []
    if layout.is_hex64(raw):
        candidates.append(raw)
    if len(raw) >= 6:
        candidates.append(None)
    candidates.append(b"archip_" + raw)
    for c in candidates:
        obj = raw if c is None or c == raw else c
        rel = layout.pithos_path(obj) if c == raw else layout.v04_path(obj)
        p = root / rel.decode()
        if not p.is_file() or p.is_symlink():
            continue
        body = p.read_bytes()
        hdr = F.classify(body[:64], len(body), obj)
        if hdr.cls in (F.HeaderClass.V0, F.HeaderClass.NOT_MAP):
            if size is None:
                return 0x10
            n = 0
            while n * 32 + 32 <= len(body) and body[n * 32:n * 32 + 32] != bytes(32):
                n += 1
            need = F.nr_objs(size)
            ok = n == need or (need == 0 and n == 1 and body[:32] == F.ZERO_DIGEST)
            return 0x10 | (0 if ok else maplookup.SIZE)
        if hdr.cls in (F.HeaderClass.V1, F.HeaderClass.V2):
            ver = 0x20 if hdr.cls is F.HeaderClass.V1 else 0x30
            return ver | (0 if size is None or hdr.size == size else maplookup.SIZE)
        return 0x40 | maplookup.CORRUPT
    return maplookup.MISSING


def test_probe_agrees_with_a_plain_python_reference(sample):
    rows = [r for r in sample.rows if r.mapfile is not None]
    extra = [(o, 1) for o in sample.orphans] + [("archip_" + o, 1) for o in sample.orphans] + [("x/y", 1)]
    mapfiles = ([r.mapfile for r in rows] + [m for m, _ in extra]) * 8  # > 256: the thread pool's path
    sizes = ([r.size for r in rows] + [s for _, s in extra]) * 8
    with filed_maplookup.FiledMaps(str(sample.maps_dir), jobs=2) as fm:
        fast = fm.check_rows(mapfiles, sizes)
    slow = bytes(reference_lookup(sample.maps_dir, maplookup.map_name(m), s) for m, s in zip(mapfiles, sizes))
    assert len(fast) > 256 and list(fast) == list(slow)
    with filed_maplookup.FiledMaps(str(sample.maps_dir), jobs=1) as fm:
        assert fm.check_rows(mapfiles, sizes) == fast  # --jobs 1 gives identical results


def test_upgrade_maps_with_pithos_db_sizes(pg_admin, tmp_path):
    """Every v0 map whose size the database knows becomes a v2 map that scan accepts."""
    from verify.ops import scan as scan_op
    from verify.backends.filed.backend import FiledBackend
    from verify.ops.sample import FiledStoreWriter, pithos_hash

    maps = FiledStoreWriter(tmp_path / "maps")
    names, sizes = {}, {}
    for label, n, where, size in [("a", 3, "v04", 3 * F.BLOCK_SIZE_4M - 100), ("b", 2, "pithos", 2 * F.BLOCK_SIZE_4M),
                                  ("c", 1, "v04", None)]:
        hashes = [pithos_hash(f"{label}{i}".encode()) for i in range(n)]
        name = pithos_hash(b"".join(bytes.fromhex(h) for h in hashes))
        maps.put(name, F.write_v0(hashes), where)
        names[label] = name
        if size is not None:
            sizes[name] = size
    url = pg_admin("pithos_upgrade")
    with psycopg.connect(url) as conn:
        create_schema(conn)
        load_rows(conn, [(i + 1, m, s, m, False, 0, 1, "u", 1.0) for i, (m, s) in enumerate(sizes.items())],
                  nodes=len(sizes))
    logs = tmp_path / "logs"
    code, out, err = run("upgrade-maps", "--maps-dir", str(tmp_path / "maps"), "--offline", "--yes", "--no-direct-io",
                         "--pithos-db", url, "--backup-dir", str(tmp_path / "backup"),
                         "--journal-dir", str(tmp_path / "journal"), "--logdir", str(logs), "-j", "2")
    assert code == 1, err  # c's size is unknown: reported, not upgraded
    assert set((logs / "upgraded.log").read_text().split()) >= {names["a"], names["b"]}
    assert names["c"] in (logs / "failed.log").read_text()
    be = FiledBackend(str(tmp_path / "maps"))
    found_after = {(f.kind, f.name) for f in scan_op.scan(be, 2, progress=False).findings}
    assert found_after == {("map_v0", names["c"])}
    for label in ("a", "b"):
        header = (tmp_path / "maps" / layout.v04_path(names[label].encode()).decode()).read_bytes()
        m = F.parse_v2_header(header)
        assert (m.size, m.flags, m.epoch) == (sizes[names[label]], F.MF_READONLY, 0)
