"""The reference join of ``check``, partitioned by fingerprint range so no node holds the whole set.

``check`` must find every referenced object that is not stored (``object_missing``)
and every stored object that nothing references (``object_orphan``). At 10^9
objects neither side fits comfortably in one process as names, so both sides
travel as fixed-width records: a 16-byte fingerprint of the name, the one the
check uses everywhere (the first 128 bits of sha256(name), lowest bit cleared; see
verify/native/_check.h; byte order is numeric order), then an optional payload the
caller uses to turn a record back into a finding (e.g. a shard number and an
index into that shard's names: 8 bytes, 24 bytes a record in all).

Each shard yields its two record arrays (:class:`Sides`); each is cut into ``P``
key ranges (:func:`split`); partition ``i`` gathers range ``i`` of every shard
and diffs the two sorted sides (:func:`join_partition`). On Dask, the splits stay
on the workers that computed them and each partition runs as one task, so a
worker holds about ``width * (refs + stored) / P`` bytes of records at a time
(twice that while it concatenates its pieces), never the whole set. Partitions
are disjoint key ranges in order, so concatenating their results is sorted.
"""

from __future__ import annotations

import contextlib
import operator
import os
from dataclasses import dataclass, field
from typing import Iterable

from . import _refjoin, _rulebatch
from ..core.formats import FP_LEN as KEY


def fingerprint(name: bytes) -> bytes:
    """The 16-byte key of an object name: the reference check's fingerprint (``av_fingerprint``)."""
    return _rulebatch.fingerprints((name,))


def records(names: Iterable[bytes], payloads: Iterable[bytes] | None = None) -> bytearray:
    """Fingerprint records of ``names``, each followed by its payload (all payloads one width)."""
    names = list(names)
    keys = _rulebatch.fingerprints(names)
    if payloads is None:
        return bytearray(keys)
    out = bytearray()
    for i, p in enumerate(_strict(payloads, len(names))):
        out += keys[KEY * i:KEY * (i + 1)]
        out += p
    return out


def _strict(payloads: Iterable[bytes], n: int) -> list[bytes]:
    got = list(payloads)
    if len(got) != n:
        raise ValueError(f"{n} names but {len(got)} payloads")
    return got


@dataclass
class Sides:
    """Records of referenced names and of stored names, ``width`` bytes each."""

    refs: bytes | bytearray = b""
    stored: bytes | bytearray = b""
    width: int = KEY

    def __len__(self) -> int:
        return (len(self.refs) + len(self.stored)) // self.width


@dataclass
class JoinResult:
    """``missing``: ref records whose key is not stored; ``orphans``: stored records no ref names."""

    missing: bytes | bytearray = b""
    orphans: bytes | bytearray = b""
    referenced: int = 0  # distinct referenced keys
    stored: int = 0  # distinct stored keys
    width: int = KEY
    partition_bytes: list[int] = field(default_factory=list)  # records held by each partition task

    def iter_missing(self):
        return _iter(self.missing, self.width)

    def iter_orphans(self):
        return _iter(self.orphans, self.width)

    @classmethod
    def concat(cls, parts: list[JoinResult]) -> JoinResult:
        """Results of disjoint key ranges, given in range order: still sorted."""
        w = parts[0].width if parts else KEY
        return cls(b"".join(p.missing for p in parts), b"".join(p.orphans for p in parts),
                   sum(p.referenced for p in parts), sum(p.stored for p in parts), w,
                   [b for p in parts for b in p.partition_bytes])


def _iter(buf, width):
    for i in range(0, len(buf), width):
        yield bytes(buf[i:i + width])


def split(sides: Sides, parts: int) -> list[Sides]:
    """One shard's records cut into ``parts`` key ranges."""
    refs = _refjoin.partition(sides.refs, sides.width, parts)
    stored = _refjoin.partition(sides.stored, sides.width, parts)
    return [Sides(r, s, sides.width) for r, s in zip(refs, stored)]


