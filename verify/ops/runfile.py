"""The layout of one ``check --state`` run file, so a run reads and writes it in one pass.

A gzip stream of one JSON object. Its first line holds every member but the list of
findings (counts, digests, the first new and resolved, progress: a few KB) and ends
with a comma; the second is ``"findings":[``; then one sorted ``[kind, store, name]``
per line; the last line closes the list and the object. json.load reads it as it read
the one-line files before, and a run reads the head alone, or the list a batch of keys
at a time, holding neither whole. The list is written while it is compared, into a
gzip member of its own; the head, known only then, goes in front as another member.

A file in another layout (format 1, a compacted run, one written before this layout)
is read whole, as it always was: compacted runs are a few KB, and an older full list
is read once, by the first run that compares with it.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from ..durable.atomic import replaced

VERSION = 2
LIST_LINE = '"findings":[\n'
BATCH = 4096  # keys per json.loads or write
Key = tuple[str, str, str]
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def _check(doc) -> dict:
    if not isinstance(doc, dict):
        raise TypeError("not a JSON object")
    version = doc.get("version", 1)
    if version not in (1, VERSION):
        raise ValueError(f"state format version {version}, this archverify reads 1 and {VERSION}")
    return doc


def _whole(path: Path) -> dict:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return _check(json.load(fh))


@contextlib.contextmanager
def _streamed(path: Path):
    """The open file past its list line when it has this module's layout, else None; and its head."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        first = fh.readline()
        if first.startswith("{") and first.endswith(",\n") and fh.readline() == LIST_LINE:
            yield fh, _check(json.loads(first[:-2] + "}"))
        else:
            yield None, None


def read_head(path: Path) -> dict:
    """Every member but the list; ``findings`` is True when the file has a list, False for a compacted run.

    Raises OSError, EOFError, ValueError, KeyError, TypeError."""
    with _streamed(path) as (fh, head):
        if fh is not None:
            head["findings"] = True
            return head
    doc = _whole(path)
    doc["findings"] = doc.get("findings") is not None
    return doc


def keys(path: Path) -> Iterator[Key]:
    """The file's list of keys, in file order (an empty one for a compacted run)."""
    with _streamed(path) as (fh, _head):
        if fh is None:
            for k in _whole(path).get("findings") or ():
                yield _key(k)
            return
        batch: list[str] = []
        for line in fh:
            if line.startswith("]"):
                break
            batch.append(line)
            if len(batch) == BATCH:
                yield from map(_key, json.loads("[" + "".join(batch).rstrip(",\n") + "]"))
                batch = []
        else:
            raise EOFError("the list of findings ends before its end")
        if batch:
            yield from map(_key, json.loads("[" + "".join(batch).rstrip(",\n") + "]"))


def _key(k) -> Key:
    if not (isinstance(k, list) and len(k) == 3 and all(isinstance(s, str) for s in k)):
        raise TypeError(f"{str(k)[:80]} is not a [kind, store, name]")
    return k[0], k[1], k[2]


class Body:
    """The list of a run being written: add keys in order, then :meth:`save` with the head in front."""

    def __init__(self, d: Path):
        fd, self.path = tempfile.mkstemp(prefix=".list-", suffix=".tmp", dir=d)
        self._raw = os.fdopen(fd, "wb")
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb")
        self._lines: list[str] = []
        self._n = 0

    def add(self, key: Key) -> None:
        self._lines.append(_dumps(key))
        if len(self._lines) == BATCH:
            self._write()

    def _write(self) -> None:
        if self._lines:
            self._gz.write((",\n" if self._n else "").encode() + ",\n".join(self._lines).encode())
            self._n += len(self._lines)
            self._lines = []

    def save(self, path: Path, head: dict) -> None:
        """``path`` atomically: the head's members, then this list."""
        self._write()
        self._gz.write(b"\n]}\n" if self._n else b"]}\n")
        self._gz.close()
        self._raw.close()
        with replaced(path, binary=True) as raw, open(self.path, "rb") as body:
            with gzip.GzipFile(fileobj=raw, mode="wb") as gz:
                gz.write((_dumps(head)[:-1] + ",\n" + LIST_LINE).encode())
            shutil.copyfileobj(body, raw)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._gz.close()
            self._raw.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def write_compact(path: Path, doc: dict) -> None:
    """A run without its list, in one line (atomically)."""
    with replaced(path, binary=True) as raw, gzip.GzipFile(fileobj=raw, mode="wb") as gz:
        gz.write(_dumps(doc).encode())
