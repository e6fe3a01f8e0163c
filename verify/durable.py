"""What every archverify writer relies on to survive a crash, a full disk or a signal.

- :func:`fsync_dir`: a create, link, rename or unlink is durable only once its directory is fsynced.
- :func:`written_temp` / :func:`atomic_write`: new content goes to a temp file in the
  same filesystem, is fsynced, and only then renamed (or linked) into place; on any
  error, ENOSPC included, the temp file is removed, so the old file is all that is left.
- :class:`Journal`: append-only JSON lines, fsynced per record. A crash can tear
  only the last line; that line is skipped and reported, never an error. Any other
  line that is not a JSON object is an error naming the file and line.
- Locks (``flock``, released by the kernel however the process ends):
  :func:`run_lock` (one run per journal dir and command), :func:`lock_file`
  (``--lock FILE``) and :func:`store_locks` (one writer per store, whatever its
  journal dir: a lock file at each store root). A refusal names the holder: host, pid, since.
- :func:`stop_between_steps` / :func:`check_stop`: SIGINT and SIGTERM only *ask* a
  writer to stop; it finishes the step it is in, journals it, and raises
  :class:`~verify.errors.Interrupted` before the next one.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import itertools
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from concurrent.futures import Executor

from .errors import Interrupted, LockedError, StoreError

TMP_PREFIX = ".archverify-tmp."
STORE_LOCK_NAME = ".archverify.lock"  # at the root of each store being written


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def fsync_dir(path: str | bytes | os.PathLike) -> None:
    """Make a directory's entries (a create, link, rename or unlink in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- atomic writes -------------------------------------------------------------------

_tmp_serial = itertools.count()


def temp_name(directory: str, name: str) -> str:
    """A temp path in ``directory`` unique to this process and call; ``TMP_PREFIX`` marks it as ours."""
    return os.path.join(directory, f"{TMP_PREFIX}{name[:160]}.{os.getpid()}.{next(_tmp_serial)}")


