"""``archverify scan``: what was not migrated, fast, read-only."""

from __future__ import annotations

import click

from .. import nativejob, report
from .. import scan as scan_op
from ..progress import Progress
from .conventions import conventions
from .dask_options import dask_options
from .output_options import REPORT_FORMAT_HELP, check_outputs, output_options, report_and_exit, warn
from .store_options import jobs_option, resolve, store_options, unread_stores
from .exit_status import READS, READS_STOPPED, exit_status


@exit_status(READS, READS_STOPPED)
@click.command("scan")
@store_options
@jobs_option
@conventions(formats=report.FORMATS, format_help=REPORT_FORMAT_HELP)
@output_options(totals=" (on RADOS with the pools' object count as its total)")
@dask_options
def command(config_path, backend, maps_dir, blocks_dir, pithos_migrate, jobs, run, output, logdir, max_shown,
            progress, dask_address, shards, dask_timeout, **rados_opts):
    """Report every object and map that was not migrated to Archipelago v0.4.

    Reads map headers (at most 64 bytes each) and directory listings; never
    writes to a store. An object of the maps store under a map's name that holds
    no map signature is a not_a_map finding (exit 1, as a corrupt map). Examples:

    \b
      archverify scan --config /etc/archipelago/archipelago.conf
      archverify scan --maps-dir /srv/archip/maps --blocks-dir /srv/archip/blocks -j 64
      archverify scan --backend rados --pool maps --blocks-pool blocks --conf /etc/ceph/ceph.conf -n client.admin
      archverify scan --config /etc/archipelago/archipelago.conf --dask tcp://head:8786 -j 16
    """
    # with --dask the workers read the stores, so they (not this machine) must see them
    be, warnings = resolve(config_path, backend, maps_dir, blocks_dir, pithos_migrate, validate=not dask_address,
                           **rados_opts)
    warn(warnings)
    stores = be.describe()
    check_outputs(stores, output=output, logdir=logdir)
    if dask_address:
        from .. import distributed

        summary = distributed.scan(be, dask_address, jobs, progress, shards, dask_timeout)
    else:
        summary = scan_op.scan(be, jobs, Progress(progress), shards or 1)
    nativejob.work_done()
    warn(unread_stores(be, config_path))
    report_and_exit(run, "scan", be.name, stores, summary, report.scan_sections(summary, run.verbose, stores),
                    output, logdir, max_shown)
