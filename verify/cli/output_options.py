"""--format/--output/--logdir/--progress, shared by scan and check."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

import click

from .. import report


def output_options(f):
    opts = [
        click.option("--format", "fmt", type=click.Choice(["human", "json", "jsonl"]), default="human", show_default=True,
                     help="human: summary and first findings; json: one document; jsonl: a finding per line, then the summary."),
        click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
                     help="Write the report to FILE (atomically) instead of stdout."),
        click.option("--logdir", type=click.Path(file_okay=False),
                     help="Also write KIND.log per finding kind into DIR (one finding per line), like the old tool's logs."),
        click.option("--max-shown", type=click.IntRange(0), default=20, show_default=True,
                     help="human: how many findings to list."),
        click.option("--progress/--no-progress", default=None,
                     help="Progress bar on stderr [default: when stderr is a terminal]."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


@contextlib.contextmanager
def opened_output(path):
    """stdout, or a temp file renamed over ``path`` when the report is complete."""
    if path is None:
        yield sys.stdout
        return
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".archverify-", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def render(summary, backend_name, stores, fmt, output, logdir, max_shown, command="scan"):
    with opened_output(output) as out:
        if fmt == "json":
            report.write_json(out, summary, backend_name, stores, command)
        elif fmt == "jsonl":
            report.write_jsonl(out, summary, backend_name, stores, command)
        else:
            report.write_human(out, summary, backend_name, stores, max_shown, command)
    if logdir:
        report.write_logdir(logdir, summary)


def warn(lines):
    for w in lines:
        click.echo(f"archverify: warning: {w}", err=True)
