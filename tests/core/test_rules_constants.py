"""The C side of the format and layout rules equals formats.py and layout.py (their only two homes)."""

from __future__ import annotations

import re
from pathlib import Path

from verify import _scan
from verify.core import formats as F

ROOT = Path(__file__).resolve().parents[2]


def test_c_constants_equal_formats_py():
    c = _scan._constants_for_tests()
    assert c == {name: getattr(F, name) for name in c}


def test_no_loop_keeps_its_own_copy_of_a_format_constant():
    """The loops take them from _rules.h (cimported through _rules.pxd), never a DEF of their own."""
    names = "|".join(_scan._constants_for_tests())
    for pyx in sorted((ROOT / "verify").rglob("_*.pyx")):
        copies = re.findall(rf"^\s*(?:DEF|cdef\s+\w+)\s+(?:AV_)?({names}|OF_\w+|MF_\w+)\s*=", pyx.read_text(), re.M)
        assert not copies, f"{pyx.name} defines {copies}: use the _rules.h constant"


def test_c_v04_path_equals_layout():
    import random

    from verify.core.layout import v04_path

    rng = random.Random(11)
    names = [b"archip_vol", b"x" * 255, bytes(range(1, 256)).replace(b"/", b"")]
    names += [rng.randbytes(rng.randrange(3, 120)).replace(b"\0", b"a").replace(b"/", b"b") for _ in range(2000)]
    for name in names:
        assert _scan._v04_rel_for_tests(name) == v04_path(name)


# Where a rule may be written out: its C home and its Python twin. A copy anywhere else would
# be a second definition free to drift from the first, so these fail on one.
HASHLIB_HOMES = {
    "verify/core/formats.py": "the fingerprint and content hash twins",
    "verify/core/layout.py": "the v0.4 path twin",
    "verify/ops/pins.py": "digests of whole files kept aside (not a store rule)",
    "verify/ops/nodes.py": "the digest a node's shell script checks (not a store rule)",
    "verify/ops/sample.py": "the sample store names its v0 maps by the digest of their entries",
    "verify/ops/pithos/sample.py": "the sample Pithos database names its maps likewise",
    "verify/ops/state.py": "digests of the finding sets of older runs (not a store rule)",
}


def _sources(*globs):
    for g in globs:
        yield from sorted((ROOT / "verify").rglob(g))


def test_no_module_hashes_names_or_content_outside_the_rule_modules():
    for py in _sources("*.py"):
        if re.search(r"^\s*(import hashlib|from hashlib )", py.read_text(), re.M):
            assert str(py.relative_to(ROOT)) in HASHLIB_HOMES, \
                f"{py.relative_to(ROOT)} imports hashlib: call formats.fingerprint/content_hash or verify.native._rulebatch's batches"


def test_no_one_shot_sha256_and_no_name_hashing_outside_native_h():
    """The loops hash a name only through av_fingerprint / av_placement / av_v04_rel (verify/native/_native.h)."""
    for src in _sources("*.pyx", "*.pxd", "*.h"):
        text = src.read_text()
        assert not re.search(r"\bSHA256\(", text), f"{src.name}: one-shot SHA256(): use the _native.h rules"
        if src.name != "_native.h":
            assert not re.search(r"\b(SHA256_\w+|av_sha256)\(", text), f"{src.name} hashes by itself: use a _native.h rule"


def test_format_magic_is_written_once():
    """The v1 magic and the v2 signature as bytes only in formats.py (and _rules.h)."""
    for py in _sources("*.py"):
        if py.name == "formats.py":
            continue
        text = py.read_text()
        assert "\\x01\\x00\\x00\\x00" not in text, f"{py.relative_to(ROOT)}: use formats.is_v1_header / V1_MAGIC"
        assert not re.search(r"0x414[dD]462[eE]|b\"AMF\.", text), f"{py.relative_to(ROOT)}: use formats.V2_SIGNATURE"


def test_no_decision_is_taken_from_a_findings_words():
    """A finding's detail is for people: code decides on its kind and fields (e.g. ``version``)."""
    pattern = re.compile(r"\bdetail(_s)?\.(startswith|endswith|split|find|index)\(|\bin \w+\.detail\b|re\.\w+\(.*\.detail")
    for py in _sources("*.py"):
        for k, line in enumerate(py.read_text().splitlines(), 1):
            assert not pattern.search(line), f"{py.relative_to(ROOT)}:{k} decides from a detail text: {line.strip()}"
