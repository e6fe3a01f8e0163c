"""Turning ``pithos_migrate`` on and off in archipelago.conf without disturbing the rest.

configupdater keeps comments, order and spacing; only the ``pithos_migrate`` lines
of ``[blockerb]`` and ``[blockerm]`` change. A ``pithos-migrate`` key (the shipped
comment's spelling, which Archipelago ignores) is renamed rather than left next to
the real one. The file is replaced atomically (temp file in the same dir, fsync,
rename, fsync of the dir) with its owner and mode, after a timestamped backup, and
only when something changes, so running the same command twice is harmless.
``pithos_migrate`` is a filed setting: only ``file_blocker`` sections are edited (a
mixed config, one store RADOS, has one), a file with none is refused. The
file is read by :mod:`verify.config.archipelago` first, so an error there (one Archipelago would
trip on) refuses the edit with the same words as every other command.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field

from configupdater import ConfigUpdater

from ..durable import atomic
from . import archipelago as config
from ..core.errors import ConfigError, Refused
from .ini import parse

KEY = "pithos_migrate"
HYPHEN_KEY = config.HYPHEN_KEY


@dataclass
class SectionState:
    section: str
    type: str  # the section's blocker type, "" if unset
    value: bool | None  # what Archipelago reads (None: a rados_blocker, the key means nothing)
    raw: str | None  # the pithos_migrate value as written, None when absent
    hyphen: bool  # a pithos-migrate key is present (ignored by Archipelago)


def _read(text: str, where: str) -> config.ArchipConfig:
    """The file as Archipelago reads it (:mod:`verify.config.archipelago`): its errors are ours, word for word."""
    return config.loads(text, where)


def status(text: str, where: str) -> tuple[list[SectionState], list[str]]:
    """The pithos_migrate of both blocker sections, as Archipelago reads it, and the file's warnings."""
    cfg = _read(text, where)
    ini = parse(text.encode("utf-8", "surrogateescape"))
    out = []
    for sc in cfg.stores.values():
        e = ini.get(sc.section, KEY)
        raw = e.value.decode("utf-8", "replace") if e is not None else None
        if sc.type == "rados":
            out.append(SectionState(sc.section, "rados_blocker", None, raw, sc.hyphen_key))
        else:
            out.append(SectionState(sc.section, "file_blocker", sc.pithos_migrate, raw, sc.hyphen_key))
    return out, cfg.warnings


def _updater(text: str, where: str) -> ConfigUpdater:
    u = ConfigUpdater(strict=False)  # repeated keys and sections were judged by config.read already
    try:
        u.read_string(text)
    except Exception as e:  # configupdater raises configparser errors and its own
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{where}: cannot edit this file safely ({first}); set pithos_migrate by hand "
                          "[not_editable]") from None
    return u


def filed_sections(cfg: config.ArchipConfig) -> tuple[str, ...]:
    """The blocker sections where pithos_migrate means something: the file_blocker ones."""
    return tuple(sc.section for sc in cfg.stores.values() if sc.type != "rados")


def set_pithos_migrate(text: str, value: bool, where: str) -> tuple[str, list[str]]:
    """The text with ``pithos_migrate = value`` in each file_blocker section, and what changed
    (empty: nothing).

    Every ``pithos_migrate`` line of such a section (a repeated section or key
    included) gets the value; a rados_blocker section is left as it is. The result is
    read back and must differ from the original in those lines alone, or nothing is
    returned but an error.
    """
    cfg = _read(text, where)
    sections = filed_sections(cfg)
    if not sections:
        raise Refused(f"{where}: [blockerb] and [blockerm] are rados_blocker; pithos_migrate is a file_blocker "
                      "(filed) setting and means nothing on RADOS, so this file is left as it is")
    u = _updater(text, where)
    want = "True" if value else "False"
    changes: list[str] = []
    for sec in sections:
        blocks = [b for b in u.iter_sections() if b.name == sec]
        real = [o for b in blocks for o in b.iter_options() if o.key == KEY]
        hyphen = [o for b in blocks for o in b.iter_options() if o.key == HYPHEN_KEY]
        for o in hyphen[bool(not real):]:
            o.detach()
            changes.append(f"[{sec}] removed '{HYPHEN_KEY}' (ignored by Archipelago)")
        if hyphen and not real:
            hyphen[0].key = KEY
            hyphen[0].value = want
            changes.append(f"[{sec}] '{HYPHEN_KEY}' renamed to '{KEY}' = {want}")
            continue
        for o in real:
            raw = (o.value or "").strip()
            if config.BOOLEANS.get(raw.lower()) is not value:
                o.value = want
                changes.append(f"[{sec}] {KEY} = {raw} -> {want}")
        if not real:
            opts = list(blocks[-1].iter_options())
            if opts:  # right after the last option: comments that follow belong to the next section
                opts[-1].add_after.option(KEY, want)
            else:
                blocks[-1].set(KEY, want)
            changes.append(f"[{sec}] {KEY} = {want} added")
    if not changes:
        return text, []
    new = str(u)
    _same_but_pithos_migrate(text, new, value, where, sections)
    return new, changes


