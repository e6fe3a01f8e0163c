"""verify/core/formats.py and verify/core/layout.py: writers, parsers, classification, paths.

Round trips go through the project's writers; every other test builds its bytes
by hand with struct, straight from the documented layouts, so that a writer bug
cannot hide a parser bug.
"""

from __future__ import annotations

import hashlib
import random
import struct

import pytest

from verify.core import formats as F
from verify.core import layout
from verify.ops.sample import AT_RISK_NAMES

SIG = 0x414D462E
M4 = 1 << 22
ZERO = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def hx(rng: random.Random) -> str:
    return rng.randbytes(32).hex()


# ---- hand-made bytes, from the layouts -------------------------------------------


def v2_header(size, bs=M4, flags=0, epoch=1, version=2) -> bytes:
    """32 bytes, big-endian: u32 signature, u32 version, u64 size, u32 blocksize, u32 flags, u64 epoch."""
    return struct.pack(">IIQIIQ", SIG, version, size, bs, flags, epoch)


def v2_entry(name: bytes, flags: int, objlen: int | None = None) -> bytes:
    """128 bytes: u8 flags, u32 objectlen little-endian, 123 bytes of name."""
    objlen = len(name) if objlen is None else objlen
    return struct.pack("<BI", flags, objlen) + name.ljust(123, b"\0")


def v1_map(size: int, entries: list[tuple[int, bytes]]) -> bytes:
    """12-byte little-endian header (u32 1, u64 size), then (u8 flag, 32-byte digest) entries."""
    return struct.pack("<IQ", 1, size) + b"".join(struct.pack("<B", f) + d for f, d in entries)


# ---- round trips through the writers ---------------------------------------------


def test_v0_round_trip():
    rng = random.Random(1)
    hashes = [hx(rng) for _ in range(5)] + [ZERO, hx(rng)]
    m = F.parse_v0(F.write_v0(hashes))
    assert m.version is F.Version.V0
    assert [e.name for e in m.entries] == hashes
    assert [e.flags for e in m.entries] == [0] * 5 + [F.OF_ZERO, 0]
    assert m.size == 7 * M4


def test_v1_round_trip():
    rng = random.Random(2)
    digests = [hx(rng) for _ in range(3)]
    size = 3 * M4 - 5  # not a multiple: nr_objs rounds up
    data = F.write_v1(size, [(0, digests[0]), (1, digests[1]), (0, ZERO)])
    m = F.parse_v1(data)
    assert (m.version, m.size, m.nr_objs) == (F.Version.V1, size, 3)
    assert [(e.name, e.flags) for e in m.entries] == [
        (digests[0], 0),
        ("archip_" + digests[1], F.OF_WRITABLE | F.OF_ARCHIP),
        (ZERO, F.OF_ZERO),
    ]
    with pytest.raises(ValueError):
        F.write_v1(size, [(0, ZERO)] * 2)


