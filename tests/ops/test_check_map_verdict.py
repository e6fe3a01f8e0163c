"""`check` agrees with `scan` and with itself about each map.

One map finding per map (the README's order: corrupt first), summary counters that
count each map once under its verdict, and the filesystem's own `lost+found`
skipped by every walk.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from verify.ops import check as check_op
from verify.core import formats as F
from verify.ops import scan as scan_op
from verify.backends.filed.backend import FiledBackend
from verify.core.layout import v04_path

CONTENT = b"some block\n"
X = hashlib.sha256(CONTENT).hexdigest()


def _put(root: Path, rel: str, data: bytes) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def _store(tmp_path: Path) -> tuple[Path, Path]:
    maps, blocks = tmp_path / "maps", tmp_path / "blocks"
    maps.mkdir()
    _put(blocks, os.fsdecode(v04_path(X.encode())), CONTENT)
    return maps, blocks


def _v2(maps: Path, name: str, mapdata_cut: int = 0) -> None:
    header, data = F.write_v2(2 * F.BLOCK_SIZE_4M, [F.Entry(X), F.Entry(X)], name=name)
    _put(maps, os.fsdecode(v04_path(name.encode())), header)
    for md, chunk in data.items():
        _put(maps, os.fsdecode(v04_path(md.encode())), chunk[:len(chunk) - mapdata_cut])


def _kinds(summary) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in summary.findings:
        if f.store == "maps":
            out.setdefault(f.name, set()).add(f.kind)
    return out


def test_a_ragged_v0_map_is_corrupt_only(tmp_path):
    maps, blocks = _store(tmp_path)
    ragged = hashlib.sha256(b"ragged").hexdigest()
    _put(maps, os.fsdecode(v04_path(ragged.encode())), F.write_v0([X]) + b"\x01" * 3)  # 35 bytes
    _v2(maps, "vol-ok")
    s = check_op.check(FiledBackend(str(maps), str(blocks)), jobs=2, progress=False)
    assert _kinds(s) == {ragged: {"map_corrupt"}}
    m = s.as_dict()["maps"]
    assert (m["v0"], m["v2"], m["corrupt"]) == (0, 1, 1)


def test_short_map_data_is_a_corrupt_map_not_a_v2_one(tmp_path):
    maps, blocks = _store(tmp_path)
    _v2(maps, "vol-short", mapdata_cut=50)
    _v2(maps, "vol-ok")
    scanned = scan_op.scan(FiledBackend(str(maps), str(blocks)), 2, progress=False)
    assert scanned.as_dict()["maps"]["v2"] == 2  # a header alone cannot tell
    s = check_op.check(FiledBackend(str(maps), str(blocks)), jobs=2, progress=False)
    assert _kinds(s) == {"vol-short": {"map_corrupt"}}
    m = s.as_dict()["maps"]
    assert (m["v2"], m["corrupt"]) == (1, 1)
    assert m["corrupt"] == sum(1 for f in s.findings if f.kind == "map_corrupt")


def test_check_skips_lost_and_found_as_scan_does(tmp_path):
    maps, blocks = _store(tmp_path)
    _v2(maps, "vol-ok")
    v0 = F.write_v0([hashlib.sha256(b"gone").hexdigest()])  # names an object that is nowhere
    _put(maps, "lost+found/ab/cd/" + hashlib.sha256(v0).hexdigest(), v0)  # where fsck leaves it: at object depth
    be = FiledBackend(str(maps), str(blocks))
    assert scan_op.scan(be, 2, progress=False).exit_code == 0
    s = check_op.check(be, jobs=2, progress=False)
    assert s.findings == [] and s.exit_code == 0
