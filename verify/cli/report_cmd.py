"""``archverify report``: the runs kept by ``check --state DIR`` as one self-contained HTML page."""

from __future__ import annotations

import click

from .. import html_report
from ..errors import OutputError
from .output_options import check_outputs, opened_output


@click.command("report")
@click.option("--state", "state_dir", required=True, type=click.Path(file_okay=False),
              help="The state dir that 'archverify check --state DIR' keeps its runs in.")
@click.option("--html", "html_path", required=True, type=click.Path(dir_okay=False),
              help="Write the page to FILE (atomically: a reader never sees half a page).")
def command(state_dir, html_path):
    """Write the findings of the runs kept in --state as one HTML page.

    The last run's findings by kind and by store, and each kind's count over
    every run kept, drawn as charts. The page needs no network to be viewed:
    mail it, or put it where a web server serves it. Read-only on the state dir.

    \b
      archverify report --state /var/lib/archverify --html /var/www/html/archverify.html
    """
    check_outputs({}, output=html_path)
    history = html_report.load_history(state_dir)
    page = html_report.render(history, state_dir)
    try:
        with opened_output(html_path) as fh:
            fh.write(page)
    except OSError as e:
        raise OutputError(f"{html_path}: cannot write the report: {e.strerror or e}") from None
    last = history.runs[-1]
    click.echo(f"wrote {html_path}: {len(history.runs)} runs, the last with {sum(last.per_kind.values())} findings")
    for u in history.unreadable:
        click.echo(f"archverify: warning: {state_dir}/runs/{u} (left out of the page)", err=True)
