"""Replacing a file whole: readers see the old file or the new one, never half of one.

The report (``-o``), the ``--logdir`` files, the ``--state`` runs and the Prometheus
textfile are all written through :func:`replaced`: a temp file in the target's
directory, flushed and fsynced, renamed over the target. Whatever goes wrong (a full
disk, a signal, a bug) the temp file is removed, so no ``.archverify-tmp.*`` file is
left behind by a run that ends.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from typing import IO, Iterator

TMP_PREFIX = ".archverify-tmp."


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def replaced(path: str | os.PathLike, binary: bool = False) -> Iterator[IO]:
    """A file to write ``path``'s new content into; renamed over ``path`` when the block ends well.

    A symlink's target is replaced, not the link. An existing file keeps its mode; a new
    one gets the umask's.
    """
    target = os.path.realpath(path)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=os.path.dirname(target))
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


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    with replaced(path, binary=isinstance(data, bytes)) as fh:
        fh.write(data)
