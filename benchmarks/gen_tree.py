"""Large filed trees (maps + blocks stores) with the mix of a real upgraded store.

    python benchmarks/gen_tree.py OUT [--files 200000] [--seed 1] [--jobs N]

writes ``OUT/maps`` and ``OUT/blocks`` (v0.4 layout: ``d1/d2/d3/NAME`` from
sha256(NAME)) and ``OUT/tree.json`` (what was written, and the planted findings).
Mostly healthy: migrated Pithos blocks, ``archip_`` objects and copy-ups, valid v2
maps with their map-data, v0 maps upgraded in place, plus a little of everything
the scanner reports (about 0.5% of files), lock files and ``_hash`` files.

Speed over realism where the scan cannot tell the difference: data objects are
empty by default (``--block-bytes`` to write some), and a Pithos block's name is
the sha256 of a counter rather than of its content: the scan never reads a data
object, only names and directory entries (a content check is another command).
Maps are real: headers and map-data written by verify/core/formats.py, entries naming
blocks of the same tree. The tree is a pure function of (--files, --seed): the
work is cut into fixed chunks with their own RNG, so --jobs changes only speed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

from verify.core import formats as F
from verify.ops.sample import AT_RISK_NAMES

CHUNK_FILES = 4096  # files per chunk: the unit of determinism and of parallel work

# (what, weight): fraction of items; a map item writes 2 or more files
MIX = [
    ("pithos_block", 0.700),
    ("archip_object", 0.080),
    ("copyup", 0.050),
    ("v2_map", 0.060),
    ("v0_upgraded", 0.025),
    ("map_v1", 0.0010),
    ("lock", 0.003),
    ("hash", 0.004),
    ("temp", 0.001),
    # planted findings
    ("object_unmigrated", 0.0025),
    ("object_leftover", 0.0010),
    ("object_conflict", 0.0005),
    ("object_misplaced", 0.0010),
    ("map_v0", 0.0010),
    ("map_v0_old_path", 0.0003),
    ("map_corrupt", 0.0010),
    ("map_upgrade_incomplete", 0.0010),
    ("map_invalid_name", 0.0010),
    ("map_data_missing", 0.0010),
    ("stray_entry", 0.0010),
]
_TOTAL = sum(w for _, w in MIX)
_CUM = []
_acc = 0.0
for _what, _w in MIX:
    _acc += _w / _TOTAL
    _CUM.append((_acc, _what))


def pick(r: float) -> str:
    for edge, what in _CUM:
        if r < edge:
            return what
    return MIX[0][0]


def v04_rel(name: bytes) -> bytes:
    h = hashlib.sha256(name).hexdigest().encode()
    return h[0:2] + b"/" + h[2:4] + b"/" + h[4:6] + b"/" + name


def pithos_rel(name: bytes) -> bytes:
    return name[0:2] + b"/" + name[2:4] + b"/" + name[4:6] + b"/" + name


def v03_rel(name: bytes) -> bytes:
    return name[7:9] + b"/" + name[9:11] + b"/" + name[11:13] + b"/" + name


class ChunkWriter:
    """Writes files into one tree; makes each leaf dir at most once per chunk."""

    def __init__(self, out: bytes, block_bytes: int):
        self.roots = {"maps": os.path.join(out, b"maps"), "blocks": os.path.join(out, b"blocks")}
        self.made: set[bytes] = set()
        self.files = Counter()
        self.block_bytes = block_bytes

    def _dir(self, d: bytes) -> None:
        if d in self.made:
            return
        try:
            os.mkdir(d)
        except FileNotFoundError:
            self._dir(os.path.dirname(d))
            try:
                os.mkdir(d)
            except FileExistsError:
                pass
        except FileExistsError:
            pass
        self.made.add(d)

    def put(self, store: str, rel: bytes, data: bytes = b"") -> bytes:
        p = os.path.join(self.roots[store], rel)
        self._dir(os.path.dirname(p))
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        if data:
            os.write(fd, data)
        os.close(fd)
        self.files[store] += 1
        return p

    def link(self, store: str, src_rel: bytes, dst_rel: bytes) -> None:
        dst = os.path.join(self.roots[store], dst_rel)
        self._dir(os.path.dirname(dst))
        os.link(os.path.join(self.roots[store], src_rel), dst)
        self.files[store] += 1

    def block(self, name: bytes, rel: bytes | None = None) -> None:
        self.put("blocks", rel or v04_rel(name), bytes(self.block_bytes))

    def v2_map(self, name: str, entries: list[F.Entry], flags: int = 0, epoch: int = 1,
               header_tail: bytes = b"", skip_mapdata: bool = False) -> None:
        header, data = F.write_v2(len(entries) * F.BLOCK_SIZE_4M, entries, flags=flags, epoch=epoch, name=name)
        self.put("maps", v04_rel(name.encode()), header + header_tail)
        if not skip_mapdata:
            for md, chunk in data.items():
                self.put("maps", v04_rel(md.encode()), chunk)


def write_chunk(args) -> dict:
    """Everything of chunk ``c``: a pure function of (seed, c, budget)."""
    out, seed, c, budget, block_bytes = args
    rng = random.Random(f"{seed}:{c}")
    w = ChunkWriter(out, block_bytes)
    planted: list[tuple[str, str, str]] = []
    written = Counter()
    recent: list[F.Entry] = []  # blocks of this chunk, for maps to reference
    i = 0

    def uname(tag: str) -> bytes:
        return hashlib.sha256(f"{tag}:{seed}:{c}:{i}".encode()).hexdigest().encode()

    def some_entries(k: int) -> list[F.Entry]:
        out_e = []
        for _ in range(k):
            if recent and rng.random() < 0.85:
                out_e.append(recent[rng.randrange(len(recent))])
            else:
                out_e.append(F.Entry(F.ZERO_HASH, F.OF_ZERO))
        return out_e

    if c == 0:  # the data-loss case: only four such names are known, once per tree
        for nm in AT_RISK_NAMES:
            w.block(nm.encode(), pithos_rel(nm.encode()))
            planted.append(("object_at_risk", "blocks", nm))

    while sum(w.files.values()) < budget:
        what = pick(rng.random())
        written[what] += 1
        i += 1
        vol = f"vol-{seed}-{c:05d}-{i:05d}"
        if what == "pithos_block":
            nm = uname("blk")
            w.block(nm)
            recent.append(F.Entry(nm.decode(), 0))
        elif what == "archip_object":
            nm = b"archip_" + uname("arc")
            w.block(nm)
            recent.append(F.Entry(nm.decode(), F.OF_ARCHIP))
        elif what == "copyup":
            nm = F.copyup_name(vol, 1, rng.randrange(64)).encode()
            w.block(nm)
            recent.append(F.Entry(nm.decode(), F.OF_WRITABLE | F.OF_ARCHIP))
        elif what == "v2_map":
            # some with direct-I/O padding (512-byte header object), some with stale entries
            tail = bytes(480) if rng.random() < 0.5 else b""
            w.v2_map(vol, some_entries(rng.randint(1, 8)), header_tail=tail)
        elif what == "v0_upgraded":
            ents = [e for e in some_entries(rng.randint(1, 4))]
            ents = [F.Entry(e.name if F.is_hex64(e.name) else F.ZERO_HASH, 0 if F.is_hex64(e.name) else F.OF_ZERO)
                    for e in ents]
            nm = uname("v0u").decode()
            stale = F.write_v0([e.name for e in ents])[32:]
            w.v2_map(nm, ents, flags=F.MF_READONLY, epoch=0, header_tail=stale)
        elif what == "map_v1":
            nm = "archip_" + vol
            v1 = [(1 if rng.random() < 0.5 else 0, uname("v1e").decode()) for _ in range(3)]
            w.put("maps", v04_rel(nm.encode()), F.write_v1(3 * F.BLOCK_SIZE_4M, v1))
            planted.append((what, "maps", nm))
        elif what == "lock":
            store = "maps" if rng.random() < 0.7 else "blocks"
            w.put(store, v04_rel(f"{vol}_lock".encode()), f"node{rng.randrange(8)}_1234".encode())
        elif what == "hash":
            w.put("blocks", v04_rel(uname("h") + b"_hash"), uname("hc"))
        elif what == "temp":
            w.put("maps", v04_rel(f"{vol}_locknode1_1234_{rng.randrange(256):02x}".encode()), b"")
        elif what == "object_unmigrated":
            nm = uname("unm")
            w.block(nm, pithos_rel(nm))
            planted.append((what, "blocks", nm.decode()))
        elif what == "object_leftover":
            nm = uname("lft")
            w.block(nm, pithos_rel(nm))
            w.link("blocks", pithos_rel(nm), v04_rel(nm))
            planted.append((what, "blocks", nm.decode()))
        elif what == "object_conflict":
            nm = uname("cfl")
            w.put("blocks", pithos_rel(nm), b"old")
            w.put("blocks", v04_rel(nm), b"new")
            planted.append((what, "blocks", nm.decode()))
        elif what == "object_misplaced":
            nm = b"archip_" + uname("v03")
            w.block(nm, v03_rel(nm))
            planted.append((what, "blocks", nm.decode()))
        elif what == "map_v0":
            hs = [e.name for e in some_entries(3) if F.is_hex64(e.name)] or [F.ZERO_HASH]
            nm = uname("v0")
            w.put("maps", v04_rel(nm), F.write_v0(hs))
            planted.append((what, "maps", nm.decode()))
        elif what == "map_v0_old_path":
            nm = uname("v0o")
            w.put("maps", pithos_rel(nm), F.write_v0([F.ZERO_HASH]))
            planted += [("map_v0", "maps", nm.decode()), ("object_unmigrated", "maps", nm.decode())]
        elif what == "map_corrupt":
            nm = f"{vol}-corrupt"
            r = rng.randrange(4)
            if r == 0:
                data = F.V2_HEADER.pack(F.V2_SIGNATURE, 7, 0, F.BLOCK_SIZE_4M, 0, 1)
            elif r == 1:
                data = F.V2_HEADER.pack(F.V2_SIGNATURE, 2, 4096, 1000, 0, 1)
            elif r == 2:
                nm = "archip_" + nm
                data = F.write_v1(2 * F.BLOCK_SIZE_4M, [(0, F.ZERO_HASH)] * 2)[:40]
            else:
                data = F.pack_v2_header(0)[:20]
            w.put("maps", v04_rel(nm.encode()), data)
            planted.append((what, "maps", nm))
        elif what == "map_upgrade_incomplete":
            ents = some_entries(2)
            w.v2_map(vol, ents)
            w.v2_map("archip_" + vol, ents, flags=F.MF_DELETED, epoch=0)
            planted.append((what, "maps", "archip_" + vol))
        elif what == "map_invalid_name":
            if rng.random() < 0.5:
                nm = f"archip_{vol}-r"  # a v1 upgrade whose rename failed
            else:
                nm = f"{vol}_{rng.randrange(1 << 64):016x}-old"  # '_' + 16 hex inside the name
            w.v2_map(nm, some_entries(1), epoch=0)
            planted.append((what, "maps", nm))
        elif what == "map_data_missing":
            w.v2_map(vol, some_entries(rng.randint(1, 3)), skip_mapdata=True)
            planted.append((what, "maps", vol))
        elif what == "stray_entry":
            r = rng.randrange(4)
            root = w.roots["blocks"]
            if r == 0:
                nm = f"s{c}{i}"[:5].encode()  # shorter than 6 bytes
                w.put("blocks", v04_rel(nm))
            elif r == 1:
                nm = b"bad-\xff-" + str(i).encode()
                w.put("blocks", v04_rel(nm))
            elif r == 2:
                nm = f"notes-{c}-{i}.txt".encode()
                w.put("blocks", v04_rel(nm)[:6] + nm)  # depth 3
            else:
                nm = f"link-{c}-{i}".encode()
                p = os.path.join(root, v04_rel(nm))
                w._dir(os.path.dirname(p))
                os.symlink(b"../../../elsewhere", p)
            planted.append((what, "blocks", nm.decode("utf-8", "backslashreplace")))
    return {"files": dict(w.files), "items": dict(written), "planted": planted}


def generate(out: str | os.PathLike, files: int = 200_000, seed: int = 1, jobs: int | None = None,
             block_bytes: int = 0, quiet: bool = True) -> dict:
    """Write the tree; returns (and saves as tree.json) the manifest."""
    outb = os.fsencode(out)
    for s in (b"maps", b"blocks"):
        os.makedirs(os.path.join(outb, s), exist_ok=True)
    nchunks = max(1, -(-files // CHUNK_FILES))
    tasks = [(outb, seed, c, min(CHUNK_FILES, files - c * CHUNK_FILES), block_bytes) for c in range(nchunks)]
    t0 = time.monotonic()
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1 or nchunks == 1:
        results = [write_chunk(t) for t in tasks]
    else:
        with Pool(jobs) as pool:
            results = []
            for k, r in enumerate(pool.imap(write_chunk, tasks, chunksize=1)):
                results.append(r)
                if not quiet and k % 16 == 15:
                    print(f"  {k + 1}/{nchunks} chunks", file=sys.stderr)
    files_c, items = Counter(), Counter()
    planted: dict[str, list] = {}
    for r in results:
        files_c.update(r["files"])
        items.update(r["items"])
        for kind, store, name in r["planted"]:
            planted.setdefault(kind, set()).add((store, name))
    manifest = {
        "files": dict(files_c), "files_total": sum(files_c.values()), "seed": seed, "items": dict(items),
        "planted": {k: sorted(map(list, v)) for k, v in sorted(planted.items())},
        "elapsed_s": round(time.monotonic() - t0, 2),
    }
    Path(os.fsdecode(outb), "tree.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--files", type=int, default=200_000, help="files over both stores [%(default)s]")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=None, help="writer processes [CPUs]")
    ap.add_argument("--block-bytes", type=int, default=0, help="bytes of each data object [%(default)s]")
    a = ap.parse_args(argv)
    if os.path.exists(os.path.join(a.out, "maps")) and os.listdir(os.path.join(a.out, "maps")):
        print(f"{a.out}: already holds a tree; pick an empty dir", file=sys.stderr)
        return 2
    m = generate(a.out, a.files, a.seed, a.jobs, a.block_bytes, quiet=False)
    print(f"wrote {m['files_total']} files ({m['files']}) in {m['elapsed_s']} s; "
          f"planted {sum(len(v) for v in m['planted'].values())} findings into {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
