"""The few file operations every fix is built from, each safe to interrupt.

Nothing here ever overwrites a file in place or removes the last link of an
object: new content goes to a temp file at the store root (same filesystem, depth
1, where filed never looks), is fsynced, then renamed or linked into place; the
directory is fsynced after every create, link, rename and unlink. New dirs and files
get filed's modes (umask 007 in the shipped config) and the store root's owner, so
that filed, running as its own user, can still write them.
"""

from __future__ import annotations

import os
import stat

import xxhash

from . import atomic_write, fsync_dir, remove_temps, written_temp

DIR_MODE = 0o770
FILE_MODE = 0o660
CHUNK = 1 << 20


class ConflictError(Exception):
    """A different file already sits where an object must go."""


def owner_of(root: str) -> tuple[int, int]:
    st = os.stat(root)
    return st.st_uid, st.st_gid


def _chown(path: str, owner: tuple[int, int] | None) -> None:
    if owner is not None and os.geteuid() == 0:
        os.chown(path, *owner, follow_symlinks=False)


def ensure_dirs(root: str, rel_dir: str) -> None:
    """``mkdir -p root/rel_dir`` with filed's mode and the root's owner; each new dir made durable."""
    owner = owner_of(root)
    cur = root
    for part in rel_dir.split("/"):
        parent, cur = cur, os.path.join(cur, part)
        try:
            os.mkdir(cur, DIR_MODE)
        except FileExistsError:
            if not os.path.isdir(cur) or os.path.islink(cur):
                raise ConflictError(f"{cur} exists and is not a directory") from None
            continue
        _chown(cur, owner)
        fsync_dir(parent)


def inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise ConflictError(f"{path} is not a regular file")
    return st.st_dev, st.st_ino


def xxh3_file(path: str) -> str:
    """xxh3-128 of a file's content, hex: fast enough to compare 4 MiB blocks by the million."""
    h = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def same_content(a: str, b: str) -> bool:
    """Byte-for-byte comparison (a hash match alone is not proof enough to delete)."""
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(CHUNK), fb.read(CHUNK)
            if x != y:
                return False
            if not x:
                return True


def link_into_place(src: str, dst: str) -> str:
    """filed's migration step: ``link(src, dst)``; EEXIST on the same inode is success.

    Returns "linked" or "already". Raises ConflictError when dst is another file.
    """
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        if inode(dst) == inode(src):
            return "already"
        raise ConflictError(f"{dst} exists and is a different file") from None
    fsync_dir(os.path.dirname(dst))
    return "linked"


def unlink_if_same(old: str, new: str) -> str:
    """Remove ``old`` only while it is still the same inode as ``new`` (so the data stays at ``new``)."""
    a, b = inode(old), inode(new)
    if a is None:
        return "already"
    if b is None or a != b:
        raise ConflictError(f"{old} is no longer the same file as {new}; left in place")
    os.unlink(old)
    fsync_dir(os.path.dirname(old))
    return "unlinked"


def cleanup_temps(root: str) -> list[str]:
    """Remove temp files a crashed run left at the store root (call under the store lock)."""
    return remove_temps(root)


def atomic_replace(root: str, rel: str, data: bytes, mode: int = FILE_MODE,
                   owner: tuple[int, int] | None = None) -> None:
    """Put ``data`` at ``root/rel`` all at once: temp at the root, fsync, rename, fsync the dirs."""
    ensure_dirs(root, os.path.dirname(rel))
    atomic_write(os.path.join(root, rel), data, mode, owner if owner is not None else owner_of(root), tmp_dir=root)


def remove(root: str, rel: str) -> str:
    """Delete ``root/rel``; already gone is success."""
    p = os.path.join(root, rel)
    try:
        os.unlink(p)
    except FileNotFoundError:
        return "already"
    fsync_dir(os.path.dirname(p))
    return "deleted"


def copy_verified(src: str, root: str, rel: str) -> str:
    """Copy ``src`` into ``root/rel`` across filesystems, never clobbering.

    temp at the root + fsync, re-read and compare its xxh3-128 with the source's,
    then ``link`` (fails on EEXIST instead of replacing); the temp goes in any case.
    """
    st = os.stat(src)
    want = xxh3_file(src)
    with open(src, "rb") as fh:
        data = fh.read()
    if xxhash.xxh3_128_hexdigest(data) != want:
        raise ConflictError(f"{src} changed while being read")
    with written_temp(root, os.path.basename(rel), data, stat.S_IMODE(st.st_mode), owner_of(root)) as tmp:
        if xxh3_file(tmp) != want:
            raise ConflictError(f"copy of {src} does not read back identical")
        dst = os.path.join(root, rel)
        ensure_dirs(root, os.path.dirname(rel))
        try:
            os.link(tmp, dst)
        except FileExistsError:
            if xxh3_file(dst) == want and same_content(dst, src):
                return "already"
            raise ConflictError(f"{dst} exists and is a different file") from None
        fsync_dir(os.path.dirname(dst))
        return "copied"
