"""--dask, --shards and --dask-timeout, shared by scan and check."""

from __future__ import annotations

import click

from .options import apply_options


def dask_options(f):
    opts = [
        click.option("--dask", "dask_address", metavar="ADDRESS",
                     help="Run the shards on a Dask cluster: tcp://HOST:PORT of a 'dask scheduler' whose workers "
                          "see the stores, or local:N for N worker processes on this machine. -j is per worker."),
        click.option("--shards", type=click.IntRange(1, 256), default=None,
                     help="Shards per store [default: 1; with --state, where each finished one is kept for --resume, "
                          "16 (256/-j above -j 16); 4 per Dask worker with --dask]."),
        click.option("--dask-timeout", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True,
                     help="Seconds to wait for the Dask scheduler and its first worker."),
    ]
    return apply_options(f, opts)
