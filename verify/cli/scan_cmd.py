"""``archverify scan``: what was not migrated, fast, read-only."""

from __future__ import annotations

import sys

import click

from .. import scan as scan_op
from .output_options import check_outputs, output_options, render, warn
from .store_options import jobs_option, resolve, store_options


@click.command("scan")
@store_options
@jobs_option
@output_options
def command(config_path, backend, maps_dir, blocks_dir, pithos_migrate, jobs, fmt, output, logdir, max_shown,
            progress, **rados_opts):
    """Report every object and map that was not migrated to Archipelago v0.4.

    Reads map headers (at most 64 bytes each) and directory listings; never
    writes to a store. Examples:

    \b
      archverify scan --config /etc/archipelago/archipelago.conf
      archverify scan --maps-dir /srv/archip/maps --blocks-dir /srv/archip/blocks -j 64
      archverify scan --backend rados --pool maps --blocks-pool blocks -c /etc/ceph/ceph.conf
    """
    check_outputs(output, logdir)
    be, warnings = resolve(config_path, backend, maps_dir, blocks_dir, pithos_migrate, **rados_opts)
    warn(warnings)
    summary = scan_op.scan(be, jobs, progress)
    render(summary, be.name, be.describe(), fmt, output, logdir, max_shown)
    sys.exit(summary.exit_code)
