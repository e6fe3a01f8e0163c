"""What upgrading one map takes, decided before anything is written: the requests the v0.4
mapper would send, as :class:`Step` lists (pure: bytes in, steps out), and the checks that
refuse what must not be upgraded (:class:`PlanError`). :mod:`verify.ops.fixes.upgrade` runs them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from verify.core import formats as F
from verify.durable import fsops
from verify.core import layout


class PlanError(Exception):
    """This map cannot be upgraded safely; the message says why."""


@dataclass(frozen=True)
class Step:
    """One filed request of the upgrade: write ``data`` at ``offset`` of ``obj``, delete ``obj``, or move it."""

    op: str  # write | delete | move
    obj: str
    offset: int = 0
    data: bytes = b""
    src: str = ""  # move: the old path, relative to the store root


@dataclass
class Plan:
    kind: str  # v1 | v1-inplace | v2-rename | purge | v0
    name: str  # the map object the finding is about
    target: str  # the name the volume is opened as (and logged under)
    steps: list[Step] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)  # objects whose bytes are backed up first


# ---- what the mapper writes (pure: bytes in, steps out) --------------------------


def write_map_steps(name: str, m: F.Map, flags: int, epoch: int) -> list[Step]:
    """The mapper's write_map: every map-data object first, then the 32-byte header at offset 0."""
    header, data = F.write_v2(m.size, m.entries, m.blocksize, flags, epoch, name=name)
    steps = [Step("write", obj, 0, chunk) for obj, chunk in data.items()]
    steps.append(Step("write", name, 0, header))
    return steps


def purge_steps(name: str, m: F.Map) -> list[Step]:
    """The mapper's purge_map: header flagged deleted (epoch kept), map-data deleted, header deleted."""
    header = F.pack_v2_header(m.size, m.blocksize, m.flags | F.MF_DELETED, m.epoch)
    steps = [Step("write", name, 0, header)]
    steps += [Step("delete", F.mapdata_name(name, b)) for b in range(F.mapdata_blocks(m.size, m.blocksize))]
    steps.append(Step("delete", name))
    return steps


def plan_v1(name: str, data: bytes) -> Plan:
    """A v1 map: ``archip_X`` is upgraded in place, renamed to ``X`` (epoch 1) and purged."""
    try:
        m = F.parse_v1(data)
    except F.MapFormatError as e:
        raise PlanError(f"corrupt v1 map ({e}); the mapper would load phantom entries") from None
    if not name.startswith(F.ARCHIP_PREFIX):
        return Plan("v1-inplace", name, name, write_map_steps(name, m, 0, 0), [name])
    target = name[len(F.ARCHIP_PREFIX):]
    steps = write_map_steps(name, m, 0, 0)
    steps += write_map_steps(target, m, m.flags, 1)
    m2 = F.Map(F.Version.V2, m.size, m.entries, m.blocksize, 0, 0)
    steps += purge_steps(name, m2)
    touched = [name] + [F.mapdata_name(name, b) for b in range(F.mapdata_blocks(m.size, m.blocksize))]
    touched += [F.mapdata_name(target, b) for b in range(F.mapdata_blocks(m.size, m.blocksize))]
    return Plan("v1", name, target, steps, touched)


def read_v2(name: str, read: Callable[[str], bytes | None]) -> F.Map:
    header = read(name)
    if header is None:
        raise PlanError(f"{name} is gone")
    try:
        m = F.parse_v2_header(header)
        blocks = {}
        if not m.deleted:
            for b in range(F.mapdata_blocks(m.size, m.blocksize)):
                chunk = read(F.mapdata_name(name, b))
                if chunk is not None:
                    blocks[b] = chunk
            m.entries = F.parse_v2(header, blocks).entries
        return m
    except F.MapFormatError as e:
        raise PlanError(f"cannot read v2 map {name}: {e}") from None


def plan_v2_rename(name: str, read: Callable[[str], bytes | None]) -> Plan:
    """A v2 ``archip_X`` without ``X`` (a rename that never happened): what opening ``X`` does."""
    m = read_v2(name, read)
    if m.deleted:
        raise PlanError(f"{name} is flagged deleted and {name[len(F.ARCHIP_PREFIX):]} does not exist")
    target = name[len(F.ARCHIP_PREFIX):]
    steps = write_map_steps(target, m, m.flags, 1) + purge_steps(name, m)
    nb = F.mapdata_blocks(m.size, m.blocksize)
    touched = [name] + [F.mapdata_name(name, b) for b in range(nb)] + [F.mapdata_name(target, b) for b in range(nb)]
    return Plan("v2-rename", name, target, steps, touched)


