"""The locks of archverify's runs: ``flock``, released by the kernel however the process ends.

:func:`run_lock` (one run per journal dir and command), :func:`lock_file` (``--lock FILE``,
for cron) and :func:`store_locks` (one writer per store, whatever its journal dir: a lock
file at each store root). A refusal names the holder: host, pid, since.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterable, Iterator

from .atomic import now_iso
from ..core.errors import LockedError, StoreError

STORE_LOCK_NAME = ".archverify.lock"  # at the root of each store being written


def _holder(what: str) -> str:
    import socket  # only a writer's lock names its host: a scan does not load it

    return f"archverify {what} on host {socket.gethostname()}, pid {os.getpid()}, since {now_iso()}"


@contextlib.contextmanager
def _flock(path: str, what: str, refusal: str, remove: bool = False) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created if need be) and write the holder into it.

    ``remove``: unlink the file on release (while still holding it); an acquirer
    that opened the old file then sees that the path no longer names it and retries.
    """
    fd = _acquire(path, refusal)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{_holder(what)}\n".encode(), 0)
        os.fsync(fd)  # so that another NFS client can read who holds it
        yield
    finally:
        if remove:
            with contextlib.suppress(OSError):
                os.unlink(path)
        os.close(fd)


def _acquire(path: str, refusal: str) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise StoreError(f"{path}: cannot open the lock file: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 300, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise LockedError(f"{path}: held by {holder or 'another archverify run'}; {refusal}") from None
            raise StoreError(f"{path}: cannot lock: {e.strerror}") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # its holder removed it as we opened it: take the new one


@contextlib.contextmanager
def lock_file(path: str | os.PathLike, what: str = "run") -> Iterator[None]:
    """``--lock FILE``: one run at a time, for cron.

    An flock on FILE, held for the whole run and released by the kernel when the
    process ends however it ends, so a crashed run never leaves a stale lock; the
    file itself stays. The holder (host, pid, since) is written into it for the
    refusal message."""
    with _flock(os.fspath(path), what, "not starting"):
        yield


@contextlib.contextmanager
def run_lock(directory: str | os.PathLike, name: str, remove: bool = False) -> Iterator[None]:
    """One archverify ``name`` per journal dir: ``DIR/NAME.lock`` (``remove``: gone when released)."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise StoreError(f"{directory}: cannot create the journal dir: {e.strerror}") from None
    with _flock(os.path.join(directory, f"{name}.lock"), name,
                f"another archverify {name} uses this journal dir; not starting", remove=remove):
        yield


@contextlib.contextmanager
def store_locks(roots: Iterable[str], what: str) -> Iterator[None]:
    """One writer per store: ``ROOT/.archverify.lock`` at each store root, whatever the journal dir.

    The file exists only while a writer runs. flock over NFSv4 is forwarded to the
    server, so writers on two nodes sharing the store exclude each other too.
    """
    seen: dict[str, None] = {}
    for r in roots:
        seen.setdefault(os.path.realpath(r), None)
    with contextlib.ExitStack() as stack:
        for root in sorted(seen):  # one order for every writer: no deadlock, and none waits anyway
            stack.enter_context(_flock(os.path.join(root, STORE_LOCK_NAME), what,
                                       f"another archverify writer is working on this store; not starting "
                                       f"(run again once it has ended)", remove=True))
        yield
