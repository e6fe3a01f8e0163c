"""--format/--output/--logdir/--progress, shared by scan and check."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile

import click

from .. import report
from ..errors import OutputError
from .options import apply_options


def output_options(f):
    opts = [
        click.option("--format", "fmt", type=click.Choice(["human", "json", "jsonl"]), default="human", show_default=True,
                     help="human: summary and first findings; json: one document; jsonl: a finding per line, then the summary."),
        click.option("-o", "--output", type=click.Path(),
                     help="Write the report to FILE (atomically) instead of stdout."),
        click.option("--logdir", type=click.Path(),
                     help="Also write KIND.log per finding kind into DIR (one finding per line), like the old tool's logs."),
        click.option("--max-shown", type=click.IntRange(0), default=20, show_default=True,
                     help="human: how many findings to list."),
        click.option("--progress/--no-progress", default=None,
                     help="Progress bar on stderr [default: when stderr is a terminal]."),
    ]
    return apply_options(f, opts)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def opened_output(path):
    """stdout, or a temp file renamed over ``path`` when the report is complete.

    Only a regular file (or a new one) is replaced: a device, a FIFO or /dev/stdout
    is written in place, never renamed over. A symlink's target is replaced, not the
    link, and an existing file keeps its mode (a new one gets the umask's).
    """
    if path is None:
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
    target = os.path.realpath(path)
    fd, tmp = tempfile.mkstemp(prefix=".archverify-", dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
        os.chmod(tmp, stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_outputs(output, logdir):
    """Fail before a long scan, not after it, when the report could not be written.

    (These checks are ours rather than click.Path's so that each is one line.)"""
    if output is not None:
        d = os.path.dirname(os.path.abspath(output))
        if os.path.isdir(output):
            raise OutputError(f"{output}: cannot write the report: it is a directory")
        if os.path.exists(output) and not os.access(output, os.W_OK):
            raise OutputError(f"{output}: cannot write the report: permission denied")
        if not os.path.isdir(d):
            raise OutputError(f"{output}: cannot write the report: {d} is not a directory")
        if not os.access(d, os.W_OK | os.X_OK):
            raise OutputError(f"{output}: cannot write the report: no permission to create files in {d}")
    if logdir is not None:
        try:
            os.makedirs(logdir, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{logdir}: cannot create the log dir: {e.strerror}") from None
        if not os.access(logdir, os.W_OK | os.X_OK):
            raise OutputError(f"{logdir}: cannot write the log files: permission denied")


def render(summary, backend_name, stores, fmt, output, logdir, max_shown, command="scan"):
    try:
        with opened_output(output) as out:
            if fmt == "json":
                report.write_json(out, summary, backend_name, stores, command)
            elif fmt == "jsonl":
                report.write_jsonl(out, summary, backend_name, stores, command)
            else:
                report.write_human(out, summary, backend_name, stores, max_shown, command)
        if logdir:
            report.write_logdir(logdir, summary)
    except BrokenPipeError:
        raise
    except OSError as e:
        where = e.filename or output or logdir or "stdout"
        raise OutputError(f"{where}: cannot write the report: {e.strerror or e}") from None


def warn(lines):
    for w in lines:
        click.echo(f"archverify: warning: {w}", err=True)
