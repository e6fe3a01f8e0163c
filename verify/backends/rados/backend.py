"""RADOS stores: the maps pool is listed and its map headers read with aio; the blocks
pool is only listed.

The hot path is ``verify.native._radoshard`` (Cython over librados' C API): each shard is a
range of the pool's listing (``rados_object_list_slice``), checked with
``--inflight`` aio ops in flight. Where that extension is not built (no
librados-dev), python-rados serves as a slower fallback with the same rules. A
filed-only install never imports either (the fallback engine is
verify/backends/rados/pyrados.py, the I/O both engines share verify/backends/rados/io.py).
Connection problems, missing pools and missing caps become one-line
:class:`~verify.core.errors.StoreError` s before any listing.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import errno as E
import os
import sys
import tempfile
import threading
import weakref
from collections import Counter
from dataclasses import dataclass, field

from verify.native import nativejob
from verify.core import findingset
from verify.core.errors import StoreError, UsageError
from verify.core.findings import Finding, escape_names
from verify.core.summary import Lock, ShardResult
from . import clients as rados_clients
from ..base import ProgressFn, Ref, Shard, Window, split, strerror
from .io import MAX_TRIES, TRANSIENT, PoolObjects  # noqa: F401  (MAX_TRIES, TRANSIENT: as before, for callers)
from .io import errno_of as _errno
from .io import list_failure
from .io import stalled as _stalled

_OBJECTS_LOCK = threading.Lock()
PARTS = 256  # a pool's listing is split into this many slices; shards are ranges of them
RECORD_BATCH = 16384  # records a scan loop holds before it hands them over (_scanned): 2-3 MB a shard at the most
SAMPLE_OBJECTS = 4096  # objects a sampled estimate lists at the least (_sampled): within a few per cent
DEFAULT_SEARCH = "$CEPH_CONF, /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf"
# Every connected backend, closed at interpreter exit (its ioctxs, then its client): a librados
# client still connected when the process exits can abort it (see clients.py).
_CONNECTED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


@atexit.register
def close_all() -> None:
    """Close every connected backend of this process (at exit, or before its cluster goes away)."""
    for be in list(_CONNECTED.values()):
        be.close()


def _stages():
    """verify.backends.rados.check, imported on first use: only ``check`` needs it, not a scan."""
    from . import check as rados_check

    return rados_check


def _pyrados():
    """verify.backends.rados.pyrados, the python-rados engine, imported only when it runs."""
    from . import pyrados

    return pyrados


def _engine():
    """'c' when the librados extension is built, else 'python' when python-rados imports.

    ARCHVERIFY_RADOS_ENGINE=python forces the fallback (tests hold the two against each other)."""
    forced = os.environ.get("ARCHVERIFY_RADOS_ENGINE")
    if forced == "python":
        import rados  # noqa: F401

        return "python"
    try:
        from verify.native import _rados  # noqa: F401

        return "c"
    except ImportError:
        pass
    try:
        import rados  # noqa: F401

        return "python"
    except ImportError:
        raise StoreError(
            "the RADOS backend needs librados: install the Debian packages librados-dev and python3-rados "
            "and rebuild archverify (make build), or use --backend filed"
        ) from None


@contextlib.contextmanager
def stderr_swallowed():
    """fd 2 sent to a scratch file for the duration (librados writes there from C, past
    ``err_to_stderr = false`` for some lines); Python's own stderr is flushed first."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        with tempfile.TemporaryFile() as scratch:
            os.dup2(scratch.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def from_options(cfg, validate: bool = True, pool=None, blocks_pool=None, ceph_conf=None, client_id=None, keyring=None,
                 namespace=None, inflight=256, connect_timeout=10.0, op_timeout=30.0, roles=("maps", "blocks"),
                 **_others) -> RadosBackend:
    """Pools and cephx id from the flags, else from archipelago.conf; connects and checks both pools.

    ``roles``: the stores this backend holds (a mixed backend's RADOS part holds one).
    Always validated, even for --dask: the report names the engine this machine chose."""
    def configured(role):
        sc = cfg.stores[role] if cfg is not None else None
        return sc if sc is not None and sc.type == "rados" else None

    if "maps" in roles:
        if pool is None and cfg is not None:
            if configured("maps") is None:
                raise UsageError(f"{cfg.path}: [blockerm] is a {cfg.stores['maps'].type} store; "
                                 "give --pool for a RADOS scan")
            pool = configured("maps").pool
        if not pool:
            raise UsageError("rados backend needs --pool (the maps pool) or --config with a rados_blocker [blockerm]")
    else:
        pool = None
    if "blocks" in roles:
        if blocks_pool is None and configured("blocks") is not None:
            blocks_pool = configured("blocks").pool
        if "maps" not in roles and not blocks_pool:
            raise UsageError("RADOS blocks store: give --blocks-pool (or a --config with a rados_blocker [blockerb])")
    else:
        blocks_pool = None
    if client_id is None:
        client_id = next((sc.cephx_id for sc in map(configured, roles) if sc is not None and sc.cephx_id), None)
    if client_id and client_id.startswith("client."):
        client_id = client_id[len("client."):]
    for what, path in (("ceph.conf", ceph_conf), ("keyring", keyring)):
        if path is not None:
            try:
                with open(path, "rb"):
                    pass
            except OSError as e:
                raise StoreError(f"{path}: cannot read {what}: {e.strerror}") from None
    be = RadosBackend(pool, blocks_pool, ceph_conf, client_id, keyring, namespace, inflight, connect_timeout,
                      op_timeout=op_timeout)
    be.validate()
    return be


@dataclass
class RadosBackend:
    pool: str | None  # the maps pool; None only as a mixed backend's part holding the blocks store
    blocks_pool: str | None = None
    ceph_conf: str | None = None
    client_id: str | None = None
    keyring: str | None = None
    namespace: str | None = None
    inflight: int = 256
    connect_timeout: float = 10.0
    engine: str | None = None  # "c" or "python"; chosen at first use
    op_timeout: float = 30.0  # rados_osd_op_timeout: an op unanswered this long stops the run (rados_io.stalled)
    name: str = "rados"
    empty_locks: bool = False  # scans list lock objects without owner too (keep_empty_locks)
    # a connection and what was opened on it belong to this value: never copied by dataclasses.replace
    _conn: object = field(default=None, init=False, repr=False, compare=False)
    _io: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _objects: object = field(default=None, init=False, repr=False, compare=False)  # python-rados twin for object I/O
    _kept: list | None = field(default=None, init=False, repr=False, compare=False)  # header reads the scan keeps
    _keep_max: int = field(default=0, init=False, repr=False, compare=False)  # what they may cost, bytes
    _estimate: int | None = field(default=None, init=False, repr=False, compare=False)  # estimated_objects, 0: none

    def __getstate__(self) -> dict:
        """Picklable for other machines (``--dask``): each process makes its own connection."""
        state = dict(self.__dict__)
        state["_conn"], state["_io"], state["_objects"], state["_kept"] = None, {}, None, None
        return state

    @property
    def user(self) -> str:
        return f"client.{self.client_id or 'admin'}"

    def pools(self) -> dict[str, str]:
        return {role: pool for role, pool in (("maps", self.pool), ("blocks", self.blocks_pool)) if pool}

    # ---- connection ------------------------------------------------------------

    def _connect_error(self, err: int, op: str) -> StoreError:
        conf = self.ceph_conf or f"ceph.conf ({DEFAULT_SEARCH})"
        if op in ("conf_read_file", "conf_search"):
            if self.ceph_conf:
                return StoreError(f"{self.ceph_conf}: cannot read ceph.conf: {strerror(err)}")
            return StoreError(f"no ceph.conf found ({DEFAULT_SEARCH}); give -c/--ceph-conf PATH")
        if err in (E.ETIMEDOUT, E.ENOTCONN, E.ECONNREFUSED, E.EHOSTUNREACH):
            return StoreError(f"cannot reach the Ceph cluster within {self.connect_timeout:g}s "
                              f"(mon host {self._mon_host()} from {conf}): is it up and reachable from here?")
        if err in (E.EACCES, E.EPERM):
            return StoreError(f"the cluster refused {self.user}: wrong key in "
                              f"{self.keyring or 'the keyring'}, or no such cephx user (EACCES)")
        if err == E.ENOENT and not self._mon_host().strip():
            # librados then asks DNS for a ceph-mon SRV record; ENOENT says that found none either
            return StoreError(f"no monitor address configured: {conf} sets no 'mon host' (and DNS has no "
                              "ceph-mon SRV record); add 'mon host = ADDR' to it, or give -c/--conf PATH")
        if err == E.ENOENT:
            return StoreError(f"no keyring with a key for {self.user} found"
                              + (f" in {self.keyring}" if self.keyring else "") + "; give -k/--keyring PATH")
        if err == E.EINVAL and op.startswith("conf_set"):
            return StoreError(f"librados refused option {op[9:]!r}")
        return StoreError(f"cannot connect to the Ceph cluster as {self.user} ({op}): {strerror(err)}")

    def _mon_host(self) -> str:
        try:
            return self._conn.get("mon_host") if self.engine == "c" else self._conn.conf_get("mon_host")
        except Exception:
            return "?"

    def _connect_quietly(self, step):
        """``step()`` with librados' own lines on stderr (a DNS SRV lookup, auth errors) kept out
        of the user's terminal: whatever went wrong is said once, by :meth:`_connect_error`."""
        with stderr_swallowed():
            return step()

    def close(self) -> None:
        """Close the ioctxs, then the connections (this one and the object-I/O twin's); the next
        use connects again. Idempotent."""
        twin, self._objects = (self._objects or (None, None))[0], None
        if twin is not None:
            twin.close()
        conn, ios, self._conn, self._io = self._conn, self._io, None, {}
        _CONNECTED.pop(id(self), None)
        if conn is None:
            return
        if self.engine == "c":  # the extension closes its ioctxs itself
            conn.shutdown()
        else:
            rados_clients.shutdown(conn, ios.values())

    def __del__(self) -> None:
        # before the collector clears anything: the ioctxs closed first, whatever order it frees in
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter teardown a module may already be gone
            pass

    def connect(self):
        if self._conn is not None:
            return self._conn
        _CONNECTED[id(self)] = self
        self.engine = self.engine or _engine()
        op_timeout = self.op_timeout
        if self.engine == "c":
            from verify.native import _rados

            try:
                conn = self._connect_quietly(lambda: _rados.Cluster(self.client_id, self.ceph_conf, self.keyring,
                                                                    self.connect_timeout, op_timeout))
            except OSError as e:
                raise self._connect_error(e.errno, e.strerror) from None
            self._conn = conn
            try:
                self._connect_quietly(conn.connect)
            except OSError as e:
                raise self._connect_error(e.errno, e.strerror) from None
        else:
            import rados

            conf = {"client_mount_timeout": str(max(1, round(self.connect_timeout))),
                    "rados_mon_op_timeout": str(max(1, round(self.connect_timeout))),
                    "rados_osd_op_timeout": str(max(1, round(op_timeout))),
                    "log_to_stderr": "false", "err_to_stderr": "false"}
            if self.keyring:
                conf["keyring"] = self.keyring
            try:
                conn = rados_clients.open_client(rados_id=self.client_id or "admin", conffile=self.ceph_conf or "",
                                                 conf=conf)
            except rados.Error as e:
                raise self._connect_error(getattr(e, "errno", None) or E.EIO, "conf_read_file") from None
            if not self.ceph_conf and not os.environ.get("CEPH_CONF"):
                try:
                    conn.conf_read_file()
                except rados.Error as e:
                    raise self._connect_error(getattr(e, "errno", None) or E.ENOENT, "conf_search") from None
            try:
                conn.conf_parse_env()  # CEPH_ARGS, as the extension and the ceph tools do
            except rados.Error as e:
                raise self._connect_error(_errno(e), "CEPH_ARGS") from None
            self._conn = conn
            try:
                self._connect_quietly(lambda: conn.connect(timeout=max(1, round(self.connect_timeout))))
            except rados.Error as e:
                raise self._connect_error(abs(getattr(e, "errno", None) or E.EIO), "connect") from None
        return self._conn

    def ioctx(self, role: str):
        if role not in self._io:
            conn = self.connect()
            pool = self.pools()[role]
            if self.engine == "c":
                try:
                    exists = conn.pool_exists(pool)
                except OSError as e:
                    raise StoreError(f"pool {pool!r}: cannot look it up as {self.user}: {strerror(e.errno)}") from None
                if not exists:
                    raise StoreError(f"pool {pool!r} ({role} store) does not exist in this cluster")
                try:
                    io = conn.open(pool, self.namespace)
                except OSError as e:
                    raise StoreError(f"pool {pool!r}: cannot open as {self.user}: {strerror(e.errno)}") from None
            else:
                import rados

                if not conn.pool_exists(pool):
                    raise StoreError(f"pool {pool!r} ({role} store) does not exist in this cluster")
                io = conn.open_ioctx(pool)
                if self.namespace:
                    io.set_namespace(self.namespace)
                _ = rados  # keep the import local to the fallback
            self._io[role] = io
        return self._io[role]

    def validate(self) -> None:
        """Fail before any listing: reachable cluster, both pools present, caps to list them."""
        for role, pool in self.pools().items():
            io = self.ioctx(role)
            err = io.probe() if self.engine == "c" else _pyrados().py_probe(io)
            if err in (E.EPERM, E.EACCES):
                raise StoreError(f"{self.user} may not read pool {pool!r} ({role} store): its caps need "
                                 f"\"osd 'allow r pool={pool}'\" (EACCES)")
            if err:
                raise StoreError(f"pool {pool!r} ({role} store): cannot list it: {strerror(err)}")

    def describe(self) -> dict:
        how = (f"librados C API, {self.inflight} ops in flight" if self.engine == "c" else "python-rados (fallback)")
        return {
            role: {"type": "rados", "pool": pool, "namespace": self.namespace or "",
                   "ceph_conf": self.ceph_conf or f"librados default ({DEFAULT_SEARCH})", "user": self.user,
                   "read": role == "maps", "engine": how}
            for role, pool in self.pools().items()
        }

    def require_portable(self) -> None:
        """Workers run in their own working dirs: a relative ceph.conf or keyring would be another file there."""
        for what, path in (("-c/--ceph-conf", self.ceph_conf), ("--keyring", self.keyring)):
            if path is not None and not os.path.isabs(path):
                raise UsageError(f"{path}: with --dask give {what} as an absolute path, as the workers see it")

    def shards(self, per_store: int = 1) -> list[Shard]:
        return [Shard(role, lo, hi, PARTS) for role in self.pools() for lo, hi in split(PARTS, per_store)]

    # ---- scanning ----------------------------------------------------------------

    def scan_shard(self, shard: Shard, jobs: int, progress: ProgressFn | None = None) -> ShardResult:
        io = self.ioctx(shard.store)
        if self.engine != "c":
            return _pyrados().py_scan(io, shard, self.pools()[shard.store], self.inflight, progress,
                                      op_timeout=self.op_timeout, empty_locks=self.empty_locks)
        from verify.native import _radoshard

        keep = self._kept is not None and shard.store == "maps"
        # a shard may keep its part of the budget (shards are equal slices of the listing)
        share = max(1, self._keep_max * (shard.hi - shard.lo) // shard.total) if self._keep_max else 0
        rs = _radoshard.RadosShard(io, shard.lo, shard.hi, shard.total, self.inflight, maps=shard.store == "maps",
                                   keep=keep, keep_max=share, empty_locks=self.empty_locks, batch=RECORD_BATCH)
        res, list_err = self._scanned(shard, rs, rs.run, progress)
        if keep and not list_err:
            got = rs.kept()
            if got is None:  # past the budget: the reference stage reads every header again
                self._kept = None
            elif self._kept is not None:
                self._kept.append((shard.lo, shard.hi, shard.total, got))
        return res

    def store_dir(self, role: str) -> str | None:
        """None: a pool has no paths."""
        return None

    def with_pithos_migrate(self, on: bool) -> RadosBackend:
        """Itself: pithos_migrate is a filed setting, and a pool has no old Pithos paths."""
        return self

    def keep_empty_locks(self, on: bool = True) -> None:
        """Make the scans that follow list each lock object without owner as a lock (else only
        counted): radosd may hold one with a RADOS lock (``lock_owner``), which finalize asks of each."""
        self.empty_locks = on

    def keep_heads(self, budget: int = 0) -> None:
        """Make the scans that follow keep what they read of each map header (a check's scan stage):
        the reference stage then reads no header again, and lists no maps pool (C engine only).
        Past ``budget`` bytes (0: no bound) nothing is kept, and the reference stage reads them all."""
        self._kept = []  # only the C engine's scan fills it
        self._keep_max = budget

    def take_heads(self):
        """The kept header reads of the whole maps pool, in listing order: (names, heads, complete), or
        None when the scans did not cover the pool (then the reference stage lists and reads it itself)."""
        kept, self._kept = self._kept, None
        if not kept:
            return None
        kept.sort(key=lambda k: k[0] / k[2])
        reach = 0.0
        for lo, hi, total, _ in kept:
            if lo / total != reach:
                return None
            reach = hi / total
        if reach != 1.0:
            return None
        names, heads, complete = [], [], bytearray()
        for *_, (n, h, c) in kept:
            names += n
            heads += h
            complete += c
        return names, heads, bytes(complete)

    def check_names(self, store: str, names, progress: ProgressFn | None = None) -> ShardResult:
        """Check the named objects as if they had just been listed (the map rules for ``maps``)."""
        io = self.ioctx(store)
        shard = Shard(store, 0, PARTS, PARTS)
        if self.engine != "c":
            return _pyrados().py_scan(io, shard, self.pools()[store], self.inflight, progress, names=list(names),
                                      op_timeout=self.op_timeout, empty_locks=self.empty_locks)
        from verify.native import _radoshard

        rs = _radoshard.RadosShard(io, 0, 1, 1, self.inflight, maps=store == "maps", empty_locks=self.empty_locks,
                                   batch=RECORD_BATCH)
        return self._scanned(shard, rs, lambda: rs.run_names(list(names)), progress)[0]

    # -- the reference and data stages of 'check' (verify/ops/check.py) --

    def check_references(self, jobs: int, progress: ProgressFn | None = None) -> ShardResult:
        """Every map's entries against every object of the blocks pool."""
        return _stages().check_references(self, jobs, progress)

    def verify_data(self, jobs: int, window: Window, progress: ProgressFn | None = None) -> ShardResult:
        """Content hashes of the 64-hex objects whose fingerprint is in ``window`` (start, width, all)."""
        return _stages().verify_data(self, jobs, window, progress)

    # -- the same stages one shard (a range of name hash buckets) at a time (check --dask) --

    def check_shard(self, shard: Shard, jobs: int, locator: bytes) -> tuple[ShardResult, bytes]:
        return _stages().shard_fingerprints(self, shard, locator)

    def explain_shard(self, shard: Shard, jobs: int, records: bytes,
                      width: int) -> tuple[list[Ref], dict[bytes, tuple[int, int]]]:
        return _stages().shard_missing(self, shard, records, width)

    def orphans_shard(self, shard: Shard, jobs: int, records: bytes, width: int) -> ShardResult:
        return _stages().shard_orphans(self, shard, records, width)

    def verify_data_shard(self, shard: Shard, jobs: int, window: Window) -> ShardResult:
        return _stages().verify_data(self, jobs, window, None, shard)

    def object_path(self, name: bytes) -> str | None:
        return None  # a pool has no paths

    def maps_lookup(self, jobs: int):
        """Map lookups by name in the maps pool, as the mapper opens them (pithos-check)."""
        from .maps import RadosMaps

        return RadosMaps(self, jobs)

    # -- object I/O, through python-rados (fixes write through this) --

    def _pool_objects(self, store: str) -> PoolObjects:
        """A python-rados twin of this backend (same settings, its own connection) serves object I/O.
        Made once, under a lock: writers call from several threads."""
        with _OBJECTS_LOCK:
            if self._objects is None:
                twin = dataclasses.replace(self, engine="python")
                self._objects = (twin, {})
            twin, per_store = self._objects
            if store not in per_store:
                per_store[store] = PoolObjects(twin.ioctx(store), self.pools()[store])
            return per_store[store]

    def list_page(self, store: str, cursor=None, limit: int = 1000):
        return self._pool_objects(store).list_page(cursor, limit)

    def read(self, store: str, name: bytes, offset: int = 0, length: int | None = None) -> bytes | None:
        return self._pool_objects(store).read(name, offset, length)

    def stat(self, store: str, name: bytes) -> int | None:
        return self._pool_objects(store).stat(name)

    def write(self, store: str, name: bytes, data: bytes) -> None:
        self._pool_objects(store).write(name, data)

    def write_at(self, store: str, name: bytes, offset: int, data: bytes) -> None:
        self._pool_objects(store).write_at(name, offset, data)

    def lock_owner(self, store: str, name: bytes) -> str | None:
        return self._pool_objects(store).lock_owner(name)

    def remove(self, store: str, name: bytes) -> bool:
        return self._pool_objects(store).remove(name)

    def _scanned(self, shard: Shard, rs, work, progress: ProgressFn | None) -> tuple[ShardResult, int]:
        """``work`` (GIL released inside) in a thread, the progress bar fed meanwhile; stopped and
        joined if interrupted (verify/native/nativejob.py). The loop hands its records over in
        batches of RECORD_BATCH, which become findings here while it runs: within a run's
        ``--memory`` they go into a :class:`FindingSet`, which spills past its share, so a pool
        with 10^8 findings is scanned in bounded RAM. The result, and the listing's errno."""
        res = ShardResult(findings=findingset.FindingSet() if findingset.current() is not None else [])
        pool = self.pools()[shard.store]

        def take() -> None:
            self._add_records(res, shard.store, pool, rs.take_records())

        list_err = nativejob.run(work, rs.stop, rs.progress, progress, name="rados-scan", every=take) or 0
        res.counters = Counter({f"{shard.store}.{k}": v for k, v in rs.counters().items() if v})
        if list_err == E.ETIMEDOUT:
            raise _stalled(pool, self.op_timeout, "listing")
        self._add_records(res, shard.store, pool, rs.records())
        if list_err:
            res.findings.append(list_failure(shard, pool, list_err))
        return res, list_err

    def _add_records(self, res: ShardResult, store: str, pool: str, records: list) -> None:
        """The loop's records (kind, name, detail, errno, version) as findings and locks of ``res``."""
        for kind, name, detail, err, _version in records:
            if kind == "unreadable" and err == E.ETIMEDOUT:  # the loop stopped at the first one
                raise _stalled(pool, self.op_timeout, detail.decode("utf-8", "surrogateescape"), name)
        names, details = escape_names([r[1] for r in records]), escape_names([r[2] for r in records])
        locks, found = res.locks, []
        for (kind, _, _, err, version), name_s, detail_s in zip(records, names, details):
            if kind == "lock":
                locks.append(Lock(store, name_s, detail_s))
                continue
            if kind == "unreadable":
                detail_s = f"{detail_s}: {strerror(err)}"
            found.append(Finding(kind, store, name_s, None, detail_s, version))
        res.findings += found

    def estimated_objects(self) -> int | None:
        """About how many objects a scan of the pools lists, for a progress bar's total and ETA
        and the estimate line under an objects cap: Ceph's object count of each pool (one
        call per pool), or where it says nothing (a namespace is set: it counts them all; 0, as
        without a ceph-mgr) the C engine's count of a sample of the listing (:meth:`_sampled`). Ceph's
        count lags behind recent writes, a sample is a sample: an estimate. None where neither can
        tell (an empty pool, the python-rados engine, stats or listing refused). Made once a backend."""
        if self._estimate is None:
            self._estimate = self._estimated() or 0
        return self._estimate or None

    def _estimated(self) -> int | None:
        total = 0
        for role in self.pools():
            io = self.ioctx(role)
            try:
                if self.engine != "c":
                    count = 0 if self.namespace else io.get_stats()["num_objects"]
                else:
                    count = 0 if self.namespace else io.object_count()
                    count = count or self._sampled(io)
            except Exception:  # noqa: BLE001 - OSError or rados.Error: a bar without a total, never a failed scan
                return None
            if not count:
                return None
            total += count
        return total

    @staticmethod
    def _sampled(io) -> int:
        """The objects of a pool judged from its first listing slices (names are spread over the
        PARTS slices by hash), 1, 2, 4, ... more at a time until SAMPLE_OBJECTS are seen: 1/256 of
        a pool of more than 256 x 4096 objects, 4,000 to 12,000 objects of a smaller one, all of one below."""
        seen, done, step = 0, 0, 1
        while done < PARTS and seen < SAMPLE_OBJECTS:
            hi = min(PARTS, done + step)
            seen += io.count_slices(done, hi, PARTS)
            done, step = hi, step * 2
        return seen * PARTS // done
