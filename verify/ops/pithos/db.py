"""Pithos's PostgreSQL database: which maps it needs, and the check that they exist.

Pithos (snf-pithos-backend) records every file version in table ``versions``; its
``mapfile`` column names the version's map in the maps store (``archip:NAME`` for
a volume snapshot, whose map is NAME) and ``size`` its length. The check streams
those rows through a server-side cursor, in a read-only transaction, and asks the
maps store about each batch at once (:mod:`verify.backends.maplookup`): memory stays flat
however many rows there are, and the database is never written.

Credentials follow libpq: the URL names user, host and database; the password
comes from ``PGPASSWORD`` or ``~/.pgpass`` (psycopg reads both), never from the
command line.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

from verify.core import signals
from verify.core.errors import ConfigError, StoreError
from verify.core.findings import Finding, escape_name
from verify.backends.maplookup import (
    BADNAME, CORRUPT, MISSING, OK, SIZE, UNREADABLE, VERSION_LABEL, LookupError_, MapInfo, errno_text, map_name,
    v0_entries_needed, v0_limit,
)
from verify.core.summary import ShardResult, Summary

ENV_URL = "PITHOS_DB_URL"
TABLE = "versions"
COLUMNS = ("serial", "node", "size", "mapfile", "is_snapshot", "cluster", "available")
SERIAL, NODE, SIZE_COL, MAPFILE, IS_SNAPSHOT, CLUSTER, AVAILABLE = range(len(COLUMNS))
BATCH = 20000
CONNECT_TIMEOUT = 10
EXAMPLES_SHOWN = 3  # rows named in a finding's detail when many rows share one map


# ---- connecting ------------------------------------------------------------------


def resolve_url(cli_url: str | None, environ=os.environ):
    """The database URL from ``--pithos-db`` or ``PITHOS_DB_URL``, as a SQLAlchemy URL for psycopg 3.

    A password inside ``--pithos-db`` is refused: it would be visible to every user in
    ``ps``. ``PITHOS_DB_URL`` may carry one (the environment is private to the user),
    but ``PGPASSWORD`` or ``~/.pgpass`` are the better places.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    source = "--pithos-db"
    raw = cli_url
    if raw is None:
        raw = environ.get(ENV_URL)
        source = ENV_URL
    if not raw:
        raise ConfigError(f"say which Pithos database to read: --pithos-db postgresql://USER@HOST/DB or {ENV_URL}")
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        raise ConfigError(f"{source}: not a database URL (expected postgresql://USER@HOST[:PORT]/DB)") from None
    backend, _, driver = url.drivername.partition("+")
    if backend not in ("postgresql", "postgres") or driver not in ("", "psycopg"):
        raise ConfigError(f"{source}: {url.drivername!r} is not a PostgreSQL URL (expected postgresql://USER@HOST/DB)")
    if url.password is not None and source == "--pithos-db":
        raise ConfigError("--pithos-db: the URL contains a password, which every user could read in 'ps'; "
                          f"put it in PGPASSWORD or ~/.pgpass (or the whole URL in {ENV_URL})")
    if not url.database:
        raise ConfigError(f"{source}: the URL names no database (postgresql://USER@HOST/DB)")
    return url.set(drivername="postgresql+psycopg")


def safe(url) -> str:
    return url.render_as_string(hide_password=True)


