"""--objects-per-second and --bytes-per-second: one option set for every command that reads a store's objects."""

from __future__ import annotations

import functools

import click

from ..native import limits as limits_mod
from ..core.errors import UsageError
from .conventions import TOOL, current_run
from .options import apply_options

OBJECTS_HELP = ("Cap on the objects handled per second (each listed, visited or looked up once per pass), e.g. "
                "2000 or 2k; one cap shared by all threads, like rclone's tpslimit. A capped run first says "
                "its caps and, where the store can count its objects, how long it should take [default: no cap].")
BYTES_HELP = ("Cap on the bytes read per second, e.g. 50M (MiB/s), 1.5G or 2000000; one cap shared by all "
              "threads, like rclone's bwlimit [default: no cap].")


def limit_options(f):
    """The caps; the command receives ``limits`` (a :class:`verify.native.limits.Limits`, already in force)."""

    @functools.wraps(f)
    def wrapper(*args, objects_per_second=None, bytes_per_second=None, **kw):
        caps = limits_mod.Limits(
            limits_mod.parse_count(objects_per_second, "--objects-per-second") if objects_per_second else None,
            limits_mod.parse_size(bytes_per_second, "--bytes-per-second") if bytes_per_second else None)
        limits_mod.apply(caps)
        return f(*args, limits=caps, **kw)

    opts = [
        click.option("--objects-per-second", metavar="N", help=OBJECTS_HELP),
        click.option("--bytes-per-second", metavar="SIZE", help=BYTES_HELP),
    ]
    return apply_options(wrapper, opts)


def announce(caps: limits_mod.Limits, objects: int | None = None, passes: int = 1, progress=None) -> None:
    """The start line of a capped run on stderr: the caps and, from the store's object count, the
    estimate of the run's length. Not with -q (its one line is the summary) unless progress is
    shown too (a journal: ``--quiet --progress``, as the shipped unit runs)."""
    run = current_run()
    if not caps or (run is not None and run.quiet and not (progress is not None and progress.enabled)):
        return
    line = caps.describe()
    estimate = limits_mod.estimate_line(objects, caps, passes)
    if estimate:
        line += "; " + estimate
    click.echo(f"{TOOL}: {line}", err=True)


def refuse_with_dask(caps: limits_mod.Limits, dask_address) -> None:
    """The bucket is this process's: Dask workers would each read uncapped."""
    if caps and dask_address:
        raise UsageError("--objects-per-second/--bytes-per-second cap the reads of this machine only: "
                         "not with --dask")
