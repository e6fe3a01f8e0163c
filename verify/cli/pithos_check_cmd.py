"""``archverify pithos-check``: every map the Pithos database needs, found in the maps store."""

from __future__ import annotations

import click

from .. import backends
from ..core import signals
from ..report import pithos as pithos_report, render as report
from ..ops.pithos import db as pithosdb
from ..core.progress import Progress
from ..ops.scan import estimated, progress_bar
from .conventions import conventions
from .output_options import REPORT_FORMAT_HELP, check_outputs, output_options, report_and_exit, warn
from .limit_options import announce, limit_options
from .store_options import jobs_option, pithos_db_option, resolve, store_options
from .exit_status import READS, READS_STOPPED, exit_status


@exit_status({0: "every map found, with its size", 1: "findings", 2: READS[2] + ", the database unreachable"},
             READS_STOPPED)
@click.command("pithos-check")
@pithos_db_option(f"Pithos's database [default: ${pithosdb.ENV_URL}]:")
@click.option("--orphans", is_flag=True,
              help="Also list maps in the store that no Pithos version names (info; walks the maps store, "
                   "keeps every map name in memory).")
@store_options
@jobs_option
@limit_options
@conventions(formats=report.FORMATS, format_help=REPORT_FORMAT_HELP)
@output_options(totals=" with PostgreSQL's estimate of the rows as its total")
def command(pithos_db, orphans, config_path, backend, maps_dir, blocks_dir, pithos_migrate, jobs, limits, run, output,
            logdir, max_shown, progress, **rados_opts):
    """Check that every map Pithos's database needs exists in the maps store, with the right size.

    Streams table 'versions' (rows with a mapfile) in a read-only transaction and
    looks each map up as the mapper would: v0 (on filed at its v0.4 or old Pithos
    path), v1 (archip_NAME) or v2, in a filed maps dir or a RADOS maps pool.
    Snapshot rows (archip:NAME) are looked up as NAME. Never writes to the database
    or the store. Examples:

    \b
      PGPASSWORD=... archverify pithos-check --pithos-db postgresql://pithos@db1/pithos --config /etc/archipelago/archipelago.conf
      archverify pithos-check --pithos-db postgresql://pithos@db1/pithos --maps-dir /srv/pithos/data/maps --format json
      archverify pithos-check --pithos-db postgresql://pithos@db1/pithos --pool maps -c /etc/ceph/ceph.conf
    """
    url = pithosdb.resolve_url(pithos_db)  # validate before any slow work
    be, warnings = resolve(config_path, backend, maps_dir, blocks_dir, pithos_migrate, **rados_opts)
    warn(warnings)
    check_outputs(be.describe(), output=output, logdir=logdir)
    lookup = backends.map_lookup(be, jobs)
    announce(limits)
    try:
        bars = Progress(progress)
        rows = pithosdb.estimated_rows(url) if bars.enabled else None  # the bar's total, from the catalogue
        if rows:  # under --objects-per-second its duration is the first ETA, before a batch is done
            bars.expected["pithos"] = estimated(rows, limits)
        with progress_bar(bars, "pithos", "checking Pithos versions", unit="row") as bar:
            summary = pithosdb.check(url, lookup, orphans=orphans, progress=bar.update)
    finally:
        lookup.close()
    signals.work_done()
    stores = {"maps": be.describe()["maps"], "pithos_db": {"url": pithosdb.safe(url)}}
    report_and_exit(run, "pithos-check", be.name, stores, summary, pithos_report.sections(summary, run.verbose, stores),
                    output, logdir, max_shown)
