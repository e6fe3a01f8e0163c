"""``migrate-objects``: finish filed's lazy migration for objects nobody touched.

The scan finds the work; each fix is filed's own step, so it is safe while
Archipelago runs and safe to interrupt anywhere:

- ``object_unmigrated`` / ``object_misplaced``: make the v0.4 dirs, ``link(old,
  new)`` (EEXIST on the same inode is success, as in filed), then unlink ``old``
  only while both names are still one inode. A crash leaves the old file, or both
  links of one inode: the next scan sees ``unmigrated`` or ``leftover`` and the
  rerun finishes.
- ``object_leftover``: unlink ``old`` after re-checking it is the same inode.
- ``object_conflict``: never automatic; both paths, sizes and xxh3-128 are
  reported; with ``resolve_identical`` the old path goes only when byte-identical.
- ``--legacy-dir``: objects in v0.3 dirs outside ``archip_dir`` that the store
  lacks are linked (same filesystem) or copied and verified into their v0.4 path;
  the legacy dir is never written to.
- ``object_at_risk`` files (old and new path are one file) are never touched.

Every step is journaled (intent, then done) so that a rerun says what it resumed.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from verify.core import layout
from verify import backends
from verify.durable import (
    TMP_PREFIX, Journal, check_stop, map_steps, run_lock, step_pool, stop_between_steps, store_locks,
)
from verify.core.errors import StoreError
from ..scan import run_shards
from verify.durable import fsops
from verify.durable.fsops import ConflictError

JOURNAL_NAME = "migrate-objects.journal"
MOVE_KINDS = ("object_unmigrated", "object_misplaced")
HANDLED_KINDS = MOVE_KINDS + ("object_leftover", "object_conflict", "object_at_risk")


@dataclass
class Work:
    """One object to fix: ``old`` and ``new`` are paths relative to the store root (``src`` absolute for legacy)."""

    kind: str
    store: str
    name: str
    old: str
    new: str
    action: str  # move | unlink-old | compare | import | none

    @property
    def id(self) -> str:
        return f"{self.store}|{self.action}|{self.old}"

    def result(self, status: str, detail: str = "", **extra) -> dict:
        return {"kind": self.kind, "store": self.store, "name": self.name, "old": self.old, "new": self.new,
                "action": self.action, "status": status, "detail": detail, **extra}


def _skip_reason(name: str) -> str | None:
    """Files that must never be moved into a v0.4 path even though they are misplaced."""
    if name.startswith(TMP_PREFIX):
        return "a temp file of an interrupted archverify run"
    if name.endswith("_lock"):
        return "a lock file: moving it would lock the volume under v0.4"
    return None


def find_work(dirs: dict[str, str], jobs: int) -> list[Work]:
    """Scan (every finding, not deduplicated) and turn placement findings into work items."""
    roles = tuple(role for role in ("maps", "blocks") if role in dirs)  # a mixed config has one
    backend = backends.from_options(None, maps_dir=dirs.get("maps"), blocks_dir=dirs.get("blocks"), roles=roles)
    result = run_shards(backend, backend.shards(1), jobs, progress=False)
    work = []
    for f in sorted(result.findings, key=lambda f: (f.store, f.kind, f.name, f.path or "")):
        if f.kind not in HANDLED_KINDS or f.path is None:
            continue
        new = layout.v04_path(f.name.encode()).decode()
        if f.kind == "object_at_risk" or layout.paths_coincide(f.name.encode()):
            work.append(Work(f.kind, f.store, f.name, f.path, new, "none"))
        elif f.kind in MOVE_KINDS:
            work.append(Work(f.kind, f.store, f.name, f.path, new, "move"))
        elif f.kind == "object_leftover":
            work.append(Work(f.kind, f.store, f.name, f.path, new, "unlink-old"))
        else:
            work.append(Work(f.kind, f.store, f.name, f.path, new, "compare"))
    return work


def parse_legacy(spec) -> tuple[str, str]:
    """``DIR`` (objects: the old FILED_IMAGES) or ``maps=DIR`` / ``blocks=DIR``; tuples pass through."""
    if isinstance(spec, tuple):
        return spec
    for role in ("maps", "blocks"):
        if spec.startswith(role + "="):
            return role, spec[len(role) + 1:]
    return "blocks", spec


def find_legacy(dirs: dict[str, str], legacy_dirs) -> tuple[list[Work], list[dict]]:
    """Objects at depth 3 of the legacy dirs that the store has nowhere v0.4 or a fix would find them."""
    work, notes = [], []
    for spec in legacy_dirs:
        role, ldir = parse_legacy(spec)
        root = dirs.get(role)
        if root is None:
            notes.append({"kind": "legacy", "store": role, "name": "", "old": ldir, "new": "", "action": "none",
                          "status": "failed", "detail": f"no {role} store to bring {ldir} into"})
            continue
        for d1 in sorted(_listdir(ldir)):
            for d2 in sorted(_listdir(os.path.join(ldir, d1))):
                for d3 in sorted(_listdir(os.path.join(ldir, d1, d2))):
                    for name in sorted(_listdir(os.path.join(ldir, d1, d2, d3))):
                        src = os.path.join(ldir, d1, d2, d3, name)
                        if os.path.islink(src) or not os.path.isfile(src):
                            continue
                        raw = os.fsencode(name)
                        if len(raw) < layout.MIN_NAME_LEN or _skip_reason(name):
                            continue
                        try:
                            raw.decode("utf-8")
                        except UnicodeDecodeError:
                            continue
                        new = layout.v04_path(raw).decode()
                        have = [new, (layout.pithos_path(raw) or b"").decode(), (layout.v03_path(raw) or b"").decode()]
                        if any(p and os.path.lexists(os.path.join(root, p)) for p in have):
                            continue
                        work.append(Work("legacy", role, name, src, new, "import"))
    return work, notes


def _listdir(p: str) -> list[str]:
    try:
        return [e for e in os.listdir(p) if os.path.isdir(os.path.join(p, e)) or os.path.isfile(os.path.join(p, e))]
    except (NotADirectoryError, FileNotFoundError):
        return []
    except OSError as e:
        raise StoreError(f"{p}: cannot list the legacy dir: {e.strerror}") from None


# ---- the fixes ------------------------------------------------------------------


def _move(root: str, w: Work) -> str:
    old, new = os.path.join(root, w.old), os.path.join(root, w.new)
    if fsops.inode(old) is None:
        if fsops.inode(new) is not None:
            return "already"
        raise ConflictError(f"{old} vanished before it could be moved")
    fsops.ensure_dirs(root, os.path.dirname(w.new))
    fsops.link_into_place(old, new)
    fsops.unlink_if_same(old, new)
    return "moved"


def _unlink_old(root: str, w: Work) -> str:
    return fsops.unlink_if_same(os.path.join(root, w.old), os.path.join(root, w.new))


def _import(root: str, w: Work) -> str:
    dst = os.path.join(root, w.new)
    if fsops.inode(dst) is not None:
        if fsops.same_content(dst, w.old):
            return "already"
        raise ConflictError(f"{dst} exists with other content than {w.old}")
    fsops.ensure_dirs(root, os.path.dirname(w.new))
    try:
        fsops.link_into_place(w.old, dst)
        return "linked"
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
    return fsops.copy_verified(w.old, root, w.new)


def _compare(root: str, w: Work, apply: bool, resolve_identical: bool, journal: Journal | None) -> dict:
    old, new = os.path.join(root, w.old), os.path.join(root, w.new)
    ino_old = fsops.inode(old)
    if ino_old is None:
        return w.result("skipped", "old path is gone")
    facts = {"old_size": os.path.getsize(old), "new_size": os.path.getsize(new),
             "old_xxh3": fsops.xxh3_file(old), "new_xxh3": fsops.xxh3_file(new)}
    identical = facts["old_xxh3"] == facts["new_xxh3"] and fsops.same_content(old, new)
    facts["identical"] = identical
    if not resolve_identical:
        return w.result("conflict", "different files at both paths; compare them by hand", **facts)
    if not identical:
        return w.result("conflict", "contents differ: not resolved", **facts)
    if not apply:
        return w.result("planned", "identical: would remove the old path", **facts)
    check_stop()
    journal.append({"ev": "intent", "id": w.id, "op": "resolve", "store": w.store, "old": w.old, "new": w.new,
                    "xxh3": facts["old_xxh3"]})
    if fsops.inode(old) != ino_old or fsops.xxh3_file(old) != facts["old_xxh3"]:
        journal.append({"ev": "failed", "id": w.id})
        return w.result("failed", "old path changed while being compared; left in place", **facts)
    fsops.remove(root, w.old)
    journal.append({"ev": "done", "id": w.id})
    return w.result("done", "identical: old path removed", **facts)


OPS = {"move": _move, "unlink-old": _unlink_old, "import": _import}


def _run(root: str, w: Work, journal: Journal) -> dict:
    check_stop()  # a signal: this object is not begun, the ones begun are finished
    journal.append({"ev": "intent", "id": w.id, "op": w.action, "kind": w.kind, "store": w.store, "name": w.name,
                    "old": w.old, "new": w.new})
    try:
        outcome = OPS[w.action](root, w)
    except (ConflictError, OSError) as e:
        journal.append({"ev": "failed", "id": w.id, "error": str(e)})
        return w.result("failed", str(e) if isinstance(e, ConflictError) else f"{e.filename}: {e.strerror}")
    journal.append({"ev": "done", "id": w.id, "outcome": outcome})
    return w.result("done", outcome)


def _resume(dirs: dict[str, str], journal: Journal) -> list[dict]:
    """Finish what a crashed run had begun (each op is idempotent)."""
    out = []
    for rec in journal.pending():
        op, store = rec.get("op"), rec.get("store")
        root = dirs.get(store)
        if root is None:
            continue
        w = Work(rec.get("kind", "?"), store, rec.get("name", ""), rec["old"], rec["new"], op)
        if op == "resolve":
            # the comparison happened before the intent; only redo it in full
            journal.append({"ev": "failed", "id": rec["id"], "error": "interrupted; compared again below"})
            continue
        if op not in OPS:
            continue
        r = _run(root, w, journal)
        r["resumed"] = True
        out.append(r)
    return out


def _fix(dirs: dict[str, str], w: Work, apply: bool, resolve_identical: bool, journal: Journal | None) -> dict:
    if w.action == "none":
        return w.result("skipped", "old and v0.4 paths are one file: never touched")
    if w.action == "compare":
        return _compare(dirs[w.store], w, apply, resolve_identical, journal)
    if w.kind == "object_misplaced" and _skip_reason(w.name):
        return w.result("skipped", _skip_reason(w.name))
    if not apply:
        return w.result("planned")
    return _run(dirs[w.store], w, journal)


def migrate_objects(dirs: dict[str, str], *, apply: bool, journal_dir: str, resolve_identical: bool = False,
                    legacy_dirs=(), jobs: int | None = None) -> list[dict]:
    """Find and (with ``apply``) fix every misplaced object of the filed stores in ``dirs``.

    ``dirs`` = {"maps": path, "blocks": path}. Returns one dict per object with its
    ``kind``, ``store``, ``name``, ``old``/``new`` paths, ``action`` and ``status``
    (planned, done, conflict, skipped, failed); conflicts carry sizes and xxh3-128.
    Objects are fixed ``jobs`` at a time: each is independent of the others.
    """
    jobs = jobs or os.cpu_count() or 1
    if not apply:
        legacy, notes = find_legacy(dirs, legacy_dirs)
        return notes + [_fix(dirs, w, False, resolve_identical, None) for w in find_work(dirs, jobs) + legacy]
    with stop_between_steps(), run_lock(journal_dir, "migrate-objects"), \
            store_locks(dirs.values(), "migrate-objects"):
        journal = Journal(os.path.join(journal_dir, JOURNAL_NAME))
        try:
            for root in dirs.values():
                fsops.cleanup_temps(root)
            out = _resume(dirs, journal)
            journal.append({"ev": "run", "apply": True, "resolve_identical": resolve_identical})
            with step_pool(jobs) as pool:
                out += map_steps(pool, lambda w: _fix(dirs, w, True, resolve_identical, journal), find_work(dirs, jobs))
                legacy, notes = find_legacy(dirs, legacy_dirs)
                out += notes
                out += map_steps(pool, lambda w: _fix(dirs, w, True, resolve_identical, journal), legacy)
            journal.append({"ev": "run-end"})
            return out
        finally:
            journal.close()