def plan_purge(name: str, read: Callable[[str], bytes | None], check: bool = True) -> Plan:
    """``archip_X`` left next to an upgraded ``X``: finish the purge, if ``X`` really descends from it.

    A purge that had begun (deleted flag set) is always finished: the mapper only
    starts it after ``X`` was written. Otherwise every entry of ``X`` must name
    the same object as ``archip_X`` or a copy-up of ``X`` (written since); anything
    else may be an unrelated volume, and the old map is left alone.
    """
    target = name[len(F.ARCHIP_PREFIX):]
    header = read(name)
    if header is None:
        raise PlanError(f"{name} is gone")
    try:
        m = F.parse_v2_header(header)
    except F.MapFormatError as e:
        raise PlanError(f"cannot read {name}: {e}") from None
    if check and not m.deleted:
        old = read_v2(name, read)
        new = read_v2(target, read)
        if new.size != old.size or new.blocksize != old.blocksize:
            raise PlanError(f"{target} (size {new.size}) does not descend from {name} (size {old.size}): compare by hand")
        if not new.deleted:
            for i, (a, b) in enumerate(zip(old.entries, new.entries)):
                if a.name != b.name and not b.name.startswith(target + "_"):
                    raise PlanError(f"{target} entry {i} ({b.name}) differs from {name} ({a.name}): compare by hand")
    nb = F.mapdata_blocks(m.size, m.blocksize)
    return Plan("purge", name, target, purge_steps(name, m), [name] + [F.mapdata_name(name, b) for b in range(nb)])


def plan_v0(name: str, data: bytes, size: int, old_path: str | None) -> Plan:
    """A v0 map of known size: moved from its old path if there, then a read-only epoch-0 v2 map in place."""
    try:
        m = F.parse_v0(data)
    except F.MapFormatError as e:
        raise PlanError(f"corrupt v0 map: {e}") from None
    if len(m.entries) != F.nr_objs(size):
        raise PlanError(f"v0 map has {len(m.entries)} entries but size {size} needs {F.nr_objs(size)}")
    m.size = size
    steps = [Step("move", name, src=old_path)] if old_path else []
    steps += write_map_steps(name, m, F.MF_READONLY, 0)
    nb = F.mapdata_blocks(m.size, m.blocksize)
    return Plan("v0", name, name, steps, [name] + [F.mapdata_name(name, b) for b in range(nb)])


def _v0_old_path(store, name: str, path: str | None) -> str | None:
    """filed: the v0 map's old Pithos path while its file is still there (None: at its v0.4 path)."""
    if store.root is None:
        return None
    old = (layout.pithos_path(name.encode()) or b"").decode()
    if old and old != store.rel(name) and os.path.lexists(os.path.join(store.root, old)):
        if store.exists(name) and fsops.inode(os.path.join(store.root, old)) != fsops.inode(store.path(name)):
            raise PlanError("a different file sits at its v0.4 path (object_conflict): resolve it first")
        return old
    if path is not None and path != store.rel(name):
        raise PlanError(f"map file at {path}, not at a path v0.4 reads: run 'archverify migrate-objects' first")
    return None


def make_plan(store, kind: str, name: str, path: str | None,
              pithos_sizes: dict[str, int] | None) -> Plan:
    """Decide, from the store as it is now, what upgrading this map takes; PlanError if it must not be done.

    ``path`` is where a filed scan found the map (None on a store without paths)."""
    if kind == "map_v0":
        size = (pithos_sizes or {}).get(name)
        if size is None:
            raise PlanError("size unknown: give the Pithos database (--pithos-db) so the size is known")
        old_path = _v0_old_path(store, name, path)
        data = store.read_rel(old_path) if old_path else store.read(name)  # what filed serves while the old file exists
        if data is None:
            raise PlanError(f"{name} is gone")
        return plan_v0(name, data, size, old_path)
    if path is not None and path != store.rel(name):
        raise PlanError(f"map file at {path}, not at its v0.4 path: run 'archverify migrate-objects' first")
    if kind == "map_upgrade_incomplete":
        return plan_purge(name, store.read)
    data = store.read(name)
    if data is None:
        raise PlanError(f"{name} is gone")
    info = F.classify(data[: F.HEADER_READ], len(data), name.encode())
    if info.cls is F.HeaderClass.CORRUPT_V1_SHORT:
        raise PlanError("truncated v1 map: its entries are cut short; restore it from backup")
    if kind == "map_invalid_name":
        target = name[len(F.ARCHIP_PREFIX):] if name.startswith(F.ARCHIP_PREFIX) else None
        if target is None or store.exists(target) or not _target_ok(target):
            raise PlanError(f"invalid header object {name}")
        return plan_v2_rename(name, store.read)
    if name.startswith(F.ARCHIP_PREFIX):
        target = name[len(F.ARCHIP_PREFIX):]
        if not _target_ok(target):
            raise PlanError(f"{target!r} cannot be a v0.4 volume name (fewer than 6 bytes or invalid for vlmc)")
        if store.exists(target):
            raise PlanError(f"shadowed: a map {target} already exists, so opening {target} never reaches {name}")
    return plan_v1(name, data)


def _target_ok(target: str) -> bool:
    return len(target.encode()) >= layout.MIN_NAME_LEN and F.is_valid_volume_name(target)


def target_of(kind: str, name: str) -> str:
    if kind in ("map_v1", "map_upgrade_incomplete", "map_invalid_name", "map_corrupt") and name.startswith(F.ARCHIP_PREFIX):
        return name[len(F.ARCHIP_PREFIX):]
    return name
