"""``archverify check``: the scan, every map reference, optionally every byte; made for cron."""

from __future__ import annotations

import contextlib
import sys

import click

from .. import backends
from ..ops import check as check_op
from ..report import check as check_report, metrics, render as report
from .. import durable
from ..core import signals
from ..ops import state
from ..core.errors import EXIT_TIME_BOXED, ArchverifyError, OutputError, Terminated, TimeBoxed, UsageError
from ..core.progress import Progress
from ..ops.scan import estimated
from .conventions import conventions, state_option
from .dask_options import dask_options
from .memory_options import budget, memory_options
from .output_options import REPORT_FORMAT_HELP, check_outputs, output_options, render, warn
from .resume_options import checkpointing, resume_options, shards_per_store
from .limit_options import announce, limit_options, refuse_with_dask
from .store_options import jobs_option, resolve, store_options
from .exit_status import READS, RESUMABLE_STOPPED, TIME_BOXED, exit_status


@exit_status({**READS, 2: READS[2] + ", --lock held", **TIME_BOXED}, RESUMABLE_STOPPED)
@click.command("check")
@store_options
@jobs_option
@limit_options
@conventions(formats=report.FORMATS, format_help=REPORT_FORMAT_HELP)
@output_options(totals=" with its total and ETA: what the previous run kept in --state measured")
@click.option("--verify-data", is_flag=True,
              help="Also hash every Pithos block (64-hex name) and compare with its name: reads all their bytes.")
@click.option("--verify-data-sample", "sample", type=click.FloatRange(0, 1, min_open=True),
              help="With --verify-data: hash only this fraction of the blocks, the next slice on each run that "
                   "read its own (counted in --state; without it, one slice per UTC day): 1/7 = 0.143 covers "
                   "the store in 7 runs, however many nights were missed. Implies --verify-data.")
@click.option("--lock", "lock_path", type=click.Path(dir_okay=False),
              help="flock FILE for the whole run; if another run holds it, exit 2 at once.")
@state_option(help="Keep each run's findings (and each stage's count and duration, the next run's progress "
                   "totals and ETAs) in DIR; the summary shows what is new and what was resolved. Also a "
                   "checkpoint of each finished shard and stage, for --resume (removed when the run completes).")
@resume_options
@click.option("--since-last", is_flag=True, help="List the new and the resolved findings (needs --state).")
@click.option("--prometheus-textfile", "prom_path", type=click.Path(dir_okay=False),
              help="Write metrics for node_exporter's textfile collector to FILE (atomically); Debian's collector "
                   "reads /var/lib/prometheus/node-exporter/.")
@memory_options
@click.option("--instance", metavar="NAME",
              help="The archverify_instance label of the metrics (and the name the state and the HTML report "
                   "give the stores) [default: the --config file's name without .conf, else the stores given].")
@dask_options
def command(prom_path, instance, **opts):
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

    With --state, --max-duration 6h and --resume, a night's run stops after 6 hours with
    exit 75 and the next night's continues it; the report of the run that completes is the
    one an uninterrupted run gives.
    """
    instance = instance or metrics.default_instance(opts["config_path"], {
        "maps": opts["maps_dir"] or opts.get("pool"), "blocks": opts["blocks_dir"] or opts.get("blocks_pool")})
    try:
        _check(prom_path=prom_path, instance=instance, **opts)
    except (ArchverifyError, KeyboardInterrupt) as e:
        # every run leaves its exit code in the textfile, also one that ends before it read anything
        if prom_path and not isinstance(e, (OutputError, UsageError)):
            code = (e.exit_code if isinstance(e, ArchverifyError) else 143 if isinstance(e, Terminated)
                    else EXIT_TIME_BOXED if isinstance(e, TimeBoxed) else 130)
            with contextlib.suppress(OSError):
                metrics.write_failure(prom_path, code, instance=instance)
        raise


def _check(config_path, backend, maps_dir, blocks_dir, pithos_migrate, jobs, limits, run, output, logdir, max_shown,
           progress, verify_data, sample, lock_path, state_dir, resume, max_duration, since_last, prom_path,
           instance, memory, tmpdir, dask_address, shards, dask_timeout, **rados_opts):
    if since_last and not state_dir:
        raise UsageError("--since-last needs --state DIR (where the previous run's findings are kept)")
    verify_data = verify_data or sample is not None
    refuse_with_dask(limits, dask_address)
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
    if prom_path and (why := metrics.owner_conflict(prom_path, instance)):
        raise UsageError(why)
    with durable.lock_file(lock_path) if lock_path else contextlib.nullcontext(), budget(memory, tmpdir), \
            contextlib.ExitStack() as stack:
        if state_dir:
            state.prepare(state_dir)
        sampled_before = state.sample_runs(state_dir) if state_dir else None
        window = check_op.SampleWindow.of(sample, sampled_before)
        bars = Progress(progress, state.load_expected(state_dir) if state_dir else None)
        per_store = shards_per_store(shards, state_dir, dask_address, jobs)
        kept = stack.enter_context(checkpointing(
            state_dir, "check", be, {"shards": per_store, "verify_data": verify_data, "sample": sample}, resume,
            max_duration, dask_address, run.quiet, {"window": list(window.as_tuple())}))
        if kept is not None:  # a resumed run reads the sample window its first part read, whatever the day
            window = check_op.SampleWindow(*kept.meta["window"])
        if dask_address:
            from ..cluster import check as distributed_check

            summary = distributed_check.check(be, dask_address, jobs, progress, verify_data, window, shards,
                                              dask_timeout)
        else:
            expected = bars.expected.get("scan")
            # the estimate lists part of a store that Ceph does not count: only where it is shown
            objects = expected.count if expected else be.estimated_objects() if limits or bars.enabled else None
            if objects and expected is None and bars.enabled:  # no previous run: the store's own count
                bars.expected["scan"] = estimated(objects, limits)
            announce(limits, objects, 3 if verify_data else 2, bars)
            summary = check_op.check(be, jobs, bars, verify_data, window, per_store, kept)
        signals.work_done()
        delta = None
        if state_dir:
            stages = check_op.ran_stages(summary)
            read_slice = not window.everything and "data" in stages  # the next run reads the next slice
            delta = state.compare_and_save(state_dir, summary, stages, window.everything, bars.measured_dict(),
                                           (sampled_before or 0) + read_slice, instance=instance, stores=stores)
        facts = check_report.check_facts(summary, delta, since_last)
        head = report.Head("check", be.name, stores, summary, tuple(run.warnings))
        render(run.fmt, output, logdir, max_shown, head, check_report.sections(summary, facts, run.verbose, stores),
               report_wanted=bool(output) or not (run.quiet and run.human))
        if prom_path:
            try:
                known = delta is not None and delta.previous is not None  # no baseline: no new/resolved gauges
                metrics.write_textfile(prom_path, summary, len(delta.new) if known else None,
                                       len(delta.resolved) if known else None, instance=instance)
            except OSError as e:
                raise OutputError(f"{prom_path}: cannot write the metrics: {e.strerror or e}") from None
        if run.quiet and run.human:
            click.echo(check_report.quiet_line(summary, facts))
        if kept is not None:
            kept.finish()  # the run is complete: nothing to resume
    sys.exit(summary.exit_code)
