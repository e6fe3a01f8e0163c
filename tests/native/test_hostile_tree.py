"""FIFOs, sockets, device nodes and symlinks wherever a store has files or dirs.

Each is placed as an object, as a map, as a v2 map-data object and as an entry at
depth 1, 2 and 3, and every reading command runs on the store as an operator runs
it (a subprocess, under a deadline): the findings are exact, nothing hangs, and
nothing that is not a regular file is ever read (a FIFO would block, /dev/zero
would never end).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from verify.core import formats as F
from verify.core.layout import v04_path

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 60  # each run takes well under a second; this only turns a hang into a failure
CONTENT = b"a block of data\n"
X = hashlib.sha256(CONTENT).hexdigest()  # a Pithos block: its name is its content's hash
Y = hashlib.sha256(b"not stored").hexdigest()
MAPDATA = F.mapdata_name("vol-hostile", 0)
KINDS = ["fifo", "socket", "device", "symlink"]


def _place(path: Path, kind: str, target: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        cwd = os.getcwd()
        os.chdir(path.parent)  # a socket path is limited to 108 bytes: bind it relative
        try:
            s = socket.socket(socket.AF_UNIX)
            s.bind(path.name)
            s.close()  # the socket file stays
        finally:
            os.chdir(cwd)
    elif kind == "device":
        os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 5))  # /dev/zero: a read never ends
    else:
        path.symlink_to(target)


def _put(root: Path, name: str, data: bytes) -> Path:
    p = root / os.fsdecode(v04_path(name.encode()))
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


@pytest.fixture(params=KINDS)
def hostile(request, tmp_path):
    """(store dir, kind, {(kind, store, name)} the scan must report)."""
    kind = request.param
    if kind == "device" and os.geteuid() != 0:
        pytest.skip("device nodes need root")
    maps, blocks = tmp_path / "maps", tmp_path / "blocks"
    real = _put(blocks, X, CONTENT)
    header, data = F.write_v2(F.BLOCK_SIZE_4M, [F.Entry(X)], name="vol-good")
    _put(maps, "vol-good", header)
    for md, chunk in data.items():
        _put(maps, md, chunk)
    header, _ = F.write_v2(F.BLOCK_SIZE_4M, [F.Entry(X)], name="vol-hostile")
    _put(maps, "vol-hostile", header)
    places = {
        ("maps", MAPDATA): maps / os.fsdecode(v04_path(MAPDATA.encode())),  # v2 map-data
        ("maps", "hostile-map"): maps / os.fsdecode(v04_path(b"hostile-map")),  # a map
        ("blocks", Y): blocks / os.fsdecode(v04_path(Y.encode())),  # an object
        ("maps", "hostile1"): maps / "hostile1",  # depth 1..3: where dirs belong
        ("maps", "hostile2"): maps / "ab" / "hostile2",
        ("blocks", "hostile3"): blocks / "ab" / "cd" / "hostile3",
    }
    for (store, name), path in places.items():
        # a symlink points at what the reader would love to follow: a file, or a dir
        _place(path, kind, real if "hostile" not in name or name == "hostile-map" else real.parent)
    expect = {("stray_entry", store, name) for store, name in places}
    expect.add(("map_data_missing", "maps", "vol-hostile"))
    return tmp_path, kind, expect


def _verify(*args: str) -> tuple[int, dict | None, str]:
    try:
        r = subprocess.run([sys.executable, "-m", "verify", *args], cwd=ROOT, capture_output=True, text=True,
                           timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"archverify {' '.join(args)} hung")
    assert "Traceback" not in r.stderr, r.stderr
    doc = json.loads(r.stdout) if r.stdout.startswith("{") else None
    return r.returncode, doc, r.stderr


def _kinds(doc: dict) -> set[tuple[str, str, str]]:
    return {(f["kind"], f["store"], f["name"]) for f in doc["findings"]}


@pytest.mark.parametrize("cmd", [["scan"], ["check"], ["check", "--verify-data"]])
def test_special_files_are_findings_never_read(hostile, cmd):
    store, kind, expect = hostile
    code, doc, err = _verify(*cmd, "--maps-dir", str(store / "maps"), "--blocks-dir", str(store / "blocks"),
                             "--format", "json", "-j", "2")
    assert code == 1, err
    assert _kinds(doc) == expect


@pytest.mark.parametrize("kind", KINDS)
def test_store_root_that_is_no_dir_is_one_error(tmp_path, kind):
    if kind == "device" and os.geteuid() != 0:
        pytest.skip("device nodes need root")
    (tmp_path / "blocks").mkdir()
    (tmp_path / "target").mkdir()
    _place(tmp_path / "maps", kind, tmp_path / "target")
    for cmd in ("scan", "check"):
        code, _, err = _verify(cmd, "--maps-dir", str(tmp_path / "maps"), "--blocks-dir", str(tmp_path / "blocks"))
        if kind == "symlink":  # the operator named it: a symlinked store dir is followed, as everywhere
            assert code == 0, err
        else:
            assert code == 2 and err.strip().startswith("archverify: error:"), err


def test_map_lookups_never_read_special_files(hostile):
    """pithos-check's prober (verify/native/_probe.pyx) on each place: unreadable, never a hang."""
    store, kind, _ = hostile
    code = f"""
import json, sys
from verify.backends.filed.maplookup import FiledMaps
from verify.backends.maplookup import LookupError_, NOT_REGULAR
names = ["hostile-map", {MAPDATA!r}, "vol-good"]
with FiledMaps(sys.argv[1], jobs=2) as m:
    found = m.lookup_maps(names)
    rows = m.check_rows(names * 200, [None] * 600)  # enough rows for the thread pool
out = {{n: (None if v is None else ("error", v.errno == NOT_REGULAR) if isinstance(v, LookupError_)
           else ("map", v.header.cls.value)) for n, v in found.items()}}
print(json.dumps({{"found": out, "rows": list(rows[:3])}}))
"""
    try:
        r = subprocess.run([sys.executable, "-c", code, str(store / "maps")], cwd=ROOT, capture_output=True,
                           text=True, timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        pytest.fail("map lookup hung")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    from verify.backends.maplookup import MISSING, UNREADABLE, VER_V2

    if kind == "symlink":  # never followed: as if absent
        assert got["found"]["hostile-map"] is None and got["found"][MAPDATA] is None
        assert got["rows"][:2] == [MISSING, MISSING]
    else:
        assert got["found"]["hostile-map"] == ["error", True]
        assert got["found"][MAPDATA] == ["error", True]
        assert got["rows"][:2] == [UNREADABLE, UNREADABLE]
    assert got["found"]["vol-good"] == ["map", "v2"]
    assert got["rows"][2] == VER_V2 << 4
