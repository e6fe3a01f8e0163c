"""The C rules of verify/native/_rules.h against their twins in verify/core/formats.py.

The scanner decides every finding with the C functions; the parsers, writers and
fixes use the Python ones. Both must give the same verdict on the same bytes, so
each test feeds both a seeded stream of random and edge-case inputs.
"""

from __future__ import annotations

import random
import struct

import pytest

from verify.core import formats as F
from verify.core import verdict as V
from verify.core.findings import MAP_KINDS

_scan = pytest.importorskip("verify._scan")

SEED = 20260425
HEX = b"0123456789abcdef"


def py_classify(head: bytes, file_size: int, name: bytes):
    h = F.classify(head, file_size, name)
    return h.cls.value, h.size, h.blocksize, h.flags, h.epoch, h.version


def c_classify(head: bytes, file_size: int, name: bytes):
    return _scan._classify_for_tests(head, file_size, name)


def _v2(version=2, size=0, bs=F.BLOCK_SIZE_4M, flags=0, epoch=1):
    return struct.pack(">IIQIIQ", F.V2_SIGNATURE, version, size, bs, flags, epoch)


def _heads(rng: random.Random):
    """Header candidates: every class, plus random bytes and random cuts."""
    fixed = [
        b"", b"A", b"AMF", b"AMF.", _v2()[:31], _v2(), _v2() + bytes(480), _v2(version=1), _v2(version=3),
        _v2(version=0xFFFFFFFF), _v2(bs=0), _v2(bs=128), _v2(bs=256), _v2(bs=1000), _v2(bs=1 << 31),
        _v2(bs=0xFFFFFFFF), _v2(size=(1 << 64) - 1, bs=512, flags=0xFFFFFFFF, epoch=(1 << 64) - 1),
        b"\x01\x00\x00", b"\x01\x00\x00\x00", struct.pack("<IQ", 1, 0), struct.pack("<IQ", 1, 1),
        struct.pack("<IQ", 1, (1 << 64) - 1), b"\x01\x00\x00\x01" + bytes(8), b"\x00\x00\x00\x01" + bytes(8),
        b"\x2e\x46\x4d\x41" + bytes(28),  # the signature little-endian: not a v2 header
        bytes(64), b"\xff" * 64,
    ]
    yield from fixed
    for _ in range(3000):
        kind = rng.randrange(4)
        if kind == 0:
            head = rng.randbytes(rng.randrange(0, 70))
        elif kind == 1:
            bs = rng.choice([0, 1, 127, 128, 129, 256, 512, 4096, 1 << 22, 1 << 31, rng.getrandbits(32)])
            head = _v2(rng.choice([2, 2, 2, 1, 3, rng.getrandbits(32)]), rng.getrandbits(64), bs,
                       rng.getrandbits(32), rng.getrandbits(64))
            head = head[: rng.choice([len(head), len(head), rng.randrange(0, 33)])]
        elif kind == 2:
            head = struct.pack("<IQ", 1, rng.choice([0, 1, 1 << 22, (1 << 22) + 1, rng.getrandbits(40),
                                                    rng.getrandbits(64)]))
            head = head[: rng.choice([12, 12, rng.randrange(0, 13)])] + rng.randbytes(rng.randrange(0, 40))
        else:
            head = rng.choice([b"AMF.", b"\x01\x00\x00\x00"]) + rng.randbytes(rng.randrange(0, 40))
        yield head


def _names(rng: random.Random):
    hex64 = bytes(rng.choice(HEX) for _ in range(64))
    yield from [b"", b"x", hex64, hex64.upper(), hex64[:63], hex64 + b"0", b"g" + hex64[1:], b"archip_" + hex64]
    for _ in range(200):
        yield bytes(rng.choice(HEX + b"gA_") for _ in range(rng.choice([63, 64, 64, 65])))


def _file_sizes(rng, head):
    n = len(head)
    out = {n, max(0, n - 1), n + 1, 0, 11, 12, 31, 32, 45, 512, 4096, rng.getrandbits(64), (1 << 64) - 1}
    if head[:4] == b"\x01\x00\x00\x00" and len(head) >= 12:
        (size,) = struct.unpack_from("<Q", head, 4)
        need = 12 + 33 * F.nr_objs(size)
        out |= {need - 1, need, need + 1}
    return [s for s in out if 0 <= s < 1 << 64 and s >= n]


