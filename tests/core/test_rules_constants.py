"""The C side of the format and layout rules equals formats.py and layout.py (their only two homes)."""

from __future__ import annotations

import re
from pathlib import Path

from verify import _scan
from verify import formats as F

ROOT = Path(__file__).resolve().parents[2]


def test_c_constants_equal_formats_py():
    c = _scan._constants_for_tests()
    assert c == {name: getattr(F, name) for name in c}


def test_no_loop_keeps_its_own_copy_of_a_format_constant():
    """The loops take them from _rules.h (cimported through _rules.pxd), never a DEF of their own."""
    names = "|".join(_scan._constants_for_tests())
    for pyx in sorted((ROOT / "verify").glob("_*.pyx")):
        copies = re.findall(rf"^\s*(?:DEF|cdef\s+\w+)\s+(?:AV_)?({names}|OF_\w+|MF_\w+)\s*=", pyx.read_text(), re.M)
        assert not copies, f"{pyx.name} defines {copies}: use the _rules.h constant"


def test_c_v04_path_equals_layout():
    import random

    from verify.layout import v04_path

    rng = random.Random(11)
    names = [b"archip_vol", b"x" * 255, bytes(range(1, 256)).replace(b"/", b"")]
    names += [rng.randbytes(rng.randrange(3, 120)).replace(b"\0", b"a").replace(b"/", b"b") for _ in range(2000)]
    for name in names:
        assert _scan._v04_rel_for_tests(name) == v04_path(name)