@contextlib.contextmanager
def written_temp(directory: str, name: str, data: bytes, mode: int | None = None,
                 owner: tuple[int, int] | None = None) -> Iterator[str]:
    """A temp file in ``directory`` holding ``data``, fsynced; removed on exit unless renamed away.

    ``mode`` None: 0o666 less the umask, as ``open`` would; else exactly ``mode``.
    ``owner`` is applied when running as root. Whatever fails (ENOSPC in the middle
    of the data, an fsync error, the caller's rename), no temp file is left behind.
    """
    tmp = temp_name(directory, name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666 if mode is None else mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if mode is not None:
                os.fchmod(fd, mode)
            if owner is not None and os.geteuid() == 0:
                os.fchown(fd, *owner)
            os.fsync(fd)
        finally:
            os.close(fd)
        yield tmp
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass  # renamed into place
        except OSError:
            pass  # the original error (if any) is the one to report
        else:
            with contextlib.suppress(OSError):
                fsync_dir(directory)


def atomic_write(path: str | os.PathLike, data: bytes, mode: int | None = None,
                 owner: tuple[int, int] | None = None, tmp_dir: str | None = None) -> None:
    """Put ``data`` at ``path`` all at once: temp, fsync, rename, fsync the dir(s).

    ``tmp_dir`` (default: the dir of ``path``) must be on the same filesystem;
    filed stores keep their temps at the store root, where filed never looks.
    """
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    tmp_dir = tmp_dir or d
    with written_temp(tmp_dir, os.path.basename(path), data, mode, owner) as tmp:
        os.rename(tmp, path)
    fsync_dir(d)
    if os.path.abspath(tmp_dir) != d:
        fsync_dir(tmp_dir)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def replaced(path: str | os.PathLike, binary: bool = False) -> Iterator:
    """A file to stream ``path``'s new content into; renamed over ``path`` when the block ends well.

    For reports, logs, state and metrics, whose content is written piece by piece. A
    symlink's target is replaced, not the link; an existing file keeps its mode, a new
    one gets the umask's. Whatever goes wrong (a full disk, a signal), the temp is removed.
    """
    target = os.path.realpath(path)
    d = os.path.dirname(target)
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    tmp = temp_name(d, os.path.basename(target))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        fsync_dir(d)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """:func:`replaced` for content already in memory (text or bytes)."""
    with replaced(path, binary=isinstance(data, bytes)) as fh:
        fh.write(data)


def stale_temps(directory: str, name: str) -> list[str]:
    """Temps of ``name`` in ``directory`` whose writing process is gone (killed between create and rename)."""
    stale = []
    prefix = f"{TMP_PREFIX}{name[:160]}."
    for e in os.listdir(directory):
        if not e.startswith(prefix):
            continue
        try:
            pid = int(e[len(prefix):].split(".")[0])
            os.kill(pid, 0)
        except ValueError:
            continue  # not one of ours
        except ProcessLookupError:
            stale.append(os.path.join(directory, e))
        except PermissionError:
            pass  # alive, another user's
    return stale


def remove_temps(directory: str) -> list[str]:
    """Remove the temps a killed run left in ``directory`` (call only under the lock of that dir)."""
    removed = []
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for e in entries:
        if e.startswith(TMP_PREFIX):
            p = os.path.join(directory, e)
            if os.path.isfile(p) and not os.path.islink(p):
                os.unlink(p)
                removed.append(p)
    if removed:
        fsync_dir(directory)
    return removed


# ---- the journal -----------------------------------------------------------------------


@dataclass(frozen=True)
class TornLine:
    """The last line of a journal, cut short by a crash in the middle of an append."""

    path: str
    line: int
    size: int

    def __str__(self) -> str:
        return (f"{self.path}: line {self.line} was cut short by a crash ({self.size} bytes); "
                "that record never completed and is ignored")


def _warn(msg: str) -> None:
    print(f"archverify: warning: {msg}", file=sys.stderr)


class Journal:
    """One JSON-lines file; :meth:`append` is durable when it returns.

    Each record gets ``t`` (UTC, ISO 8601) unless it has one. Workers of one run
    may append at once: the write is serialized, the fsync is not, so they share
    the disk flushes instead of queueing for them.
    """

    def __init__(self, path: str | os.PathLike, report: Callable[[str], None] = _warn):
        self.path = os.fspath(path)
        self.report = report
        self.torn: TornLine | None = None
        self._reported = False
        self._lock = threading.Lock()
        self._fd: int | None = None
        d = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise StoreError(f"{d}: cannot create the journal dir: {e.strerror}") from None

    def append(self, record: dict) -> dict:
        rec = record if "t" in record else {"t": now_iso(), **record}
        line = (json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n").encode()
        with self._lock:
            fd = self._fd if self._fd is not None else self._open()
            os.write(fd, line)
        os.fsync(fd)
        return rec

    def _open(self) -> int:
        d = os.path.dirname(os.path.abspath(self.path))
        created = not os.path.exists(self.path)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            self._cut_torn_tail(fd)
        except BaseException:
            os.close(fd)
            raise
        if created:
            fsync_dir(d)
        self._fd = fd
        return fd

    def _cut_torn_tail(self, fd: int) -> None:
        """A torn last line must never end up in the middle: cut it off before appending."""
        size = os.fstat(fd).st_size
        if not size or os.pread(fd, 1, size - 1) == b"\n":
            return
        start = size
        while start > 0:
            chunk = os.pread(fd, min(65536, start), max(0, start - 65536))
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                start = start - len(chunk) + nl + 1
                break
            start -= len(chunk)
        tail = os.pread(fd, size - start, start)
        if _record(tail) is not None:
            os.write(fd, b"\n")  # whole, only its newline missing
        else:
            self.torn = self.torn or TornLine(self.path, _count_lines(fd, start) + 1, size - start)
            self._report_torn()
            os.ftruncate(fd, start)
        os.fsync(fd)

    def _report_torn(self) -> None:
        if self.torn is not None and not self._reported:
            self._reported = True
            self.report(str(self.torn))

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def records(self) -> list[dict]:
        """Every complete record, in order; a torn last line is skipped (and reported once)."""
        out = []
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return out
        with fh:
            for n, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                rec = _record(raw)
                if rec is not None:
                    out.append(rec)
                elif not raw.endswith(b"\n"):
                    self.torn = TornLine(self.path, n, len(raw))
                    self._report_torn()
                else:
                    raise StoreError(f"{self.path}: line {n} is not a journal record; the journal is damaged: "
                                     "move it away to start over (the store itself is safe to scan)")
        return out

    def pending(self) -> list[dict]:
        """Intents (``ev == "intent"``) with no later ``done``/``failed`` of the same ``id``, in order."""
        open_: dict[str, dict] = {}
        for rec in self.records():
            ev, key = rec.get("ev"), rec.get("id")
            if key is None:
                continue
            if ev == "intent":
                open_[key] = rec
            elif ev in ("done", "failed"):
                open_.pop(key, None)
        return list(open_.values())

    def done_ids(self) -> set[str]:
        return {r["id"] for r in self.records() if r.get("ev") == "done" and "id" in r}

    def archive(self) -> str:
        """Move the journal aside (``PATH.<UTC time>``) so that the next run starts a fresh one."""
        self.close()
        dst = f"{self.path}.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        os.replace(self.path, dst)
        fsync_dir(os.path.dirname(os.path.abspath(self.path)))
        return dst


def _record(raw: bytes) -> dict | None:
    try:
        rec = json.loads(raw)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def _count_lines(fd: int, end: int) -> int:
    n, off = 0, 0
    while off < end:
        chunk = os.pread(fd, min(1 << 20, end - off), off)
        if not chunk:
            break
        n += chunk.count(b"\n")
        off += len(chunk)
    return n


# ---- locks -----------------------------------------------------------------------------

def _holder(what: str) -> str:
    import socket  # only a writer's lock names its host: a scan does not load it

    return f"archverify {what} on host {socket.gethostname()}, pid {os.getpid()}, since {now_iso()}"


@contextlib.contextmanager
def _flock(path: str, what: str, refusal: str, remove: bool = False) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created if need be) and write the holder into it.

    ``remove``: unlink the file on release (while still holding it); an acquirer
    that opened the old file then sees that the path no longer names it and retries.
    """
    fd = _acquire(path, refusal)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{_holder(what)}\n".encode(), 0)
        os.fsync(fd)  # so that another NFS client can read who holds it
        yield
    finally:
        if remove:
            with contextlib.suppress(OSError):
                os.unlink(path)
        os.close(fd)


def _acquire(path: str, refusal: str) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise StoreError(f"{path}: cannot open the lock file: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 300, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise LockedError(f"{path}: held by {holder or 'another archverify run'}; {refusal}") from None
            raise StoreError(f"{path}: cannot lock: {e.strerror}") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # its holder removed it as we opened it: take the new one


@contextlib.contextmanager
def lock_file(path: str | os.PathLike, what: str = "run") -> Iterator[None]:
    """``--lock FILE``: one run at a time, for cron.

    An flock on FILE, held for the whole run and released by the kernel when the
    process ends however it ends, so a crashed run never leaves a stale lock; the
    file itself stays. The holder (host, pid, since) is written into it for the
    refusal message."""
    with _flock(os.fspath(path), what, "not starting"):
        yield


@contextlib.contextmanager
def run_lock(directory: str | os.PathLike, name: str, remove: bool = False) -> Iterator[None]:
    """One archverify ``name`` per journal dir: ``DIR/NAME.lock`` (``remove``: gone when released)."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise StoreError(f"{directory}: cannot create the journal dir: {e.strerror}") from None
    with _flock(os.path.join(directory, f"{name}.lock"), name,
                f"another archverify {name} uses this journal dir; not starting", remove=remove):
        yield


@contextlib.contextmanager
def store_locks(roots: Iterable[str], what: str) -> Iterator[None]:
    """One writer per store: ``ROOT/.archverify.lock`` at each store root, whatever the journal dir.

    The file exists only while a writer runs. flock over NFSv4 is forwarded to the
    server, so writers on two nodes sharing the store exclude each other too.
    """
    seen: dict[str, None] = {}
    for r in roots:
        seen.setdefault(os.path.realpath(r), None)
    with contextlib.ExitStack() as stack:
        for root in sorted(seen):  # one order for every writer: no deadlock, and none waits anyway
            stack.enter_context(_flock(os.path.join(root, STORE_LOCK_NAME), what,
                                       f"another archverify writer is working on this store; not starting "
                                       f"(run again once it has ended)", remove=True))
        yield


# ---- signals: stop between two steps ------------------------------------------------

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_stop: dict = {"signo": None, "depth": 0, "saved": None}


def _on_signal(signo, _frame) -> None:
    if _stop["signo"] is None:
        _stop["signo"] = signo


def catch_stop_signals() -> None:
    """From now on SIGINT/SIGTERM only set the stop flag (writer commands: for the rest of the process).

    Once the interpreter begins to exit they are ignored: the work is over, and a
    late signal must not turn the run's exit code into a death by signal.
    """
    if threading.current_thread() is threading.main_thread():
        for s in _STOP_SIGNALS:
            previous = signal.signal(s, _on_signal)
            _stop.setdefault("before_catch", {}).setdefault(s, previous)
        if not _stop.get("atexit"):
            _stop["atexit"] = True
            atexit.register(_ignore_stop_signals)


def release_stop_signals() -> None:
    """Undo :func:`catch_stop_signals` and clear the flag: for a process that goes on after a
    writer command returned (a program embedding archverify, the test suite)."""
    for s, h in _stop.pop("before_catch", {}).items():
        signal.signal(s, h)
    _stop["signo"] = None


def _ignore_stop_signals() -> None:
    for s in _STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)  # process-wide, and kept by the interpreter's own teardown


