"""The partitioned reference join against plain set arithmetic on the same names."""

from __future__ import annotations

import pytest

from refjoin_sides import expected, shard_sides
from verify.native import _refjoin
from verify.native import refjoin as R


def check(result: R.JoinResult, exp) -> None:
    missing, orphans, n_refs, n_stored = exp
    assert list(result.iter_missing()) == missing
    assert list(result.iter_orphans()) == orphans
    assert (result.referenced, result.stored) == (n_refs, n_stored)


@pytest.mark.parametrize("payload", [False, True])
@pytest.mark.parametrize("parts", [1, 2, 7, 64])
def test_partitioned_join_is_exact(payload, parts):
    shards = [shard_sides(seed, 3000, 2500, 6000, payload) for seed in range(4)]
    exp = expected(shards)
    assert exp[0] and exp[1]  # both kinds of difference exist
    check(R.join_local(shards), exp)
    per_part = [R.split(s, parts) for s in shards]
    partitions = [R.join_partition([p[i] for p in per_part]) for i in range(parts)]
    check(R.JoinResult.concat(partitions), exp)


def test_split_covers_key_ranges_in_order():
    s = shard_sides(1, 5000, 0, 10**9, payload=False)
    parts = R.split(s, 5)
    assert sum(len(p) for p in parts) == len(s)
    for i, p in enumerate(parts):
        for k in range(0, len(p.refs), R.KEY):
            top = int.from_bytes(p.refs[k:k + 4], "big")
            assert top * 5 >> 32 == i


def test_hand_made_records():
    k = lambda b: bytes([b]) * R.KEY  # noqa: E731
    refs = bytearray(k(3) + k(1) + k(3) + k(9))
    stored = bytearray(k(1) + k(2))
    res = R.join_local([R.Sides(refs, stored)])
    assert list(res.iter_missing()) == [k(3), k(3), k(9)]
    assert list(res.iter_orphans()) == [k(2)]
    assert (res.referenced, res.stored) == (3, 2)


def test_empty_sides():
    res = R.join_local([R.Sides(b"", b"")])
    assert (res.missing, res.orphans, res.referenced, res.stored) == (b"", b"", 0, 0)


@pytest.mark.parametrize("width,size", [(8, 16), (16, 17), (24, 40)])
def test_bad_record_buffers_are_refused(width, size):
    with pytest.raises(ValueError):
        _refjoin.sort_records(bytearray(size), width)
    with pytest.raises(ValueError):
        _refjoin.partition(bytes(size), width, 2)


def test_fingerprint_is_the_checks_sha256_prefix():
    import hashlib

    d = hashlib.sha256(b"abc").digest()
    assert R.fingerprint(b"abc") == d[:15] + bytes([d[15] & 0xFE])
