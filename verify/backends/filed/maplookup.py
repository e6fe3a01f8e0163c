"""Map lookups in a filed maps store, by probing the paths filed would open (no walk).

The C prober (``verify/native/_probe.pyx``) answers a whole batch of Pithos rows without
the GIL; :mod:`verify.backends.maplookup` holds the protocol and the verdict rules.
"""

from __future__ import annotations

import os
import stat

from verify.core import formats as F
from verify.core.errors import StoreError
from verify.core.layout import probe_paths
from ..maplookup import HEADER_CLASSES, LookupError_, MapInfo


def _load_probe():
    try:
        from verify.native import _probe
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
        for name, (where, err, cls, size, bs, flags, epoch, version, fsize, v0n, v0z, rel) in zip(names, raw):
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
            path = rel.decode()  # where the probe found it: av_probe_rel's path of that step
            hdr = F.HeaderInfo(HEADER_CLASSES[cls], size, bs, flags, epoch, version)
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