@pytest.mark.parametrize("bs", [256, 512, 4096, M4])
def test_v2_round_trip_across_map_data_blocks(bs):
    rng = random.Random(bs)
    n = 7
    entries = [F.Entry(rng.choice([hx(rng), "archip_" + hx(rng), f"vol_{1:016x}_{i:016x}"]),
                       rng.choice([0, 2, 3, 4, 15])) for i in range(n)]
    size = n * bs - 1
    header, data = F.write_v2(size, entries, bs, flags=F.MF_READONLY, epoch=9, name="vol")
    per_block = bs // 128
    assert sorted(data) == [F.mapdata_name("vol", b) for b in range(-(-n // per_block))]
    m = F.parse_v2(header, {int(k.rsplit("_", 1)[1], 16): v for k, v in data.items()})
    assert (m.size, m.blocksize, m.flags, m.epoch, m.readonly, m.deleted) == (size, bs, 1, 9, True, False)
    assert m.entries == entries
    with pytest.raises(ValueError):
        F.write_v2(size, entries[:-1], bs, name="vol")


# ---- v2 from hand-made bytes -------------------------------------------------------


def test_v2_big_endian_header_little_endian_objectlen():
    name = b"archip_" + bytes(range(32)).hex().encode()
    header = v2_header(2 * M4, flags=2, epoch=3)
    assert header[:4] == b"AMF."
    md = v2_entry(name, 0x0F) + v2_entry(ZERO.encode(), 0x04)
    m = F.parse_v2(header, {0: md})
    assert (m.size, m.blocksize, m.flags, m.epoch, m.deleted) == (2 * M4, M4, 2, 3, True)
    assert [(e.name, e.flags, e.deleted, e.zero) for e in m.entries] == [
        (name.decode(), 0x0F, True, True),
        (ZERO, 0x04, False, True),
    ]
    # objectlen written big-endian is 0x40000000 read little-endian: refused
    bad = struct.pack(">BI", 0, 64) + ZERO.encode().ljust(123, b"\0")
    with pytest.raises(F.MapFormatError):
        F.parse_v2(v2_header(M4), {0: bad})


def test_v2_stale_bytes_after_the_32_byte_header():
    """A v0 map upgraded in place keeps its old digests after the new header."""
    rng = random.Random(3)
    digests = b"".join(rng.randbytes(32) for _ in range(12))
    obj = v2_header(12 * M4, flags=1, epoch=0) + digests[32:]
    m = F.parse_v2_header(obj)
    assert (m.size, m.readonly, m.epoch) == (12 * M4, True, 0)
    info = F.classify(obj[: F.HEADER_READ], len(obj), b"x" * 64)
    assert (info.cls, info.size, info.flags, info.epoch) == (F.HeaderClass.V2, 12 * M4, 1, 0)


def test_v2_direct_io_zero_padding():
    """Direct I/O pads header and map-data objects with zeros to 512 bytes."""
    header = v2_header(3 * M4).ljust(512, b"\0")
    md = b"".join(v2_entry(f"vol_{1:016x}_{i:016x}".encode(), 3) for i in range(3)).ljust(512, b"\0")
    m = F.parse_v2(header, {0: md})
    assert len(m.entries) == 3
    assert F.classify(header[:64], 512, b"vol").cls is F.HeaderClass.V2
    # stale entries past the end (a re-create over a deleted map) are not entries either
    stale = md[:384] + v2_entry(b"old-object-name", 0x0F)
    assert F.parse_v2(header, {0: stale}).entries == m.entries


@pytest.mark.parametrize("objlen", [0, 124, 1 << 24])
def test_v2_entry_objectlen_out_of_range(objlen):
    with pytest.raises(F.MapFormatError):
        F.parse_v2(v2_header(M4), {0: v2_entry(b"x" * 10, 0, objlen)})


@pytest.mark.parametrize("objlen", [1, 64, 123])
def test_v2_entry_objectlen_in_range(objlen):
    name = (b"n" * 123)[:objlen]
    assert F.parse_v2(v2_header(M4), {0: v2_entry(name, 0)}).entries[0].name == name.decode()


@pytest.mark.parametrize("flags", [0x10, 0x20, 0x80, 0xFF])
def test_v2_entry_unknown_flag_bits(flags):
    with pytest.raises(F.MapFormatError):
        F.parse_v2(v2_header(M4), {0: v2_entry(ZERO.encode(), flags)})


@pytest.mark.parametrize("name", [b"a/b", b"/", b"ab\0cd", b"\0"])
def test_v2_entry_name_with_slash_or_nul(name):
    with pytest.raises(F.MapFormatError):
        F.parse_v2(v2_header(M4), {0: v2_entry(name, 0)})


def test_v2_missing_or_short_map_data():
    header = v2_header(3 * 256, bs=256)  # 2 entries per map-data object, 2 objects
    full = v2_entry(b"object-1", 0) + v2_entry(b"object-2", 0)
    assert len(F.parse_v2(header, {0: full, 1: v2_entry(b"object-3", 0)}).entries) == 3
    with pytest.raises(F.MapFormatError):
        F.parse_v2(header, {0: full})
    with pytest.raises(F.MapFormatError):
        F.parse_v2(header, {0: full, 1: v2_entry(b"object-3", 0)[:100]})
    with pytest.raises(F.MapFormatError):
        F.parse_v2(header, {0: full[:200], 1: v2_entry(b"object-3", 0)})


@pytest.mark.parametrize("version", [0, 1, 3, 0xFFFFFFFF])
def test_v2_unknown_version(version):
    h = v2_header(M4, version=version)
    with pytest.raises(F.MapFormatError):
        F.parse_v2_header(h)
    info = F.classify(h, 32, b"vol")
    assert (info.cls, info.version) == (F.HeaderClass.CORRUPT_VERSION, version)


@pytest.mark.parametrize("bs", [0, 1, 64, 128, 1000, 3 << 20, 0xFFFFFFFF])
def test_v2_bad_blocksize(bs):
    h = v2_header(M4, bs=bs)
    with pytest.raises(F.MapFormatError):
        F.parse_v2_header(h)
    assert F.classify(h, 32, b"vol").cls is F.HeaderClass.CORRUPT_BLOCKSIZE
    assert not F.valid_blocksize(bs)


@pytest.mark.parametrize("bs", [256, 512, 1 << 12, M4, 1 << 31])
def test_v2_good_blocksize(bs):
    assert F.parse_v2_header(v2_header(0, bs=bs)).blocksize == bs
    assert F.valid_blocksize(bs)


def test_v2_header_short_or_unsigned():
    with pytest.raises(F.MapFormatError):
        F.parse_v2_header(v2_header(M4)[:31])
    with pytest.raises(F.MapFormatError):
        F.parse_v2_header(b"XMF." + v2_header(M4)[4:])


# ---- v0 and v1 from hand-made bytes ------------------------------------------------


def test_v0_ends_at_the_first_all_zero_entry():
    rng = random.Random(4)
    a, b, c = (rng.randbytes(32) for _ in range(3))
    m = F.parse_v0(a + bytes.fromhex(ZERO) + b + bytes(32) + c + bytes(32 * 4))
    assert [e.name for e in m.entries] == [a.hex(), ZERO, b.hex()]
    assert [e.zero for e in m.entries] == [False, True, False]
    assert m.size == 3 * M4
    assert F.parse_v0(b"").entries == []
    assert F.parse_v0(bytes(64)).entries == []


def test_v0_ragged_length():
    with pytest.raises(F.MapFormatError):
        F.parse_v0(bytes(range(33)))


def test_v1_from_bytes():
    rng = random.Random(5)
    d1, d2 = rng.randbytes(32), rng.randbytes(32)
    data = v1_map(2 * M4 + 1, [(0, d1), (7, d2), (0, bytes.fromhex(ZERO))])
    m = F.parse_v1(data)
    assert [(e.name, e.flags) for e in m.entries] == [
        (d1.hex(), 0), ("archip_" + d2.hex(), 3), (ZERO, F.OF_ZERO)]


def test_v1_truncated():
    data = v1_map(3 * M4, [(1, bytes(range(32)))] * 3)
    assert F.parse_v1(data).nr_objs == 3
    for cut in (0, 4, 11, 12, 12 + 33, len(data) - 1):
        with pytest.raises(F.MapFormatError):
            F.parse_v1(data[:cut])
        assert F.classify(data[:cut][:64], cut, b"archip_vol").cls in (
            F.HeaderClass.CORRUPT_V1_SHORT, F.HeaderClass.NOT_MAP)
    # four bytes or more carry the v1 marker: always corrupt, never "not a map"
    for cut in (4, 11, 12, 45, len(data) - 1):
        assert F.classify(data[:64], cut, b"archip_vol").cls is F.HeaderClass.CORRUPT_V1_SHORT
    assert F.classify(data[:64], len(data), b"archip_vol").cls is F.HeaderClass.V1


def test_v1_wrong_version():
    with pytest.raises(F.MapFormatError):
        F.parse_v1(struct.pack("<IQ", 2, 0))


# ---- classify: every class --------------------------------------------------------


HEX64 = "ab" * 32


@pytest.mark.parametrize(
    ("head", "file_size", "name", "cls"),
    [
        (v2_header(M4), 32, b"vol", F.HeaderClass.V2),
        (v2_header(M4).ljust(512, b"\0")[:64], 512, b"vol", F.HeaderClass.V2),
        (v2_header(M4)[:20], 20, b"vol", F.HeaderClass.CORRUPT_SHORT),
        (b"AMF.", 4, b"vol", F.HeaderClass.CORRUPT_SHORT),
        (v2_header(M4), 31, b"vol", F.HeaderClass.CORRUPT_SHORT),
        (v2_header(M4, version=7), 32, b"vol", F.HeaderClass.CORRUPT_VERSION),
        (v2_header(M4, bs=1000), 32, b"vol", F.HeaderClass.CORRUPT_BLOCKSIZE),
        (v1_map(0, []), 12, b"archip_vol", F.HeaderClass.V1),
        (v1_map(M4, []), 12, b"archip_vol", F.HeaderClass.CORRUPT_V1_SHORT),
        (b"\x01\x00\x00\x00\x05", 5, b"archip_vol", F.HeaderClass.CORRUPT_V1_SHORT),
        (bytes(range(64)), 4096, HEX64.encode(), F.HeaderClass.V0),
        (b"", 0, HEX64.encode(), F.HeaderClass.V0),
        (bytes(range(64)), 4096, HEX64.upper().encode(), F.HeaderClass.NOT_MAP),
        (bytes(range(64)), 4096, HEX64[:63].encode(), F.HeaderClass.NOT_MAP),
        (b"", 0, b"empty-file", F.HeaderClass.NOT_MAP),
        (b"node1_1234", 10, b"vol_lock", F.HeaderClass.NOT_MAP),
        (struct.pack("<I", SIG) + bytes(28), 32, b"vol", F.HeaderClass.NOT_MAP),  # signature little-endian
    ],
)
def test_classify(head, file_size, name, cls):
    assert F.classify(head, file_size, name).cls is cls
    assert F.classify(head, file_size, name).cls.corrupt == cls.value.startswith("corrupt")


def test_classify_v2_fields():
    info = F.classify(v2_header(5 * M4 + 3, bs=1 << 12, flags=3, epoch=(1 << 64) - 1), 32, b"vol")
    assert (info.size, info.blocksize, info.flags, info.epoch, info.version) == (5 * M4 + 3, 4096, 3, (1 << 64) - 1, 2)


# ---- names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("alpha-vol1", True),
        ("vm", True),
        ("archip_alpha-vol1", False),
        ("archip_", False),
        ("Archip_x", True),
        ("vol_lock", False),
        ("vol_lockx", True),
        ("vol_hash", True),
        ("vol_0123456789abcdef", False),
        ("vol_0123456789abcdef_more", False),  # anywhere, not only at the end
        ("_0123456789abcdef", False),
        ("vol_0123456789abcde", True),  # 15 hex
        ("vol_0123456789ABCDEF", True),  # upper case is not hex to vlmc's regex
        ("vol-0123456789abcdef", True),
        (ZERO, True),  # an upgraded Pithos map keeps its 64-hex name
    ],
)
def test_is_valid_volume_name(name, valid):
    assert F.is_valid_volume_name(name) is valid


def test_mapdata_names_and_entry_location():
    assert F.mapdata_name("vol", 0) == "vol_0000000000000000"
    assert F.mapdata_name("vol", 0x1F) == "vol_000000000000001f"
    assert F.is_mapdata_name(b"vol_000000000000001f")
    assert not F.is_mapdata_name(b"_000000000000001f")  # no NAME before it
    assert not F.is_mapdata_name(b"vol_000000000000001F")
    assert not F.is_mapdata_name(b"vol_000000000000001f_lock")
    assert F.copyup_name("vol", 2, 13) == "vol_0000000000000002_000000000000000d"
    per = M4 // 128
    assert per == 32768
    assert F.entry_location(0, M4) == (0, 0)
    assert F.entry_location(1, M4) == (0, 128)
    assert F.entry_location(per - 1, M4) == (0, (per - 1) * 128)
    assert F.entry_location(per, M4) == (1, 0)
    assert F.entry_location(per + 1, M4) == (1, 128)
    assert F.entry_location(5, 256) == (2, 128)
    assert F.mapdata_blocks(0, M4) == 0
    assert F.mapdata_blocks(1, M4) == 1
    assert F.mapdata_blocks(per * M4, M4) == 1
    assert F.mapdata_blocks(per * M4 + 1, M4) == 2
    assert F.nr_objs(0) == 0 and F.nr_objs(1) == 1 and F.nr_objs(M4) == 1 and F.nr_objs(M4 + 1) == 2


def test_name_class():
    C = F.NameClass
    assert F.name_class(b"vol_lock") is C.LOCK
    assert F.name_class(b"obj_hash") is C.HASH
    assert F.name_class(b"vol_0000000000000000") is C.MAPDATA
    assert F.name_class(b"vol_locknode1_7000_ab") is C.TEMP
    assert F.name_class(b"obj_hashnode1_7000_ab") is C.TEMP
    assert F.name_class(b"alpha-vol1") is C.PLAIN


def test_pack_v2_entry_refuses_bad_names():
    for bad in ("", "x" * 124):
        with pytest.raises(ValueError):
            F.pack_v2_entry(bad, 0)
    assert F.pack_v2_entry("x" * 123, 3) == v2_entry(b"x" * 123, 3)


# ---- layout.py --------------------------------------------------------------------


def test_v04_path_is_sha256_of_the_name():
    for name in (b"alpha-vol1", b"archip_" + b"ab" * 32, HEX64.encode(), "v\u00e9l".encode()):
        h = hashlib.sha256(name).hexdigest().encode()
        assert layout.v04_path(name) == h[0:2] + b"/" + h[2:4] + b"/" + h[4:6] + b"/" + name
    # from the real stores: alpha-vol1 lives at maps/ae/7b/2f/alpha-vol1
    assert layout.v04_path(b"alpha-vol1") == b"ae/7b/2f/alpha-vol1"


def test_old_pithos_path_only_for_64_hex():
    assert layout.pithos_path(HEX64.encode()) == b"ab/ab/ab/" + HEX64.encode()
    assert layout.pithos_path(HEX64.upper().encode()) is None
    assert layout.pithos_path(b"archip_" + HEX64.encode()) is None
    assert layout.pithos_path(HEX64[:62].encode()) is None


def test_v03_path_skips_the_prefix_length():
    name = b"archip_0123456789"
    assert layout.v03_path(name) == b"01/23/45/" + name
    assert layout.v03_path(b"short") is None


@pytest.mark.parametrize("bad", [b"", b"a/b", b"ab\0cd", b".", b".."])
def test_no_path_from_bad_names(bad):
    with pytest.raises(layout.BadObjectName):
        layout.v04_path(bad)


def test_paths_coincide_for_the_at_risk_names():
    for name in AT_RISK_NAMES:
        raw = name.encode()
        assert hashlib.sha256(raw).hexdigest()[:6] == name[:6]
        assert layout.paths_coincide(raw)
        assert layout.pithos_path(raw) == layout.v04_path(raw)
    rng = random.Random(6)
    others = [rng.randbytes(32).hex().encode() for _ in range(200)]
    assert not any(layout.paths_coincide(n) for n in others)
    assert not layout.paths_coincide(b"alpha-vol1")


@pytest.mark.parametrize("data,off", [(b"", 0), (b"\x00", 0), (bytes(127), 0), (bytes(200), 100)])
def test_short_v2_entry_is_a_format_error(data, off):
    with pytest.raises(F.MapFormatError):
        F.parse_v2_entry(data, off)
