"""Options that name the stores, shared by every command that reads them."""

from __future__ import annotations

import functools
import os

import click

from .. import backends
from .. import config as config_mod
from ..errors import UsageError
from .options import apply_options

PM_CHOICES = ("auto", "on", "off")


def store_options(f):
    """--config, --backend and the per-backend flags; explicit flags override the config."""
    opts = [
        click.option("--config", "config_path", type=click.Path(readable=False),
                     help="archipelago.conf to read the stores from [default: /etc/archipelago/archipelago.conf "
                          "when no store flags are given]"),
        click.option("--backend", type=click.Choice(backends.names()),
                     help="Store type; taken from the config when not given."),
        click.option("--maps-dir", type=click.Path(readable=False), help="filed: the maps store dir ([blockerm] archip_dir)."),
        click.option("--blocks-dir", type=click.Path(readable=False), help="filed: the blocks store dir ([blockerb] archip_dir)."),
        click.option("--pithos-migrate", "pithos_migrate", type=click.Choice(PM_CHOICES), default="auto", show_default=True,
                     help="filed: the effective pithos_migrate; 'off' silences object_at_risk. 'auto' reads it "
                          "from --config, else assumes it may be on."),
        click.option("--pool", help="rados: the maps pool ([blockerm] pool)."),
        click.option("--blocks-pool", help="rados: the blocks pool ([blockerb] pool)."),
        click.option("-c", "--ceph-conf", type=click.Path(dir_okay=False),
                     help="rados: ceph.conf [default: librados' search: $CEPH_CONF, /etc/ceph/ceph.conf, ...]."),
        click.option("--id", "client_id", help="rados: cephx user without 'client.' [default: cephx_id from the config, else admin]."),
        click.option("--keyring", type=click.Path(dir_okay=False), help="rados: keyring file."),
        click.option("--namespace", help="rados: object namespace in both pools."),
        click.option("--inflight", type=click.IntRange(1, 65536), default=256, show_default=True,
                     help="rados: reads in flight at once."),
        click.option("--connect-timeout", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True,
                     help="rados: seconds to wait for the cluster before giving up."),
    ]
    return apply_options(f, opts)


def resolve(config_path, backend, maps_dir, blocks_dir, pithos_migrate, validate=True, **rados_opts):
    """Builds the backend the registry names for the config and flags; validates before any slow work."""
    cfg = None
    if config_path is None and not (maps_dir or blocks_dir or rados_opts.get("pool")):
        if config_mod.DEFAULT_PATH.exists():
            config_path = str(config_mod.DEFAULT_PATH)
        else:
            raise UsageError("say which stores to scan: --config PATH, or --maps-dir/--blocks-dir (filed), "
                             "or --pool (rados)")
    warnings: list[str] = []
    if config_path is not None:
        cfg = config_mod.load(config_path)
        warnings += cfg.warnings
    options = dict(rados_opts, maps_dir=maps_dir, blocks_dir=blocks_dir, pithos_migrate=pithos_migrate)
    kind = backends.choose(backend, cfg.stores["maps"].type if cfg is not None else None, options)
    return kind.build(cfg, validate=validate, **options), warnings


def jobs_option(f):
    @click.option("-j", "--jobs", type=click.IntRange(1, 4096), default=None,
                  help="Parallel workers [default: number of CPUs]; on NFS much larger values help (e.g. 64).")
    @functools.wraps(f)
    def wrapper(*args, jobs=None, **kw):
        return f(*args, jobs=jobs or os.cpu_count() or 1, **kw)

    return wrapper
