"""Byte layouts of every map version Archipelago and Pithos ever wrote.

v0 (Pithos): no header, 32-byte raw sha256 digests until an all-zero entry or EOF.
v1 (Archipelago v0.3): 12-byte little-endian header (u32 version=1, u64 size), then
33-byte entries (u8 flag, 32-byte digest) in the same object.
v2 (Archipelago v0.4): 32-byte big-endian header in the map object, 128-byte entries
in map-data objects ``NAME_<16 hex block id>``; each entry's ``objectlen`` is
little-endian (host order on x86) while the header is big-endian.

Parsers take bytes and never touch a store; writers return bytes (and, for v2, the
map-data objects as a dict) so that fixtures, the sample store and the offline map
upgrade all use one definition. ``verify/native/_rules.h`` holds the C twin of
:func:`classify` for the scanner; tests hold the two against each other. The one
finding a header candidate makes is verify/core/verdict.py's.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass, field
from enum import Enum

from .layout import MIN_NAME_LEN

BLOCK_SIZE_4M = 1 << 22
ZERO_HASH = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ZERO_DIGEST = bytes.fromhex(ZERO_HASH)

V2_SIGNATURE = 0x414D462E  # "AMF."
V2_HEADER = struct.Struct(">IIQIIQ")  # signature, version, size, blocksize, flags, epoch
V2_HEADER_LEN = V2_HEADER.size  # 32
V2_ENTRY_LEN = 128
V2_NAME_MAX = 123
V1_HEADER = struct.Struct("<IQ")  # version, size
V1_HEADER_LEN = V1_HEADER.size  # 12
V1_ENTRY_LEN = 33
V0_ENTRY_LEN = 32
V1_MAGIC = b"\x01\x00\x00\x00"  # a v1 map's first bytes: version 1, little-endian
HEADER_READ = 512  # the most the mapper reads of a header object; the most we read
SCAN_HEADER_READ = 64  # what the scanners read of a header candidate: 32 needed, <= HEADER_READ allowed

# v2 map flags
MF_READONLY = 1 << 0
MF_DELETED = 1 << 1
# v2 object (entry) flags
OF_WRITABLE = 1 << 0
OF_ARCHIP = 1 << 1
OF_ZERO = 1 << 2
OF_DELETED = 1 << 3
OF_KNOWN = OF_WRITABLE | OF_ARCHIP | OF_ZERO | OF_DELETED

ARCHIP_PREFIX = "archip_"
_INVALID_VOLUME_TAIL = re.compile(r".*_[0-9a-f]{16}")
_MAPDATA_SUFFIX = re.compile(rb"_[0-9a-f]{16}\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")


class MapFormatError(ValueError):
    """Bytes that are not a map of the version they claim to be."""


class Version(Enum):
    V0 = "v0"
    V1 = "v1"
    V2 = "v2"


class HeaderClass(Enum):
    """What the first bytes of an object in the maps store say it is."""

    NOT_MAP = "not_map"
    V0 = "v0"
    V1 = "v1"
    V2 = "v2"
    CORRUPT_SHORT = "corrupt_short"  # signed, fewer than 32 bytes
    CORRUPT_VERSION = "corrupt_version"  # signed, unknown version
    CORRUPT_BLOCKSIZE = "corrupt_blocksize"  # v2 blocksize not a power of two > 128
    CORRUPT_V1_SHORT = "corrupt_v1_short"  # v1 shorter than its header or its entries

    @property
    def corrupt(self) -> bool:
        return self.value.startswith("corrupt")

    @property
    def map_version(self) -> int:
        """The map format this class belongs to, as a map finding names it (av_map_version):
        0 unsigned, 1 the v1 magic, 2 the v2 signature."""
        if self in (HeaderClass.V0, HeaderClass.NOT_MAP):
            return 0
        return 1 if self in (HeaderClass.V1, HeaderClass.CORRUPT_V1_SHORT) else 2


@dataclass(frozen=True)
class Entry:
    """One map entry in v2 terms; v0/v1 entries are translated into it."""

    name: str
    flags: int = 0

    @property
    def zero(self) -> bool:
        return bool(self.flags & OF_ZERO) or self.name == ZERO_HASH

    @property
    def deleted(self) -> bool:
        return bool(self.flags & OF_DELETED)


@dataclass
class Map:
    """A parsed map of any version."""

    version: Version
    size: int
    entries: list[Entry] = field(default_factory=list)
    blocksize: int = BLOCK_SIZE_4M
    flags: int = 0
    epoch: int = 0

    @property
    def nr_objs(self) -> int:
        return nr_objs(self.size, self.blocksize)

    @property
    def deleted(self) -> bool:
        return bool(self.flags & MF_DELETED)

    @property
    def readonly(self) -> bool:
        return bool(self.flags & MF_READONLY)


# ---- names -------------------------------------------------------------------


def nr_objs(size: int, blocksize: int = BLOCK_SIZE_4M) -> int:
    return -(-size // blocksize)


def is_hex64(name: str | bytes) -> bool:
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    return _HEX64.match(name) is not None


def is_valid_volume_name(name: str) -> bool:
    """vlmc's rule: not ``archip_*``, not ``*_lock``, no ``_`` followed by 16 hex digits.

    vlmc uses ``\\d`` (which in Python also matches non-ASCII digits); archverify
    and its C twin use ASCII ``[0-9a-f]`` only.
    """
    return not (
        name.startswith(ARCHIP_PREFIX)
        or name.endswith("_lock")
        or _INVALID_VOLUME_TAIL.match(name) is not None
    )


def is_mapdata_name(name: bytes) -> bool:
    """``NAME_<16 hex>``: a v2 map-data object (in the maps store)."""
    return len(name) > 17 and _MAPDATA_SUFFIX.search(name) is not None


class NameClass(Enum):
    """What an object's name alone says, before any read (``av_name_class`` in _rules.h)."""

    PLAIN = "plain"  # a header candidate in the maps store, a plain object in blocks
    LOCK = "lock"  # NAME_lock
    HASH = "hash"  # NAME_hash
    TEMP = "temp"  # NAME_lock<unique>_xx, NAME_hash<unique>_xx: interrupted operations
    MAPDATA = "mapdata"  # NAME_<16 hex>: map-data in the maps store, copy-up in blocks


