"""pytest-benchmark timings of the scanner and the naive baseline on one small tree.

    pytest benchmarks/            # or: pytest benchmarks/ --benchmark-only

No timed assertions: pytest-benchmark records and compares timings; the ratios
that count are printed by benchmarks/run.py. Each benchmark does check that the
answer is the same, so a fast wrong scan does not pass for a fast one.
"""

from __future__ import annotations

import os

import pytest

from benchmarks import gen_tree, naive_scan
from verify.backends.filed.backend import FiledBackend
from verify.ops.scan import scan


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-tree")
    m = gen_tree.generate(root, files=8000, seed=5, jobs=1)
    m["root"] = root
    return m


def _kinds(summary) -> dict:
    return dict(summary.per_kind)


def _planted_kinds(m) -> dict:
    return {k: len(v) for k, v in m["planted"].items()}


@pytest.mark.parametrize("jobs", [1, os.cpu_count() or 1])
def test_scan(benchmark, tree, jobs):
    be = FiledBackend(str(tree["root"] / "maps"), str(tree["root"] / "blocks"))
    summary = benchmark(scan, be, jobs, False)
    assert _kinds(summary) == _planted_kinds(tree)


def test_naive(benchmark, tree):
    summary = benchmark.pedantic(naive_scan.scan, (str(tree["root"] / "maps"), str(tree["root"] / "blocks")),
                                 rounds=3, iterations=1)
    assert _kinds(summary) == _planted_kinds(tree)
