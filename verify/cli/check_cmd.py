"""``archverify check``: the scan, every map reference, optionally every byte; made for cron."""

from __future__ import annotations

import contextlib
import sys

import click

from .. import backends
from .. import check as check_op
from .. import check_report, metrics, nativejob, report, runlock, state
from ..errors import ArchverifyError, OutputError, Terminated, UsageError
from ..progress import Progress
from .conventions import conventions, state_option
from .dask_options import dask_options
from .output_options import REPORT_FORMAT_HELP, check_outputs, output_options, render, warn
from .store_options import jobs_option, resolve, store_options
from .exit_status import READS, READS_STOPPED, exit_status


@exit_status({**READS, 2: READS[2] + ", --lock held"}, READS_STOPPED)
@click.command("check")
@store_options
@jobs_option
@conventions(formats=report.FORMATS, format_help=REPORT_FORMAT_HELP)
@output_options(totals=" with its total and ETA: what the previous run kept in --state measured")
@click.option("--verify-data", is_flag=True,
              help="Also hash every Pithos block (64-hex name) and compare with its name: reads all their bytes.")
@click.option("--verify-data-sample", "sample", type=click.FloatRange(0, 1, min_open=True),
              help="With --verify-data: hash only this fraction of the blocks, a different slice each UTC day "
                   "(1/7 = 0.143 covers the store in a week). Implies --verify-data.")
@click.option("--lock", "lock_path", type=click.Path(dir_okay=False),
              help="flock FILE for the whole run; if another run holds it, exit 2 at once.")
@state_option(help="Keep each run's findings (and each stage's count and duration, the next run's progress "
                   "totals and ETAs) in DIR; the summary shows what is new and what was resolved.")
@click.option("--since-last", is_flag=True, help="List the new and the resolved findings (needs --state).")
@click.option("--prometheus-textfile", "prom_path", type=click.Path(dir_okay=False),
              help="Write metrics for node_exporter's textfile collector to FILE (atomically); Debian's collector "
                   "reads /var/lib/prometheus/node-exporter/.")
@dask_options
def command(prom_path, **opts):
    """Prove every map is readable and every object it names is there.

    Runs the scan, then reads every map's entries and checks that each object they
    name exists where Archipelago v0.4 looks (object_missing, object_orphan,
    entry-level map_corrupt), then with --verify-data hashes Pithos blocks
    (object_content_mismatch). A stage that cannot read part of a store stops the
    stages after it. Never writes to a store; -q prints one summary line. Nightly:

    \b
      archverify check --config /etc/archipelago/archipelago.conf --lock /run/lock/archverify.lock \\
          --state /var/lib/archverify --verify-data-sample 0.143 \\
          --prometheus-textfile /var/lib/prometheus/node-exporter/archverify.prom --quiet
      archverify check --config /etc/archipelago/archipelago.conf --dask tcp://head:8786 -j 16
    """
    try:
        _check(prom_path=prom_path, **opts)
    except (ArchverifyError, KeyboardInterrupt) as e:
        # every run leaves its exit code in the textfile, also one that ends before it read anything
        if prom_path and not isinstance(e, (OutputError, UsageError)):
            code = e.exit_code if isinstance(e, ArchverifyError) else 143 if isinstance(e, Terminated) else 130
            with contextlib.suppress(OSError):
                metrics.write_failure(prom_path, code)
        raise


def _check(config_path, backend, maps_dir, blocks_dir, pithos_migrate, jobs, run, output, logdir, max_shown,
           progress, verify_data, sample, lock_path, state_dir, since_last, prom_path,
           dask_address, shards, dask_timeout, **rados_opts):
    if since_last and not state_dir:
        raise UsageError("--since-last needs --state DIR (where the previous run's findings are kept)")
    verify_data = verify_data or sample is not None
    window = check_op.SampleWindow.of(sample)
    # with --dask the workers read the stores, so they (not this machine) must see them
    be, warnings = resolve(config_path, backend, maps_dir, blocks_dir, pithos_migrate, validate=not dask_address,
                           **rados_opts)
    warn(warnings)
    if not backends.supports(be, backends.REFERENCES):
        raise UsageError(f"the {be.name} backend cannot run the reference check yet; use 'scan'")
    for role, section, flags in (("maps", "blockerm", "--maps-dir or --pool"),
                                 ("blocks", "blockerb", "--blocks-dir or --blocks-pool")):
        if role not in be.describe():
            raise UsageError(f"the check needs the {role} store too: give {flags} (or a --config with [{section}])")
    stores = be.describe()
    check_outputs(stores, output=output, logdir=logdir, state=state_dir, lock=lock_path,
                  prometheus_textfile=prom_path)
    with runlock.held(lock_path) if lock_path else contextlib.nullcontext():
        if state_dir:
            state.prepare(state_dir)
        bars = Progress(progress, state.load_expected(state_dir) if state_dir else None)
        if dask_address:
            from .. import distributed_check

            summary = distributed_check.check(be, dask_address, jobs, progress, verify_data, window, shards,
                                              dask_timeout)
        else:
            summary = check_op.check(be, jobs, bars, verify_data, window, shards or 1)
        nativejob.work_done()
        delta = None
        if state_dir:
            delta = state.compare_and_save(state_dir, summary, check_op.ran_stages(summary), window.everything,
                                           bars.measured_dict())
        facts = check_report.check_facts(summary, delta, since_last)
        head = report.Head("check", be.name, stores, summary, tuple(run.warnings))
        render(run.fmt, output, logdir, max_shown, head, check_report.sections(summary, facts, run.verbose, stores),
               report_wanted=bool(output) or not (run.quiet and run.human))
        if prom_path:
            try:
                known = delta is not None and delta.previous is not None  # no baseline: no new/resolved gauges
                metrics.write_textfile(prom_path, summary, len(delta.new) if known else None,
                                       len(delta.resolved) if known else None)
            except OSError as e:
                raise OutputError(f"{prom_path}: cannot write the metrics: {e.strerror or e}") from None
        if run.quiet and run.human:
            click.echo(check_report.quiet_line(summary, facts))
    sys.exit(summary.exit_code)