def _one_line(exc: BaseException) -> str:
    """psycopg's message without its hints and line breaks."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip() or type(orig).__name__
    first = text.splitlines()[0]
    return re.sub(r"\s+", " ", first)


def engine_for(url):
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(url, poolclass=NullPool,
                         connect_args={"connect_timeout": CONNECT_TIMEOUT, "application_name": "archverify"})


def estimated_rows(url) -> int | None:
    """PostgreSQL's own estimate of the ``versions`` rows (``pg_class.reltuples``): a progress total
    that costs one catalogue lookup, not a count. None when unknown (never analysed, unreachable);
    the stream itself reports connection problems."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine_for(url).connect() as conn:
            n = conn.execute(text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"), {"t": TABLE}).scalar()
    except (SQLAlchemyError, OSError):
        return None
    return int(n) if n is not None and n > 0 else None


def _columns(conn) -> set[str] | None:
    from sqlalchemy import text

    rows = conn.execute(text("SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:t) "
                             "AND attnum > 0 AND NOT attisdropped"), {"t": TABLE}).all()
    if not rows and conn.execute(text("SELECT to_regclass(:t)"), {"t": TABLE}).scalar() is None:
        return None
    return {r[0] for r in rows}


def stream_rows(url, batch: int = BATCH, columns: tuple[str, ...] = COLUMNS) -> Iterator[list[tuple]]:
    """Batches of ``versions`` rows (tuples in ``columns`` order) with a non-null mapfile.

    One read-only transaction, one server-side cursor fetching ``batch`` rows at a
    time. SQLAlchemy connects and holds the transaction; the rows come from
    psycopg's own named cursor in it, as plain tuples (SQLAlchemy's row objects
    cost more than the lookups they feed). Connection problems, a missing table or
    column: StoreError, one line.
    """
    import psycopg
    from psycopg import sql
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    where = safe(url)
    eng = engine_for(url)
    try:
        try:
            conn = eng.connect()
        except DBAPIError as e:
            raise StoreError(f"{where}: cannot connect: {_one_line(e)}") from None
        with conn:
            conn = conn.execution_options(postgresql_readonly=True, isolation_level="REPEATABLE READ")
            try:
                with conn.begin():
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                    have = _columns(conn)
                    if have is None:
                        raise StoreError(f"{where}: no table '{TABLE}' (is this Pithos's database? "
                                         "check the database name and search_path)")
                    missing = [c for c in columns if c not in have]
                    if missing:
                        raise StoreError(f"{where}: table '{TABLE}' has no column {', '.join(missing)} "
                                         "(a Pithos database before the mapfile migration 2efddde15abf?)")
                    stmt = sql.SQL("SELECT {} FROM {} WHERE mapfile IS NOT NULL").format(
                        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(TABLE))
                    with conn.connection.driver_connection.cursor(name="archverify_versions") as cur:
                        cur.itersize = batch
                        cur.execute(stmt)
                        while part := cur.fetchmany(batch):
                            yield part
            except (DBAPIError, psycopg.Error) as e:
                raise StoreError(f"{where}: {_one_line(e)}") from None
            except SQLAlchemyError as e:
                raise StoreError(f"{where}: {_one_line(e)}") from None
    finally:
        eng.dispose()


def v0_sizes(url, conflicts: dict[str, set[int]] | None = None) -> dict[str, int]:
    """``{mapfile: size}`` of every non-snapshot version: the true size of each v0 map.

    Versions sharing a mapfile normally agree (the map's name is its hashmap's hash);
    a mapfile recorded with different sizes is left out (so nobody upgrades it with a
    guessed size) and, when ``conflicts`` is given, put there with every size seen.
    """
    sizes: dict[str, int] = {}
    bad: dict[str, set[int]] = {}
    for part in stream_rows(url, columns=("mapfile", "size", "is_snapshot")):
        for mapfile, size, is_snapshot in part:
            if is_snapshot or size is None or mapfile.startswith("archip:"):
                continue
            prev = sizes.setdefault(mapfile, size)
            if prev != size:
                bad.setdefault(mapfile, {prev}).add(size)
    for m in bad:
        del sizes[m]
    if conflicts is not None:
        conflicts.update(bad)
    return sizes


# ---- the check -------------------------------------------------------------------


@dataclass
class _Problem:
    """Rows of one kind that share one map: one finding, the first rows named."""

    kind: str
    name: str
    info: MapInfo | LookupError_ | None
    rows: list[tuple] = field(default_factory=list)
    count: int = 0


def _row_text(r: tuple) -> str:
    s = f"serial {r[SERIAL]}, node {r[NODE]}, size {r[SIZE_COL]}"
    if r[CLUSTER]:
        s += f", cluster {r[CLUSTER]}"  # 1: a history version, 2: a deleted one
    if r[MAPFILE] != map_name(r[MAPFILE]):
        s += f", mapfile {r[MAPFILE]}"
    return s


def _rows_text(p: _Problem) -> str:
    s = "; ".join(_row_text(r) for r in p.rows)
    if p.count > len(p.rows):
        s += f"; and {p.count - len(p.rows)} more rows"
    return s


def _problem_detail(p: _Problem) -> str:
    info, r = p.info, p.rows[0]
    rows = _rows_text(p)
    if p.kind == "pithos_map_missing":
        if isinstance(info, LookupError_):
            return f"no path can be built from this name (contains '/' or NUL); {rows}"
        return rows
    if p.kind == "pithos_size_mismatch":
        size = r[SIZE_COL]
        if info.header.cls.value == "v0":
            return f"v0 map has {info.v0_entries} entries, size {size} needs {v0_entries_needed(size)}; {rows}"
        return f"{info.header.cls.value} header size {info.header.size}, database size {size}; {rows}"
    if p.kind == "map_corrupt":
        return f"{info.header.cls.value} (as a Pithos map); {rows}"
    return rows


def _unavailable(r: tuple) -> bool:
    """``available`` = 0 (or false): a snapshot whose map is still being made."""
    a = r[AVAILABLE]
    return a is not None and not a


class Checker:
    """Consumes row batches; one ShardResult at the end. Memory: the problems found,
    plus the set of map names seen when orphans are wanted."""

    def __init__(self, lookup, want_orphans: bool = False):
        self.lookup = lookup
        self.counters: Counter = Counter()
        self.problems: dict[tuple[str, str], _Problem] = {}
        self.seen: set[str] | None = set() if want_orphans else None

    def feed(self, rows: list[tuple]) -> None:
        mapfiles = [r[MAPFILE] for r in rows]
        sizes = [r[SIZE_COL] for r in rows]
        codes = self.lookup.check_rows(mapfiles, sizes)
        c = self.counters
        c["pithos.rows"] += len(rows)
        c["pithos.snapshots"] += sum(1 for r in rows if r[IS_SNAPSHOT])
        for code in set(codes):
            c[f"pithos.{VERSION_LABEL[code >> 4]}"] += codes.count(code)
        if self.seen is not None:
            self.seen.update(map_name(m) for m in mapfiles)
        for m in _BAD.finditer(codes):
            i = m.start()
            self._problem(rows[i], codes[i] & 15)

    def _problem(self, r: tuple, outcome: int) -> None:
        name = map_name(r[MAPFILE])
        if outcome in (MISSING, BADNAME) and _unavailable(r):
            self.counters["pithos.unavailable_skipped"] += 1
            return
        kind = {MISSING: "pithos_map_missing", BADNAME: "pithos_map_missing", SIZE: "pithos_size_mismatch",
                CORRUPT: "map_corrupt", UNREADABLE: "unreadable"}[outcome]
        p = self.problems.get((kind, name))
        if p is None:
            info = self.lookup.lookup_maps([name], [v0_limit(r[SIZE_COL])])[name]
            if outcome == SIZE and isinstance(info, MapInfo) and info.v0_entries is not None \
                    and info.v0_entries > v0_entries_needed(r[SIZE_COL]):
                # counted only far enough to see too many: count them all for the detail
                info = self.lookup.lookup_maps([name], [info.object_size // 32 + 1])[name]
            p = self.problems[(kind, name)] = _Problem(kind, name, info)
        p.count += 1
        if len(p.rows) < EXAMPLES_SHOWN:
            p.rows.append(tuple(r))

    def orphans(self) -> list[Finding]:
        """Map headers in the store that no row names (NAME, or archip_NAME for NAME)."""
        assert self.seen is not None
        out = []
        for obj, path, hdr in self.lookup.list_maps():
            base = obj[len("archip_"):] if obj.startswith("archip_") else obj
            if obj in self.seen or base in self.seen:
                continue
            self.counters["pithos.orphans_listed"] += 1
            out.append(Finding("pithos_map_orphan", "maps", escape_name(obj), path and escape_name(path),
                               f"{hdr.cls.value} map"))
        return out

    def result(self) -> ShardResult:
        res = ShardResult(counters=self.counters)
        for p in self.problems.values():
            path = None if p.info is None else getattr(p.info, "path", None)
            detail = _problem_detail(p)
            if p.kind == "unreadable":
                err = p.info.errno if isinstance(p.info, LookupError_) else 0
                detail = f"{errno_text(err)}; {detail}"
            res.findings.append(Finding(p.kind, "maps", escape_name(p.name), path and escape_name(path), detail))
        return res


_BAD = re.compile(rb"[^\x00\x10\x20\x30]", re.DOTALL)  # any verdict byte whose outcome is not OK
assert OK == 0


def prefetched(batches: Iterator, depth: int = 2) -> Iterator:
    """Runs ``batches`` in a thread, ``depth`` batches ahead of the consumer.

    Fetching rows (network, psycopg) and probing the store (C, without the GIL)
    then overlap. The producer's exception is re-raised in the consumer.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce():
        try:
            for b in batches:
                while not stop.is_set():
                    try:
                        q.put(b, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            q.put((done, None))
        except BaseException as e:  # re-raised by the consumer
            q.put((done, e))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    t = threading.Thread(target=produce, name="pithos-rows", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if isinstance(item, tuple) and len(item) == 2 and item[0] is done:
                if item[1] is not None:
                    raise item[1]
                return
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                pass
            t.join(0.05)


def check(url, lookup, orphans: bool = False, batch: int = BATCH, progress=None) -> Summary:
    """Every versions row with a mapfile against the maps store: the Summary of findings."""
    t0 = time.monotonic()
    chk = Checker(lookup, orphans)
    # closed on the way out of an interruption too: the row thread is joined before the interpreter
    # could tear down the database driver under it
    with contextlib.closing(prefetched(stream_rows(url, batch))) as parts:
        for part in parts:
            signals.checkpoint()  # a signal that came while a library ran stops the run here
            chk.feed(part)
            if progress is not None:
                progress(len(part))
    res = chk.result()
    if orphans:
        res.findings.extend(chk.orphans())
    return Summary.from_result(res, time.monotonic() - t0)
