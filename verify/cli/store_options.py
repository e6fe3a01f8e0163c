"""Options that name the stores, shared by every command that reads them."""

from __future__ import annotations

import functools
import os
import re

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
                     help="Store type; taken from the config and the store flags when not given ('mixed': "
                          "one store filed, the other RADOS, e.g. --blocks-dir with --pool)."),
        click.option("--maps-dir", type=click.Path(readable=False), help="filed: the maps store dir ([blockerm] archip_dir)."),
        click.option("--blocks-dir", type=click.Path(readable=False), help="filed: the blocks store dir ([blockerb] archip_dir)."),
        click.option("--pithos-migrate", "pithos_migrate", type=click.Choice(PM_CHOICES), default="auto", show_default=True,
                     help="filed: the effective pithos_migrate; 'off' silences object_at_risk. 'auto' reads it "
                          "from --config, else assumes it may be on."),
        click.option("--pool", help="rados: the maps pool ([blockerm] pool)."),
        click.option("--blocks-pool", help="rados: the blocks pool ([blockerb] pool)."),
        ceph_options,
        click.option("--namespace", help="rados: object namespace in both pools."),
        click.option("--inflight", type=click.IntRange(1, 65536), default=256, show_default=True,
                     help="rados: reads in flight at once."),
        click.option("--connect-timeout", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True,
                     help="rados: seconds to wait for the cluster before giving up."),
        click.option("--op-timeout", type=click.FloatRange(1, 3600), default=30.0, show_default=True,
                     help="rados: seconds an OSD may take to answer one read (rados_osd_op_timeout); "
                          "an unanswered one stops the run with exit 2."),
    ]
    return apply_options(f, opts)


def ceph_options(f, what: str = "rados: ", id_default: str = "cephx_id from the config, else admin"):
    """The Ceph CLI's spellings: -c/--conf, --id or -n/--name client.X, -k/--keyring, --cluster.

    The command receives ``ceph_conf``, ``client_id`` (without 'client.') and ``keyring``:
    -n is turned into --id, and --cluster NAME into the conf and keyring ceph would read."""

    @functools.wraps(f)
    def wrapper(*args, ceph_name=None, cluster=None, **kw):
        client_id = kw.pop("client_id", None)
        if ceph_name is not None:
            kind, _, ident = ceph_name.partition(".")
            if kind != "client" or not ident:
                raise UsageError(f"-n/--name {ceph_name}: expected client.ID (archverify is a client)")
            if client_id is not None and client_id != ident:
                raise UsageError(f"--id {client_id} and -n/--name {ceph_name} name two users: give one")
            client_id = ident
        ceph_conf, keyring = cluster_paths(cluster, kw.pop("ceph_conf", None), kw.pop("keyring", None), client_id)
        return f(*args, ceph_conf=ceph_conf, client_id=client_id, keyring=keyring, **kw)

    opts = [
        click.option("-c", "--conf", "--ceph-conf", "ceph_conf", type=click.Path(dir_okay=False),
                     help=f"{what}ceph.conf [default: librados' search: $CEPH_CONF, /etc/ceph/ceph.conf, ...]."),
        click.option("--id", "client_id", help=f"{what}cephx user without 'client.' [default: {id_default}]."),
        click.option("-n", "--name", "ceph_name", metavar="client.ID", help=f"{what}cephx user as 'client.ID' "
                     "(the same as --id ID)."),
        click.option("-k", "--keyring", type=click.Path(dir_okay=False), help=f"{what}keyring file."),
        click.option("--cluster", metavar="NAME", help=f"{what}cluster name: read /etc/ceph/NAME.conf "
                     "(and NAME's keyring) as the ceph CLI does [default: ceph]."),
    ]
    return apply_options(wrapper, opts)


CLUSTER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def cluster_paths(cluster, ceph_conf, keyring, client_id):
    """ceph.conf and keyring for ``--cluster NAME``, searched where ceph's tools search them;
    explicit -c/-k and $CEPH_CONF win. The default cluster 'ceph' changes nothing."""
    if cluster is None or cluster == "ceph":
        return ceph_conf, keyring
    if not CLUSTER_NAME.fullmatch(cluster):
        raise UsageError(f"--cluster {cluster!r}: not a cluster name (letters, digits, '_', '-', '.')")
    if ceph_conf is None and not os.environ.get("CEPH_CONF"):
        places = [f"/etc/ceph/{cluster}.conf", os.path.expanduser(f"~/.ceph/{cluster}.conf"), f"{cluster}.conf"]
        ceph_conf = next((p for p in places if os.path.isfile(p)), None)
        if ceph_conf is None:
            raise UsageError(f"--cluster {cluster}: no {cluster}.conf in {', '.join(places)}; give -c/--conf PATH")
    if keyring is None and ceph_conf is not None and not _names_keyring(ceph_conf):
        user = f"client.{client_id or 'admin'}"
        keyring = next((k for k in (f"/etc/ceph/{cluster}.{user}.keyring", f"/etc/ceph/{cluster}.keyring")
                        if os.path.isfile(k)), None)
    return ceph_conf, keyring


def _names_keyring(conf: str) -> bool:
    """Does ceph.conf set its own keyring (which a keyring we found must then not override)?"""
    try:
        with open(conf, encoding="utf-8", errors="replace") as fh:
            return any(re.match(r"\s*keyring\s*=", line) for line in fh)
    except OSError:
        return False  # the backend reports an unreadable ceph.conf, with its path


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
    types = {role: sc.type for role, sc in cfg.stores.items()} if cfg is not None else None
    kind = backends.choose(backend, types, options)
    return kind.build(cfg, validate=validate, **options), warnings


READ_JOBS_PER_CPU = 8  # a walk's threads mostly wait for the disk: see default_read_jobs
READ_JOBS_MAX = 64


def default_read_jobs(cpus: int | None = None) -> int:
    """Threads for a command that only reads a store: 8 per CPU, at most 64.

    A walk of a store that is not all in the page cache waits on one metadata read
    at a time per thread, so the disk idles unless many are queued. Measured on a
    200k-file tree (docs/benchmarks.md): from a cold cache 2 threads took 18.7 s,
    4 took 10.4 s, 16 took 6.7 s and 32 no less; from a warm cache every value from
    2 to 32 used the same CPU time. Past 64 only slow NFS servers gain (-j 128)."""
    cpus = cpus or os.cpu_count() or 1
    return min(READ_JOBS_MAX, READ_JOBS_PER_CPU * cpus)


def jobs_option(f=None, *, reads_only: bool = False):
    """-j/--jobs. ``reads_only`` commands (scan, check, pithos-check) default to
    default_read_jobs(); the writers keep one thread per CPU."""
    if f is None:
        return functools.partial(jobs_option, reads_only=reads_only)
    default = (f"{READ_JOBS_PER_CPU} per CPU, at most {READ_JOBS_MAX}: threads waiting for the disk are cheap"
               if reads_only else "number of CPUs")

    @click.option("-j", "--jobs", type=click.IntRange(1, 4096), default=None,
                  help=f"Parallel workers [default: {default}]; on NFS larger values help (e.g. 64 or 128).")
    @functools.wraps(f)
    def wrapper(*args, jobs=None, **kw):
        if jobs is None:
            jobs = default_read_jobs() if reads_only else os.cpu_count() or 1
        return f(*args, jobs=jobs, **kw)

    return wrapper
