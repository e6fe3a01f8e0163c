"""Reading ``/etc/archipelago/archipelago.conf`` exactly as Archipelago reads it.

``[blockerb]`` holds data objects ("blocks"), ``[blockerm]`` maps ("maps"). Each is a
``file_blocker`` (``archip_dir``, ``lock_dir``, ``pithos_migrate``, ``direct``) or a
``rados_blocker`` (``pool``, ``cephx_id``). This module owns every key archverify reads,
with Archipelago's shipped defaults; no other module reads the file.

Archipelago (python/archipelago/common.py) reads the file with Python 2's
``ConfigParser``, byte for byte, and so does :func:`verify.config.ini.parse`: no ``#`` inline comments
(``archip_dir = /srv/x # maps`` is the dir ``/srv/x # maps``), ``;`` after a space
starts one, an indented line continues the value above it (even an indented
``# comment``), a repeated key or section is merged with the last value winning,
keys are case-insensitive, and bytes that are not UTF-8 are just bytes. Every
oddity becomes one :class:`Problem` with a stable ``kind``; :func:`read` returns
them all (``archverify config`` lists them) and :func:`load` refuses the file on
the first error, so every command gives the same verdict on the same file.
docs/config.md holds the table of verdicts.

Writing the file is :mod:`verify.config.confedit`'s job; this module only reads.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import ConfigError
from .ini import Entry, Ini, parse, show

DEFAULT_PATH = Path("/etc/archipelago/archipelago.conf")
MAX_BYTES = 1 << 20  # the shipped file is 5 KiB; anything near this is not an archipelago.conf
SECTIONS = {"blocks": "blockerb", "maps": "blockerm"}

# Archipelago's defaults when a key is absent (Filed.__init__ in common.py)
DIRECT_DEFAULT = True  # the shipped file also says direct = True
PITHOS_MIGRATE_DEFAULT = False

# Python 2 ConfigParser.getboolean: these words, any case; nothing else (not even "")
BOOLEANS = {"1": True, "yes": True, "true": True, "on": True, "0": False, "no": False, "false": False, "off": False}
HYPHEN_KEY = "pithos-migrate"  # the shipped comment's spelling; Archipelago ignores it

# the keys archverify reads in a store section, by blocker type; a problem in one of them is an error
READ_KEYS = {
    "file_blocker": ("type", "archip_dir", "lock_dir", "pithos_migrate", "direct"),
    "rados_blocker": ("type", "pool", "cephx_id"),
}

# every Problem.kind, in the order of docs/config.md's table
KINDS = (
    "unreadable", "not_regular", "too_large", "not_ini", "missing_section", "unknown_type", "missing_key",
    "not_boolean", "inline_comment", "continuation", "duplicate_key", "duplicate_section", "not_utf8",
    "control_char", "interpolation", "stores_overlap", "dir_missing", "pool_missing", "pool_unchecked",
    "hyphen_key", "role_missing", "no_peers", "not_editable",
)

_INLINE_HASH = re.compile(rb"(?:^|\s)#")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


# ---- verdicts ----------------------------------------------------------------------------


@dataclass
class Problem:
    level: str  # "error": Archipelago or archverify cannot work with it, or reads what was not meant
    kind: str  # stable name (docs/config.md), for scripts and tests
    message: str
    where: str  # PATH or PATH:LINE

    def __str__(self) -> str:
        return f"{self.where}: {self.message} [{self.kind}]"


class UnreadableConfig(ConfigError):
    """The file cannot be read at all (missing, not a regular file, too large): one problem, exit 2."""

    def __init__(self, where: str, kind: str, message: str):
        self.problem = Problem("error", kind, message, where)
        super().__init__(str(self.problem))


# ---- the file ----------------------------------------------------------------------------


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes, if it is a regular file of at most MAX_BYTES; else one-line ConfigError.

    Symlinks are followed (a linked /etc/archipelago/archipelago.conf is common); the
    opened fd is what is checked, so a FIFO cannot hang the open (O_NONBLOCK) nor the
    read, and /dev/zero or a huge file is never read past the cap.
    """
    p = os.fspath(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UnreadableConfig(p, "unreadable", "no such file") from None
    except OSError as e:
        raise UnreadableConfig(p, "unreadable", f"cannot open: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableConfig(p, "not_regular", f"{_file_type(st.st_mode)}, not a regular file; "
                                   "give the archipelago.conf file itself")
        if st.st_size > MAX_BYTES:
            raise UnreadableConfig(p, "too_large", f"{st.st_size} bytes, more than {MAX_BYTES}: not an archipelago.conf")
        chunks, n = [], 0
        while n <= MAX_BYTES:
            b = os.read(fd, MAX_BYTES + 1 - n)
            if not b:
                break
            chunks.append(b)
            n += len(b)
        if n > MAX_BYTES:
            raise UnreadableConfig(p, "too_large", f"more than {MAX_BYTES} bytes: not an archipelago.conf")
        return b"".join(chunks)
    except OSError as e:
        raise UnreadableConfig(p, "unreadable", f"cannot read: {e.strerror}") from None
    finally:
        os.close(fd)


def _file_type(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


# ---- what archverify takes from it -------------------------------------------------------


@dataclass
class StoreConfig:
    role: str  # "maps" or "blocks"
    section: str
    type: str  # "filed" or "rados"
    archip_dir: str | None = None
    lock_dir: str | None = None
    pool: str | None = None
    cephx_id: str | None = None
    pithos_migrate: bool = PITHOS_MIGRATE_DEFAULT  # effective value, as Archipelago reads it
    direct: bool = DIRECT_DEFAULT  # filed's direct I/O: what it writes is padded to 512 bytes
    hyphen_key: bool = False  # "pithos-migrate" present: ignored by Archipelago
    hyphen_value: bool | None = None  # what the misspelt key says the operator meant

    @property
    def known_off(self) -> bool:
        """pithos_migrate is off and nobody meant it on: coinciding paths are safe here.

        A misspelt ``pithos-migrate = True`` is off today, but the operator meant it on and
        will fix the spelling: its objects at risk are reported all the same.
        """
        return not self.pithos_migrate and self.hyphen_value is not True

    @property
    def location(self) -> tuple[str, str]:
        """The key of its section that says where the store is, and its value: ``archip_dir`` (made
        absolute) or ``pool``. Nodes sharing the stores have the same locations."""
        if self.type == "rados":
            return "pool", self.pool or ""
        return "archip_dir", os.path.abspath(self.archip_dir or "")

    @property
    def place(self) -> dict:
        """Where the store is, as a report's ``stores`` section names it: type, and dir or pool."""
        key, value = self.location
        return {"type": self.type, "pool" if key == "pool" else "dir": value}


@dataclass
class ArchipConfig:
    path: Path
    stores: dict[str, StoreConfig]
    roles: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # str(Problem) of every warning
    problems: list[Problem] = field(default_factory=list)


def stores_overlap(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when store dir ``a`` is ``b`` or one lies inside the other (then files are counted twice).

    Compared after resolving symlinks, and by inode for the parts that exist, so a
    bind mount or another name of the same dir is caught too.
    """
    ra, rb = os.path.realpath(os.fspath(a)), os.path.realpath(os.fspath(b))
    if ra == rb or ra.startswith(rb.rstrip("/") + "/") or rb.startswith(ra.rstrip("/") + "/"):
        return True
    ida, idb = _inode(ra), _inode(rb)
    return (ida is not None and ida in _ancestors(rb)) or (idb is not None and idb in _ancestors(ra))


def _inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _ancestors(path: str) -> set[tuple[int, int]]:
    """(dev, ino) of ``path`` and of every dir above it that exists."""
    out = set()
    while True:
        ident = _inode(path)
        if ident is not None:
            out.add(ident)
        parent = os.path.dirname(path)
        if parent == path:
            return out
        path = parent


class _Verdicts:
    """Collects the problems of one file; ``where`` is how the file is named in them."""

    def __init__(self, where: str):
        self.where = where
        self.problems: list[Problem] = []
        self.flagged: set[int] = set()  # lines that already have a problem about their value

    def add(self, level: str, kind: str, message: str, line: int = 0) -> None:
        self.problems.append(Problem(level, kind, message, f"{self.where}:{line}" if line else self.where))

    def value(self, section: str, e: Entry, read: bool) -> bytes | None:
        """Checks one value; the value archverify may use, or None when it must not (an error)."""
        level = "error" if read else "warning"
        what = f"[{section}] {e.key}"
        if e.continued:
            self.add(level, "continuation",
                     f"{what}: the indented line {e.continued[0]} continues the value (an indented '#' is not a "
                     f"comment to Archipelago), which is {show(e.value)}; unindent or remove it", e.line)
        elif _INLINE_HASH.search(e.value):
            self.add(level, "inline_comment",
                     f"{what}: Archipelago has no inline '#' comments, so the value is {show(e.value)}; "
                     "put the comment on a line of its own", e.line)
        elif not read:
            return e.value
        elif _utf8(e.value) is None:
            self.add(level, "not_utf8", f"{what}: {show(e.value)} is not UTF-8 text; archverify cannot name it",
                     e.line)
        elif _CONTROL.search(e.value):
            self.add(level, "control_char", f"{what}: {show(e.value)} holds control characters", e.line)
        elif b"%(" in e.value:
            self.add(level, "interpolation",
                     f"{what}: {show(e.value)} uses %(name)s substitution, which archverify does not follow; "
                     "write the value out", e.line)
        else:
            return e.value
        self.flagged.add(e.line)
        return None


def _utf8(b: bytes) -> str | None:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return None


def read(data: bytes | str, path: str | os.PathLike, pool_exists=None, check_dirs: bool = False
         ) -> tuple[ArchipConfig | None, list[Problem]]:
    """Every problem of the file, in file order, and the stores when there is no error.

    ``check_dirs``: also that store dirs exist on this node; ``pool_exists``, a
    ``name -> bool | None`` callable, checks RADOS pools.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    where = os.fspath(path)
    v = _Verdicts(where)
    ini = parse(data)
    for line, why in ini.errors:
        v.add("error", "not_ini", f"{why}: Archipelago refuses the file", line)

    blocker_types = {}
    for section in SECTIONS.values():
        e = ini.get(section, "type")
        blocker_types[section] = e.value.decode("utf-8", "replace") if e is not None else ""
    for sec in [ini.defaults, *ini.sections.values()]:
        if len(sec.headers) > 1:
            v.add("warning", "duplicate_section",
                  f"[{sec.name}] appears again (first on line {sec.headers[0]}); Archipelago merges them into one, "
                  "the last value of each key winning", sec.headers[1])
        read_keys = READ_KEYS.get(blocker_types.get(sec.name, ""), ("type",) if sec.name in SECTIONS.values() else ())
        by_key: dict[str, list[Entry]] = {}
        for e in sec.entries:
            by_key.setdefault(e.key, []).append(e)
        for key, es in by_key.items():
            if len(es) > 1:
                differ = len({e.value for e in es}) > 1
                v.add("error" if differ and key in read_keys else "warning", "duplicate_key",
                      f"[{sec.name}] {key} is set {len(es)} times (lines {', '.join(str(e.line) for e in es)}); "
                      f"Archipelago takes the last, {show(es[-1].value)}"
                      + ("" if differ else " (all the same)"), es[-1].line)
        for e in sec.entries:
            if e is not sec.last(e.key) or key_is_read(sec.name, e.key, read_keys):
                continue
            v.value(sec.name, e, read=False)

    stores: dict[str, StoreConfig] = {}
    for role, section in SECTIONS.items():
        sc = _store(ini, role, section, v)
        if sc is not None:
            stores[role] = sc
    if check_dirs:
        _check_where(stores, v, pool_exists)
    b, m = stores.get("blocks"), stores.get("maps")
    if b and m and b.type == m.type == "filed" and b.archip_dir and m.archip_dir and \
            stores_overlap(b.archip_dir, m.archip_dir):
        same = os.path.realpath(b.archip_dir) == os.path.realpath(m.archip_dir)
        v.add("error", "stores_overlap",
              f"[blockerb] archip_dir {show(b.archip_dir)} and [blockerm] archip_dir {show(m.archip_dir)} "
              + ("are the same dir" if same else "lie one inside the other")
              + ": every file would be counted in both stores; give each store its own dir")

    roles: list[str] = []
    if "PEERS" in ini.sections:
        e = ini.get("PEERS", "roles")
        roles = e.value.decode("utf-8", "replace").split(" ") if e is not None else []  # Archipelago splits on ' '
        for section in SECTIONS.values():
            if section not in roles:
                v.add("warning", "role_missing", f"[PEERS] ROLES lacks {section}: it will not run on this node",
                      e.line if e is not None else ini.sections["PEERS"].headers[0])
    else:
        v.add("warning", "no_peers", "no [PEERS] section: Archipelago runs no peer from this file")

    # a line that is not INI is the cause of what follows from it (a section that seems missing, keys
    # in the section above): it comes first, here and in the one line every other command prints
    problems = sorted(v.problems, key=lambda p: (p.kind != "not_ini", _line_of(p.where, where)))
    if any(p.level == "error" for p in problems) or set(stores) != set(SECTIONS):
        return None, problems
    warnings = [p for p in problems if p.level == "warning"]
    cfg = ArchipConfig(Path(where), stores, [r for r in roles if r], [str(p) for p in warnings], problems)
    return cfg, problems


def key_is_read(section: str, key: str, read_keys) -> bool:
    return section in SECTIONS.values() and key in read_keys


def _line_of(w: str, where: str) -> int:
    tail = w[len(where) + 1:]
    return int(tail) if tail.isdigit() else 0


def _store(ini: Ini, role: str, section: str, v: _Verdicts) -> StoreConfig | None:
    """The store of one section, or None after adding the errors that prevent it."""
    if section not in ini.sections:
        near = [n for n in ini.sections if n.strip().lower() == section]
        v.add("error", "missing_section",
              f"no [{section}] section ({role} store)"
              + (f"; [{near[0]}] is another section to Archipelago (names are exact)" if near else
                 "; is this an Archipelago v0.4 config?"))
        return None
    sec = ini.sections[section]
    head = sec.headers[0]

    def get(key: str) -> tuple[Entry | None, str | None]:
        e = ini.get(section, key)
        if e is None or e.line in v.flagged:
            return e, None
        raw = v.value(section, e, read=True)
        return e, None if raw is None else raw.decode("utf-8")

    e, btype = get("type")
    if e is not None and btype is None:
        return None
    if btype not in READ_KEYS:
        v.add("error", "unknown_type", f"[{section}] type = {show(btype or '')}: not a blocker type "
              "(file_blocker or rados_blocker)", e.line if e is not None else head)
        return None
    if btype == "rados_blocker":
        e, pool = get("pool")
        if e is not None and pool is None:
            return None
        if not pool:
            v.add("error", "missing_key", f"[{section}] rados_blocker without pool", e.line if e else head)
            return None
        _, cephx = get("cephx_id")
        return StoreConfig(role, section, "rados", pool=pool, cephx_id=cephx or None)
    ok = True
    e, archip_dir = get("archip_dir")
    if e is None or (archip_dir is not None and not archip_dir):
        v.add("error", "missing_key", f"[{section}] file_blocker without archip_dir: Archipelago refuses to start",
              e.line if e else head)
        ok = False
    elif archip_dir is None:
        ok = False
    e, lock_dir = get("lock_dir")
    ok = ok and (e is None or lock_dir is not None)
    sc = StoreConfig(role, section, "filed", archip_dir=archip_dir, lock_dir=lock_dir or None)
    for key in ("pithos_migrate", "direct"):
        e, raw = get(key)
        if e is None:
            continue
        if raw is None:
            ok = False
        elif raw.lower() not in BOOLEANS:
            v.add("error", "not_boolean", f"[{section}] {key} = {show(raw)} is not a boolean: Archipelago refuses "
                  "to start (True or False)", e.line)
            ok = False
        else:
            setattr(sc, key, BOOLEANS[raw.lower()])
    hy = ini.get(section, HYPHEN_KEY)
    if hy is not None:
        sc.hyphen_key = True
        sc.hyphen_value = hy.value.strip().lower() not in (b"", b"0", b"no", b"false", b"off")
        v.add("warning", "hyphen_key",
              f"[{section}] 'pithos-migrate' (hyphen) is ignored by Archipelago; the key is 'pithos_migrate'"
              + ("" if ini.get(section, "pithos_migrate") is not None else ": migration is OFF here")
              + " ('archverify pithos-migrate enable|disable' fixes the spelling)", hy.line)
    return sc if ok else None


def _check_where(stores: dict[str, StoreConfig], v: _Verdicts, pool_exists) -> None:
    """That the stores exist from this node: dirs, and pools when ``pool_exists`` is given."""
    for sc in stores.values():
        if sc.type == "filed":
            for key in ("archip_dir", "lock_dir"):
                d = getattr(sc, key)
                if d and not os.path.isdir(d):
                    v.add("error", "dir_missing", f"[{sc.section}] {key} {show(d)} is not a directory on this node")
        elif pool_exists is not None:
            found = pool_exists(sc.pool)
            if found is False:
                v.add("error", "pool_missing", f"[{sc.section}] pool {show(sc.pool)} does not exist")
            elif found is None:
                v.add("warning", "pool_unchecked", f"[{sc.section}] pool {show(sc.pool)} not checked "
                      "(cluster unreachable)")


def check(data: bytes | str, path: str | os.PathLike, pool_exists=None) -> tuple[ArchipConfig | None, list[Problem]]:
    """Every problem, including store dirs missing on this node: ``archverify config``, finalize."""
    return read(data, path, pool_exists, check_dirs=True)


def loads(data: bytes | str, path: str | os.PathLike) -> ArchipConfig:
    """The stores of a file already read; ConfigError on its first error (naming how many more)."""
    cfg, problems = read(data, path)
    errors = [p for p in problems if p.level == "error"]
    if errors:
        more = f" (and {len(errors) - 1} more; 'archverify config' lists them)" if len(errors) > 1 else ""
        raise ConfigError(f"{errors[0]}{more}")
    assert cfg is not None
    return cfg


def load(path: str | os.PathLike = DEFAULT_PATH) -> ArchipConfig:
    """The stores of ``path`` (a regular file under MAX_BYTES); ConfigError on the first error."""
    return loads(read_bytes(path), path)
