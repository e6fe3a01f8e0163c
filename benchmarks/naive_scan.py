"""The naive pure-Python scan: the same rules as ``verify/_scan.pyx``, written the
obvious way (os.walk, one lstat per entry, open+read per map header, hashlib per
name, full paths from the store root for every probe).

It is kept for two reasons: it is the baseline the benchmark's ratios are measured
against, and it is an independent oracle of the scanner's rules
(tests/ops/test_reference_agreement.py holds the two against each other). Precedence,
probes and stray rules follow ``check_file``/``check_map``/``walk`` of the scanner;
the byte-level verdict of a header is :func:`verify.core.formats.classify`, the Python
twin of ``_rules.h``.

    python benchmarks/naive_scan.py --maps-dir M [--blocks-dir B] [--pithos-migrate off]
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import re
import stat
import sys
import time
from collections import Counter

from verify.core import formats as F
from verify.core import layout
from verify.core.findings import Finding, escape_name
from verify.core.summary import Lock, ShardResult, Summary

HEADER_READ = 64  # what the scanner reads of a header candidate (AV_HEADER_READ)
GONE = (errno.ENOENT, errno.ENOTDIR)
INVALID_TAIL = re.compile(rb".*_[0-9a-f]{16}")  # re.match, as vlmc: "." stops at a newline


def valid_volume_name(name: bytes) -> bool:
    """vlmc's rule on raw bytes: not archip_*, not *_lock, no '_' followed by 16 hex digits."""
    return not (name.startswith(b"archip_") or name.endswith(b"_lock") or INVALID_TAIL.match(name))


def name_class(name: bytes) -> str:
    """av_name_class: lock, hash, mapdata, temp or plain."""
    if name.endswith(b"_lock"):
        return "lock"
    if name.endswith(b"_hash"):
        return "hash"
    if F.is_mapdata_name(name):
        return "mapdata"
    if b"_lock" in name or b"_hash" in name:
        return "temp"
    return "plain"