def test_classify_twin_on_generated_headers():
    rng = random.Random(SEED)
    names = list(_names(rng))
    checked = 0
    seen = set()
    for head in _heads(rng):
        for size in _file_sizes(rng, head):
            for name in (rng.choice(names), b"vol-1"):
                want = py_classify(head, size, name)
                got = c_classify(head, size, name)
                assert got == want, (head.hex(), size, name)
                seen.add(want[0])
                checked += 1
    assert checked > 10000
    assert seen == {c.value for c in F.HeaderClass}


def test_classify_twin_v0_needs_exactly_64_lowercase_hex():
    rng = random.Random(SEED + 1)
    for name in _names(rng):
        assert c_classify(b"\x12" * 32, 32, name)[0] == py_classify(b"\x12" * 32, 32, name)[0]
        assert _scan._is_hex64_for_tests(name) == F.is_hex64(name)


def _volume_names(rng: random.Random):
    fixed = [
        b"", b"vol", b"archip_", b"archip_x", b"Archip_x", b"x_lock", b"_lock", b"x_lockx", b"x_hash",
        b"vol_0123456789abcdef", b"vol_0123456789abcde", b"vol_0123456789abcdeF", b"_0123456789abcdef",
        b"a_0123456789abcdefg", b"a__0123456789abcdef", b"a_0123456789abcdef_x", b"x\n_0123456789abcdef",
        b"\n_0123456789abcdef", b"_0123456789abcdef\n", b"a\r_0123456789abcdef", b"vol_lock_x",
        "vol_\u0663123456789abcdef".encode(), "v\u00e9l".encode(), b"archip_vol-1", b"alpha-vol1",
    ]
    yield from fixed
    alphabet = HEX + b"_-.\nxAlockhasrcip"
    for _ in range(5000):
        n = rng.randrange(0, 40)
        s = bytes(rng.choice(alphabet) for _ in range(n))
        r = rng.random()
        if r < 0.2:
            s = b"archip_" + s
        elif r < 0.3:
            s += b"_lock"
        elif r < 0.5:
            i = rng.randrange(len(s) + 1)
            s = s[:i] + b"_" + bytes(rng.choice(HEX) for _ in range(rng.choice([15, 16, 17]))) + s[i:]
        yield s


def test_valid_volume_name_twin():
    rng = random.Random(SEED + 2)
    verdicts = set()
    for raw in _volume_names(rng):
        want = F.is_valid_volume_name(raw.decode())
        assert _scan._valid_volume_name_for_tests(raw) == want, raw
        verdicts.add(want)
    assert verdicts == {True, False}


def test_mapdata_and_name_class_twin():
    rng = random.Random(SEED + 3)
    classes = set()
    extra = [b"vol_0000000000000000", b"_0000000000000000", b"x_0000000000000000", b"vol_lock",
             b"vol_lockhost_1234_ab", b"vol_hash", b"vol_hashnode1_7000_xy", b"vol_lock_0000000000000000",
             b"vol-0000000000000000", b"vol_000000000000000g"]
    for raw in [*extra, *_volume_names(rng)]:
        assert _scan._is_mapdata_name_for_tests(raw) == F.is_mapdata_name(raw), raw
        want = F.name_class(raw).value
        assert _scan._name_class_for_tests(raw) == want, raw
        classes.add(want)
    assert classes == {c.value for c in F.NameClass}


def _utf8_samples(rng: random.Random):
    fixed = [
        b"", b"a", b"\x7f", b"\x80", b"\xc0\x80", b"\xc1\xbf", b"\xc2\x80", b"\xdf\xbf", b"\xe0\x80\x80",
        b"\xe0\x9f\xbf", b"\xe0\xa0\x80", b"\xed\x9f\xbf", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xee\x80\x80",
        b"\xef\xbf\xbf", b"\xf0\x8f\xbf\xbf", b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80",
        b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xff", b"\xfe", b"\xc2", b"\xe2\x82", b"\xf0\x9f\x98",
        "\u20ac".encode(), "\U0001f600".encode(), b"bad-\xff-name", b"\xc2\x80\x80", b"a\x00b",
    ]
    yield from fixed
    pieces = [b"a", b"\x80", b"\xbf", b"\xc2", b"\xdf", b"\xe0", b"\xed", b"\xef", b"\xf0", b"\xf4", b"\xf5",
              b"\xa0", b"\x9f", b"\x90", b"\x8f"]
    for _ in range(20000):
        if rng.random() < 0.5:
            yield rng.randbytes(rng.randrange(0, 8))
        else:
            yield b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 7)))
    for cp in range(0, 0x110000, 97):
        yield chr(cp).encode("utf-8", "surrogatepass")


