"""Throughput of scan --dask per worker process, and of the partitioned reference join.

    python benchmarks/dask_bench.py [--objects 100000] [--tree DIR] [--join-records 2000000]

Builds (or reuses) a filed tree of healthy objects and maps, then measures on
this machine, in one run:

* the local scan (one process, ``-j 1``): the baseline;
* the scan on a LocalCluster of 1 and of 2 worker processes (``-j 1`` each),
  timed from submitting the shards to the merged result (cluster start-up apart);
* the reference join of ``check``: records/s of one partition task (sort + diff
  both ways) and the bytes of records a partition holds per object.

and prints objects/s per worker process, ratios against the baseline, and the
workers needed for 10^9 objects in 8 hours at the measured per-worker rates.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from verify.cluster import shards as distributed
from verify.native import refjoin  # noqa: E402
from verify.core import formats as F  # noqa: E402
from verify.backends.filed.backend import FiledBackend  # noqa: E402
from verify.ops.sample import FiledStoreWriter  # noqa: E402
from verify.ops.scan import run_shards as local_run_shards  # noqa: E402

TARGET_OBJECTS = 10**9
NIGHT_S = 8 * 3600


def build_tree(root: Path, objects: int, seed: int = 7) -> None:
    """``objects`` block files under v0.4 paths plus one v2 map (and map-data) per 100 of them."""
    done = root / ".complete"
    if done.exists() and done.read_text() == str(objects):
        return
    rng = random.Random(seed)
    maps, blocks = FiledStoreWriter(root / "maps"), FiledStoreWriter(root / "blocks")
    body = b"\0" * 64
    per_map = 100
    for v in range(math.ceil(objects / per_map)):
        names = ["archip_" + rng.randbytes(32).hex() for _ in range(min(per_map, objects - v * per_map))]
        for n in names:
            blocks.put(n, body)
        maps.put_v2(f"bench-vol-{v:06d}", len(names) * F.BLOCK_SIZE_4M, [F.Entry(n, F.OF_ARCHIP) for n in names])
    done.write_text(str(objects))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _worker_cpu(client) -> float:
    return sum(client.run(time.process_time).values())


def best_of(repeat: int, fn, cpu_clock) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of that run): CPU time holds up when others load the machine."""
    runs = []
    for _ in range(repeat):
        c0 = cpu_clock()
        _, wall = timed(fn)
        runs.append((wall, cpu_clock() - c0))
    return min(runs)


def bench_scan(be: FiledBackend, workers_list: list[int], repeat: int) -> dict:
    rows = {}
    shards = be.shards(16)
    files = sum(v for k, v in local_run_shards(be, shards, 1, progress=False).counters.items() if k.endswith(".files"))
    for j in (1, 2):
        rows[f"local, 1 process, -j {j}"] = (1, files, *best_of(
            repeat, lambda: local_run_shards(be, shards, j, progress=False), time.process_time))
    for n in workers_list:
        with distributed.connect(f"local:{n}", timeout=60) as client:
            client.wait_for_workers(n, timeout=60)
            sh = be.shards(distributed.SHARDS_PER_WORKER * n)
            distributed.run_shards(client, be, sh, 1, progress=False)  # imports and warm-up on every worker
            rows[f"--dask local:{n}, -j 1"] = (n, files, *best_of(
                repeat, lambda: distributed.run_shards(client, be, sh, 1, progress=False),
                lambda: _worker_cpu(client)))
    return rows


