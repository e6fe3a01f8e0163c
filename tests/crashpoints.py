"""Shared by the fix tests: crash a run at its k-th write-side system call, and snapshot trees."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import traceback

CRASHED = 77
# every call through which a fix changes the disk (or makes a change durable)
MUTATING = ("link", "unlink", "rename", "replace", "mkdir", "fsync", "write", "ftruncate", "chmod", "fchmod")


def run_crashing(fn, k: int, after: bool, calls=None) -> bool:
    """Run ``fn()`` in a forked child that dies at its k-th mutating call, before or after doing it.

    ``calls``: the (owner, attribute) pairs counted (default: the ``os`` calls of
    :data:`MUTATING`); a store's write methods count its writes instead. ``os._exit``
    is a real crash: no ``finally``, no cleanup. Returns True when the child crashed,
    False when ``fn`` finished before reaching call k.
    """
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            count = [0]

            def wrap(orig):
                def crashing(*a, **kw):
                    count[0] += 1
                    if count[0] == k and not after:
                        os._exit(CRASHED)
                    try:
                        return orig(*a, **kw)
                    finally:
                        if count[0] == k and after:
                            os._exit(CRASHED)

                return crashing

            for owner, name in calls if calls is not None else [(os, n) for n in MUTATING]:
                setattr(owner, name, wrap(getattr(owner, name)))
            fn()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        os._exit(3 if code not in (0, 1) else code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, CRASHED), f"the run failed on its own (exit {code}) before call {k}"
    return code == CRASHED


def tree(root) -> dict[str, str]:
    """relative path -> sha256 of content, for every regular file under root."""
    out = {}
    for d, dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if os.path.islink(p):
                out[os.path.relpath(p, root)] = "symlink:" + os.readlink(p)
                continue
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


@contextlib.contextmanager
def fast_dir():
    """A scratch dir on tmpfs when there is one: crash loops fsync hundreds of times, and a
    simulated crash (``os._exit``) does not need the disk to honour fsync."""
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    d = tempfile.mkdtemp(prefix="archverify-test-", dir=base)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