@contextlib.contextmanager
def stop_between_steps() -> Iterator[None]:
    """Within: a signal sets the stop flag, which :func:`check_stop` turns into :class:`Interrupted`.

    Nests; the outermost one (when the handlers were not already ours) restores the
    previous handlers and clears the flag. Outside the main thread, nothing changes.
    """
    main = threading.current_thread() is threading.main_thread()
    installs = main and _stop["depth"] == 0 and signal.getsignal(signal.SIGTERM) is not _on_signal
    if installs:
        _stop["saved"] = {s: signal.signal(s, _on_signal) for s in _STOP_SIGNALS}
    _stop["depth"] += 1
    try:
        yield
    finally:
        _stop["depth"] -= 1
        if installs:
            for s, h in _stop["saved"].items():
                signal.signal(s, h)
            _stop["saved"] = None
            _stop["signo"] = None


def stop_requested() -> int | None:
    """The signal that asked to stop, if any."""
    return _stop["signo"]


def map_steps(pool: Executor, step: Callable, items: Iterable) -> list:
    """``step`` over ``items`` in ``pool``, results in order. On the first exception (an
    :class:`Interrupted` from :func:`check_stop`) the steps not begun are cancelled, the
    ones in hand are finished, and it is raised."""
    futures = [pool.submit(step, it) for it in items]
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise


def check_stop() -> None:
    """Between two steps: raise :class:`Interrupted` if a signal asked to stop."""
    if _stop["signo"] is not None:
        raise Interrupted(_stop["signo"])
