"""--resume and --max-duration, shared by scan and check: the checkpoint a run keeps in --state."""

from __future__ import annotations

import contextlib
import time

import click

from ..core import signals
from ..ops import resume
from ..core.errors import EXIT_TIME_BOXED, UsageError
from .conventions import warn
from .options import apply_options


class Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return value
        try:
            resume.parse_duration(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)
        return value


def resume_options(f):
    opts = [
        click.option("--resume", is_flag=True,
                     help="Continue the run whose finished shards --state DIR keeps (one stopped by --max-duration, "
                          "a signal or a crash) if it was of the same stores and options and began less than "
                          f"{resume.MAX_AGE_S // 86400} days ago; else start afresh (other stores or options: refuse)."),
        click.option("--max-duration", type=Duration(), metavar="DURATION",
                     help="Stop after DURATION (6h, 90m, 3600s), keeping the finished shards in --state, and exit "
                          f"{EXIT_TIME_BOXED}; the next run with --resume continues."),
    ]
    return apply_options(f, opts)


def shards_per_store(shards: int | None, state_dir: str | None, dask_address: str | None, jobs: int) -> int:
    """--shards, else 1, or when a checkpoint is kept :func:`verify.ops.resume.default_shards` (a stop
    loses at most one shard's work)."""
    if shards:
        return shards
    return resume.default_shards(jobs) if state_dir and not dask_address else 1


@contextlib.contextmanager
def checkpointing(state_dir: str | None, command: str, backend, options: dict, resume_flag: bool,
                  max_duration: str | None, dask_address: str | None, quiet: bool, extra: dict | None = None):
    """The run's :class:`verify.ops.resume.Checkpoint` (None without --state or with --dask), its time box started."""
    for flag, given in (("--resume", resume_flag), ("--max-duration", max_duration)):
        if given and not state_dir:
            raise UsageError(f"{flag} needs --state DIR (where the finished shards are kept)")
        if given and dask_address:
            raise UsageError(f"{flag} runs on this machine only, not with --dask")
    if not state_dir or dask_address:
        yield None
        return
    fp = resume.fingerprint(command, backend, options)
    with resume.Checkpoint.held(state_dir, command, fp, resume_flag, lambda line: warn([line]), extra) as kept:
        if kept.resumed and not quiet:
            began = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(kept.meta["began"]))
            click.echo(f"archverify: resuming the run begun {began}: {resume.parts_done(len(kept.parts))}", err=True)
        if max_duration:
            signals.time_box(resume.parse_duration(max_duration))
        with kept.time_boxed(max_duration):
            yield kept


@contextlib.contextmanager
def finished(kept):
    """Around a run's last step (its report, its exit): once that has ended the run (SystemExit),
    the checkpoint goes; if the step failed, the next --resume can still write it."""
    try:
        yield
    except SystemExit:
        if kept is not None:
            kept.finish()
        raise
