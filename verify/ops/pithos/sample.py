"""A database in the shape of Pithos's, and a maps store that matches it.

Tests and the benchmark need a ``versions`` table whose rows name maps in a filed
maps store, with known problems planted. The schema follows snf-pithos-backend's
tables after its migrations (``mapfile``, ``is_snapshot``, integer ``available``).
Loading uses COPY, so a million rows take seconds.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path

from verify.core import formats as F
from ..sample import FiledStoreWriter

SCHEMA = """
CREATE TABLE nodes (
    node serial PRIMARY KEY,
    parent integer REFERENCES nodes(node),
    latest_version integer,
    path varchar(2048) NOT NULL DEFAULT ''
);
CREATE TABLE versions (
    serial serial PRIMARY KEY,
    node integer REFERENCES nodes(node),
    hash varchar(256),
    size bigint NOT NULL DEFAULT 0,
    type varchar(256) NOT NULL DEFAULT '',
    source integer,
    mtime numeric(16, 6),
    muser varchar(256) NOT NULL DEFAULT '',
    uuid varchar(64) NOT NULL DEFAULT '',
    checksum varchar(256) NOT NULL DEFAULT '',
    cluster integer NOT NULL DEFAULT 0,
    available integer NOT NULL DEFAULT 1,
    map_check_timestamp numeric(16, 6),
    mapfile varchar(256),
    is_snapshot boolean NOT NULL DEFAULT false
);
CREATE SEQUENCE mapfile_seq;
"""

ROW_COLUMNS = ("node", "hash", "size", "mapfile", "is_snapshot", "cluster", "available", "muser", "mtime")


@dataclass
class PithosRow:
    node: int
    mapfile: str | None
    size: int
    is_snapshot: bool = False
    cluster: int = 0
    available: int = 1
    hash: str | None = None


@dataclass
class PithosSample:
    """Rows, the store they point into, and what was planted: (kind, map name) pairs."""

    maps_dir: Path
    rows: list[PithosRow] = field(default_factory=list)
    planted: set[tuple[str, str]] = field(default_factory=set)
    orphans: set[str] = field(default_factory=set)  # map objects no row names


def create_schema(conn) -> None:
    """``conn``: a psycopg connection to an empty database (autocommit or not)."""
    with conn.cursor() as cur:
        cur.execute(SCHEMA)


def load_rows(conn, rows, nodes: int) -> None:
    """COPY ``rows`` (PithosRow or tuples in ROW_COLUMNS order) after ``nodes`` nodes."""
    with conn.cursor() as cur:
        with cur.copy("COPY nodes (node, path) FROM STDIN") as cp:
            for n in range(1, nodes + 1):
                cp.write_row((n, f"account/container/object-{n}"))
        cur.execute("SELECT setval('nodes_node_seq', %s)", (max(nodes, 1),))
        with cur.copy(f"COPY versions ({', '.join(ROW_COLUMNS)}) FROM STDIN") as cp:
            for r in rows:
                if isinstance(r, PithosRow):
                    r = (r.node, r.hash if r.hash is not None else r.mapfile, r.size, r.mapfile, r.is_snapshot,
                         r.cluster, r.available, "user@example.org", 1700000000.5)
                cp.write_row(r)


def _v0_hashes(rng: random.Random, n: int) -> list[str]:
    return [rng.randbytes(32).hex() for _ in range(n)]


def _hex_name(rng: random.Random) -> str:
    return rng.randbytes(32).hex()


def write_pithos_sample(root: str | Path, seed: int = 6) -> PithosSample:
    """A maps store with every form of map Pithos may need, and rows naming them.

    Planted: maps missing in every form, v0 maps with too few and too many entries,
    v1/v2 headers of the wrong size, a corrupt header; not problems: NULL
    mapfiles, a snapshot still being made (available = 0) without its map, an
    empty file's one-entry map, a v0 map padded with zeros by direct I/O.
    """
    rng = random.Random(seed)
    s = PithosSample(Path(root))
    w = FiledStoreWriter(s.maps_dir)
    node = 0
    M = F.BLOCK_SIZE_4M

    def row(mapfile, size, **kw) -> PithosRow:
        nonlocal node
        node += 1
        r = PithosRow(node, mapfile, size, **kw)
        s.rows.append(r)
        return r

    # healthy v0 maps, named by their 64-hex hashmap hash, at the v0.4 path and the old Pithos path
    for i in range(12):
        n = 1 + i % 4
        name = _hex_name(rng)
        w.put(name, F.write_v0(_v0_hashes(rng, n)), "pithos" if i % 3 == 0 else "v04")
        row(name, (n - 1) * M + 1 + rng.randrange(M - 1), cluster=i % 3)
    # one map shared by two versions (same content), and a history version of it
    shared = _hex_name(rng)
    w.put(shared, F.write_v0(_v0_hashes(rng, 2)))
    row(shared, 2 * M)
    row(shared, 2 * M, cluster=1)
    # newer Pithos: snf_file_ names, v0 bytes (Pithos opens them with assume-v0)
    for i in range(4):
        name = f"snf_file_{rng.randbytes(16).hex()}"
        w.put(name, F.write_v0(_v0_hashes(rng, i + 1)))
        row(name, i * M + 100)
    # a v0 map padded with zeros by direct I/O, and an empty file's map (one zero-block entry)
    padded = _hex_name(rng)
    w.put(padded, F.write_v0(_v0_hashes(rng, 3)).ljust(512, b"\0"))
    row(padded, 3 * M)
    empty = _hex_name(rng)
    w.put(empty, F.write_v0([F.ZERO_HASH]))
    row(empty, 0)
    # v0 maps already upgraded in place by the mapper: v2 header (size = the row's size), map-data
    for i in range(3):
        name = _hex_name(rng)
        size = (i + 1) * M - 7
        hs = _v0_hashes(rng, i + 1)
        w.put(name, F.pack_v2_header(size, flags=F.MF_READONLY, epoch=0) + F.write_v0(hs)[32:])
        _, md = F.write_v2(size, [F.Entry(h, 0) for h in hs], flags=F.MF_READONLY, epoch=0, name=name)
        for k, v in md.items():
            w.put(k, v)
        row(name, size)
    # volume snapshots: archip:NAME rows; NAME a v2 map, or still a v1 map archip_NAME
    for i in range(3):
        name = f"snap-{i:03d}-{rng.randbytes(4).hex()}"
        size = (i + 2) * M
        w.put_v2(name, size, [F.Entry(F.ZERO_HASH, F.OF_ZERO)] * (i + 2), flags=F.MF_READONLY, epoch=0)
        row(f"archip:{name}", size, is_snapshot=True)
    legacy = f"snap-legacy-{rng.randbytes(4).hex()}"
    w.put("archip_" + legacy, F.write_v1(2 * M, [(0, F.ZERO_HASH)] * 2))
    row(f"archip:{legacy}", 2 * M, is_snapshot=True)
    # versions without a map (directories, deleted placeholders): never looked at
    for _ in range(3):
        row(None, 0)

    # ---- planted problems ----
    def plant(kind, name):
        s.planted.add((kind, name))

    gone = _hex_name(rng)  # named by two versions: one finding
    row(gone, 5 * M)
    row(gone, 5 * M, cluster=2)
    plant("pithos_map_missing", gone)
    gone_snf = f"snf_file_{rng.randbytes(16).hex()}"
    row(gone_snf, 1234)
    plant("pithos_map_missing", gone_snf)
    gone_snap = f"snap-gone-{rng.randbytes(4).hex()}"
    row(f"archip:{gone_snap}", 4 * M, is_snapshot=True)
    plant("pithos_map_missing", gone_snap)
    # a snapshot still being made: no map yet, not a loss
    row(f"archip:snap-pending-{rng.randbytes(4).hex()}", 4 * M, is_snapshot=True, available=0)
    # v0: too few entries, too many entries (no terminating zero entry)
    few = _hex_name(rng)
    w.put(few, F.write_v0(_v0_hashes(rng, 2)))
    row(few, 3 * M)
    plant("pithos_size_mismatch", few)
    many = _hex_name(rng)
    w.put(many, F.write_v0(_v0_hashes(rng, 6)), "pithos")
    row(many, 2 * M)
    plant("pithos_size_mismatch", many)
    # v2 and v1 headers of another size than the row's
    v2bad = f"snap-resized-{rng.randbytes(4).hex()}"
    w.put_v2(v2bad, 2 * M, [F.Entry(F.ZERO_HASH, F.OF_ZERO)] * 2, flags=F.MF_READONLY, epoch=0)
    row(f"archip:{v2bad}", 3 * M, is_snapshot=True)
    plant("pithos_size_mismatch", v2bad)
    v1bad = f"snap-v1-resized-{rng.randbytes(4).hex()}"
    w.put("archip_" + v1bad, F.write_v1(1 * M, [(0, F.ZERO_HASH)]))
    row(f"archip:{v1bad}", 5 * M, is_snapshot=True)
    plant("pithos_size_mismatch", v1bad)
    # a corrupt header: signed, unknown version
    bad = _hex_name(rng)
    w.put(bad, F.V2_HEADER.pack(F.V2_SIGNATURE, 9, M, M, 0, 0))
    row(bad, M)
    plant("map_corrupt", bad)

    # ---- maps no row names (reported only with --orphans) ----
    w.put_v2("vm-volume-orphan", 2 * M, [F.Entry(F.ZERO_HASH, F.OF_ZERO)] * 2)
    s.orphans.add("vm-volume-orphan")
    w.put("archip_old-volume-orphan", F.write_v1(M, [(0, F.ZERO_HASH)]))
    s.orphans.add("archip_old-volume-orphan")
    lost = hashlib.sha256(b"orphan v0").hexdigest()
    w.put(lost, F.write_v0(_v0_hashes(rng, 1)))
    s.orphans.add(lost)
    # not maps at all: a lock and a stray file are never orphans
    w.put("vm-volume-orphan_lock", b"node1_1")
    w.put("README-stray", b"hello")
    return s


def bench_rows(count: int, seed: int = 1):
    """``count`` v0 maps of 1-4 entries (names, bytes, sizes) for the benchmark, deterministic."""
    rng = random.Random(seed)
    for _ in range(count):
        n = 1 + rng.randrange(4)
        digest = rng.randbytes(32 * n)
        name = hashlib.sha256(digest).hexdigest()
        yield name, digest, (n - 1) * F.BLOCK_SIZE_4M + 1 + rng.randrange(F.BLOCK_SIZE_4M - 1)