class StoreScan:
    """One store walked with os.walk; findings, locks and counters as the scanner makes them."""

    def __init__(self, root: str, store: str, pm_off: bool):
        self.root = os.fsencode(root)
        self.store = store
        self.maps = store == "maps"
        self.pm_off = pm_off
        self.findings: list[Finding] = []
        self.locks: list[Lock] = []
        self.counts: Counter = Counter()

    # ---- recording ----
    def emit(self, kind: str, name: bytes, rel: bytes, detail: str = "") -> None:
        self.findings.append(Finding(kind, self.store, escape_name(name), escape_name(rel), detail))

    def unreadable(self, name: bytes, rel: bytes, e: OSError, what: str) -> None:
        self.emit("unreadable", name, rel, f"{what}: {os.strerror(e.errno or 0)}")

    def full(self, rel: bytes) -> bytes:
        return os.path.join(self.root, rel)

    # ---- the walk ----
    def run(self) -> None:
        os.stat(self.root)  # a missing store root is an error, as in the scanner
        for dirpath, dirnames, filenames in os.walk(self.root, onerror=self.walk_error):
            rel = os.path.relpath(dirpath, self.root)
            parts = [] if rel == b"." else rel.split(b"/")
            depth = len(parts) + 1  # depth of the entries listed here
            if parts:
                self.counts["dirs"] += 1
            keep = []
            for d in dirnames:
                st = self.lstat_entry(dirpath, d)
                if st is None or (not parts and layout.skipped_at_root(d, stat.S_ISDIR(st.st_mode), False)):
                    continue
                if stat.S_ISDIR(st.st_mode) and depth < 4:
                    keep.append(d)
                else:
                    self.entry(parts, d, st, depth)
            dirnames[:] = keep
            for f in filenames:
                st = self.lstat_entry(dirpath, f)
                if st is not None and not (not parts and layout.skipped_at_root(f, False, stat.S_ISREG(st.st_mode))):
                    self.entry(parts, f, st, depth)

    def walk_error(self, e: OSError) -> None:
        if e.errno == errno.ENOENT:
            return
        p = os.fsencode(e.filename)
        if p == self.root:
            raise e
        self.unreadable(os.path.basename(p), os.path.relpath(p, self.root), e, "opendir")

    def lstat_entry(self, dirpath: bytes, name: bytes):
        try:
            return os.lstat(os.path.join(dirpath, name))
        except FileNotFoundError:
            return None  # vanished during the scan: not an error

    def entry(self, parts: list[bytes], name: bytes, st: os.stat_result, depth: int) -> None:
        rel = b"/".join([*parts, name])
        if depth == 4 and stat.S_ISREG(st.st_mode):
            self.check_file(parts, name, rel, st)
            return
        if stat.S_ISREG(st.st_mode) or depth == 4:
            self.counts["files"] += 1
        if stat.S_ISLNK(st.st_mode):
            detail = "symlink (never followed)"
        elif stat.S_ISDIR(st.st_mode):
            detail = "directory at object depth"
        elif stat.S_ISREG(st.st_mode):
            detail = f"file at depth {depth} (objects live at depth 4)"
        else:
            detail = "special file"
        self.emit("stray_entry", name, rel, detail)

    # ---- one regular file at object depth ----
    def check_file(self, parts: list[bytes], name: bytes, rel: bytes, here: os.stat_result) -> None:
        self.counts["files"] += 1
        if len(name) < layout.MIN_NAME_LEN:
            self.emit("stray_entry", name, rel, "name shorter than 6 bytes")
            return
        try:
            name.decode("utf-8")
        except UnicodeDecodeError:
            self.emit("stray_entry", name, rel, "name is not valid UTF-8")
            return
        h = hashlib.sha256(name).hexdigest().encode()
        dirs = b"/".join(parts)
        v04 = h[0:2] + b"/" + h[2:4] + b"/" + h[4:6]
        at_v04 = dirs == v04
        if layout.is_hex64(name):
            at_old = dirs == name[0:2] + b"/" + name[2:4] + b"/" + name[4:6]
            if at_old and at_v04:
                if not self.pm_off:
                    self.emit("object_at_risk", name, rel, "old and v0.4 paths coincide")
            elif at_old:
                self.counts["probes"] += 1
                try:
                    there = os.lstat(self.full(v04 + b"/" + name))
                except OSError as e:
                    if e.errno in GONE:
                        self.emit("object_unmigrated", name, rel, "v0.4 path absent")
                    else:
                        self.unreadable(name, rel, e, "stat of v0.4 path")
                else:
                    if (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino):
                        self.emit("object_leftover", name, rel, "same inode at the v0.4 path")
                    else:
                        self.emit("object_conflict", name, rel, "different file at the v0.4 path")
            elif not at_v04:
                self.emit("object_misplaced", name, rel, f"v0.4 path is {v04.decode()}/")
        elif not at_v04:
            self.emit("object_misplaced", name, rel, f"v0.4 path is {v04.decode()}/")
        nc = name_class(name)
        if nc == "lock":
            self.read_lock(name, rel)
        elif nc == "hash":
            self.counts["hash_files"] += 1
        elif nc == "temp":
            self.counts["temp_files"] += 1
        elif self.maps:
            if nc == "mapdata":
                self.counts["mapdata"] += 1
            else:
                self.check_map(name, rel)

    def read_lock(self, name: bytes, rel: bytes) -> None:
        try:
            with open(self.full(rel), "rb") as fh:
                owner = fh.read(255)
        except OSError:
            owner = b""
        self.counts["locks"] += 1
        owner = owner.split(b"\0")[0]
        if owner:  # an empty lock file is only counted, as the scanner does
            self.locks.append(Lock(self.store, escape_name(name), escape_name(owner)))

    # ---- one header candidate in the maps store ----
    def check_map(self, name: bytes, rel: bytes) -> None:
        try:
            with open(self.full(rel), "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                head = fh.read(HEADER_READ)
        except FileNotFoundError:
            return
        except OSError as e:
            self.unreadable(name, rel, e, "open")
            return
        h = F.classify(head, size, name)
        if h.cls.corrupt:
            self.counts["corrupt"] += 1
            self.emit("map_corrupt", name, rel, h.cls.value)
        elif h.cls in (F.HeaderClass.V1, F.HeaderClass.V2):
            self.counts["v2" if h.cls is F.HeaderClass.V2 else "v1"] += 1
            incomplete = False
            if len(name) > 7 and name.startswith(b"archip_"):
                try:
                    incomplete = self.has_v2(name[7:])
                except OSError as e:
                    self.unreadable(name, rel, e, "probe")
                    return
            if incomplete:
                self.emit("map_upgrade_incomplete", name, rel, f"upgraded map {escape_name(name[7:])} exists")
            elif h.cls is F.HeaderClass.V1:
                self.emit("map_v1", name, rel, f"size {h.size}")
            elif not valid_volume_name(name):
                self.emit("map_invalid_name", name, rel, f"v2 map, flags {h.flags}, epoch {h.epoch}")
            else:
                self.check_mapdata(name, rel, h)
        elif h.cls is F.HeaderClass.V0:
            self.counts["v0"] += 1
            self.emit("map_v0", name, rel, f"{size} bytes")
        else:  # no signature under a map's name: the mapper finds none either
            self.counts["other"] += 1
            self.emit("not_a_map", name, rel, f"{size} bytes, starts {head[:16].hex() or '(empty)'}")

    def has_v2(self, name: bytes) -> bool:
        """Is there a v2 header called ``name`` at the old Pithos path or the v0.4 path?"""
        if len(name) < layout.MIN_NAME_LEN:
            return False
        self.counts["probes"] += 1
        fd = -1
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        if layout.is_hex64(name):
            try:
                fd = os.open(self.full(layout.pithos_path(name)), flags)
            except OSError:
                fd = -1
        if fd < 0:
            try:
                fd = os.open(self.full(layout.v04_path(name)), flags)
            except OSError as e:
                if e.errno in (*GONE, errno.ELOOP):
                    return False
                raise
        try:
            head = os.pread(fd, 8, 0)
        except OSError:
            return False
        finally:
            os.close(fd)
        return len(head) == 8 and head[:8] == b"AMF.\x00\x00\x00\x02"

    def check_mapdata(self, name: bytes, rel: bytes, h: F.HeaderInfo) -> None:
        nb = F.mapdata_blocks(h.size, h.blocksize)
        for blk in range(nb):
            md = name + b"_%016x" % blk
            self.counts["probes"] += 1
            try:
                st = os.lstat(self.full(layout.v04_path(md)))
            except OSError as e:
                if e.errno not in GONE:
                    self.unreadable(name, rel, e, f"stat of map-data {escape_name(md)}")
                    return
            else:
                if stat.S_ISREG(st.st_mode):
                    continue
            self.emit("map_data_missing", name, rel, f"map-data {escape_name(md)} missing (block {blk} of {nb})")
            return


def scan(maps_dir: str, blocks_dir: str | None = None, pithos_migrate_off: dict | None = None) -> Summary:
    """Both stores, one after the other, merged into the same Summary the scanner's results make."""
    off = pithos_migrate_off or {}
    t0 = time.monotonic()
    res = ShardResult()
    for store, root in (("maps", maps_dir), ("blocks", blocks_dir)):
        if root is None:
            continue
        s = StoreScan(root, store, bool(off.get(store)))
        s.run()
        res.counters.update({f"{store}.{k}": v for k, v in s.counts.items() if v})
        res.findings.extend(s.findings)
        res.locks.extend(s.locks)
    return Summary.from_result(res, time.monotonic() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--maps-dir", required=True)
    ap.add_argument("--blocks-dir")
    ap.add_argument("--pithos-migrate", choices=("auto", "on", "off"), default="auto")
    ap.add_argument("--json", action="store_true", help="print {'summary': ...} as archverify's JSON report has it")
    ap.add_argument("--output", help="write to this file instead of stdout")
    a = ap.parse_args(argv)
    off = {"maps": True, "blocks": True} if a.pithos_migrate == "off" else {}
    summary = scan(a.maps_dir, a.blocks_dir, off)
    d = summary.as_dict()
    if a.json:
        text = json.dumps({"tool": "naive_scan", "summary": d}, indent=1) + "\n"
    else:
        text = (f"{d['files_scanned']} files, {d['findings_total']} findings {d['findings']}, "
                f"{d['elapsed_s']} s, {d['files_per_s']} files/s\n")
    if a.output:
        with open(a.output, "w") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