def name_class(name: bytes) -> NameClass:
    if name.endswith(b"_lock"):
        return NameClass.LOCK
    if name.endswith(b"_hash"):
        return NameClass.HASH
    if is_mapdata_name(name):
        return NameClass.MAPDATA
    if b"_lock" in name or b"_hash" in name:
        return NameClass.TEMP
    return NameClass.PLAIN


class NameFault(Enum):
    """A name that is no map's and no object's on either backend: a ``stray_entry`` (``av_name_fault``).

    Archipelago names are text (vlmc, the mapper's requests and python-rados carry them as
    UTF-8): one that is not was put there by hand. Filed's peers also refuse names under
    MIN_NAME_LEN bytes; RADOS has no such floor (``min_len`` 0)."""

    FINE = 0
    SHORT = 1
    NOT_UTF8 = 2


NAME_FAULT_TEXT = {NameFault.SHORT: f"name shorter than {MIN_NAME_LEN} bytes",
                   NameFault.NOT_UTF8: "name is not valid UTF-8", NameFault.FINE: ""}


def name_fault(name: bytes, min_len: int) -> NameFault:
    if len(name) < min_len:
        return NameFault.SHORT
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return NameFault.NOT_UTF8
    return NameFault.FINE


class StoredClass(Enum):
    """What a blocks store's name is to the reference check (``av_stored_class``)."""

    SKIP = 0  # a lock or an interrupted operation's temp: neither stored nor an orphan
    OBJECT = 1  # an object maps may name
    HASH = 2  # NAME_hash: an orphan when NAME is not stored


def stored_class(name: bytes) -> StoredClass:
    nc = name_class(name)
    if nc is NameClass.HASH:
        return StoredClass.HASH
    return StoredClass.SKIP if nc in (NameClass.LOCK, NameClass.TEMP) else StoredClass.OBJECT


