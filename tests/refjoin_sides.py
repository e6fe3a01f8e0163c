"""Reference-join inputs drawn at random, and the exact answer from plain set arithmetic.

Shared by the join's own tests (tests/native/test_refjoin.py) and the join on Dask
(tests/ops/test_distributed.py).
"""

from __future__ import annotations

import random
import struct

from verify.native import refjoin as R


def shard_sides(seed: int, n_refs: int, n_stored: int, universe: int, payload: bool = True) -> R.Sides:
    """Names ``obj-K`` drawn from a shared universe, so shards overlap and refs repeat."""
    rng = random.Random(seed)
    refs = [f"obj-{rng.randrange(universe)}".encode() for _ in range(n_refs)]
    stored = [f"obj-{rng.randrange(universe)}".encode() for _ in range(n_stored)]
    if not payload:
        return R.Sides(R.records(refs), R.records(stored))
    tag = [struct.pack(">HxxI", seed, i) for i in range(max(n_refs, n_stored))]
    return R.Sides(R.records(refs, tag[:n_refs]), R.records(stored, tag[:n_stored]), R.KEY + 8)


def expected(shards: list[R.Sides]):
    """Exact answer with Python sets and sorted lists of records."""
    w = shards[0].width
    cut = lambda buf: [bytes(buf[i:i + w]) for i in range(0, len(buf), w)]  # noqa: E731
    refs = [r for s in shards for r in cut(s.refs)]
    stored = [r for s in shards for r in cut(s.stored)]
    rk, sk = {r[:R.KEY] for r in refs}, {r[:R.KEY] for r in stored}
    return (sorted(r for r in refs if r[:R.KEY] not in sk), sorted(r for r in stored if r[:R.KEY] not in rk),
            len(rk), len(sk))
