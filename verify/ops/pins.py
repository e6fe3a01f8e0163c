"""Pins: hard links that keep objects at risk alive while ``pithos_migrate`` is on.

When an object's old Pithos path and its v0.4 path are the same file, filed with
``pithos_migrate`` on links the file to itself (EEXIST, same inode: accepted) and
then unlinks it: the only copy is gone on first access. A second hard link in a
quarantine dir keeps the inode, so the object can be linked back. The quarantine
dir must be on the same filesystem as the store (hard links cannot cross) and
outside the ``d1/d2/d3`` tree, where filed never looks. Pins are plain files named
after their object: the quarantine dir is its own record, and every operation here
can be repeated after a crash.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..core import layout
from ..durable.atomic import fsync_dir
from ..core.errors import Refused

QUARANTINE_NAME = ".archverify-quarantine"
_HEXDIR = re.compile(r"[0-9a-f]{2}\Z")


def default_root(store_dir: str) -> Path:
    """``<parent of the store dir>/.archverify-quarantine``: beside the store, not in it."""
    return Path(os.path.abspath(store_dir)).parent / QUARANTINE_NAME


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class PinResult:
    store: str
    name: str
    action: str  # pinned, kept, restored, intact, released, lost, conflict
    detail: str = ""


class Quarantine:
    """The pins of one store: ``ROOT/<store>/NAME`` hard links to ``STORE_DIR/d1/d2/d3/NAME``."""

    def __init__(self, store: str, store_dir: str, root: str | os.PathLike | None = None):
        self.store = store
        self.store_dir = os.path.abspath(store_dir)
        self.dir = Path(root if root is not None else default_root(store_dir)) / store

    def validate(self) -> None:
        """Refuse a quarantine dir inside the object tree or on another filesystem."""
        qdir = os.path.abspath(self.dir)
        rel = os.path.relpath(qdir, self.store_dir)
        if not rel.startswith(".."):
            first = rel.split(os.sep)[0]
            if rel == "." or _HEXDIR.match(first):
                raise Refused(f"{qdir}: quarantine dir inside the store's d1/d2/d3 tree; choose another with "
                              "--quarantine-dir")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            qdev, sdev = os.stat(self.dir).st_dev, os.stat(self.store_dir).st_dev
        except OSError as e:
            raise Refused(f"{qdir}: cannot create the quarantine dir: {e.strerror}") from None
        if qdev != sdev:
            raise Refused(f"{qdir}: not on the filesystem of {self.store_dir} (hard links cannot cross); "
                          "give --quarantine-dir on the same filesystem")

    def object_path(self, name: str) -> str:
        return os.path.join(self.store_dir, os.fsdecode(layout.v04_path(name.encode())))

    def pin_path(self, name: str) -> Path:
        if not layout.is_hex64(name.encode()):
            raise ValueError(f"refusing to pin {name!r}: only 64-hex objects can be at risk")
        return self.dir / name

    def pinned(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.dir) if layout.is_hex64(n.encode()))
        except FileNotFoundError:
            return []

    def pin(self, name: str) -> PinResult:
        """Hard-link the object into the quarantine dir (again: fine, same inode)."""
        src, dst = self.object_path(name), self.pin_path(name)
        try:
            os.link(src, dst)
        except FileExistsError:
            if os.path.samefile(src, dst):
                return PinResult(self.store, name, "kept")
            if sha256_file(src) == sha256_file(dst):
                return PinResult(self.store, name, "kept", "pin has the same content under another inode")
            return PinResult(self.store, name, "conflict", f"pin {dst} differs from {src}; both kept")
        except FileNotFoundError:
            if dst.exists():  # filed removed it already; the pin holds it
                return PinResult(self.store, name, "kept", "object gone from its path; the pin holds it")
            return PinResult(self.store, name, "lost", f"{src} does not exist (nothing to pin)")
        fsync_dir(self.dir)
        return PinResult(self.store, name, "pinned")

    def restore(self, name: str) -> PinResult:
        """Link the pin back where filed looks, if filed removed the object."""
        src, dst = self.pin_path(name), self.object_path(name)
        try:
            if os.path.samefile(src, dst):
                return PinResult(self.store, name, "intact")
        except FileNotFoundError:
            if not src.exists():
                return PinResult(self.store, name, "lost", f"pin {src} is gone")
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            try:
                os.link(src, dst)
            except OSError as e:
                if e.errno != errno.EEXIST:
                    raise
                return self.restore(name)  # something put it back meanwhile: compare again
            fsync_dir(os.path.dirname(dst))
            return PinResult(self.store, name, "restored")
        if sha256_file(src) == sha256_file(dst):
            return PinResult(self.store, name, "intact", "same content under another inode")
        return PinResult(self.store, name, "conflict", f"{dst} differs from its pin {src}; pin kept")

    def release(self, name: str) -> PinResult:
        """Drop the pin only once the object is back at its path with the same content."""
        r = self.restore(name)
        if r.action not in ("intact", "restored"):
            return r
        os.unlink(self.pin_path(name))
        return PinResult(self.store, name, "released", r.detail)

    def remove_if_empty(self) -> None:
        for d in (self.dir, self.dir.parent):
            try:
                d.rmdir()
            except OSError:
                break

