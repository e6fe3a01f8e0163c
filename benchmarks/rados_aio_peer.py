#!/usr/bin/env python3
"""The peer of the RADOS scan benchmark: what a careful Python programmer would write with
python-rados alone. It lists the pool and keeps INFLIGHT aio ops going with the same reads
as the scan and the C ceiling (benchmarks/rados_ceiling.c): a header read of each header
candidate, a read of each lock's owner, the 8-byte upgrade probe of ``archip_NAME``, a stat of
a v1 map read in full. Names are sorted by the scanner's rules' Python twin (verify/core/formats.py).
No findings, no report: only the reads and their decisions.

    rados_aio_peer.py CONF POOL [INFLIGHT]
    prints "<objects listed> <reads> <probes> <seconds after start>"
"""

from __future__ import annotations

import sys
import time
from collections import deque
from pathlib import Path

t0 = time.monotonic()
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rados  # noqa: E402

from verify.core import formats as F  # noqa: E402
from verify.core import verdict as V  # noqa: E402

LOCK_READ = 255
PROBE = F.ARCHIP_PREFIX.encode()


def main() -> None:
    conf, pool = sys.argv[1], sys.argv[2]
    inflight = int(sys.argv[3]) if len(sys.argv) > 3 else 256
    cluster = rados.Rados(conffile=conf)
    cluster.connect()
    io = cluster.open_ioctx(pool)
    fifo: deque = deque()  # (completion, name, what, result), oldest first, as the C ceiling reaps
    count = {"reads": 0, "probes": 0}

    def read(name: bytes, target: bytes, length: int, what: str) -> None:
        got: list = []
        c = io.aio_read(target.decode(), length, 0, lambda _c, data: got.append(data))
        fifo.append((c, name, what, got))

    def stat(name: bytes) -> None:
        got: list = []
        c = io.aio_stat(name.decode(), lambda _c, size, mtime: got.append(size))
        fifo.append((c, name, "stat", got))

    def upgrade_probe(name: bytes) -> bool:
        if name.startswith(PROBE) and len(name) - len(PROBE) >= F.MIN_NAME_LEN:
            count["probes"] += 1
            read(name, name[len(PROBE):], 8, "probe")
            return True
        return False

    def reap() -> None:
        c, name, what, got = fifo.popleft()
        c.wait_for_complete_and_cb()
        if what == "header" and c.get_return_value() >= 0:
            head = got[0] if got else b""
            short = len(head) < F.SCAN_HEADER_READ
            info = F.classify(head, len(head) if short else (1 << 64) - 1, name)
            if info.cls is F.HeaderClass.V1 and not short and V.v1_length(info.size) > len(head):
                count["probes"] += 1
                stat(name)
            elif info.cls in (F.HeaderClass.V1, F.HeaderClass.V2):
                upgrade_probe(name)
        elif what == "stat" and c.get_return_value() >= 0:
            upgrade_probe(name)

    listed = 0
    for obj in io.list_objects():
        listed += 1
        name = obj.key.encode()
        cls = F.name_class(name)
        if cls is F.NameClass.PLAIN or cls is F.NameClass.LOCK:
            while len(fifo) >= inflight:
                reap()
            count["reads"] += 1
            if cls is F.NameClass.LOCK:
                read(name, name, LOCK_READ, "lock")
            else:
                read(name, name, F.SCAN_HEADER_READ, "header")
    while fifo:
        reap()
    print(listed, count["reads"], count["probes"], f"{time.monotonic() - t0:.6f}")
    io.close()
    cluster.shutdown()


if __name__ == "__main__":
    main()
