"""Turning ``pithos_migrate`` on and off in archipelago.conf without disturbing the rest.

configupdater keeps comments, order and spacing; only the ``pithos_migrate`` lines
of ``[blockerb]`` and ``[blockerm]`` change. A ``pithos-migrate`` key (the shipped
comment's spelling, which Archipelago ignores) is renamed rather than left next to
the real one. The file is replaced atomically (temp file in the same dir, fsync,
rename, fsync of the dir) with its owner and mode, after a timestamped backup, and
only when something changes, so running the same command twice is harmless.
``pithos_migrate`` is a filed setting: a ``rados_blocker`` section is refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

from configupdater import ConfigUpdater
from configupdater.parser import ParsingError

from .config import FALSE, TRUE
from .errors import ConfigError, Refused

SECTIONS = ("blockerb", "blockerm")
KEY = "pithos_migrate"
HYPHEN_KEY = "pithos-migrate"


@dataclass
class SectionState:
    section: str
    type: str  # the section's blocker type, "" if unset
    value: bool | None  # what Archipelago reads (None: a rados_blocker, the key means nothing)
    raw: str | None  # the pithos_migrate value as written, None when absent
    hyphen: bool  # a pithos-migrate key is present (ignored by Archipelago)


def _parse(text: str, where: str) -> ConfigUpdater:
    u = ConfigUpdater()
    try:
        u.read_string(text)
    except (ParsingError, Exception) as e:  # configupdater raises configparser errors too
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{where}: cannot parse: {first}") from None
    for sec in SECTIONS:
        if not u.has_section(sec):
            raise ConfigError(f"{where}: no [{sec}] section; is this an Archipelago v0.4 config?")
    return u


def _bool(raw: str, where: str) -> bool:
    v = raw.strip().lower()
    if v in TRUE:
        return True
    if v in FALSE - {""}:
        return False
    raise ConfigError(f"{where}: pithos_migrate = {raw.strip()!r} is not a boolean; Archipelago would refuse to start")


def status(text: str, where: str) -> list[SectionState]:
    """The pithos_migrate of both blocker sections, as Archipelago would read it."""
    u = _parse(text, where)
    out = []
    for sec in SECTIONS:
        s = u[sec]
        btype = (s.get("type").value or "").strip() if s.has_option("type") else ""
        raw = s.get(KEY).value if s.has_option(KEY) else None
        if btype == "rados_blocker":
            value = None
        else:
            value = _bool(raw, f"{where} [{sec}]") if raw is not None else False
        out.append(SectionState(sec, btype, value, raw, s.has_option(HYPHEN_KEY)))
    return out


def set_pithos_migrate(text: str, value: bool, where: str) -> tuple[str, list[str]]:
    """The text with ``pithos_migrate = value`` in both sections, and what changed (empty: nothing)."""
    u = _parse(text, where)
    for sec in SECTIONS:
        s = u[sec]
        btype = (s.get("type").value or "").strip() if s.has_option("type") else ""
        if btype == "rados_blocker":
            raise Refused(f"{where} [{sec}]: type is rados_blocker; pithos_migrate is a file_blocker (filed) "
                          "setting and means nothing on RADOS, so this file is left as it is")
        if btype != "file_blocker":
            raise ConfigError(f"{where} [{sec}]: unknown blocker type {btype!r} (file_blocker or rados_blocker)")
    want = "True" if value else "False"
    changes: list[str] = []
    for sec in SECTIONS:
        s = u[sec]
        if s.has_option(HYPHEN_KEY):
            if s.has_option(KEY):
                del s[HYPHEN_KEY]
                changes.append(f"[{sec}] removed '{HYPHEN_KEY}' (ignored by Archipelago)")
            else:
                s[HYPHEN_KEY].key = KEY
                s[KEY].value = want
                changes.append(f"[{sec}] '{HYPHEN_KEY}' renamed to '{KEY}' = {want}")
                continue
        if s.has_option(KEY):
            raw = s[KEY].value or ""
            if _bool(raw, f"{where} [{sec}]") != value:
                s[KEY].value = want
                changes.append(f"[{sec}] {KEY} = {raw.strip()} -> {want}")
        else:
            opts = list(s.iter_options())
            if opts:  # right after the last option: comments that follow belong to the next section
                opts[-1].add_after.option(KEY, want)
            else:
                s.set(KEY, want)
            changes.append(f"[{sec}] {KEY} = {want} added")
    return (str(u) if changes else text), changes


def backup_path(path: str, now: float | None = None) -> str:
    """``PATH.archverify-20261125T031500.123456Z``: sorts by time, unique per edit."""
    now = time.time() if now is None else now
    return f"{path}.archverify-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}.{int(now * 1e6) % 1000000:06d}Z"


def _fsync_dir(d: str) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, expect: bytes | None = None, backup: str | None = None) -> None:
    """Replace ``path`` (through symlinks) with ``data``: same dir temp, fsync, rename, dir fsync.

    Owner and mode are those of the file replaced. ``expect``: the bytes read before
    editing; if the file changed since, nothing is written. ``backup``: copy the old
    file there first.
    """
    real = os.path.realpath(path)
    d = os.path.dirname(real)
    try:
        st = os.stat(real)
        if expect is not None:
            with open(real, "rb") as fh:
                if fh.read() != expect:
                    raise Refused(f"{path}: changed while being edited; run the command again")
        if backup is not None:
            shutil.copy2(real, backup)
            with contextlib.suppress(PermissionError):
                os.chown(backup, st.st_uid, st.st_gid)
            fd = os.open(backup, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for stale in os.listdir(d):  # left by a run killed between mkstemp and rename
            if stale.startswith(f".{os.path.basename(real)}.") and stale.endswith(".archverify-tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(d, stale))
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(real)}.", suffix=".archverify-tmp", dir=d)
    except OSError as e:
        raise ConfigError(f"{path}: cannot write: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), st.st_mode & 0o7777)
            if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                try:
                    os.fchown(fh.fileno(), st.st_uid, st.st_gid)
                except PermissionError:
                    raise Refused(f"{path}: owned by uid {st.st_uid}; run as root to keep its owner") from None
            os.fsync(fh.fileno())
        os.replace(tmp, real)
        _fsync_dir(d)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise ConfigError(f"{path}: cannot write: {e.strerror}") from None
        raise


@dataclass
class NodeChange:
    node: str | None
    changes: list[str]
    backup: str | None = None


def apply_on_nodes(runner, nodes: list[str | None], path: str, value: bool, dry_run: bool = False,
                   now: float | None = None) -> list[NodeChange]:
    """Edit every node's file (read, edit, write back through ``runner``); all are edited or none.

    Every file is read and edited in memory first, so a node whose file would be
    refused (rados_blocker, unparsable) stops the command before anything is written.
    """
    plans = []
    for node in nodes:
        where = f"{node}:{path}" if node is not None else path
        old = runner.read_file(node, path)
        try:
            text = old.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{where}: not UTF-8 text") from None
        new, changes = set_pithos_migrate(text, value, where)
        plans.append((node, old, new, changes))
    out = []
    for node, old, new, changes in plans:
        bak = None
        if changes and not dry_run:
            bak = backup_path(path, now)
            runner.write_file(node, path, new.encode("utf-8"), expect=old, backup=bak)
        out.append(NodeChange(node, changes, bak))
    return out
