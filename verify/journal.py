"""A crash-safe, append-only journal of JSON lines.

Every operation that writes to a store records its intent before acting and its
completion after, one line each, appended with ``O_APPEND`` and fsynced. A crash
can tear at most the last line, which :meth:`Journal.records` ignores; so after any
crash the journal says which operations had begun and which had ended, and a rerun
resumes the unfinished ones (each fix is idempotent, so redoing a step that had in
fact completed is harmless).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import LockedError, StoreError


def fsync_dir(path: str | bytes) -> None:
    """Make a directory's entries (a create, link, rename or unlink in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """One JSON-lines file; ``append`` is durable when it returns."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._lock = threading.Lock()  # workers of one run share the journal
        self._fd: int | None = None
        d = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise StoreError(f"{d}: cannot create the journal dir: {e.strerror}") from None

    def append(self, record: dict) -> None:
        """Write one line and fsync. The write is serialized; the fsync is not, so that
        workers appending at once share the disk flushes instead of queueing for them."""
        rec = {"t": round(time.time(), 3), **record}
        line = (json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n").encode()
        with self._lock:
            fd = self._fd if self._fd is not None else self._open()
            os.write(fd, line)
        os.fsync(fd)

    def _open(self) -> int:
        created = not os.path.exists(self.path)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        # a torn line from an earlier crash must not glue itself to the next one
        if os.fstat(fd).st_size:
            with open(self.path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    os.write(fd, b"\n")
        if created:
            fsync_dir(os.path.dirname(os.path.abspath(self.path)))
        self._fd = fd
        return fd

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def records(self) -> list[dict]:
        """Every complete record, in order; a torn or garbled line is skipped."""
        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return []
        out = []
        for raw in data.split(b"\n"):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except ValueError:
                continue  # only a crash mid-append produces this: that intent never began
            if isinstance(rec, dict):
                out.append(rec)
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


@contextmanager
def run_lock(directory: str | os.PathLike, name: str) -> Iterator[None]:
    """One archverify run per journal dir and command: a second one fails at once."""
    path = os.path.join(directory, f"{name}.lock")
    try:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    except OSError as e:
        raise StoreError(f"{path}: cannot create the run lock: {e.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise LockedError(f"{path}: another archverify {name} is running") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)
