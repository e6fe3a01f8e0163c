"""Looking maps up by name, "in some form", the way the mapper finds them.

A map NAME exists if the mapper can open it: a v0 map (Pithos opens its maps
with assume-v0, so any unsigned object that is not v1 counts), a v1 map under
``archip_NAME`` (the mapper's retry), or a v2 header. On filed, a 64-hex NAME is
first looked for at its old Pithos path, as filed itself does.

A backend offers :class:`MapLookup` (``lookup_maps``); the filed one also offers
``check_rows``, the same answer reduced to one verdict byte per Pithos row in C,
which is what makes millions of rows per minute possible. :func:`verdict` is the
Python statement of the rules that ``verify/_probe.pyx`` implements; tests hold
them against each other.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Iterator, Protocol, Sequence

from . import formats as F
from .errors import StoreError
from .layout import pithos_path, probe_paths, v04_path

SNAPSHOT_PREFIX = "archip:"

# verdict byte: version << 4 | outcome (the same numbers as verify/_probe.pyx)
OK, MISSING, SIZE, CORRUPT, UNREADABLE, BADNAME = range(6)
VER_NONE, VER_V0, VER_V1, VER_V2, VER_CORRUPT = range(5)
VERSION_LABEL = {VER_NONE: "none", VER_V0: "v0", VER_V1: "v1", VER_V2: "v2", VER_CORRUPT: "corrupt"}
_CLS = [F.HeaderClass.NOT_MAP, F.HeaderClass.V0, F.HeaderClass.V1, F.HeaderClass.V2, F.HeaderClass.CORRUPT_SHORT,
        F.HeaderClass.CORRUPT_VERSION, F.HeaderClass.CORRUPT_BLOCKSIZE, F.HeaderClass.CORRUPT_V1_SHORT]


def map_name(mapfile: str) -> str:
    """The maps-store name of a Pithos ``mapfile``: ``archip:NAME`` (a volume snapshot) is NAME."""
    return mapfile[len(SNAPSHOT_PREFIX):] if mapfile.startswith(SNAPSHOT_PREFIX) else mapfile


def v0_entries_needed(size: int) -> int:
    return F.nr_objs(size)


@dataclass(frozen=True, slots=True)
class MapInfo:
    """What was found for one map name."""

    name: str  # the name looked up
    object: str  # the object that answered: NAME or archip_NAME
    where: str  # filed: "v04", "pithos" (old path), "archip"; rados: "pool"
    header: F.HeaderInfo  # v0 when unsigned and not v1 (assume-v0, as Pithos asks)
    object_size: int
    v0_entries: int | None = None  # leading non-zero entries, counted up to the limit asked for
    v0_first_zero: bool = False  # entry 0 is the zero block (how Pithos maps an empty file)
    path: str | None = None  # filed: relative to the store root


NOT_REGULAR = -1  # LookupError_.errno of a map path holding a FIFO, socket or device (never read)


@dataclass(frozen=True, slots=True)
class LookupError_:
    """A name whose lookup could not be completed (errno), or that no path can be built from."""

    name: str
    errno: int  # 0: bad name; NOT_REGULAR: not a regular file
    path: str | None = None


def errno_text(err: int) -> str:
    """Why a lookup failed, in words."""
    if err == NOT_REGULAR:
        return "not a regular file (never read)"
    return os.strerror(err) if err else "read failed"


class MapLookup(Protocol):
    def lookup_maps(self, names: Sequence[str], v0_limits: Sequence[int | None] | None = None
                    ) -> dict[str, MapInfo | LookupError_ | None]:
        """Per name: what the mapper would open, None when it exists in no form.

        ``v0_limits[i]``: count a v0 map's entries up to this many (None: do not count).
        """

    def list_maps(self) -> Iterator[tuple[str, str | None, F.HeaderInfo]]:
        """Every map header in the store: (object name, path or None, header)."""


def verdict(info: MapInfo | LookupError_ | None, size: int | None) -> int:
    """One Pithos row's outcome (the Python twin of ``verdict`` in verify/_probe.pyx)."""
    if isinstance(info, LookupError_):
        return BADNAME if info.errno == 0 else UNREADABLE
    if info is None:
        return MISSING
    cls = info.header.cls
    if cls is F.HeaderClass.V0:
        if size is None:
            return VER_V0 << 4
        need = v0_entries_needed(size)
        ok = info.v0_entries == need or (need == 0 and info.v0_entries == 1 and info.v0_first_zero)
        return VER_V0 << 4 | (OK if ok else SIZE)
    if cls in (F.HeaderClass.V1, F.HeaderClass.V2):
        ver = VER_V1 if cls is F.HeaderClass.V1 else VER_V2
        return ver << 4 | (OK if size is None or info.header.size == size else SIZE)
    return VER_CORRUPT << 4 | CORRUPT


