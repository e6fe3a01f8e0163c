"""``archverify scan``: what was not migrated, fast, read-only."""

from __future__ import annotations

import click

from ..core import signals
from ..report import render as report
from ..ops import scan as scan_op
from ..core.progress import Progress
from .conventions import conventions, state_option
from .dask_options import dask_options
from .memory_options import budget, memory_options
from .output_options import REPORT_FORMAT_HELP, check_outputs, output_options, report_and_exit, warn
from .resume_options import checkpointing, finished, resume_options, shards_per_store
from .limit_options import announce, limit_options, refuse_with_dask
from .store_options import jobs_option, resolve, store_options, unread_stores
from .exit_status import READS, RESUMABLE_STOPPED, TIME_BOXED, exit_status


@exit_status({**READS, **TIME_BOXED}, RESUMABLE_STOPPED)
@click.command("scan")
@store_options
@jobs_option
@limit_options
@conventions(formats=report.FORMATS, format_help=REPORT_FORMAT_HELP)
@output_options(totals=" (on RADOS with the pools' object count as its total)")
@state_option(help="Keep a checkpoint of each finished shard in DIR, so that a run stopped by --max-duration, "
                   "a signal or a crash continues with --resume (removed when the run completes).")
@resume_options
@memory_options
@dask_options
def command(config_path, backend, maps_dir, blocks_dir, pithos_migrate, jobs, limits, run, output, logdir, max_shown,
            progress, state_dir, resume, max_duration, memory, tmpdir, dask_address, shards, dask_timeout,
            **rados_opts):
    """Report every object and map that was not migrated to Archipelago v0.4.

    Reads map headers (at most 64 bytes each) and directory listings; never
    writes to a store. An object of the maps store under a map's name that holds
    no map signature is a not_a_map finding (exit 1, as a corrupt map). Examples:

    \b
      archverify scan --config /etc/archipelago/archipelago.conf
      archverify scan --maps-dir /srv/archip/maps --blocks-dir /srv/archip/blocks -j 64
      archverify scan --backend rados --pool maps --blocks-pool blocks --conf /etc/ceph/ceph.conf -n client.admin
      archverify scan --config /etc/archipelago/archipelago.conf --dask tcp://head:8786 -j 16
      archverify scan --config /etc/archipelago/archipelago.conf --state /var/lib/archverify --max-duration 6h --resume
    """
    refuse_with_dask(limits, dask_address)
    # with --dask the workers read the stores, so they (not this machine) must see them
    be, warnings = resolve(config_path, backend, maps_dir, blocks_dir, pithos_migrate, validate=not dask_address,
                           **rados_opts)
    warn(warnings)
    stores = be.describe()
    check_outputs(stores, output=output, logdir=logdir, state=state_dir)
    per_store = shards_per_store(shards, state_dir, dask_address, jobs)
    with budget(memory, tmpdir), checkpointing(state_dir, "scan", be, {"shards": per_store}, resume, max_duration,
                                               dask_address, run.quiet) as kept:
        if dask_address:
            from ..cluster import shards as distributed

            summary = distributed.scan(be, dask_address, jobs, progress, shards, dask_timeout)
        else:
            bars = Progress(progress)
            # the estimate lists part of a store that Ceph does not count: only for a capped run's line
            announce(limits, be.estimated_objects() if limits else None, progress=bars)
            summary = scan_op.scan(be, jobs, bars, per_store, kept, limits)
        signals.work_done()
        warn(unread_stores(be, config_path))
        with finished(kept):
            report_and_exit(run, "scan", be.name, stores, summary,
                            report.scan_sections(summary, run.verbose, stores), output, logdir, max_shown)
