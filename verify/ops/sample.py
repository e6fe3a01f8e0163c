"""Writing filed stores: the sample store of ``archverify sample``, test fixtures and
benchmark trees all come from :class:`FiledStoreWriter`, which places objects with
the same layout rules the scanner checks (verify/core/layout.py), and from the map
writers in verify/core/formats.py.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from ..core import formats as F
from ..core import layout

# 64-hex names whose sha256 starts with their own first six digits: the data-loss
# case of FORMATS (old and new Pithos paths coincide). Found by brute force (2^24).
AT_RISK_NAMES = (
    "6d1a909f9c58b191564c821fa3baa110b0a5ad699fe296f1912c7c12aeabb472",
    "d9b4b0e277fdda5360766d0f113680ebb0a8c461848241048d15c8410c7c5b82",
    "7445b091676f361889db2d1a8210187297af6a1f888d00fc8f204242ebcf7faa",
    "a8dcafd45d4b1d9fd2a0359e898adc003cd7074925319ed6c7d9c8d75f6c3236",
)


def pithos_hash(data: bytes) -> str:
    """A Pithos block's name (the rule is formats.content_hash)."""
    return F.content_hash(data)


class FiledStoreWriter:
    """Puts objects into one filed dir at the path of a chosen layout."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def rel(self, name: str | bytes, where: str = "v04") -> bytes:
        raw = name.encode() if isinstance(name, str) else name
        if where == "v04":
            return layout.v04_path(raw)
        if where == "pithos":
            p = layout.pithos_path(raw)
        elif where == "v03":
            p = layout.v03_path(raw)
        else:
            raise ValueError(f"unknown layout {where!r}")
        if p is None:
            raise ValueError(f"{raw!r} has no {where} path")
        return p

    def path(self, name: str | bytes, where: str = "v04") -> Path:
        return Path(os.fsdecode(os.path.join(os.fsencode(self.root), self.rel(name, where))))

    def put(self, name: str | bytes, data: bytes, where: str = "v04") -> Path:
        p = self.path(name, where)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def link(self, name: str | bytes, src: str, dst: str) -> Path:
        """A second link of the same inode, as filed's migration makes (link, then unlink)."""
        a, b = self.path(name, src), self.path(name, dst)
        b.parent.mkdir(parents=True, exist_ok=True)
        os.link(a, b)
        return b

    def put_v2(self, name: str, size: int, entries: list[F.Entry], flags: int = 0, epoch: int = 1,
               blocksize: int = F.BLOCK_SIZE_4M, where: str = "v04") -> None:
        header, data = F.write_v2(size, entries, blocksize, flags, epoch, name=name)
        self.put(name, header, where)
        for md_name, chunk in data.items():
            self.put(md_name, chunk)


@dataclass
class SampleStore:
    """What :func:`write_sample` planted, per finding kind: the ground truth of tests."""

    maps_dir: Path
    blocks_dir: Path
    planted: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # kind -> {(store, name)}
    locks: list[tuple[str, str, str]] = field(default_factory=list)

    def plant(self, kind: str, store: str, name: str) -> None:
        self.planted.setdefault(kind, set()).add((store, name))


def _block(rng: random.Random, size: int = 4096) -> bytes:
    return rng.randbytes(size)


