"""verify/cli/store_options.py: the default -j of the commands that only read a store (8 threads per CPU, at most 64)."""

from verify.cli.store_options import default_read_jobs


def test_eight_per_cpu():
    assert [default_read_jobs(c) for c in (1, 2, 4)] == [8, 16, 32]


def test_capped_on_big_machines():
    assert default_read_jobs(8) == 64
    assert default_read_jobs(96) == 64
