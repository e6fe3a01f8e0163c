"""--memory and --tmpdir: the budget of a scan or check and where its overflow goes (verify/core/spill.py)."""

from __future__ import annotations

import contextlib
import os

import click

from ..core.findingset import using
from ..core.spill import DEFAULT_MEMORY, MIN_MEMORY, Spill, parse_size
from .options import apply_options


class Size(click.ParamType):
    name = "SIZE"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            n = parse_size(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)
        if n < MIN_MEMORY:
            self.fail(f"{value}: give at least 1M", param, ctx)
        return n


def memory_options(f):
    return apply_options(f, [
        click.option("--memory", type=Size(), default=f"{DEFAULT_MEMORY >> 20}M", show_default=True,
                     help="RAM the run may hold for findings and the reference join (e.g. 512M, 4G); past it, "
                          "sorted runs go to --tmpdir, so the peak RSS stays near it however large the store."),
        click.option("--tmpdir", type=click.Path(file_okay=False), default=None,
                     help="Where spill files go past --memory (a private dir, removed at the end) "
                          "[default: $TMPDIR or /tmp]."),
    ])


@contextlib.contextmanager
def budget(memory: int, tmpdir: str | None):
    """The run's :class:`Spill`, active while the block runs (its report included), cleaned up after."""
    with using(Spill(memory, os.path.abspath(tmpdir) if tmpdir else None)) as spill:
        yield spill