def v0_limit(size: int | None) -> int | None:
    """How far to count a v0 map's entries to tell its count from ceil(size / 4 MiB)."""
    return None if size is None else max(v0_entries_needed(size) + 1, 2)


# ---- filed ------------------------------------------------------------------------


def _load_probe():
    try:
        from . import _probe
    except ImportError as e:  # pragma: no cover - a broken install, not a user error
        raise StoreError(f"the compiled map prober is missing ({e}); reinstall archverify (make build)") from None
    return _probe


class FiledMaps:
    """Map lookups in a filed maps store, by probing paths (no walk)."""

    def __init__(self, maps_dir: str, jobs: int = 1):
        self.root = os.fspath(maps_dir)
        try:
            self._probe = _load_probe().MapProbe(self.root, jobs)
        except OSError as e:
            raise StoreError(f"{self.root}: cannot open maps store dir: {e.strerror}") from None

    def close(self) -> None:
        self._probe.close()

    def __enter__(self) -> FiledMaps:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def check_rows(self, mapfiles: list[str], sizes: list[int | None]) -> bytes:
        """The hot path: one verdict byte per row, computed without the GIL."""
        return self._probe.check(mapfiles, sizes)

    def lookup_maps(self, names, v0_limits=None):
        names = list(names)
        raw = self._probe.lookup(names, None if v0_limits is None else list(v0_limits))
        out: dict[str, MapInfo | LookupError_ | None] = {}
        for name, (where, err, cls, size, bs, flags, epoch, version, fsize, v0n, v0z) in zip(names, raw):
            if where == "missing":
                out[name] = None
                continue
            if where == "badname":
                out[name] = LookupError_(name, 0)
                continue
            if where == "error":
                out[name] = LookupError_(name, err, self._rel(name))
                continue
            obj = "archip_" + name if where == "archip" else name
            raw_obj = obj.encode()
            path = (pithos_path(raw_obj) if where == "pithos" else v04_path(raw_obj)).decode()
            hdr = F.HeaderInfo(_CLS[cls], size, bs, flags, epoch, version)
            out[name] = MapInfo(name, obj, where, hdr, fsize, v0n if v0n >= 0 else None, v0z, path)
        return out

    def _rel(self, name: str) -> str | None:
        raw = name.encode()
        if not raw or b"/" in raw or b"\0" in raw:
            return None
        return probe_paths(raw)[0].decode()  # the first place filed looks

    def list_maps(self):
        """Walks ``d1/d2/d3/NAME`` with scandir and reads each header candidate (slow: --orphans only)."""
        root = self.root
        for d1 in _subdirs(root):
            for d2 in _subdirs(d1.path):
                for d3 in _subdirs(d2.path):
                    with os.scandir(d3.path) as it:
                        for e in it:
                            if not e.is_file(follow_symlinks=False):
                                continue
                            name = e.name
                            if _not_header(name):
                                continue
                            try:
                                head, fsize = _read_head(e.path)
                            except OSError:
                                continue  # 'scan' reports unreadable files; the orphan list is informational
                            if head is None:
                                continue  # not a regular file: 'scan' reports it (stray_entry)
                            hdr = F.classify(head, fsize, os.fsencode(name))
                            if hdr.cls is F.HeaderClass.NOT_MAP:
                                continue
                            yield name, f"{d1.name}/{d2.name}/{d3.name}/{name}", hdr


def _read_head(path: str) -> tuple[bytes | None, int]:
    """The first 64 bytes and the size of a regular file; (None, 0) for anything else (never read)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, 0
        return os.pread(fd, 64, 0), st.st_size
    finally:
        os.close(fd)


def _subdirs(path: str):
    try:
        with os.scandir(path) as it:
            entries = [e for e in it if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    return sorted(entries, key=lambda e: e.name)


def _not_header(name: str) -> bool:
    """Map-data, locks, precalculated hashes and temp files are never map headers."""
    return "_lock" in name or "_hash" in name or F.is_mapdata_name(os.fsencode(name))
