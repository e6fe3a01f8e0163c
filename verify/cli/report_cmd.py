"""``archverify report``: the runs kept by ``check --state DIR`` as one self-contained HTML page."""

from __future__ import annotations

import os

import click

from ..report import html as html_report
from ..core.errors import OutputError
from .conventions import Run, conventions, state_option, warn
from .output_options import check_outputs, opened_output
from .exit_status import CREATES, exit_status


@exit_status(CREATES)
@click.command("report")
@state_option(required=True, help="The state dir that 'archverify check --state DIR' keeps its runs in.")
@click.option("--html", "html_path", required=True, type=click.Path(dir_okay=False),
              help="Write the page to FILE (atomically: a reader never sees half a page).")
@conventions(creates="the --html page")
def command(state_dir, html_path, run: Run):
    """Write the findings of the runs kept in --state as one HTML page.

    The last run's findings by kind and by store, and each kind's count over
    every run kept, drawn as charts. The page needs no network to be viewed:
    mail it, or put it where a web server serves it. Read-only on the state dir;
    it only creates or replaces its own page, so it needs no --yes (--dry-run
    reads the runs and writes nothing).

    \b
      archverify report --state /var/lib/archverify --html /var/www/html/archverify.html
    """
    check_outputs({}, output=html_path)
    history = html_report.load_history(state_dir)
    page = html_report.render(history, state_dir)
    if not run.dry_run:
        try:
            with opened_output(html_path) as fh:
                fh.write(page)
        except OSError as e:
            raise OutputError(f"{html_path}: cannot write the report: {e.strerror or e}") from None
    warn(f"{os.path.join(state_dir, 'runs', u)} (left out of the page)" for u in history.unreadable)
    last = history.runs[-1]
    findings = sum(last.per_kind.values())
    if not run.human:
        run.emit(html=os.path.abspath(html_path), written=not run.dry_run, runs=len(history.runs),
                 last_findings=findings, state=os.path.abspath(state_dir))
    else:
        run.say(f"{'would write' if run.dry_run else 'wrote'} {html_path}: {len(history.runs)} runs, "
                f"the last with {findings} findings")
