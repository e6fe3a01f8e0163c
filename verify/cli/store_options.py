"""Options that name the stores, shared by every command that reads them."""

from __future__ import annotations

import functools
import os

import click

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
        click.option("--backend", type=click.Choice(["filed", "rados"]),
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
    """Builds the backend from the config and flags; validates before any slow work."""
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
    if backend is None:
        if cfg is not None:
            backend = cfg.stores["maps"].type
        else:
            backend = "rados" if rados_opts.get("pool") else "filed"
    if backend == "filed":
        from ..backends.filed import FiledBackend

        if cfg is not None and cfg.stores["maps"].type != "filed" and not maps_dir:
            raise UsageError(f"{cfg.path}: [blockerm] is a {cfg.stores['maps'].type} store; use --backend rados")
        mdir = maps_dir or (cfg.stores["maps"].archip_dir if cfg else None)
        bdir = blocks_dir or (cfg.stores["blocks"].archip_dir if cfg and cfg.stores["blocks"].type == "filed" else None)
        if not mdir:
            raise UsageError("filed backend needs --maps-dir (or --config)")
        refuse_overlapping_stores(mdir, bdir)
        off = {}
        for role in ("maps", "blocks"):
            if pithos_migrate == "off":
                off[role] = True
            elif pithos_migrate == "auto" and cfg is not None:
                off[role] = cfg.stores[role].known_off
        be = FiledBackend(os.fspath(mdir), os.fspath(bdir) if bdir else None, off)
        if validate:
            be.validate()
        return be, warnings
    from ..backends import rados as rados_backend  # noqa: F401  (needs python-rados or the C extension)

    return rados_backend.from_options(cfg, **rados_opts), warnings


def refuse_overlapping_stores(maps_dir, blocks_dir) -> None:
    """The maps and blocks stores are two trees: one equal to or inside the other would be
    walked twice, its maps taken for blocks and its blocks for maps (false object_missing).
    The rule is config.stores_overlap, the one the config reader applies to archip_dirs."""
    if maps_dir and blocks_dir and config_mod.stores_overlap(maps_dir, blocks_dir):
        raise UsageError(f"the maps store {maps_dir} and the blocks store {blocks_dir} are the same dir or lie "
                         "one inside the other: every file would be counted in both; give each its own dir")


def jobs_option(f):
    @click.option("-j", "--jobs", type=click.IntRange(1, 4096), default=None,
                  help="Parallel workers [default: number of CPUs]; on NFS much larger values help (e.g. 64).")
    @functools.wraps(f)
    def wrapper(*args, jobs=None, **kw):
        return f(*args, jobs=jobs or os.cpu_count() or 1, **kw)

    return wrapper
