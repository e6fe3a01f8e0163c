"""The old Pithos path check of the map prober (verify/native/_probe.pyx): probed directly for
the first names under a ``d1/d2`` dir, that dir listed once more names need it.

Whether a dir was listed or not, what is found is the same: a map at its old path wins
over its v0.4 path, a FIFO, socket or device there is unreadable and never read, a
symlink or a directory there is not a map (the next place is tried). The one thing
a listing decides is the documented shortcut: a leaf dir created after its ``d1/d2``
was listed is not looked into (v0.4 never creates files at old paths).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from verify.core import layout
from verify.native._probe import ERR_NOT_REGULAR, MapProbe

from test_hostile_tree import _place  # tests/native is on sys.path (no __init__.py)

LIST_AFTER = 4  # names under one d1/d2 probed directly before it is listed (AV_OLD_LIST_AFTER)
V0 = bytes(range(1, 33)) + bytes(range(2, 34))  # a v0 map of two entries: size 4 MiB + 1 fits it


def name(d1d2d3: str, i: int) -> str:
    """A 64-hex name whose old path is ``d1/d2/d3/NAME``."""
    return d1d2d3 + f"{i:058x}"


def old(root: Path, n: str) -> Path:
    return root / os.fsdecode(layout.pithos_path(n.encode()))


def new(root: Path, n: str) -> Path:
    return root / os.fsdecode(layout.v04_path(n.encode()))


def put(p: Path, data: bytes = V0) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def where(probe: MapProbe, names: list[str]) -> list[tuple[str, int]]:
    """(where, errno) per name, v0 entries counted up to 8."""
    return [(r[0], r[1]) for r in probe.lookup(names, [8] * len(names))]


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "maps"
    r.mkdir()
    return r


def test_one_name_in_a_dir_sees_its_old_path_and_what_appears_there(root):
    a = name("abcd01", 1)
    put(new(root, a))
    with _probe(root) as p:
        assert where(p, [a]) == [("v04", 0)]
        put(old(root, a))  # appears in a dir never listed: seen
        assert where(p, [a]) == [("pithos", 0)]
        old(root, a).unlink()  # and vanishes
        assert where(p, [a]) == [("v04", 0)]


def test_a_dir_with_many_names_is_listed_and_finds_the_same(root):
    names = [name(f"beef{d3:02x}", i) for d3 in range(12) for i in range(3)]  # 36 names under be/ef
    at_old = set(names[::4])
    for n in names:
        put(old(root, n) if n in at_old else new(root, n))
    want = [("pithos", 0) if n in at_old else ("v04", 0) for n in names]
    for jobs in (1, 2):
        with _probe(root, jobs) as p:
            # one at a time: the first LIST_AFTER probed directly, then be/ef is listed
            assert [where(p, [n])[0] for n in names] == want
            assert where(p, names) == want  # and a batch after the listing
        with _probe(root, jobs) as p:
            assert where(p, names * 10) == want * 10  # all at once (the thread pool's path with jobs 2)


def test_after_the_listing_a_file_in_a_listed_leaf_appears_and_vanishes(root):
    names = [name("cafe00", i) for i in range(LIST_AFTER + 2)]
    for n in names:
        put(new(root, n))
    put(old(root, names[0]))  # leaf ca/fe/00 exists when ca/fe is listed
    with _probe(root) as p:
        assert where(p, names)[0] == ("pithos", 0)
        assert where(p, names)[1:] == [("v04", 0)] * (len(names) - 1)
        put(old(root, names[1]))
        old(root, names[0]).unlink()
        assert where(p, names[:2]) == [("v04", 0), ("pithos", 0)]


def test_a_leaf_created_after_the_listing_is_not_looked_into(root):
    """The shortcut the listing buys, and only once a dir has had more than LIST_AFTER names."""
    few = name("d00d01", 1)
    many = [name(f"f00d{d3:02x}", 1) for d3 in range(LIST_AFTER + 1)]
    late_few, late_many = name("d00d77", 2), name("f00d77", 2)
    for n in [few, *many, late_few, late_many]:
        put(new(root, n))
    with _probe(root) as p:
        assert where(p, [few, *many]) == [("v04", 0)] * (LIST_AFTER + 2)
        put(old(root, late_few))  # d0/0d: one name so far, never listed: probed directly
        put(old(root, late_many))  # f0/0d: listed, and leaf 77 was not there
        assert where(p, [late_few, late_many]) == [("pithos", 0), ("v04", 0)]
    with _probe(root) as p:  # a new run lists afresh
        assert where(p, [late_many] * (LIST_AFTER + 2)) == [("pithos", 0)] * (LIST_AFTER + 2)


def _special(p: Path, kind: str, target: Path) -> None:
    if kind == "null":
        p.parent.mkdir(parents=True, exist_ok=True)
        os.mknod(p, stat.S_IFCHR | 0o644, os.makedev(1, 3))  # /dev/null: reads as empty
    elif kind == "dir":
        p.mkdir(parents=True)
    else:
        _place(p, "device" if kind == "zero" else kind, target)  # fifo, socket, /dev/zero, symlink


@pytest.mark.parametrize("kind", ["fifo", "socket", "zero", "null", "symlink", "dir"])
@pytest.mark.parametrize("listed", [False, True], ids=["direct", "listed"])
def test_what_is_no_regular_file_at_the_old_path(root, kind, listed):
    if kind in ("zero", "null") and os.geteuid() != 0:
        pytest.skip("device nodes need root")
    hostile = name("0bad00", 1)
    others = [name(f"0bad{d3:02x}", 9) for d3 in range(1, LIST_AFTER + 2)]
    put(new(root, hostile))  # also at its v0.4 path: found there when the old path is no map
    for n in others:
        put(new(root, n))
    target = new(root, hostile)
    _special(old(root, hostile), kind, target)
    with _probe(root) as p:
        if listed:
            assert where(p, others) == [("v04", 0)] * len(others)  # 0b/ad is listed now
        got = where(p, [hostile])
    if kind in ("symlink", "dir"):
        assert got == [("v04", 0)]  # never followed, never a map: the next place is tried
    else:
        assert got == [("error", ERR_NOT_REGULAR)]  # unreadable, never read (a FIFO would block)


def test_a_symlinked_old_dir_is_followed_like_every_other_path(root, tmp_path):
    """d1/d2 a symlink to a dir: followed as the v0.4 lookups follow intermediate dirs, whether
    d1/d2 has had one name or many (a listing that cannot be made changes nothing)."""
    real = tmp_path / "elsewhere"
    names = [name(f"5eed{d3:02x}", 1) for d3 in range(LIST_AFTER + 3)]
    for n in names:
        put(real / os.fsdecode(layout.pithos_path(n.encode())).split("/", 2)[2])
    (root / "5e").mkdir()
    (root / "5e" / "ed").symlink_to(real)
    with _probe(root) as p:
        assert where(p, names) == [("pithos", 0)] * len(names)
        assert where(p, names) == [("pithos", 0)] * len(names)


def test_a_map_larger_than_one_read_and_an_empty_one(root):
    """A full first read leaves the size unknown (fstat); an empty file is still a regular file."""
    big, empty = name("1a2b3c", 1), name("1a2b3d", 2)
    entries = [bytes([i % 251 + 1]) * 32 for i in range(300)]  # 9600 bytes: a v0 map of 300 entries
    put(old(root, big), b"".join(entries))
    put(old(root, empty), b"")
    with _probe(root) as p:
        r = p.lookup([big, empty], [1000, 1000])
    assert (r[0][0], r[0][8], r[0][9]) == ("pithos", 9600, 300)
    assert (r[1][0], r[1][1], r[1][8], r[1][9]) == ("pithos", 0, 0, 0)


def test_the_path_a_lookup_reports_is_the_probe_step_that_found_the_map(root):
    """Old path, sha256 path, archip_NAME and a short name: the path is the file the probe read
    (layout.probe_paths, the twin of av_probe_rel), found by the same step, never chosen anew."""
    at_old, at_new, archip = name("c0ffee", 1), name("c0ffef", 2), name("c0fff0", 3)
    short = "volume-7"  # not 64 hex: no old path, the sha256 path only
    put(old(root, at_old))
    put(new(root, at_old))  # both: the old path wins, as filed serves it
    put(new(root, at_new))
    put(root / os.fsdecode(layout.v04_path(b"archip_" + archip.encode())))
    put(new(root, short))
    with _probe(root) as p:
        got = {n: (r[0], r[-1]) for n, r in zip([at_old, at_new, archip, short, name("c0fff1", 4)],
                                                   p.lookup([at_old, at_new, archip, short, name("c0fff1", 4)]))}
    assert got[at_old] == ("pithos", layout.probe_paths(at_old.encode())[0])
    assert got[at_new] == ("v04", layout.probe_paths(at_new.encode())[-1])
    assert got[archip] == ("archip", layout.probe_paths(b"archip_" + archip.encode())[-1])
    assert got[short] == ("v04", layout.probe_paths(short.encode())[0])
    assert got[name("c0fff1", 4)] == ("missing", None)
    for n, (_where, path) in got.items():
        if path is not None:
            assert (root / os.fsdecode(path)).is_file(), n


class _probe:
    """MapProbe as a context manager (closed on the way out)."""

    def __init__(self, root: Path, jobs: int = 1):
        self.p = MapProbe(str(root), jobs)

    def __enter__(self) -> MapProbe:
        return self.p

    def __exit__(self, *exc) -> None:
        self.p.close()