def write_sample(root: str | os.PathLike, seed: int = 4, volumes: int = 12, blocks_per_volume: int = 6) -> SampleStore:
    """A realistic small store, mostly healthy, with every scan finding kind planted once or more."""
    rng = random.Random(seed)
    root = Path(root)
    s = SampleStore(root / "maps", root / "blocks")
    maps, blocks = FiledStoreWriter(s.maps_dir), FiledStoreWriter(s.blocks_dir)

    def pithos_block(where: str = "v04") -> str:
        data = _block(rng)
        name = pithos_hash(data)
        blocks.put(name, data, where)
        return name

    # healthy volumes: Pithos blocks, archip objects, copy-ups, map-data
    for v in range(volumes):
        vol = f"vol-{v:03d}"
        entries = []
        for i in range(blocks_per_volume):
            r = rng.random()
            if r < 0.15:
                entries.append(F.Entry(F.ZERO_HASH, F.OF_ZERO))
            elif r < 0.55:
                entries.append(F.Entry(pithos_block(), 0))
            elif r < 0.75:
                nm = "archip_" + rng.randbytes(32).hex()
                blocks.put(nm, _block(rng))
                entries.append(F.Entry(nm, F.OF_ARCHIP))
            else:
                nm = F.copyup_name(vol, 1, i)
                blocks.put(nm, _block(rng))
                entries.append(F.Entry(nm, F.OF_WRITABLE | F.OF_ARCHIP))
        maps.put_v2(vol, blocks_per_volume * F.BLOCK_SIZE_4M, entries)
    # a v0 Pithos map already upgraded in place (read-only, epoch 0, stale tail)
    hashes = [pithos_block() for _ in range(3)]
    v0name = hashlib.sha256(b"".join(bytes.fromhex(h) for h in hashes)).hexdigest()
    maps.put(v0name, F.pack_v2_header(3 * F.BLOCK_SIZE_4M, flags=F.MF_READONLY, epoch=0) + F.write_v0(hashes)[32:])
    _, md = F.write_v2(3 * F.BLOCK_SIZE_4M, [F.Entry(h, 0) for h in hashes], flags=1, epoch=0, name=v0name)
    for k, v in md.items():
        maps.put(k, v)
    # held and stale locks
    maps.put("vol-000_lock", b"node1_1234")
    s.locks.append(("maps", "vol-000_lock", "node1_1234"))
    blocks.put("hashfile-obj_hash", pithos_hash(b"x").encode())

    # --- planted findings ---
    # map_v1: a v0.3 volume never opened
    v1_entries = [(0, pithos_block()), (1, rng.randbytes(32).hex()), (0, F.ZERO_HASH)]
    for flag, h in v1_entries:
        if flag:
            blocks.put("archip_" + h, _block(rng))
    maps.put("archip_legacy-vol", F.write_v1(3 * F.BLOCK_SIZE_4M, v1_entries))
    s.plant("map_v1", "maps", "archip_legacy-vol")
    # map_v0: a Pithos map never upgraded, one at its old path (also object_unmigrated)
    for where in ("v04", "pithos"):
        hs = [pithos_block() for _ in range(2)]
        nm = hashlib.sha256(("v0" + where).encode() + b"".join(bytes.fromhex(h) for h in hs)).hexdigest()
        maps.put(nm, F.write_v0(hs), where)
        s.plant("map_v0", "maps", nm)
        if where == "pithos":
            s.plant("object_unmigrated", "maps", nm)
    # map_upgrade_incomplete: archip_vol-001 flagged deleted while vol-001 is v2
    maps.put_v2("archip_vol-001", 2 * F.BLOCK_SIZE_4M, [F.Entry(F.ZERO_HASH, F.OF_ZERO)] * 2, flags=F.MF_DELETED, epoch=0)
    s.plant("map_upgrade_incomplete", "maps", "archip_vol-001")
    # map_invalid_name: a v2 map whose rename failed (name too short for filed)
    maps.put_v2("archip_vm", F.BLOCK_SIZE_4M, [F.Entry(F.ZERO_HASH, F.OF_ZERO)], epoch=0)
    s.plant("map_invalid_name", "maps", "archip_vm")
    # map_data_missing
    maps.put("lost-mapdata-vol", F.pack_v2_header(2 * F.BLOCK_SIZE_4M))
    s.plant("map_data_missing", "maps", "lost-mapdata-vol")
    # map_corrupt: unknown version, bad blocksize, truncated v1, short signed header
    maps.put("corrupt-version", F.V2_HEADER.pack(F.V2_SIGNATURE, 7, 0, F.BLOCK_SIZE_4M, 0, 1))
    maps.put("corrupt-blocksize", F.V2_HEADER.pack(F.V2_SIGNATURE, 2, 4096, 1000, 0, 1))
    maps.put("archip_truncated", F.write_v1(2 * F.BLOCK_SIZE_4M, [(0, F.ZERO_HASH)] * 2)[:40])
    maps.put("corrupt-short", F.pack_v2_header(0)[:20])
    for nm in ("corrupt-version", "corrupt-blocksize", "archip_truncated", "corrupt-short"):
        s.plant("map_corrupt", "maps", nm)
    # objects: unmigrated, leftover, conflict, misplaced (v0.3 layout), at risk
    for _ in range(3):
        s.plant("object_unmigrated", "blocks", pithos_block("pithos"))
    nm = pithos_block("pithos")
    blocks.link(nm, "pithos", "v04")
    s.plant("object_leftover", "blocks", nm)
    data = _block(rng)
    nm = pithos_hash(data)
    blocks.put(nm, data, "pithos")
    blocks.put(nm, data[:100], "v04")
    s.plant("object_conflict", "blocks", nm)
    nm = "archip_" + rng.randbytes(32).hex()
    blocks.put(nm, _block(rng), "v03")
    s.plant("object_misplaced", "blocks", nm)
    blocks.put(AT_RISK_NAMES[0], _block(rng), "pithos")
    s.plant("object_at_risk", "blocks", AT_RISK_NAMES[0])
    # stray entries: symlink, file at the wrong depth, short name, non-UTF-8 name, dir at object depth
    target = blocks.path(nm, "v03")
    link = blocks.root / "ab" / "cd" / "ef" / "a-symlink"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    s.plant("stray_entry", "blocks", "a-symlink")
    (blocks.root / "ab" / "README-not-an-object").write_text("hello\n")
    s.plant("stray_entry", "blocks", "README-not-an-object")
    short = blocks.root / "12" / "34" / "56" / "tiny"
    short.parent.mkdir(parents=True, exist_ok=True)
    short.write_bytes(b"x")
    s.plant("stray_entry", "blocks", "tiny")
    bad = os.path.join(os.fsencode(blocks.root), b"12", b"34", b"56", b"bad-\xff-name")
    with open(bad, "wb") as fh:
        fh.write(b"x")
    s.plant("stray_entry", "blocks", "bad-\\xff-name")
    (blocks.root / "12" / "34" / "56" / "a-directory").mkdir()
    s.plant("stray_entry", "blocks", "a-directory")
    return s