def _strict(b: bytes) -> bool:
    try:
        b.decode("utf-8", "strict")
    except UnicodeDecodeError:
        return False
    return True


def test_utf8_validity_equals_python_strict_decoder():
    rng = random.Random(SEED + 4)
    verdicts = set()
    for s in _utf8_samples(rng):
        want = _strict(s)
        assert _scan._utf8_valid_for_tests(s) == want, s
        verdicts.add(want)
    assert verdicts == {True, False}


def test_name_fault_twin():
    """The stray-name rule of both backends (filed with its 6-byte floor, RADOS without one):
    av_name_fault and its text against formats.name_fault on the same names."""
    rng = random.Random(SEED + 6)
    faults = set()
    for s in _utf8_samples(rng):
        for name in (s, b"volume" + s):
            for min_len in (F.MIN_NAME_LEN, 0):
                want = F.name_fault(name, min_len)
                assert _scan._name_fault_for_tests(name, min_len) == (want.value, F.NAME_FAULT_TEXT[want].encode()), \
                    (name, min_len)
                faults.add(want)
    assert faults == set(F.NameFault)


def test_mapdata_blocks_twin():
    rng = random.Random(SEED + 5)
    cases = [(0, 256), (1, 256), (256, 256), (257, 256), (2 * 256, 256), (3 * 256, 256), ((1 << 64) - 1, 256),
             ((1 << 64) - 1, 1 << 31), (32768 * F.BLOCK_SIZE_4M, F.BLOCK_SIZE_4M),
             (32768 * F.BLOCK_SIZE_4M + 1, F.BLOCK_SIZE_4M)]
    for _ in range(5000):
        bs = 1 << rng.randrange(8, 32)
        cases.append((rng.getrandbits(rng.choice([8, 20, 40, 64])), bs))
    for size, bs in cases:
        assert _scan._mapdata_blocks_for_tests(size, bs) == F.mapdata_blocks(size, bs), (size, bs)


# ---- one map's verdict: av_map_facts / av_map_verdict / av_map_detail ----------------------


def py_map_facts(head: bytes, size: int, size_known: bool, name: bytes):
    f = V.map_facts(head, size, size_known, name)
    h = f.header
    return ((h.cls.value, h.size, h.blocksize, h.flags, h.epoch, h.version), f.size, f.size_known, f.name_valid,
            f.upgraded, f.nb, f.missing, f.name_plain, f.head)


def _map_names(rng: random.Random):
    hex64 = bytes(rng.choice(HEX) for _ in range(64))
    yield from [b"vol-1", b"archip_vol-1", b"archip_", b"archip_12345", b"archip_123456", hex64,
                b"archip_" + hex64, b"vol_0123456789abcdef", b"archip_vol_0123456789abcdef", b"x_lock",
                "v\u00e9l".encode(), b"bad-\xff-name"]
    yield from (rng.choice([b"", b"archip_"]) + n for n in _volume_names(rng))


def test_map_facts_twin_on_generated_headers():
    rng = random.Random(SEED + 6)
    names = list(_map_names(rng))
    seen = set()
    for head in _heads(rng):
        for size in _file_sizes(rng, head):
            for name in (rng.choice(names), names[5]):  # names[5]: 64 hex digits, a v0 name
                known = rng.random() < 0.7
                if not known:
                    size = len(head)
                want = py_map_facts(head, size, known, name)
                assert _scan._map_facts_for_tests(head, size, known, name) == want, (head.hex(), size, known, name)
                seen.add((want[0][0], want[4]))
    assert {u for _, u in seen} == {V.UNKNOWN, 0}
    assert {c for c, _ in seen} == {c.value for c in F.HeaderClass}


