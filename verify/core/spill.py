"""The memory budget of a run, and the dir its overflow goes to.

``--memory SIZE`` bounds what a run holds at once: past its share of the budget,
the finding set (verify/core/findingset.py) writes sorted runs and the reference join
(verify/native/refjoin.py) key-range partitions to one private dir under ``--tmpdir``.
That dir is made on the first spill and removed when the run ends, however it
ends; a write that fails there (disk full, no permission) ends the run with one
line and exit 2 before anything is reported or saved.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import re
import shutil
import tempfile
from dataclasses import dataclass, field

from .errors import ArchverifyError

DEFAULT_MEMORY = 256 << 20  # bytes: what one node gives a nightly check
MIN_MEMORY = 1 << 20
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
PREFIX = "archverify-spill-"


class SpillError(ArchverifyError):
    """The spill dir cannot be made or written (full, read-only, no permission)."""


def parse_size(text: str) -> int:
    """``256M``, ``256MiB``, ``1g``, ``300000000``: bytes (binary units)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise ValueError(f"{text!r} is not a size (e.g. 256M, 2G)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


@dataclass
class Spill:
    """A run's budget (bytes) and its spill dir, made lazily under ``tmpdir`` (default: $TMPDIR)."""

    memory: int = DEFAULT_MEMORY
    tmpdir: str | None = None
    _dir: str | None = field(default=None, repr=False)
    spilled_bytes: int = 0  # what this run wrote to its spill dir
    _made: int = field(default=0, repr=False)
    made: set = field(default_factory=set)  # what spilled: the ``what`` of each fresh name

    def fresh(self, what: str) -> str:
        """A file name no other spill of this run uses."""
        self._made += 1
        self.made.add(what.rstrip("-0123456789"))
        return f"{what}-{self._made:06d}"

    def share(self, fraction: float) -> int:
        """The part of the budget one holder (finding set, join) may keep in RAM."""
        return max(1, int(self.memory * fraction))

    def path(self, name: str) -> str:
        if self._dir is None:
            base = self.tmpdir or tempfile.gettempdir()
            try:
                self._dir = tempfile.mkdtemp(prefix=PREFIX, dir=base)
            except OSError as e:
                raise self.error(e, base) from None
        return os.path.join(self._dir, name)

    def error(self, e: OSError, where: str | None = None) -> SpillError:
        where = where or self._dir or self.tmpdir or tempfile.gettempdir()
        self.cleanup()
        return SpillError(f"{where}: cannot write spill files past the --memory budget: "
                          f"{e.strerror or e}; give --tmpdir a dir with room or a larger --memory")

    @contextlib.contextmanager
    def writing(self, name: str, mode: str = "wb"):
        """A spill file open for writing; any OSError becomes the run's one-line SpillError."""
        p = self.path(name)
        try:
            with open(p, mode) as fh:
                yield fh
                fh.flush()
                self.spilled_bytes += fh.tell()
        except OSError as e:
            raise self.error(e) from None

    def items(self, path: str, offset: int = 0):
        """The items of a spill file of pickled lists, from the list at byte ``offset`` on."""
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                while True:
                    try:
                        batch = pickle.load(fh)
                    except EOFError:
                        return
                    yield from batch
        except OSError as e:
            raise self.error(e) from None

    def cleanup(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()


class SpillList:
    """A list only appended to and then read in order, in RAM up to ``budget`` bytes, past it in
    one spill file of ``spill`` (without one, all in RAM); ``len`` and iteration, as often as wanted.

    ``size`` is what one item costs in RAM, roughly; items are pickled in batches."""

    BATCH = 4096

    def __init__(self, spill: Spill | None, what: str, budget: int, size=lambda item: 200):
        self.spill, self.what, self.budget, self.size = spill, what, budget, size
        self._buf: list = []
        self._held = self._n = 0
        self._file: str | None = None
        self._fh = None

    def append(self, item) -> None:
        self._buf.append(item)
        self._n += 1
        self._held += self.size(item)
        if self._held > self.budget and self.spill is not None:
            self._flush()

    def _flush(self) -> None:
        if self._file is None:
            self._file = self.spill.path(self.spill.fresh(self.what))
        try:
            with open(self._file, "ab") as fh:
                start = fh.tell()
                for i in range(0, len(self._buf), self.BATCH):
                    pickle.dump(self._buf[i:i + self.BATCH], fh, pickle.HIGHEST_PROTOCOL)
                self.spill.spilled_bytes += fh.tell() - start
        except OSError as e:
            raise self.spill.error(e) from None
        self._buf, self._held = [], 0

    def __len__(self) -> int:
        return self._n

    def __iter__(self):
        if self._file is not None:
            yield from self.spill.items(self._file)
        yield from self._buf

    def __getitem__(self, i):
        """A slice or an index, read from the start (for the first few)."""
        if isinstance(i, slice):
            return list(itertools.islice(iter(self), i.start, i.stop, i.step))
        return next(itertools.islice(iter(self), i, None))

    def __eq__(self, other) -> bool:
        return list(self) == list(other)
