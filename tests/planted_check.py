"""The store the check tests plant: every check finding, and what must not be one.

Written with the project's FiledStoreWriter and, for corrupt entries, raw bytes:
deleted maps and entries, zero blocks, snapshots and clones sharing objects, blocks
with trailing zeros or at their old Pithos path, flipped and truncated Pithos blocks,
dangling references from v0, v1 and v2 maps. Shared by the check tests of every
backend (tests/ops/test_check.py, tests/backends/).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path

from verify.core import formats as F
from verify.ops.sample import FiledStoreWriter, pithos_hash

CHECK_KINDS = {"object_missing", "object_orphan", "object_content_mismatch"}


# ---------------------------------------------------------------- generated stores


def raw_entry(name: bytes, flags: int, objlen: int | None = None) -> bytes:
    """A v2 entry from bytes, without the writer's validation: for corrupt entries."""
    n = len(name) if objlen is None else objlen
    return bytes([flags]) + struct.pack("<I", n) + name[:123].ljust(123, b"\0")


@dataclass
class Planted:
    maps: Path
    blocks: Path
    expect: set = field(default_factory=set)  # {(kind, store, name)} of check-only kinds and map_corrupt
    corrupt: set = field(default_factory=set)  # names of maps with entry-level corruption
    flipped: set = field(default_factory=set)  # Pithos blocks whose bytes no longer match their name
    missing_refs: dict = field(default_factory=dict)  # missing object -> {map: [indexes]}
    pithos: list = field(default_factory=list)  # every healthy Pithos block name