def hash_target(name: bytes) -> bytes:
    """The object a ``NAME_hash`` file belongs to: NAME (``av_hash_target_len``)."""
    return name[:-5]


# ---- fingerprints, the sample window, content hashes ------------------------------
# ``av_fingerprint``, ``av_in_window`` and ``av_content_*`` (verify/native/_native.h, _rules.h) are the
# C twins the checks run; these are their definitions in Python, held to them by the twin tests.

FP_SPACE = 1 << 64  # sample windows are ranges of a name's 64-bit fingerprint
FP_LEN = 16  # bytes of a name's fingerprint


def fingerprint(name: bytes) -> bytes:
    """A name's 16-byte fingerprint: the first 128 bits of sha256(name), lowest bit cleared
    (the bit a reference set uses for "needed", see verify/native/_check.h). Byte order is numeric order."""
    d = hashlib.sha256(name).digest()
    return d[:FP_LEN - 1] + bytes([d[FP_LEN - 1] & 0xFE])


def fingerprint_hi(name: bytes) -> int:
    """The fingerprint's first 64 bits as a number: what a sample window ranges over."""
    return int.from_bytes(hashlib.sha256(name).digest()[:8], "big")


def in_window(fp_hi: int, start: int, width: int, everything: bool) -> bool:
    """Is a name whose fingerprint starts with ``fp_hi`` in the window [start, start + width) mod 2^64?"""
    return everything or (fp_hi - start) % FP_SPACE < width


def content_hash(data: bytes) -> str:
    """A Pithos block's name: sha256 of its content with trailing NULs stripped."""
    return hashlib.sha256(data.rstrip(b"\0")).hexdigest()


def mapdata_raw(map_name: bytes, block: int) -> bytes:
    """The name of block ``block``'s map-data object of a v2 map: ``NAME_<16 hex>``."""
    return b"%s_%016x" % (map_name, block)


def mapdata_name(map_name: str, block: int) -> str:
    """:func:`mapdata_raw` of a decoded name."""
    return mapdata_raw(map_name.encode("utf-8", "surrogateescape"), block).decode("utf-8", "surrogateescape")