def _facts(rng: random.Random):
    """Facts as loops gather them, each one at every value that changes a verdict."""
    for _ in range(20000):
        cls = rng.choice(list(F.HeaderClass))
        bs = rng.choice([256, 4096, F.BLOCK_SIZE_4M, 1 << 31, rng.getrandbits(32)])
        hsize = rng.choice([0, 1, F.BLOCK_SIZE_4M, 100 * F.BLOCK_SIZE_4M + 1, rng.getrandbits(40),
                            rng.getrandbits(64)])
        header = F.HeaderInfo(cls, hsize, bs, rng.getrandbits(32), rng.getrandbits(64),
                              rng.choice([0, 1, 2, 3, rng.getrandbits(32)]))
        known = rng.random() < 0.5
        v1len = V.v1_length(hsize)
        size = rng.choice([0, 11, 31, 64, v1len - 1, v1len, v1len + 1, rng.getrandbits(63)]) % (1 << 63)
        nb = rng.choice([0, 1, 2, 7, rng.getrandbits(40)])
        missing = rng.choice([V.UNKNOWN, 0, nb // 2, max(0, nb - 1), nb])
        facts = V.MapFacts(header, size, known, rng.random() < 0.7, rng.choice([V.UNKNOWN, 0, 1]), nb, missing,
                           rng.random() < 0.7, rng.randbytes(rng.choice([0, 5, 16])))
        name = rng.choice([b"archip_vol-1", b"archip_" + bytes(rng.choice(HEX) for _ in range(64)),
                           b"archip_" + rng.randbytes(rng.randrange(0, 30)).replace(b"\0", b"x")])
        yield facts, name


def test_map_verdict_and_detail_twin_on_generated_facts():
    rng = random.Random(SEED + 7)
    outcomes = set()
    for f, name in _facts(rng):
        kind, code = V.map_verdict(f)
        want = (kind.value if isinstance(kind, V.MapStep) else kind, code.value,
                V.map_detail(code, f, name) if isinstance(kind, str) else b"")
        h = f.header
        got = _scan._map_verdict_for_tests(h.cls.value, h.size, h.blocksize, h.flags, h.epoch, h.version, f.size,
                                           f.size_known, f.name_valid, f.upgraded, f.nb, f.missing, name,
                                           f.name_plain, f.head)
        assert got == want, (f, name)
        outcomes.add(want[:2])
    kinds = {k for k, _ in outcomes}
    assert kinds == {None, *(s.value for s in V.MapStep), *(k for k in MAP_KINDS)}
    assert {c for _, c in outcomes} == {d.value for d in V.MapDetail}


def test_map_verdict_precedence():
    """corrupt and v0 on their header alone; then incomplete > v1 > invalid name > map-data missing."""
    def facts(cls, **kw):
        base = dict(size=64, size_known=True, name_valid=True, upgraded=0, nb=2, missing=2)
        base.update(kw)
        return V.MapFacts(F.HeaderInfo(cls, 100 * F.BLOCK_SIZE_4M, F.BLOCK_SIZE_4M, 0, 1, 2), **base)

    V1, V2 = F.HeaderClass.V1, F.HeaderClass.V2
    for cls in F.HeaderClass:
        if cls.corrupt:
            assert V.map_verdict(facts(cls, upgraded=1, name_valid=False, missing=0))[0] == "map_corrupt"
    assert V.map_verdict(facts(F.HeaderClass.V0, upgraded=V.UNKNOWN))[0] == "map_v0"
    assert V.map_verdict(facts(F.HeaderClass.NOT_MAP, upgraded=V.UNKNOWN))[0] == "not_a_map"
    assert V.map_verdict(facts(F.HeaderClass.NOT_MAP, upgraded=V.UNKNOWN, name_plain=False))[0] is None
    assert V.map_verdict(facts(F.HeaderClass.NOT_MAP, size_known=False))[0] is V.MapStep.NEED_SIZE
    assert V.map_verdict(facts(V1, size_known=False, size=64))[0] is V.MapStep.NEED_SIZE
    assert V.map_verdict(facts(V1, size_known=False, size=V.v1_length(100 * F.BLOCK_SIZE_4M)))[0] == "map_v1"
    assert V.map_verdict(facts(V2, upgraded=V.UNKNOWN, name_valid=False))[0] is V.MapStep.NEED_UPGRADED
    assert V.map_verdict(facts(V1, upgraded=1))[0] == "map_upgrade_incomplete"
    assert V.map_verdict(facts(V2, upgraded=1, name_valid=False, missing=0))[0] == "map_upgrade_incomplete"
    assert V.map_verdict(facts(V1, name_valid=False, missing=0))[0] == "map_v1"
    assert V.map_verdict(facts(V2, name_valid=False, missing=0))[0] == "map_invalid_name"
    assert V.map_verdict(facts(V2, missing=V.UNKNOWN))[0] is V.MapStep.NEED_MAPDATA
    assert V.map_verdict(facts(V2, missing=1))[0] == "map_data_missing"
    assert V.map_verdict(facts(V2, missing=2))[0] is None
    assert V.map_verdict(facts(V2, nb=0, missing=V.UNKNOWN))[0] is None


def test_is_v2_header_twin():
    rng = random.Random(SEED + 8)
    heads = [b"", b"AMF.", _v2()[:7], _v2()[:8], _v2(), _v2(version=1)[:8], _v2(version=3)]
    heads += [rng.choice([b"AMF.", b"AMF.\x00\x00\x00\x02", b""]) + rng.randbytes(rng.randrange(0, 12))
              for _ in range(3000)]
    assert_same_verdicts(heads, F.is_v2_header, _scan._is_v2_header_for_tests)


def assert_same_verdicts(inputs, twin, native):
    """``native`` says what ``twin`` says on every input, and both verdicts occur."""
    verdicts = set()
    for x in inputs:
        want = twin(x)
        assert native(x) == want, x
        verdicts.add(want)
    assert verdicts == {True, False}


# ---- the rules that hash a name or content, and the blocks store's name filter -------------
# (verify/native/_native.h and _rules.h, reached through verify.native._rulebatch: its batch functions, which the
# RADOS check calls a page at a time, and its _…_for_tests hooks)

_rulebatch = pytest.importorskip("verify.native._rulebatch")

from verify.core import layout as L  # noqa: E402


def _object_names(rng: random.Random):
    hexes = [bytes(rng.choice(HEX) for _ in range(64)) for _ in range(200)]
    yield from [b"", b"x", b"_hash", b"vol_hash", b"vol_lock", b"vol_lockhost_1_ab", b"vol_hashx_1_ab",
                b"archip_vol_hash", *hexes, *(h + b"_hash" for h in hexes[:50]), *(h.upper() for h in hexes[:20])]
    for raw in _volume_names(rng):
        yield raw
        if rng.random() < 0.2:
            yield raw + rng.choice([b"_hash", b"_lock", b"_hash" + raw[:5] + b"_xy"])


def test_fingerprint_twin():
    rng = random.Random(SEED + 9)
    names = list(_object_names(rng)) + [rng.randbytes(rng.randrange(0, 300)) for _ in range(3000)]
    got = _rulebatch.fingerprints(names)
    assert got == b"".join(F.fingerprint(n) for n in names)
    for n in names[:500]:
        assert int.from_bytes(F.fingerprint(n)[:8], "big") == F.fingerprint_hi(n)
        assert F.fingerprint(n)[15] & 1 == 0


def test_in_window_twin():
    rng = random.Random(SEED + 10)
    top = F.FP_SPACE - 1
    cases = [(0, 0, 0, True), (0, 0, 0, False), (5, 5, 1, False), (4, 5, 1, False), (top, top, 1, False),
             (0, top, 2, False), (1, top, 2, False), (top, 0, F.FP_SPACE - 1, False)]
    for _ in range(20000):
        start, width = rng.getrandbits(64), rng.choice([0, 1, rng.getrandbits(rng.choice([8, 40, 63, 64]))])
        fp = rng.choice([start, (start + width) % F.FP_SPACE, (start + width - 1) % F.FP_SPACE, rng.getrandbits(64)])
        cases.append((fp, start, width, rng.random() < 0.1))
    verdicts = set()
    for fp, start, width, everything in cases:
        want = F.in_window(fp, start, width, everything)
        assert _rulebatch._in_window_for_tests(fp, start, width, everything) == want, (fp, start, width, everything)
        verdicts.add(want)
    assert verdicts == {True, False}


def test_stored_class_and_split_twin():
    rng = random.Random(SEED + 11)
    names = list(_object_names(rng))
    objs, hashes = _rulebatch.stored_split(names)
    assert objs == [n for n in names if F.stored_class(n) is F.StoredClass.OBJECT]
    assert hashes == [(n, F.hash_target(n)) for n in names if F.stored_class(n) is F.StoredClass.HASH]
    assert {F.stored_class(n) for n in names} == set(F.StoredClass)
    assert _rulebatch.map_candidates(names) == [n for n in names if F.name_class(n) is F.NameClass.PLAIN]


def test_data_sample_twin():
    rng = random.Random(SEED + 12)
    names = list(_object_names(rng))
    for start, width, everything in [(0, 0, True), (0, 0, False), (rng.getrandbits(64), 1 << 62, False),
                                     (F.FP_SPACE - 5, 1 << 63, False), (0, F.FP_SPACE - 1, False)]:
        want = [n for n in names if F.is_hex64(n) and F.in_window(F.fingerprint_hi(n), start, width, everything)]
        unsampled = sum(1 for n in names if F.is_hex64(n)) - len(want)
        assert _rulebatch.data_sample(names, start, width, everything) == (want, unsampled)


def _contents(rng: random.Random):
    yield from [b"", b"\0", b"\0" * 5000, b"a", b"a\0", b"\0a", b"a" + b"\0" * 9000 + b"b" + b"\0" * 3]
    for _ in range(300):
        parts = [rng.choice([rng.randbytes(rng.randrange(0, 300)), bytes(rng.randrange(0, 6000))])
                 for _ in range(rng.randrange(0, 6))]
        yield b"".join(parts)


def test_content_hash_twin_streamed_in_any_chunks():
    rng = random.Random(SEED + 13)
    for data in _contents(rng):
        cuts = sorted(rng.randrange(0, len(data) + 1) for _ in range(rng.randrange(0, 5)))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
        assert _rulebatch._content_hash_for_tests(pieces) == (F.content_hash(data), len(data)), (data[:40], cuts)


def test_content_mismatches_twin():
    rng = random.Random(SEED + 14)
    datas = list(_contents(rng))
    names = [F.content_hash(d).encode() if rng.random() < 0.5 else bytes(rng.choice(HEX) for _ in range(64))
             for d in datas]
    datas[3] = None  # not read: skipped
    want = [(i, F.content_hash(d)) for i, (n, d) in enumerate(zip(names, datas))
            if d is not None and F.content_hash(d).encode() != n]
    assert want and len(want) < len(names) - 1
    assert _rulebatch.content_mismatches(names, datas) == want


def test_placement_twin():
    rng = random.Random(SEED + 15)
    seen = set()
    names = [n for n in _object_names(rng) if n and b"/" not in n and b"\0" not in n and n not in (b".", b"..")]
    names += list(pithos_coinciding())
    for name in names:
        hx = L.v04_dirs(name)
        for dirs in {hx, L.pithos_dirs(name) or hx, b"00/00/00", hx[:-1] + b"x", b"ab/cd/e", b"ab/cd/efg"}:
            d1, d2, d3 = dirs.split(b"/")
            want = L.placement(dirs, name)
            assert _rulebatch._placement_for_tests(d1, d2, d3, name) == want, (dirs, name)
            seen.add(want)
    assert seen == {0, L.AT_V04, L.AT_OLD, L.AT_V04 | L.AT_OLD}


def pithos_coinciding():
    """64-hex names whose old and v0.4 paths are one."""
    from verify.ops.sample import AT_RISK_NAMES

    yield from (n.encode() for n in AT_RISK_NAMES)


def test_probe_order_twin():
    rng = random.Random(SEED + 16)
    for name in _object_names(rng):
        if not name or b"/" in name or b"\0" in name or name in (b".", b".."):
            continue
        assert _rulebatch._probe_paths_for_tests(name) == L.probe_paths(name), name


def test_v1_magic_twin():
    rng = random.Random(SEED + 17)
    heads = [b"", b"\x01", b"\x01\x00\x00", F.V1_MAGIC, F.V1_MAGIC + b"x", b"\x01\x00\x00\x01", b"\x00\x01\x00\x00"]
    heads += [rng.choice([b"", b"\x01", b"\x01\x00", b"\x01\x00\x00"]) + rng.randbytes(rng.randrange(0, 6))
              for _ in range(3000)]
    assert_same_verdicts(heads, F.is_v1_header, _rulebatch._is_v1_header_for_tests)


def test_classify_heads_is_classify():
    rng = random.Random(SEED + 18)
    names = list(_names(rng))
    heads = list(_heads(rng))[:3000]
    ns = [rng.choice(names) for _ in heads]
    got = _rulebatch.classify_heads(ns, heads + [])
    for name, head, g in zip(ns, heads, got):
        h = F.classify(head[:F.HEADER_READ], len(head), name)
        assert g == (h.cls.value, h.size, h.blocksize, h.flags), (head.hex(), name)
    assert _rulebatch.classify_heads([b"x"], [None]) == [None]


def test_map_version_twin_for_every_header_class():
    """The version a map finding names (av_map_version, HeaderClass.map_version), class by class."""
    got = {c.value: (_scan._map_version_for_tests(c.value), c.map_version) for c in F.HeaderClass}
    assert all(c == p for c, p in got.values()), got
    assert {k: v[0] for k, v in got.items()} == {
        "not_map": 0, "v0": 0, "v1": 1, "corrupt_v1_short": 1,
        "v2": 2, "corrupt_short": 2, "corrupt_version": 2, "corrupt_blocksize": 2}
