"""One map's verdict: the facts a loop gathered about a header candidate, and the one finding they make.

The scan loops (and the RADOS fallback, verify/backends/rados/pyrados.py) gather facts about a
header candidate; these decide its one finding, or name the fact still needed (found out by
I/O). ``av_map_facts``/``av_map_verdict``/``av_map_detail`` in verify/native/_rules.h are the C
twin, held to these by tests/native/test_rules_twin.py. Its own module: the byte layouts
(verify/core/formats.py) parse and write maps; this judges what a store holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .formats import (
    ARCHIP_PREFIX, V1_ENTRY_LEN, V1_HEADER_LEN, HeaderClass, HeaderInfo, NameClass, classify, is_valid_volume_name,
    mapdata_blocks, name_class, nr_objs,
)
from .layout import MIN_NAME_LEN

UNKNOWN = -1  # a fact not yet found out


class MapStep(Enum):
    """What :func:`map_verdict` answers when it needs one more fact (found out by I/O)."""

    NEED_SIZE = "need_size"  # the object's real length: a v1 map whose entries go past what was read
    NEED_UPGRADED = "need_upgraded"  # for archip_NAME: does NAME hold a v2 header?
    NEED_MAPDATA = "need_mapdata"  # the first missing map-data block, or none


class MapDetail(Enum):
    """Which detail goes with a verdict (``enum av_map_detail``, in this order)."""

    NONE = 0
    SHORT_HEADER = 1
    UNKNOWN_VERSION = 2
    BAD_BLOCKSIZE = 3
    V1_TRUNCATED = 4
    UPGRADED_EXISTS = 5
    V1 = 6
    INVALID_NAME = 7
    MAPDATA_MISSING = 8
    V0 = 9
    NOT_A_MAP = 10


HEAD_SHOWN = 16  # first bytes of a non-map kept for its detail (AV_HEAD_SHOWN)


@dataclass
class MapFacts:
    """What a loop knows about one header candidate in the maps store."""

    header: HeaderInfo
    size: int  # the object's length; only a lower bound while not size_known
    size_known: bool
    name_valid: bool
    upgraded: int  # 1/0: NAME holds a v2 header (for archip_NAME); UNKNOWN until probed
    nb: int  # map-data objects its v2 header calls for
    missing: int = UNKNOWN  # first missing map-data block, nb when none; UNKNOWN until checked
    name_plain: bool = True  # no lock, hash or temp name (name_class PLAIN)
    head: bytes = b""  # its first HEAD_SHOWN bytes, for the detail of a non-map


def v1_length(size: int) -> int:
    """Bytes of a v1 map object of this volume size: header and entries."""
    return V1_HEADER_LEN + V1_ENTRY_LEN * nr_objs(size)


def map_facts(head: bytes, size: int, size_known: bool, name: bytes) -> MapFacts:
    """The facts the first bytes and the name give (``size``: the object's length when
    ``size_known``, else ``len(head)``, a read as long as asked)."""
    info = classify(head, size if size_known else (1 << 64) - 1, name)
    upgraded = UNKNOWN if name.startswith(ARCHIP_PREFIX.encode()) and len(name) - len(ARCHIP_PREFIX) >= MIN_NAME_LEN \
        else 0
    nb = mapdata_blocks(info.size, info.blocksize) if info.cls is HeaderClass.V2 else 0
    valid = is_valid_volume_name(name.decode("utf-8", "surrogateescape"))
    return MapFacts(info, size, size_known, valid, upgraded, nb, name_plain=name_class(name) is NameClass.PLAIN,
                    head=head[:HEAD_SHOWN])


_CORRUPT_DETAIL = {
    HeaderClass.CORRUPT_SHORT: MapDetail.SHORT_HEADER,
    HeaderClass.CORRUPT_VERSION: MapDetail.UNKNOWN_VERSION,
    HeaderClass.CORRUPT_BLOCKSIZE: MapDetail.BAD_BLOCKSIZE,
    HeaderClass.CORRUPT_V1_SHORT: MapDetail.V1_TRUNCATED,
}


def map_verdict(f: MapFacts) -> tuple[str | MapStep | None, MapDetail]:
    """The one map finding kind of a header candidate (first applicable wins: corrupt,
    v0; then incomplete upgrade, v1, invalid name, map-data missing), None for none,
    or the :class:`MapStep` naming the fact still needed."""
    cls = f.header.cls
    if cls.corrupt:
        return "map_corrupt", _CORRUPT_DETAIL[cls]
    if cls is HeaderClass.V0:
        return "map_v0", MapDetail.V0
    if cls not in (HeaderClass.V1, HeaderClass.V2):
        # no signature, no 64-hex name: the mapper says "No signature found"; a hash or temp
        # name holds digits or an owner string, never a map: counted only
        if cls is HeaderClass.NOT_MAP and f.name_plain:
            if not f.size_known:  # its length goes in the detail
                return MapStep.NEED_SIZE, MapDetail.NONE
            return "not_a_map", MapDetail.NOT_A_MAP
        return None, MapDetail.NONE
    if cls is HeaderClass.V1 and not f.size_known and v1_length(f.header.size) > f.size:
        return MapStep.NEED_SIZE, MapDetail.NONE
    if f.upgraded == UNKNOWN:
        return MapStep.NEED_UPGRADED, MapDetail.NONE
    if f.upgraded:
        return "map_upgrade_incomplete", MapDetail.UPGRADED_EXISTS
    if cls is HeaderClass.V1:
        return "map_v1", MapDetail.V1
    if not f.name_valid:
        return "map_invalid_name", MapDetail.INVALID_NAME
    if f.nb == 0:
        return None, MapDetail.NONE
    if f.missing == UNKNOWN:
        return MapStep.NEED_MAPDATA, MapDetail.NONE
    if f.missing < f.nb:
        return "map_data_missing", MapDetail.MAPDATA_MISSING
    return None, MapDetail.NONE


def map_detail(detail: MapDetail, f: MapFacts, name: bytes) -> bytes:
    """The detail text of a verdict, as bytes (the name in it is raw)."""
    h = f.header
    text = {
        MapDetail.SHORT_HEADER: lambda: f"signed header of {f.size} bytes (32 needed)",
        MapDetail.UNKNOWN_VERSION: lambda: f"signed header with unknown version {h.version}",
        MapDetail.BAD_BLOCKSIZE: lambda: f"invalid blocksize {h.blocksize}",
        MapDetail.V1_TRUNCATED: lambda: f"v1 map of {f.size} bytes, header size {h.size} needs {v1_length(h.size)}",
        MapDetail.V1: lambda: f"size {h.size}",
        MapDetail.INVALID_NAME: lambda: f"v2 map, flags {h.flags}, epoch {h.epoch}",
        MapDetail.V0: lambda: f"{'' if f.size_known else '>= '}{f.size} bytes",
        MapDetail.NOT_A_MAP: lambda: f"{'' if f.size_known else '>= '}{f.size} bytes, no map signature; starts "
        f"{(f.head[:f.size] if f.size_known else f.head).hex() or '(empty)'}",
    }
    if detail is MapDetail.UPGRADED_EXISTS:
        return b"v%d map; upgraded map %s exists" % (h.version, name[len(ARCHIP_PREFIX):])
    if detail is MapDetail.MAPDATA_MISSING:
        return b"map-data %s_%016x missing (block %d of %d)" % (name, f.missing, f.missing, f.nb)
    return text[detail]().encode() if detail in text else b""
