"""pytest-benchmark: the map prober (no database) against a plain Python lookup of the same maps.

    python -m pytest benchmarks/test_pithos_probe_bench.py --benchmark-only

The end-to-end numbers (database included, 250k..1M rows, peak RSS) come from
benchmarks/pithos_bench.py.
"""

from __future__ import annotations

import os

import pytest

from verify.core import formats as F
from verify.core import layout
from verify.backends.filed.maplookup import FiledMaps
from verify.ops.pithos.sample import bench_rows

N = 20000


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe-bench")
    names, sizes = [], []
    for name, body, size in bench_rows(N, seed=3):
        p = root / layout.v04_path(name.encode()).decode()
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(body)
        names.append(name)
        sizes.append(size)
    return root, names, sizes


def naive(root, names, sizes) -> int:
    bad = 0
    for name, size in zip(names, sizes):
        raw = name.encode()
        try:
            with open(os.path.join(root, layout.v04_path(raw).decode()), "rb") as fh:
                body = fh.read()
        except FileNotFoundError:
            bad += 1
            continue
        if len(F.parse_v0(body).entries) != F.nr_objs(size):
            bad += 1
    return bad


def test_probe_check_rows(benchmark, store):
    root, names, sizes = store
    with FiledMaps(str(root), jobs=os.cpu_count() or 1) as fm:
        codes = benchmark(fm.check_rows, names, sizes)
    assert codes.count(0x10) == N


def test_naive_python_lookup(benchmark, store):
    root, names, sizes = store
    assert benchmark(naive, str(root), names, sizes) == 0
