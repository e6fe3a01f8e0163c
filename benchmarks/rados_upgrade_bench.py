#!/usr/bin/env python3
"""Maps/s of ``upgrade-maps --backend rados --offline --yes`` against a loop of synchronous librados calls.

Both sides upgrade the same v1 maps (``archip_vol-N``, 8 entries each) in a namespace of
their own, and end with the same objects in the pool:

* archverify: ``verify.ops.fixes.upgrade.upgrade_maps`` on a RadosBackend, as the command runs
  it: the scan of the pool, the lock check of each map, the originals saved to a backup
  dir, every step journaled (fsync'd) and written through the object I/O (a read before
  each write, so that a replay writes nothing), ``--jobs`` maps at a time;
* the loop: for each map, one synchronous read of the object, the same planner, then the
  same writes and removes one synchronous librados call after the other (python-rados),
  with no scan, backups, journal or lock check: the least a sequential tool can do.

Pairs are run alternately (which side goes first swaps every pair); the ratio printed is
the median over the pairs of archverify's maps/s over the loop's.

``--delay-max S`` runs both sides with client-side latency injected (Ceph's
``ms_inject_delay_*``: each OSD reply delayed uniformly by 0..S seconds), which stands
for a cluster across a network, where each synchronous round trip costs milliseconds.

    python benchmarks/rados_upgrade_bench.py                       # starts its own cluster
    python benchmarks/rados_upgrade_bench.py --conf /path/ceph.conf --maps 1000 --pairs 5
    python benchmarks/rados_upgrade_bench.py --maps 100 --delay-max 0.004
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from verify.core import formats as F  # noqa: E402
from verify.backends.rados.backend import RadosBackend  # noqa: E402
from verify.ops.fixes import upgrade as U  # noqa: E402

POOL = "bench-upgrade"


def v1_maps(n: int) -> dict[str, bytes]:
    out = {}
    for i in range(n):
        entries = [(k % 2, hashlib.sha256(f"{i}-{k}".encode()).hexdigest()) for k in range(8)]
        out[f"archip_vol-{i:06d}"] = F.write_v1(8 * F.BLOCK_SIZE_4M, entries)
    return out


def backend(conf: str, keyring: str | None, ns: str) -> RadosBackend:
    return RadosBackend(POOL, None, conf, None, keyring, namespace=ns)


def load(conf, keyring, maps: dict[str, bytes]) -> RadosBackend:
    be = backend(conf, keyring, f"b-{uuid.uuid4().hex[:10]}")
    for k, v in maps.items():
        be.write("maps", k.encode(), v)
    return be


def run_archverify(be, jobs: int, n: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        s = U.upgrade_maps(be, apply=True, backup_dir=d, logdir=None, mode="offline", jobs=jobs)
        dt = time.perf_counter() - t
    assert s["counts"] == {"upgraded": n}, s["counts"]
    return n / dt


def run_loop(be, names: list[str]) -> float:
    io = be._pool_objects("maps").io  # a plain python-rados ioctx
    t = time.perf_counter()
    for name in names:
        size = io.stat(name)[0]
        plan = U.plan_v1(name, io.read(name, size, 0))
        for step in plan.steps:
            if step.op == "write":
                io.write(step.obj, step.data, step.offset)
            else:
                io.remove_object(step.obj)
    return len(names) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conf", help="an existing cluster's ceph.conf (client.admin); default: start one")
    ap.add_argument("--keyring")
    ap.add_argument("--maps", type=int, default=300)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("-j", "--jobs", type=int, default=8)
    ap.add_argument("--delay-max", type=float, default=0.0,
                    help="inject 0..S seconds of latency into every OSD reply, on both sides [0: none]")
    a = ap.parse_args()
    started = None
    conf, keyring = a.conf, a.keyring
    try:
        if conf is None:
            started = Path(tempfile.mkdtemp(prefix="archverify-upgrade-bench-"))
            p = subprocess.run([str(ROOT / "scripts" / "ceph-dev-cluster"), "start", str(started)],
                               capture_output=True, text=True, check=True)
            conf, keyring = p.stdout.strip().splitlines()[-1], str(started / "keyring")
        import rados

        c = rados.Rados(conffile=conf, conf={"keyring": keyring} if keyring else {})
        c.connect(timeout=30)
        if not c.pool_exists(POOL):
            c.create_pool(POOL)
        c.shutdown()
        maps = v1_maps(a.maps)
        run_conf = conf
        if a.delay_max > 0:
            inject = (f"ms inject delay type = osd\nms inject delay max = {a.delay_max}\n"
                      "ms inject delay probability = 1\n")
            text = Path(conf).read_text()
            text = text.replace("[client]\n", "[client]\n" + inject, 1) if "[client]\n" in text else \
                text + "\n[client]\n" + inject
            run_conf = str(Path(tempfile.mkdtemp(prefix="archverify-upgrade-bench-conf-")) / "delayed.conf")
            Path(run_conf).write_text(text)
        ratios = []
        for i in range(a.pairs):
            sides = ["archverify", "loop"] if i % 2 == 0 else ["loop", "archverify"]
            rate = {}
            for side in sides:
                be = backend(run_conf, keyring, load(conf, keyring, maps).namespace)  # loaded without the delay
                rate[side] = run_archverify(be, a.jobs, a.maps) if side == "archverify" else run_loop(be, sorted(maps))
            ratios.append(rate["archverify"] / rate["loop"])
            print(f"pair {i + 1}: archverify {rate['archverify']:.1f} maps/s, loop {rate['loop']:.1f} maps/s, "
                  f"ratio {ratios[-1]:.2f}", flush=True)
        delay = f", latency 0-{a.delay_max * 1000:g} ms per OSD reply" if a.delay_max > 0 else ""
        print(f"offline upgrade on RADOS, {a.maps} v1 maps, -j {a.jobs}{delay}: archverify / synchronous loop = "
              f"{statistics.median(ratios):.2f} (median of {a.pairs} alternated pairs)")
    finally:
        if started is not None:
            subprocess.run([str(ROOT / "scripts" / "ceph-dev-cluster"), "purge", str(started)], capture_output=True)


if __name__ == "__main__":
    main()
