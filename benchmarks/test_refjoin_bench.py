"""pytest-benchmark: one partition task of the reference join against the naive Python join.

    pytest benchmarks/test_refjoin_bench.py --benchmark-only
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dask_bench import join_inputs, naive_join  # noqa: E402

from verify.native import refjoin  # noqa: E402

RECORDS = 200_000


@pytest.fixture(scope="module")
def sides():
    return join_inputs(RECORDS)


def test_join_partition(benchmark, sides):
    res = benchmark(refjoin.join_partition, [sides])
    assert res.referenced == RECORDS // 2


def test_join_naive_baseline(benchmark, sides):
    missing, _ = benchmark(naive_join, sides)
    assert len(missing) == RECORDS // 2 - RECORDS // 4