def join_partition(pieces: list[Sides]) -> JoinResult:
    """One key range of every shard: sort both sides, diff both ways."""
    width = pieces[0].width if pieces else KEY
    if any(p.width != width for p in pieces):
        raise ValueError("shards disagree on the record width")
    refs = bytearray().join(p.refs for p in pieces)
    stored = bytearray().join(p.stored for p in pieces)
    held = len(refs) + len(stored)
    _refjoin.sort_records(refs, width)
    _refjoin.sort_records(stored, width)
    missing, n_refs = _refjoin.diff(refs, stored, width)
    orphans, n_stored = _refjoin.diff(stored, refs, width)
    return JoinResult(missing, orphans, n_refs, n_stored, width, [held])


def join_local(shards: list[Sides]) -> JoinResult:
    """The whole join in this process (one partition): the single-machine path and the tests' reference."""
    return join_partition(shards)


SPILL_PARTS = 256  # key ranges a spilled join is cut into: each joined alone, ~1/256 of both sides in RAM


class Spool:
    """Both sides of a local join, gathered shard by shard within a memory budget.

    Up to ``budget`` bytes of records stay in RAM and join as :func:`join_local`
    does. Past it, what is held and every later shard is cut into
    :data:`SPILL_PARTS` key ranges appended to two files per range in the spill dir
    (verify/core/spill.py); :meth:`join` then joins one range at a time. Ranges are
    disjoint and in order, so the result is the one the join in RAM gives.
    """

    def __init__(self, width: int = KEY, spill=None, budget: int | None = None, parts: int = SPILL_PARTS):
        self.width, self.spill, self.parts = width, spill, parts
        self.budget = budget if budget is not None else (spill.share(0.5) if spill is not None else None)
        self.held: list[Sides] = []
        self.held_bytes = 0
        self.files: list[tuple[str, str]] | None = None  # (refs, stored) per range once spilled

    def add(self, sides: Sides) -> None:
        if sides.width != self.width:
            raise ValueError("shards disagree on the record width")
        self.held.append(sides)
        self.held_bytes += len(sides.refs) + len(sides.stored)
        if self.spill is not None and (self.files is not None or self.held_bytes > self.budget):
            self._spill()

    def _spill(self) -> None:
        if self.files is None:
            self.files = [(self.spill.path(self.spill.fresh(f"join-refs-{i:03d}")),
                           self.spill.path(self.spill.fresh(f"join-stored-{i:03d}"))) for i in range(self.parts)]
        for sides in self.held:
            for (refs_path, stored_path), part in zip(self.files, split(sides, self.parts)):
                for path, recs in ((refs_path, part.refs), (stored_path, part.stored)):
                    if recs:
                        with self.spill.writing(os.path.basename(path), "ab") as fh:
                            fh.write(recs)
        self.held, self.held_bytes = [], 0

    def _read(self, path: str) -> bytearray:
        try:
            with open(path, "rb") as fh:
                return bytearray(fh.read())
        except FileNotFoundError:
            return bytearray()
        except OSError as e:
            raise self.spill.error(e) from None

    def join(self) -> JoinResult:
        if self.files is None:
            return join_partition(self.held) if self.held else JoinResult(width=self.width)
        parts = []
        for refs_path, stored_path in self.files:
            parts.append(join_partition([Sides(self._read(refs_path), self._read(stored_path), self.width)]))
            for p in (refs_path, stored_path):
                with contextlib.suppress(OSError):
                    os.unlink(p)
        return JoinResult.concat(parts)


def join_distributed(client, shard_futures: list, parts: int, retries: int = 2) -> JoinResult:
    """The join over a Dask cluster; ``shard_futures`` resolve to :class:`Sides` on the workers.

    Nothing but the (small) results comes back here. Tasks are recomputed from
    their inputs if a worker dies, so the shard futures must be tasks, not scattered data.
    """
    splits = client.map(split, shard_futures, parts=parts, pure=False, retries=retries)
    joins = []
    for i in range(parts):
        pieces = [client.submit(operator.getitem, s, i, pure=False, retries=retries) for s in splits]
        joins.append(client.submit(join_partition, pieces, pure=False, retries=retries))
    return JoinResult.concat(client.gather(joins))
