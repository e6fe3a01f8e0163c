"""--output/--logdir/--max-shown/--progress, shared by scan, check and pithos-check (their
--format is the common one of :mod:`.conventions`); the one output step of those commands;
and the check of every output path before any work."""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import sys

import click

from ..report import render as report
from ..durable.atomic import replaced
from ..core.errors import OutputError
from ..core.progress import DEFAULT_INTERVAL
from .conventions import warn  # noqa: F401 - where the commands have always found it
from .options import apply_options

STDOUT = "-"

REPORT_FORMAT_HELP = ("human: the findings for people, errors first; json: one document {tool, version, command, "
                      "..., warnings}; jsonl: a finding per line, then that document without the findings.")

def progress_option(totals: str = ""):
    """--progress/--no-progress; ``totals``: where this command's bars get a total from."""
    return click.option(
        "--progress/--no-progress", default=None,
        help=f"Progress on stderr. At a terminal a bar per stage{totals}. Elsewhere (a systemd unit, cron) only "
             f"with --progress, as the shipped unit gives it: a plain line when a stage starts and ends and every "
             f"{DEFAULT_INTERVAL:g} s between, for the journal [default: on at a terminal, off elsewhere].")


max_shown_option = click.option(
    "--max-shown", type=click.IntRange(0), default=report.DEFAULT_SHOWN, show_default=True,
    help="human: findings listed per kind (-v: all of them).")


def output_options(f=None, *, totals: str = ""):
    """-o, --logdir, --max-shown and --progress; ``totals`` as for :func:`progress_option`."""
    if f is None:
        return functools.partial(output_options, totals=totals)
    opts = [
        click.option("-o", "--output", type=click.Path(allow_dash=True),
                     help="Write the report to FILE (atomically) instead of stdout ('-': stdout)."),
        click.option("--logdir", type=click.Path(),
                     help="Also write KIND.log per finding kind into DIR (one finding per line), like the old tool's logs."),
        max_shown_option,
        progress_option(totals),
    ]
    return apply_options(f, opts)


@contextlib.contextmanager
def opened_output(path):
    """stdout (no path, or ``-``), or a temp file renamed over ``path`` when the report is complete.

    Only a regular file (or a new one) is replaced: a device, a FIFO or /dev/stdout
    is written in place, never renamed over. A symlink's target is replaced, not the
    link, and an existing file keeps its mode (a new one gets the umask's).
    """
    if path is None or path == STDOUT:
        yield sys.stdout
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        with open(path, "w", encoding="utf-8") as fh:
            yield fh
        return
    with replaced(path) as fh:
        yield fh


def _file_output(path, what: str, in_place_ok: bool = False) -> None:
    """A file we will create or replace: its dir must exist and take new files.

    ``in_place_ok``: a device or FIFO is written in place (the report); otherwise only a
    regular file may be there, since it is renamed over (never over /dev/null)."""
    if os.path.isdir(path):
        raise OutputError(f"{path}: cannot write the {what}: it is a directory")
    if not in_place_ok and os.path.exists(path) and not os.path.isfile(path):
        raise OutputError(f"{path}: cannot write the {what}: not a regular file")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise OutputError(f"{path}: cannot write the {what}: permission denied")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise OutputError(f"{path}: cannot write the {what}: {d} is not a directory")
    if not os.access(d, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot write the {what}: no permission to create files in {d}")


def _dir_output(path, what: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{path}: cannot create the {what}: {e.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot write the {what}: permission denied")


def check_outputs(stores: dict, *, output=None, logdir=None, state=None, lock=None, prometheus_textfile=None) -> None:
    """Fail before a long run, not after it, when an output could not be written or would
    land inside a store (``stores``: the backend's description, after the config is read).

    (These checks are ours rather than click.Path's so that each is one line.)"""
    refuse_outputs_in_stores(stores, output=output, logdir=logdir, state=state, lock=lock,
                             prometheus_textfile=prometheus_textfile)
    if output is not None and output != STDOUT:
        _file_output(output, "report", in_place_ok=True)
    if prometheus_textfile is not None:
        _file_output(prometheus_textfile, "metrics")
    if lock is not None:
        _file_output(lock, "lock file")
    if logdir is not None:
        _dir_output(logdir, "log dir")
    if state is not None:
        _dir_output(state, "state dir")


def _inside(path: str, root: str) -> bool:
    path, root = os.path.realpath(path), os.path.realpath(root)
    return os.path.commonpath([path, root]) == root


def refuse_outputs_in_stores(stores: dict, **outputs) -> None:
    """An output inside a store would be reported as a stray entry by the next run, or
    mistaken for an object: refuse it (``outputs``: option name -> path or None)."""
    dirs = [info["dir"] for info in stores.values() if info.get("dir")]
    for option, path in outputs.items():
        if path is None or path == STDOUT:
            continue
        for d in dirs:
            if _inside(path, d):
                raise OutputError(f"--{option.replace('_', '-')} {path}: inside the store {d}; "
                                  "write it outside the stores")


def render(fmt, output, logdir, max_shown, head: report.Head, sections, report_wanted: bool = True) -> None:
    """The one output step: the report to ``output`` (or stdout), then the ``--logdir`` files."""
    try:
        if report_wanted:
            with opened_output(output) as out:
                report.render(fmt, out, head, sections, max_shown)
        if logdir:
            report.write_logdir(logdir, head.summary)
    except BrokenPipeError:
        raise
    except OSError as e:
        where = e.filename or (output if output != STDOUT else None) or logdir or "stdout"
        raise OutputError(f"{where}: cannot write the report: {e.strerror or e}") from None



def report_and_exit(run, command: str, backend_name: str, stores: dict, summary, sections, output, logdir,
                    max_shown) -> None:
    """The end of a read-only command: its report (or only the --quiet line), then its exit code."""
    head = report.Head(command, backend_name, stores, summary, tuple(run.warnings))
    render(run.fmt, output, logdir, max_shown, head, sections, report_wanted=bool(output) or not (run.quiet and run.human))
    if run.quiet and run.human:
        click.echo(report.quiet_line(command, summary))
    sys.exit(summary.exit_code)
