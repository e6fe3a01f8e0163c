"""Where filed keeps an object's file, in each layout Archipelago ever used.

A filed store is ``ARCHIP_DIR/d1/d2/d3/NAME``. v0.4 derives ``d1/d2/d3`` from
sha256(NAME); the pre-Archipelago Pithos blocker took them from the name itself
(only for 64-hex names), and v0.3's filed skipped the 7-byte ``archip_`` prefix.
v0.4 looks only at the first two: anything else is unreachable for it.
"""

from __future__ import annotations

import hashlib
import re

HEX64 = re.compile(rb"[0-9a-f]{64}\Z")
MIN_NAME_LEN = 6


class BadObjectName(ValueError):
    """A name that no path may be built from (contains '/' or NUL, or is empty)."""


def _check(name: bytes) -> None:
    if not name or b"/" in name or b"\0" in name or name in (b".", b".."):
        raise BadObjectName(f"refusing to build a path from object name {name!r}")


def is_hex64(name: bytes) -> bool:
    """Pithos block and v0 map names: exactly 64 lowercase hex characters."""
    return len(name) == 64 and HEX64.match(name) is not None


def v04_dirs(name: bytes) -> bytes:
    """``d1/d2/d3`` of the v0.4 layout: the first six hex digits of sha256(name)."""
    _check(name)
    h = hashlib.sha256(name).hexdigest().encode()
    return h[0:2] + b"/" + h[2:4] + b"/" + h[4:6]


def pithos_dirs(name: bytes) -> bytes | None:
    """``d1/d2/d3`` of the old Pithos layout, defined only for 64-hex names."""
    if not is_hex64(name):
        return None
    return name[0:2] + b"/" + name[2:4] + b"/" + name[4:6]


def v03_dirs(name: bytes) -> bytes | None:
    """``d1/d2/d3`` of v0.3's filed in the Archipelago dirs (prefix length skipped)."""
    _check(name)
    if len(name) < 13:
        return None
    return name[7:9] + b"/" + name[9:11] + b"/" + name[11:13]


def v04_path(name: bytes) -> bytes:
    """Path of ``name`` relative to the store root in the v0.4 layout."""
    return v04_dirs(name) + b"/" + name


def pithos_path(name: bytes) -> bytes | None:
    d = pithos_dirs(name)
    return None if d is None else d + b"/" + name


def v03_path(name: bytes) -> bytes | None:
    d = v03_dirs(name)
    return None if d is None else d + b"/" + name


AT_V04 = 1  # placement bits (``av_placement``): at the sha256 path
AT_OLD = 2  # at the old Pithos path (64-hex names)


def placement(dirs: bytes, name: bytes) -> int:
    """Where a file at ``dirs/NAME`` (``dirs`` = b"d1/d2/d3") stands for v0.4: AT_V04 | AT_OLD bits,
    both where the two paths coincide, 0 where v0.4 cannot reach it."""
    return (AT_V04 if dirs == v04_dirs(name) else 0) | (AT_OLD if dirs == pithos_dirs(name) else 0)


def probe_paths(name: bytes) -> list[bytes]:
    """The paths v0.4 filed tries for NAME, in its order (``av_probe_rel``): the old Pithos path
    first (filed serves that file while it exists), then the sha256 path."""
    old = pithos_path(name)
    return ([old] if old is not None else []) + [v04_path(name)]


def paths_coincide(name: bytes) -> bool:
    """The data-loss case: old and new path are one file, which pithos_migrate unlinks."""
    return is_hex64(name) and pithos_dirs(name) == v04_dirs(name)


# Entries at a store's root that belong to no object and are never findings: the
# filesystem's own lost+found (when archip_dir is a mount point, a directory) and
# archverify's own writer lock (verify/durable/__init__.py STORE_LOCK_NAME, a regular file).
ROOT_SKIPPED_DIRS = frozenset({b"lost+found"})
ROOT_SKIPPED_FILES = frozenset({b".archverify.lock"})


def skipped_at_root(name: bytes, is_dir: bool, is_file: bool) -> bool:
    """An entry at the store root that every walker passes over (scan, check, the naive oracle)."""
    return (is_dir and name in ROOT_SKIPPED_DIRS) or (is_file and name in ROOT_SKIPPED_FILES)