def mapdata_blocks(size: int, blocksize: int) -> int:
    """How many map-data objects a v2 map of this size has."""
    per_block = blocksize // V2_ENTRY_LEN
    return -(-nr_objs(size, blocksize) // per_block)


def entry_location(index: int, blocksize: int) -> tuple[int, int]:
    """(map-data block id, byte offset inside it) of v2 entry ``index``."""
    per_block = blocksize // V2_ENTRY_LEN
    return index // per_block, (index % per_block) * V2_ENTRY_LEN


def copyup_name(volume: str, epoch: int, index: int) -> str:
    return f"{volume}_{epoch:016x}_{index:016x}"


def valid_blocksize(bs: int) -> bool:
    return bs > 128 and bs & (bs - 1) == 0


# ---- classification ------------------------------------------------------------


@dataclass(frozen=True)
class HeaderInfo:
    cls: HeaderClass
    size: int = 0
    blocksize: int = 0
    flags: int = 0
    epoch: int = 0
    version: int = 0


def is_v2_header(head: bytes) -> bool:
    """Do these first bytes of an object start a v2 map header (signature, version 2)?"""
    return len(head) >= 8 and struct.unpack_from(">II", head) == (V2_SIGNATURE, 2)


def is_v1_header(head: bytes) -> bool:
    """Do these first bytes of an object start with the v1 magic (``av_is_v1_header``)?"""
    return head[:4] == V1_MAGIC


def classify(head: bytes, file_size: int, name: bytes) -> HeaderInfo:
    """Decide what an object in the maps store is from its first bytes.

    ``head`` is what a read of at most :data:`HEADER_READ` bytes returned, and
    ``file_size`` the object's full length. Signature first (v2, or corrupt), then
    the v1 marker, then a 64-hex name means v0; anything else is not a map.
    """
    if len(head) >= 4 and struct.unpack_from(">I", head)[0] == V2_SIGNATURE:
        if len(head) < V2_HEADER_LEN or file_size < V2_HEADER_LEN:
            return HeaderInfo(HeaderClass.CORRUPT_SHORT)
        _sig, version, size, bs, flags, epoch = V2_HEADER.unpack_from(head)
        if version != 2:
            return HeaderInfo(HeaderClass.CORRUPT_VERSION, version=version)
        if not valid_blocksize(bs):
            return HeaderInfo(HeaderClass.CORRUPT_BLOCKSIZE, size, bs, flags, epoch, 2)
        return HeaderInfo(HeaderClass.V2, size, bs, flags, epoch, 2)
    if is_v1_header(head):
        if len(head) < V1_HEADER_LEN or file_size < V1_HEADER_LEN:
            return HeaderInfo(HeaderClass.CORRUPT_V1_SHORT, version=1)
        _v, size = V1_HEADER.unpack_from(head)
        if file_size < V1_HEADER_LEN + V1_ENTRY_LEN * nr_objs(size):
            return HeaderInfo(HeaderClass.CORRUPT_V1_SHORT, size, BLOCK_SIZE_4M, version=1)
        return HeaderInfo(HeaderClass.V1, size, BLOCK_SIZE_4M, version=1)
    if is_hex64(name):
        return HeaderInfo(HeaderClass.V0, version=0)
    return HeaderInfo(HeaderClass.NOT_MAP)


# ---- v0 ------------------------------------------------------------------------


def parse_v0(data: bytes) -> Map:
    """Entries until the first all-zero digest or EOF; a ragged tail is corrupt."""
    if len(data) % V0_ENTRY_LEN:
        raise MapFormatError(f"v0 map length {len(data)} is not a multiple of 32")
    entries = []
    for off in range(0, len(data), V0_ENTRY_LEN):
        digest = data[off : off + V0_ENTRY_LEN]
        if digest == bytes(V0_ENTRY_LEN):
            break
        entries.append(Entry(digest.hex(), OF_ZERO if digest == ZERO_DIGEST else 0))
    return Map(Version.V0, len(entries) * BLOCK_SIZE_4M, entries)


def write_v0(hashes: list[str]) -> bytes:
    return b"".join(bytes.fromhex(h) for h in hashes)


# ---- v1 ------------------------------------------------------------------------


def parse_v1(data: bytes) -> Map:
    if len(data) < V1_HEADER_LEN:
        raise MapFormatError(f"v1 map of {len(data)} bytes is shorter than its header")
    version, size = V1_HEADER.unpack_from(data)
    if version != 1:
        raise MapFormatError(f"not a v1 map (version {version})")
    n = nr_objs(size)
    need = V1_HEADER_LEN + V1_ENTRY_LEN * n
    if len(data) < need:
        raise MapFormatError(f"v1 map truncated: {len(data)} bytes, {n} entries need {need}")
    entries = []
    for i in range(n):
        off = V1_HEADER_LEN + i * V1_ENTRY_LEN
        flag = data[off]
        digest = data[off + 1 : off + V1_ENTRY_LEN]
        if flag:
            entries.append(Entry(ARCHIP_PREFIX + digest.hex(), OF_WRITABLE | OF_ARCHIP))
        elif digest == ZERO_DIGEST:
            entries.append(Entry(ZERO_HASH, OF_ZERO))
        else:
            entries.append(Entry(digest.hex(), 0))
    return Map(Version.V1, size, entries)


def write_v1(size: int, entries: list[tuple[int, str]]) -> bytes:
    """``entries``: (flag, 64-hex digest) pairs; a flag != 0 marks an archip object."""
    if len(entries) != nr_objs(size):
        raise ValueError(f"v1 map of size {size} needs {nr_objs(size)} entries, got {len(entries)}")
    out = [V1_HEADER.pack(1, size)]
    out += [bytes([flag]) + bytes.fromhex(h) for flag, h in entries]
    return b"".join(out)


# ---- v2 ------------------------------------------------------------------------


def pack_v2_header(size: int, blocksize: int = BLOCK_SIZE_4M, flags: int = 0, epoch: int = 1) -> bytes:
    return V2_HEADER.pack(V2_SIGNATURE, 2, size, blocksize, flags, epoch)


def parse_v2_header(data: bytes) -> Map:
    if len(data) < V2_HEADER_LEN:
        raise MapFormatError(f"v2 header of {len(data)} bytes is shorter than 32")
    sig, version, size, bs, flags, epoch = V2_HEADER.unpack_from(data)
    if sig != V2_SIGNATURE:
        raise MapFormatError("no v2 signature")
    if version != 2:
        raise MapFormatError(f"unknown map version {version}")
    if not valid_blocksize(bs):
        raise MapFormatError(f"invalid blocksize {bs}")
    return Map(Version.V2, size, [], bs, flags, epoch)


def pack_v2_entry(name: str, flags: int) -> bytes:
    raw = name.encode()
    if not 0 < len(raw) <= V2_NAME_MAX:
        raise ValueError(f"v2 entry name of {len(raw)} bytes (1..123 allowed)")
    return bytes([flags]) + struct.pack("<I", len(raw)) + raw.ljust(V2_NAME_MAX, b"\0")


def parse_v2_entry(data: bytes, off: int = 0) -> Entry:
    """One 128-byte entry; raises MapFormatError for what the mapper would choke on."""
    if len(data) < off + V2_ENTRY_LEN:
        raise MapFormatError(f"entry at offset {off} is truncated ({max(0, len(data) - off)} of "
                             f"{V2_ENTRY_LEN} bytes)")
    flags = data[off]
    (objlen,) = struct.unpack_from("<I", data, off + 1)
    if objlen == 0 or objlen > V2_NAME_MAX:
        raise MapFormatError(f"entry objectlen {objlen} (1..123 allowed)")
    if flags & ~OF_KNOWN:
        raise MapFormatError(f"entry has unknown flag bits 0x{flags:02x}")
    raw = data[off + 5 : off + 5 + objlen]
    if b"/" in raw or b"\0" in raw:
        raise MapFormatError(f"entry name {raw!r} contains '/' or NUL")
    return Entry(raw.decode("utf-8", "backslashreplace"), flags)


def write_v2(
    size: int,
    entries: list[Entry],
    blocksize: int = BLOCK_SIZE_4M,
    flags: int = 0,
    epoch: int = 1,
    *,
    name: str,
) -> tuple[bytes, dict[str, bytes]]:
    """Header object bytes and ``{map-data name: bytes}`` for a v2 map called ``name``."""
    if len(entries) != nr_objs(size, blocksize):
        raise ValueError(f"v2 map of size {size} needs {nr_objs(size, blocksize)} entries")
    per_block = blocksize // V2_ENTRY_LEN
    data: dict[str, bytes] = {}
    for b in range(mapdata_blocks(size, blocksize)):
        chunk = entries[b * per_block : (b + 1) * per_block]
        data[mapdata_name(name, b)] = b"".join(pack_v2_entry(e.name, e.flags) for e in chunk)
    return pack_v2_header(size, blocksize, flags, epoch), data


def parse_v2(header: bytes, mapdata: dict[int, bytes]) -> Map:
    """A whole v2 map from its header and its map-data objects (block id -> bytes).

    Only entries below nr_objs exist: direct-I/O padding and stale entries past the
    end are ignored. A missing or short map-data object raises MapFormatError.
    """
    m = parse_v2_header(header)
    for i in range(m.nr_objs):
        block, off = entry_location(i, m.blocksize)
        chunk = mapdata.get(block)
        if chunk is None:
            raise MapFormatError(f"map-data block {block} is missing")
        if len(chunk) < off + V2_ENTRY_LEN:
            raise MapFormatError(f"map-data block {block} is {len(chunk)} bytes, entry {i} needs {off + V2_ENTRY_LEN}")
        m.entries.append(parse_v2_entry(chunk, off))
    return m
