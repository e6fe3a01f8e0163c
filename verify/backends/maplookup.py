"""Looking maps up by name, "in some form", the way the mapper finds them.

A map NAME exists if the mapper can open it: a v0 map (Pithos opens its maps
with assume-v0, so any unsigned object that is not v1 counts), a v1 map under
``archip_NAME`` (the mapper's retry), or a v2 header. On filed, a 64-hex NAME is
first looked for at its old Pithos path, as filed itself does.

A backend's maps store offers :class:`MapLookup` (the store contract's
``maps_lookup``): ``lookup_maps`` and ``check_rows``, the same answer reduced to
one verdict byte per Pithos row. The filed lookup
(:mod:`verify.backends.filed.maplookup`) computes those bytes in C, which is what
makes millions of rows per minute possible; a lookup without such a path answers
with :func:`rows_by_lookup`. :func:`verdict` is the Python statement of the rules
that ``verify/native/_probe.pyx`` implements; tests hold them against each other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Protocol, Sequence

from ..core import formats as F

SNAPSHOT_PREFIX = "archip:"

# verdict byte: version << 4 | outcome (the same numbers as verify/native/_probe.pyx)
OK, MISSING, SIZE, CORRUPT, UNREADABLE, BADNAME = range(6)
VER_NONE, VER_V0, VER_V1, VER_V2, VER_CORRUPT = range(5)
VERSION_LABEL = {VER_NONE: "none", VER_V0: "v0", VER_V1: "v1", VER_V2: "v2", VER_CORRUPT: "corrupt"}
HEADER_CLASSES = [  # a prober's class code -> HeaderClass
    F.HeaderClass.NOT_MAP, F.HeaderClass.V0, F.HeaderClass.V1, F.HeaderClass.V2, F.HeaderClass.CORRUPT_SHORT,
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

    def check_rows(self, mapfiles: list[str], sizes: list[int | None]) -> bytes:
        """One :func:`verdict` byte per Pithos row (``mapfile``, ``size``): the hot path."""

    def list_maps(self) -> Iterator[tuple[str, str | None, F.HeaderInfo]]:
        """Every map header in the store: (object name, path or None, header)."""


def verdict(info: MapInfo | LookupError_ | None, size: int | None) -> int:
    """One Pithos row's outcome (the Python twin of ``verdict`` in verify/native/_probe.pyx)."""
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


def rows_by_lookup(lookup: MapLookup, mapfiles: list[str], sizes: list[int | None]) -> bytes:
    """``check_rows`` through ``lookup_maps``: for a lookup with no faster way to the verdicts."""
    names = [map_name(m) for m in mapfiles]
    found = lookup.lookup_maps(names, [v0_limit(s) for s in sizes])
    return bytes(verdict(found[n], s) for n, s in zip(names, sizes))
