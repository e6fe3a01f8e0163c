"""One Finding type and the one table of finding kinds.

The kind strings are a stable interface (JSON, JSONL, ``--logdir`` file names,
Prometheus labels); the advice text may change. Nothing else in archverify decides
a kind's severity or what it does to the exit code: grep a kind here to find
where its meaning lives, and grep ``"KIND"`` to find where it is decided.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum


class Severity(IntEnum):
    INFO = 0  # listed and counted, never changes the exit code
    WARNING = 1  # not migrated yet; finalize fixes it
    ERROR = 2  # data at risk or unusable until someone acts
    UNREADABLE = 3  # part of the store could not be read: exit code 2


@dataclass(frozen=True)
class Kind:
    name: str
    severity: Severity
    meaning: str
    advice: str
    fix: str | None = None  # archverify command that fixes it safely, if any


_K = Kind
KINDS: dict[str, Kind] = {
    k.name: k
    for k in [
        # -- maps (one per map object, first applicable wins, in this order) --
        _K("map_corrupt", Severity.ERROR,
           "map header or entries cannot be parsed (unknown version, bad blocksize, truncated)",
           "restore the map from backup; the volume or file cannot be opened as it is"),
        _K("map_upgrade_incomplete", Severity.ERROR,
           "archip_NAME still exists next to an upgraded v2 map NAME: an interrupted v1 upgrade",
           "run 'archverify upgrade-maps' to complete the purge of the old map",
           "upgrade-maps"),
        _K("map_invalid_name", Severity.WARNING,
           "a v2 map under a name v0.4 cannot use (archip_ prefix, _lock suffix, _<16 hex>)",
           "rename is impossible in place: recreate the volume under a valid name, or keep it as is"),
        _K("map_data_missing", Severity.ERROR,
           "a v2 map lacks one of its NAME_<16 hex> map-data objects: it will not load",
           "restore the map-data object from backup"),
        _K("map_v1", Severity.WARNING,
           "an Archipelago v0.3 map (v1 header) that was never upgraded",
           "run 'archverify upgrade-maps' (or open and close the volume with vlmc)",
           "upgrade-maps"),
        _K("map_v0", Severity.WARNING,
           "a Pithos map (v0, no header) that was never upgraded",
           "run 'archverify upgrade-maps --pithos-db URL' so its size is known",
           "upgrade-maps"),
        _K("not_a_map", Severity.ERROR,
           "an object in the maps store under a map's name with no map signature (empty, garbage; size "
           "and first bytes in the detail): the v0.4 mapper cannot open it (\"No signature found\")",
           "a volume of that name will not open: restore its map from backup; if no volume has that name, "
           "move the object out of the maps store"),
        # -- placement of files (filed) --
        _K("object_unmigrated", Severity.WARNING,
           "a 64-hex object only at its old Pithos path",
           "run 'archverify migrate-objects' (or let filed with pithos_migrate on touch it)",
           "migrate-objects"),
        _K("object_leftover", Severity.WARNING,
           "a 64-hex object at both paths, same inode: the old link was never removed",
           "run 'archverify migrate-objects' to remove the old link",
           "migrate-objects"),
        _K("object_conflict", Severity.ERROR,
           "a 64-hex object at both paths with different inodes: filed fails with EIO on it",
           "compare both files; 'archverify migrate-objects --resolve-identical' if they are equal"),
        _K("object_misplaced", Severity.ERROR,
           "a file at no path v0.4 looks at (e.g. a v0.3 layout path): unreachable",
           "run 'archverify migrate-objects' to move it to its v0.4 path",
           "migrate-objects"),
        _K("object_at_risk", Severity.ERROR,
           "old and new paths coincide: filed with pithos_migrate on unlinks the only copy",
           "keep pithos_migrate off, or let 'archverify finalize' pin it before enabling it"),
        _K("stray_entry", Severity.WARNING,
           "a symlink, directory or file at the wrong depth, a name under 6 bytes (filed) "
           "or not UTF-8 (filed and RADOS)",
           "inspect and remove it by hand; Archipelago never uses it"),
        # -- references (check) --
        _K("object_missing", Severity.ERROR,
           "a map entry names an object that exists nowhere v0.4 would look",
           "restore the object from backup; the referencing maps have a hole"),
        _K("object_orphan", Severity.INFO,
           "an object in the blocks store that no map references",
           "nothing to do; reclaim space by hand only after a full check on an idle cluster"),
        _K("object_content_mismatch", Severity.ERROR,
           "a Pithos block whose content no longer hashes to its name (bit rot, truncation)",
           "restore the block from backup or another replica"),
        # -- Pithos database --
        _K("pithos_map_missing", Severity.ERROR,
           "a map the Pithos database needs exists in no form in the maps store",
           "restore the map from backup; that file version is lost otherwise"),
        _K("pithos_size_mismatch", Severity.ERROR,
           "the map's size disagrees with the size the Pithos database records",
           "check the file version in Pithos; do not upgrade this map until resolved"),
        _K("pithos_map_orphan", Severity.INFO,
           "a map in the maps store that no Pithos version names (shown with --orphans)",
           "nothing to do; it may be an Archipelago volume"),
        # -- the scan itself --
        _K("unreadable", Severity.UNREADABLE,
           "a path or object could not be read (the errno is in the detail)",
           "fix permissions or the mount and run the scan again"),
    ]
}

# What the C records of the hot loops say, indexed by their kind code (K_* in _rules.pxd):
# finding kinds, plus "lock" (a lock file and its owner) and "ref" (an entry naming a missing object).
RECORD_KINDS = ("lock", "stray_entry", "unreadable", "object_unmigrated", "object_leftover", "object_conflict",
                "object_misplaced", "object_at_risk", "map_corrupt", "map_upgrade_incomplete", "map_invalid_name",
                "map_data_missing", "map_v1", "map_v0", "object_orphan", "ref", "object_content_mismatch",
                "not_a_map")

MAP_KINDS = ("map_corrupt", "map_upgrade_incomplete", "map_invalid_name", "map_data_missing", "map_v1", "map_v0",
             "not_a_map")


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """One thing found about one object. ``name`` is escaped (:func:`escape_name`)."""

    kind: str
    store: str  # "maps" or "blocks"
    name: str
    path: str | None = None  # relative to the store root (filed); None on RADOS
    detail: str = ""
    # a map finding's map version (0, 1, 2) where the loop that made it read the header; not
    # part of the report, it is for the code that settles two stages' findings (check.settle_maps)
    version: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}")

    @property
    def info(self) -> Kind:
        return KINDS[self.kind]

    def as_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "store": self.store, "path": self.path, "detail": self.detail}

    @classmethod
    def from_dict(cls, d: dict) -> Finding:
        return cls(d["kind"], d["store"], d["name"], d.get("path"), d.get("detail", ""))


# What must not reach a terminal or a log line raw: C0 and C1 controls, DEL, line and
# paragraph separators, the bidi overrides (they reorder what a person reads) and lone
# surrogates (bytes that were not UTF-8, which no terminal or log file can take).
_CONTROL = "\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_CONTROL_RE = re.compile(f"[{_CONTROL}]")
_NAME_RE = re.compile(f"[\\\\{_CONTROL}]")
_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def _escape_char(m: re.Match) -> str:
    c = m.group()
    if c in _SHORT:
        return _SHORT[c]
    o = ord(c)
    if 0xDC80 <= o <= 0xDCFF:  # a byte that is not UTF-8 (surrogateescape)
        return f"\\x{o - 0xDC00:02x}"
    return f"\\x{o:02x}" if o <= 0xFF else f"\\u{o:04x}"


def printable(text: str) -> str:
    """``text`` with every control character written as ``\\n``, ``\\t``, ``\\r`` or ``\\xNN``.

    For everything a line-oriented output prints (human report, ``--logdir``, ``--quiet``,
    warnings). Backslashes are left alone: names, the only text from a store, are already
    escaped by :func:`escape_name`, which has no control character left for this to change.
    """
    return text if text.isprintable() else _CONTROL_RE.sub(_escape_char, text)


def escape_name(raw: bytes | str) -> str:
    """A name from a store or a database, as every output shows it: the one escaping rule.

    Bytes that are not UTF-8 become ``\\xNN``, control characters ``\\n``, ``\\t``,
    ``\\r`` or ``\\xNN``, and a backslash ``\\\\``, so the text is printable and maps back
    to one name. Applied once, where a finding is made; JSON carries the same string.
    """
    s = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
    if s.isprintable() and "\\" not in s:
        return s
    return _NAME_RE.sub(_escape_char, s)


# Bytes that escape_name leaves as they are, whatever surrounds them: printable ASCII but "\\".
_PLAIN_ASCII = bytes(range(0x20, 0x7F)).replace(b"\\", b"")


def escape_names(raws: list[bytes]) -> list[str]:
    """``[escape_name(r) for r in raws]``, for the many names of one shard's records at once.

    Names in a store are nearly always plain printable ASCII: joined by newlines, the
    whole batch is checked in one pass (nothing but the newlines is left once the plain
    bytes are deleted), then decoded and split in one; otherwise each name goes through
    :func:`escape_name`.
    """
    blob = b"\n".join(raws)
    if not raws or blob.translate(None, _PLAIN_ASCII) != b"\n" * (len(raws) - 1):
        return [escape_name(r) for r in raws]
    return blob.decode("ascii").split("\n")
