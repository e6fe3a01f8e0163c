"""Atomic writes: how every archverify writer survives a crash or a full disk mid-write.

- :func:`fsync_dir`: a create, link, rename or unlink is durable only once its directory is fsynced.
- :func:`written_temp` / :func:`atomic_write` / :func:`replaced`: new content goes to a temp
  file in the same filesystem, is fsynced, and only then renamed (or linked) into place; on
  any error, ENOSPC included, the temp file is removed, so the old file is all that is left.
- :func:`stale_temps` / :func:`remove_temps`: the temp files a killed run left behind.

The journal is verify/durable/journal.py, the locks verify/durable/locks.py, the stop between two steps
on a signal verify/core/signals.py.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Iterator

TMP_PREFIX = ".archverify-tmp."


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def fsync_dir(path: str | bytes | os.PathLike) -> None:
    """Make a directory's entries (a create, link, rename or unlink in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- atomic writes -------------------------------------------------------------------

_tmp_serial = itertools.count()


def temp_name(directory: str, name: str) -> str:
    """A temp path in ``directory`` unique to this process and call; ``TMP_PREFIX`` marks it as ours."""
    return os.path.join(directory, f"{TMP_PREFIX}{name[:160]}.{os.getpid()}.{next(_tmp_serial)}")


@contextlib.contextmanager
def written_temp(directory: str, name: str, data: bytes, mode: int | None = None,
                 owner: tuple[int, int] | None = None) -> Iterator[str]:
    """A temp file in ``directory`` holding ``data``, fsynced; removed on exit unless renamed away.

    ``mode`` None: 0o666 less the umask, as ``open`` would; else exactly ``mode``.
    ``owner`` is applied when running as root. Whatever fails (ENOSPC in the middle
    of the data, an fsync error, the caller's rename), no temp file is left behind.
    """
    tmp = temp_name(directory, name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666 if mode is None else mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if mode is not None:
                os.fchmod(fd, mode)
            if owner is not None and os.geteuid() == 0:
                os.fchown(fd, *owner)
            os.fsync(fd)
        finally:
            os.close(fd)
        yield tmp
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass  # renamed into place
        except OSError:
            pass  # the original error (if any) is the one to report
        else:
            with contextlib.suppress(OSError):
                fsync_dir(directory)


def atomic_write(path: str | os.PathLike, data: bytes, mode: int | None = None,
                 owner: tuple[int, int] | None = None, tmp_dir: str | None = None) -> None:
    """Put ``data`` at ``path`` all at once: temp, fsync, rename, fsync the dir(s).

    ``tmp_dir`` (default: the dir of ``path``) must be on the same filesystem;
    filed stores keep their temps at the store root, where filed never looks.
    """
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    tmp_dir = tmp_dir or d
    with written_temp(tmp_dir, os.path.basename(path), data, mode, owner) as tmp:
        os.rename(tmp, path)
    fsync_dir(d)
    if os.path.abspath(tmp_dir) != d:
        fsync_dir(tmp_dir)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def replaced(path: str | os.PathLike, binary: bool = False) -> Iterator:
    """A file to stream ``path``'s new content into; renamed over ``path`` when the block ends well.

    For reports, logs, state and metrics, whose content is written piece by piece. A
    symlink's target is replaced, not the link; an existing file keeps its mode, a new
    one gets the umask's. Whatever goes wrong (a full disk, a signal), the temp is removed.
    """
    target = os.path.realpath(path)
    d = os.path.dirname(target)
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    tmp = temp_name(d, os.path.basename(target))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        fsync_dir(d)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """:func:`replaced` for content already in memory (text or bytes)."""
    with replaced(path, binary=isinstance(data, bytes)) as fh:
        fh.write(data)


def stale_temps(directory: str, name: str) -> list[str]:
    """Temps of ``name`` in ``directory`` whose writing process is gone (killed between create and rename)."""
    stale = []
    prefix = f"{TMP_PREFIX}{name[:160]}."
    for e in os.listdir(directory):
        if not e.startswith(prefix):
            continue
        try:
            pid = int(e[len(prefix):].split(".")[0])
            os.kill(pid, 0)
        except ValueError:
            continue  # not one of ours
        except ProcessLookupError:
            stale.append(os.path.join(directory, e))
        except PermissionError:
            pass  # alive, another user's
    return stale


def remove_temps(directory: str) -> list[str]:
    """Remove the temps a killed run left in ``directory`` (call only under the lock of that dir)."""
    removed = []
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for e in entries:
        if e.startswith(TMP_PREFIX):
            p = os.path.join(directory, e)
            if os.path.isfile(p) and not os.path.islink(p):
                os.unlink(p)
                removed.append(p)
    if removed:
        fsync_dir(directory)
    return removed