def join_inputs(records: int) -> refjoin.Sides:
    """Half references, half stored, a quarter of each matching the other: 24-byte records."""
    width = refjoin.KEY + 8
    half = records // 2
    refs = bytearray(os.urandom(half * width))
    stored = bytearray(refs[: (half // 2) * width]) + bytearray(os.urandom((half - half // 2) * width))
    return refjoin.Sides(refs, stored, width)


def naive_join(sides: refjoin.Sides) -> tuple[list[bytes], list[bytes]]:
    """The obvious Python: sets of keys, lists of records. The baseline of the ratio."""
    w = sides.width
    refs = [bytes(sides.refs[i:i + w]) for i in range(0, len(sides.refs), w)]
    stored = [bytes(sides.stored[i:i + w]) for i in range(0, len(sides.stored), w)]
    rk, sk = {r[:refjoin.KEY] for r in refs}, {r[:refjoin.KEY] for r in stored}
    return sorted(r for r in refs if r[:refjoin.KEY] not in sk), sorted(r for r in stored if r[:refjoin.KEY] not in rk)


def bench_join(records: int) -> dict:
    """Records per CPU-second and bytes held per record: one partition task against the naive join."""
    import tracemalloc

    out = {}
    sides = join_inputs(records)
    fast = lambda: refjoin.join_partition([sides])  # noqa: E731
    naive = lambda: naive_join(sides)  # noqa: E731
    for label, fn in (("partition task (C sort + diff)", fast), ("naive Python sets", naive)):
        c0 = time.process_time()
        fn()
        cpu = time.process_time() - c0
        tracemalloc.start()  # a second run: tracing slows Python allocations, so it is not timed
        res = fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out[label] = (records / cpu, peak / records, res)
    f, n = out["partition task (C sort + diff)"][2], out["naive Python sets"][2]
    assert (list(f.iter_missing()), list(f.iter_orphans())) == n, "the join disagrees with the naive one"
    return {k: v[:2] for k, v in out.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--tree", type=Path, help="reuse/build the tree here [default: a temp dir]")
    ap.add_argument("--join-records", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args(argv)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    tmp = None
    if a.tree is None:
        tmp = tempfile.TemporaryDirectory(prefix="archverify-dask-bench-")
        a.tree = Path(tmp.name)
    _, gen_s = timed(lambda: build_tree(a.tree, a.objects))
    be = FiledBackend(str(a.tree / "maps"), str(a.tree / "blocks"))
    print(f"tree: {a.objects} objects + maps under {a.tree} (built/checked in {gen_s:.1f} s); "
          f"{os.cpu_count()} CPUs; warm page cache")
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    rows = bench_scan(be, [1, 2], a.repeat)
    base = None
    print(f"\n{'scan':26} {'files':>7} {'wall s':>7} {'files/s':>8} {'/worker':>8} {'vs local':>8} "
          f"{'CPU s':>6} {'files/CPU-s':>11}")
    for label, (n, files, wall, cpu) in rows.items():
        rate = files / wall
        base = base or rate
        print(f"{label:26} {files:7d} {wall:7.2f} {rate:8.0f} {rate / n:8.0f} {rate / base:7.2f}x "
              f"{cpu:6.2f} {files / cpu:11.0f}")
    joins = bench_join(a.join_records)
    print(f"\nreference join of {a.join_records:,} records of 24 bytes (one partition):")
    base_rate = joins["naive Python sets"][0]
    for label, (rate, peak) in joins.items():
        print(f"  {label:32} {rate:12,.0f} records per CPU-second ({rate / base_rate:5.1f}x), "
              f"peak {peak:6.1f} bytes allocated per record")
    join_rate = joins["partition task (C sort + diff)"][0]
    _, files, wall, cpu = rows["--dask local:1, -j 1"]
    per_wall, per_cpu = files / wall, files / cpu
    need = TARGET_OBJECTS / NIGHT_S
    print(f"\n10^9 objects in 8 h needs {need:,.0f} objects/s. Measured per worker process here "
          f"(warm cache, local disk): {per_wall:,.0f} files/s wall, {per_cpu:,.0f} per CPU-second.")
    print(f"  scan: {math.ceil(need / per_cpu)} busy worker core(s); join (2 records/object): "
          f"{math.ceil(2 * need / join_rate)} cores at {join_rate:,.0f} records per CPU-second")
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
