"""``--lock FILE``: one run at a time, for cron.

An flock on FILE, held for the whole run and released by the kernel when the
process ends however it ends, so a crashed run never leaves a stale lock. The
holder's pid and start time are written into the file for the refusal message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time

from .errors import LockedError, StoreError


@contextlib.contextmanager
def held(path: str | os.PathLike):
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise StoreError(f"{path}: cannot open the lock file: {e.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
            raise LockedError(f"{path}: another archverify run holds this lock ({holder}); not starting") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
