"""Every format constant of verify/_rules.h equals its twin in verify/formats.py (the only two homes)."""

from __future__ import annotations

import re
from pathlib import Path

from verify import _scan
from verify import formats as F

ROOT = Path(__file__).resolve().parent.parent


def test_c_constants_equal_formats_py():
    c = _scan._constants_for_tests()
    assert c == {name: getattr(F, name) for name in c}


def test_no_loop_keeps_its_own_copy_of_a_format_constant():
    """The loops take them from _rules.h (cimported through _rules.pxd), never a DEF of their own."""
    names = "|".join(_scan._constants_for_tests())
    for pyx in sorted((ROOT / "verify").glob("_*.pyx")):
        copies = re.findall(rf"^\s*(?:DEF|cdef\s+\w+)\s+(?:AV_)?({names}|OF_\w+|MF_\w+)\s*=", pyx.read_text(), re.M)
        assert not copies, f"{pyx.name} defines {copies}: use the _rules.h constant"