def _same_but_pithos_migrate(old: str, new: str, value: bool, where: str, sections: tuple[str, ...]) -> None:
    """The edit as Archipelago will read it: pithos_migrate = value in ``sections``, all else as before."""
    def effective(text: str) -> dict:
        ini = parse(text.encode("utf-8", "surrogateescape"))
        out = {}
        for sec in [ini.defaults, *ini.sections.values()]:
            for e in sec.entries:
                if not (sec.name in sections and e.key in (KEY, HYPHEN_KEY)):
                    out[(sec.name, e.key)] = e.value
        return out

    after = config.loads(new, where)
    if effective(old) != effective(new) or any(sc.pithos_migrate is not value for sc in after.stores.values()
                                               if sc.section in sections):
        raise ConfigError(f"{where}: cannot edit this file safely (the edit would change more than "
                          "pithos_migrate); set it by hand [not_editable]")


def backup_path(path: str, now: float | None = None) -> str:
    """``PATH.archverify-20261125T031500.123456Z``: sorts by time, unique per edit."""
    now = time.time() if now is None else now
    return f"{path}.archverify-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}.{int(now * 1e6) % 1000000:06d}Z"


def atomic_write(path: str, data: bytes, expect: bytes | None = None, backup: str | None = None) -> None:
    """Replace ``path`` (through symlinks) with ``data``: same dir temp, fsync, rename, dir fsync.

    Owner and mode are those of the file replaced. ``expect``: the bytes read before
    editing; if the file changed since, nothing is written. ``backup``: copy the old
    file there first.
    """
    real = os.path.realpath(path)
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
        d, base = os.path.split(real)
        legacy = [os.path.join(d, e) for e in os.listdir(d)  # older archverify's temps
                  if e.startswith(f".{base}.") and e.endswith(".archverify-tmp")]
        for stale in legacy + atomic.stale_temps(d, base):  # left by a run killed before its rename
            with contextlib.suppress(OSError):
                os.unlink(stale)
        if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()) and os.geteuid() != 0:
            raise Refused(f"{path}: owned by uid {st.st_uid}; run as root to keep its owner")
        atomic.atomic_write(real, data, mode=st.st_mode & 0o7777, owner=(st.st_uid, st.st_gid))
    except OSError as e:
        raise ConfigError(f"{path}: cannot write: {e.strerror}") from None


@dataclass
class NodeChange:
    node: str | None
    changes: list[str]
    backup: str | None = None
    warnings: list[str] = field(default_factory=list)  # the file's config warnings, as every command prints them


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
        text = old.decode("utf-8", "surrogateescape")  # bytes that are not UTF-8 (a comment) are kept as they are
        warnings = _read(text, where).warnings
        new, changes = set_pithos_migrate(text, value, where)
        plans.append((node, old, new, changes, warnings))
    out = []
    for node, old, new, changes, warnings in plans:
        bak = None
        if changes and not dry_run:
            bak = backup_path(path, now)
            runner.write_file(node, path, new.encode("utf-8", "surrogateescape"), expect=old, backup=bak)
        out.append(NodeChange(node, changes, bak, warnings))
    return out
