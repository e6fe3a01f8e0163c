"""The journal of a writing run: append-only JSON lines, fsynced per record.

A crash can tear only the last line; that line is skipped and reported, never an
error. Any other line that is not a JSON object is an error naming the file and line.
Every writer (upgrade, migrate, finalize) records each step here before and after it,
so that a run stopped anywhere can be shown and resumed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from .atomic import fsync_dir, now_iso
from ..core.errors import StoreError


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