def build_store(root: Path, seed: int = 7) -> Planted:
    import random

    rng = random.Random(seed)
    p = Planted(root / "maps", root / "blocks")
    maps, blocks = FiledStoreWriter(p.maps), FiledStoreWriter(p.blocks)
    B = F.BLOCK_SIZE_4M

    def pithos(where: str = "v04", tail_zeros: int = 0) -> str:
        data = rng.randbytes(rng.randint(100, 3000)) + bytes(tail_zeros)
        name = pithos_hash(data)
        blocks.put(name, data, where)
        p.pithos.append(name)
        return name

    def obj(name: str) -> str:
        blocks.put(name, rng.randbytes(512))
        return name

    def missing(name: str, map_name: str, index: int) -> None:
        p.expect.add(("object_missing", "blocks", name))
        p.missing_refs.setdefault(name, {}).setdefault(map_name, []).append(index)

    # a volume, its snapshot and a clone: one set of objects, three maps naming them
    shared = [pithos(), obj("archip_" + rng.randbytes(32).hex()), pithos(tail_zeros=700),
              pithos("pithos"), obj(F.copyup_name("volume-a", 1, 4))]
    ents = [F.Entry(shared[0], 0), F.Entry(shared[1], F.OF_ARCHIP), F.Entry(F.ZERO_HASH, F.OF_ZERO),
            F.Entry(shared[2], 0), F.Entry(shared[3], 0), F.Entry(shared[4], F.OF_WRITABLE | F.OF_ARCHIP)]
    maps.put_v2("volume-a", 6 * B, ents, epoch=2)
    maps.put_v2("snap-a", 6 * B, [F.Entry(e.name, e.flags & ~F.OF_WRITABLE) for e in ents], flags=F.MF_READONLY, epoch=0)
    maps.put_v2("clone-a", 8 * B, [F.Entry(e.name, e.flags & (F.OF_ARCHIP | F.OF_ZERO)) for e in ents]
                + [F.Entry(F.ZERO_HASH, F.OF_ZERO)] * 2)
    # a dangling copy-up named by a volume and its snapshot: one finding, two maps
    lost = F.copyup_name("volume-b", 1, 2)
    ents_b = [F.Entry(pithos(), 0), F.Entry(F.ZERO_HASH, 0), F.Entry(lost, F.OF_WRITABLE | F.OF_ARCHIP)]
    maps.put_v2("volume-b", 3 * B, ents_b, epoch=2)
    maps.put_v2("snap-b", 3 * B, [F.Entry(e.name, e.flags & ~F.OF_WRITABLE) for e in ents_b], flags=1, epoch=0)
    missing(lost, "volume-b", 2)
    missing(lost, "snap-b", 2)
    # map-data split over blocks: a small blocksize puts entries 0..3 and 4..7 in two objects
    lost2 = "a" * 64
    ents_c = [F.Entry(pithos(), 0) for _ in range(5)] + [F.Entry(lost2, 0)] + [F.Entry(pithos(), 0) for _ in range(2)]
    maps.put_v2("volume-c", 8 * 512, ents_c, blocksize=512)
    missing(lost2, "volume-c", 5)
    # a v0 map never upgraded (and one at its old path), naming a missing block
    lost3 = hashlib.sha256(b"lost v0 block").hexdigest()
    v0_hashes = [pithos(), F.ZERO_HASH, lost3, pithos()]
    v0name = hashlib.sha256(F.write_v0(v0_hashes)).hexdigest()
    maps.put(v0name, F.write_v0(v0_hashes) + bytes(64))  # ends at the first all-zero entry
    missing(lost3, v0name, 2)
    v0old = [pithos("pithos")]
    maps.put(hashlib.sha256(b"old" + F.write_v0(v0old)).hexdigest(), F.write_v0(v0old), "pithos")
    # a v0 map longer than one read chunk (1 MiB): the missing block is entry 33000
    lost4 = hashlib.sha256(b"lost far away").hexdigest()
    big = F.write_v0([shared[0]] * 33000 + [lost4])
    big_name = hashlib.sha256(big).hexdigest()
    maps.put(big_name, big)
    missing(lost4, big_name, 33000)
    # an archip_ v2 map (the scan does not follow its map-data) with an absurd size and no map-data
    maps.put("archip_huge-volume", F.pack_v2_header(1 << 50, epoch=0))
    # a v1 map never upgraded: archip objects, Pithos blocks, zero, one archip object missing
    gone = rng.randbytes(32).hex()
    obj_hex = rng.randbytes(32).hex()
    obj("archip_" + obj_hex)
    maps.put("archip_legacy", F.write_v1(4 * B, [(0, pithos()), (1, obj_hex), (0, F.ZERO_HASH), (1, gone)]))
    missing("archip_" + gone, "archip_legacy", 3)
    # a deleted volume: its entries name objects gone on purpose, and keep a shared one from being an orphan
    kept = pithos()
    maps.put_v2("gone-vol", 3 * B, [F.Entry("archip_" + "b" * 64, 0x0F), F.Entry(kept, 0),
                                    F.Entry(F.copyup_name("gone-vol", 1, 2), F.OF_WRITABLE | F.OF_ARCHIP)],
                flags=F.MF_DELETED)
    # a live volume with a deleted entry (object gone on purpose)
    maps.put_v2("volume-d", 2 * B, [F.Entry("archip_" + "c" * 64, 0x0F), F.Entry(pithos(), 0)])
    # orphans: an unreferenced block, an unreferenced copy-up, a _hash file whose object is gone
    p.expect.add(("object_orphan", "blocks", pithos()))
    p.pithos.pop()
    p.expect.add(("object_orphan", "blocks", obj("stale-vol_0000000000000001_0000000000000000")))
    blocks.put("vanished-object_hash", b"0" * 64)
    p.expect.add(("object_orphan", "blocks", "vanished-object_hash"))
    blocks.put(shared[1] + "_hash", b"0" * 64)  # its object is there: not an orphan
    blocks.put("vol-a_lock", b"node1_1")  # locks are not objects
    # entry-level corruption, each in its own map (entry 1 is the bad one)
    good = F.pack_v2_entry(pithos(), 0)
    bad = {
        "bad-objlen": raw_entry(b"x" * 123, 0, objlen=200),
        "bad-zero-len": raw_entry(b"", 0, objlen=0),
        "bad-flags": raw_entry(pithos().encode(), 0x30),  # its block is named by no valid entry: an orphan
        "bad-slash": raw_entry(b"../../../etc/passwd", 0),
        "bad-nul": raw_entry(b"abc\0def", 0),
    }
    p.expect.add(("object_orphan", "blocks", p.pithos.pop()))
    for name, entry in bad.items():
        maps.put(name, F.pack_v2_header(3 * B))
        maps.put(F.mapdata_name(name, 0), good + entry + good)
        p.corrupt.add(name)
    maps.put("short-mapdata", F.pack_v2_header(3 * B))
    maps.put(F.mapdata_name("short-mapdata", 0), good + good[:60])
    p.corrupt.add("short-mapdata")
    ragged = [pithos()]
    ragged_name = hashlib.sha256(b"ragged").hexdigest()
    maps.put(ragged_name, F.write_v0(ragged) + b"\x01" * 7)
    p.corrupt.add(ragged_name)
    for name in p.corrupt:
        p.expect.add(("map_corrupt", "maps", name))
    # flipped bytes and a truncation in referenced Pithos blocks (found only with --verify-data)
    flip_names = [pithos(), pithos(), pithos("pithos")]
    maps.put_v2("volume-e", 3 * B, [F.Entry(n, 0) for n in flip_names])
    for i, n in enumerate(flip_names):
        where = "pithos" if i == 2 else "v04"
        path = blocks.path(n, where)
        data = bytearray(path.read_bytes())
        if i == 1:
            data = data[: len(data) // 2]
        else:
            data[len(data) // 3] ^= 0x40
        path.write_bytes(bytes(data))
        p.flipped.add(n)
        p.pithos.remove(n)
    return p
