"""Backends: one small interface over the two kinds of store Archipelago uses.

A backend splits a store into independent :class:`Shard` s and scans one shard into
a :class:`~verify.summary.ShardResult`. Shards are plain picklable values so that
they can run on other machines (``--dask``); results merge associatively.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from ..summary import ShardResult

ProgressFn = Callable[[int], None]  # called with the number of files/objects newly seen


@dataclass(frozen=True)
class Shard:
    """A disjoint part of one store: ``[lo, hi)`` of top-level dirs (filed) or of a listing (RADOS)."""

    store: str  # "maps" or "blocks"
    lo: int
    hi: int
    total: int  # how many parts the store is split into (256 for filed)


class Backend(Protocol):
    name: str

    def describe(self) -> dict:
        """What is scanned, for the report's ``stores`` section."""

    def shards(self, per_store: int) -> list[Shard]:
        """The whole of both stores as ``per_store`` shards each."""

    def scan_shard(self, shard: Shard, jobs: int, progress: ProgressFn | None = None) -> ShardResult:
        """Scan one shard; unreadable parts become ``unreadable`` findings, never exceptions."""
