"""Options that name the stores, shared by every command that reads them."""

from __future__ import annotations

import functools
import os
import re
import sys

import click

from .. import backends
from ..config import archipelago as config_mod
from ..core.errors import UsageError
from .options import apply_options

PM_CHOICES = ("auto", "on", "off")


def store_options(f=None, *, pithos_migrate: bool = True):
    """--config, --backend and the per-backend flags; explicit flags override the config.

    ``pithos_migrate``: the command's findings depend on it (object_at_risk); a command
    that only rewrites maps does without --pithos-migrate."""
    if f is None:
        return functools.partial(store_options, pithos_migrate=pithos_migrate)
    opts = [
        click.option("--config", "config_path", type=click.Path(readable=False),
                     help="archipelago.conf to read the stores from [default: /etc/archipelago/archipelago.conf "
                          "when no store flags are given]"),
        click.option("--backend", type=click.Choice(backends.names()),
                     help="Store type; taken from the config and the store flags when not given ('mixed': "
                          "one store filed, the other RADOS, e.g. --blocks-dir with --pool). A flag of the "
                          "other type is refused (exit 2), never ignored."),
        click.option("--maps-dir", type=click.Path(readable=False),
                     help="filed: the maps store dir ([blockerm] archip_dir); alone, only the maps store is read."),
        click.option("--blocks-dir", type=click.Path(readable=False),
                     help="filed: the blocks store dir ([blockerb] archip_dir); alone, only the blocks store "
                          "is read."),
    ]
    if pithos_migrate:
        opts.append(pithos_migrate_option)
    else:
        f = _fixed(f, pithos_migrate="auto")
    return apply_options(rados_options(f), opts)


def _fixed(f, **values):
    """``f`` called with ``values`` added: what an option left out of a command stands for."""
    @functools.wraps(f)
    def wrapper(*args, **kw):
        return f(*args, **values, **kw)

    return wrapper


pithos_migrate_option = click.option(
    "--pithos-migrate", "pithos_migrate", type=click.Choice(PM_CHOICES), default="auto", show_default=True,
    help="filed: the effective pithos_migrate; 'off' silences object_at_risk. 'auto' reads it "
         "from --config, else assumes it may be on.")


def rados_options(f=None, *, pools_help: str = ""):
    """The RADOS options: the pools, the Ceph user and cluster (:func:`ceph_options`), and how
    the pools are read. Every command that reaches a pool takes all of them."""
    if f is None:
        return functools.partial(rados_options, pools_help=pools_help)
    opts = [
        click.option("-p", "--pool", help="rados: the maps pool ([blockerm] pool)" + pools_help + "."),
        click.option("--blocks-pool", help="rados: the blocks pool ([blockerb] pool)" + pools_help + "."),
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


CEPH_ARGS = "CEPH_ARGS"
# CEPH_ARGS' spellings of what ceph_options takes (the ceph and rados tools read the same ones)
_CEPH_ENV_FLAGS = {"--id": "client_id", "--user": "client_id", "-n": "ceph_name", "--name": "ceph_name",
                   "-c": "ceph_conf", "--conf": "ceph_conf", "-k": "keyring", "--keyring": "keyring",
                   "--cluster": "cluster"}


def ceph_args(env: str | None = None) -> dict[str, str]:
    """The user, conf, keyring and cluster that $CEPH_ARGS names, as ceph_options' parameter names.

    librados reads the rest of CEPH_ARGS itself (rados_conf_parse_env), but not these: the
    user is fixed when the handle is made and the conf is read before the variable, so the
    ceph tools parse them first, and so does archverify."""
    words = (os.environ.get(CEPH_ARGS, "") if env is None else env).split()
    out: dict[str, str] = {}
    i = 0
    while i < len(words):
        flag, eq, value = words[i].partition("=")
        name = _CEPH_ENV_FLAGS.get(flag)
        if name is not None and not eq:
            if i + 1 >= len(words):
                raise UsageError(f"{CEPH_ARGS}: {flag} without a value")
            value = words[i + 1]
            i += 1
        if name is not None:
            out[name] = value
        i += 1
    return out


def ceph_options(f, what: str = "rados: ", id_default: str = "cephx_id from the config, else admin"):
    """The Ceph CLI's spellings: -c/--conf, --id/--user or -n/--name client.X, -k/--keyring, --cluster,
    and $CEPH_ARGS as the ceph tools read it (a flag on the command line wins over it).

    The command receives ``ceph_conf``, ``client_id`` (without 'client.') and ``keyring``:
    -n is turned into --id, and --cluster NAME into the conf and keyring ceph would read."""

    @functools.wraps(f)
    def wrapper(*args, ceph_name=None, cluster=None, **kw):
        given = {"client_id": kw.pop("client_id", None), "ceph_name": ceph_name, "ceph_conf": kw.pop("ceph_conf", None),
                 "keyring": kw.pop("keyring", None), "cluster": cluster}
        env = ceph_args()
        if given["client_id"] is not None or given["ceph_name"] is not None:  # one user: the command line's
            env.pop("client_id", None), env.pop("ceph_name", None)
        v = {k: given[k] if given[k] is not None else env.get(k) for k in given}
        client_id = v["client_id"]
        if v["ceph_name"] is not None:
            kind, _, ident = v["ceph_name"].partition(".")
            if kind != "client" or not ident:
                raise UsageError(f"-n/--name {v['ceph_name']}: expected client.ID (archverify is a client)")
            if client_id is not None and client_id != ident:
                raise UsageError(f"--id {client_id} and -n/--name {v['ceph_name']} name two users: give one")
            client_id = ident
        ceph_conf, keyring = cluster_paths(v["cluster"], v["ceph_conf"], v["keyring"], client_id)
        return f(*args, ceph_conf=ceph_conf, client_id=client_id, keyring=keyring, **kw)

    opts = [
        click.option("-c", "--conf", "--ceph-conf", "ceph_conf", type=click.Path(dir_okay=False),
                     help=f"{what}ceph.conf [default: librados' search: $CEPH_CONF, /etc/ceph/ceph.conf, ...]."),
        click.option("--id", "--user", "client_id",
                     help=f"{what}cephx user without 'client.' [default: {id_default}]."),
        click.option("-n", "--name", "ceph_name", metavar="client.ID", help=f"{what}cephx user as 'client.ID' "
                     "(the same as --id ID)."),
        click.option("-k", "--keyring", type=click.Path(dir_okay=False), help=f"{what}keyring file."),
        click.option("--cluster", metavar="NAME", help=f"{what}cluster name: read /etc/ceph/NAME.conf "
                     "(and NAME's keyring) as the ceph CLI does [default: ceph]. $CEPH_ARGS may give "
                     "--id/--user, -n/--name, -c/--conf, -k/--keyring and --cluster too; these flags win."),
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


def given_options() -> dict[str, str]:
    """The options typed on this command line (not defaults, not $CEPH_ARGS): name -> as typed."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return {}
    argv = set(sys.argv[1:])
    out = {}
    for p in ctx.command.params:
        if ctx.get_parameter_source(p.name) is click.core.ParameterSource.COMMANDLINE:
            out[p.name] = next((o for o in p.opts + p.secondary_opts if o in argv), p.opts[0] if p.opts else p.name)
    return out


def resolve(config_path, backend, maps_dir, blocks_dir, pithos_migrate, validate=True, paths_only=False,
            **rados_opts):
    """Builds the backend the registry names for the config and flags; validates before any slow work.
    ``paths_only``: only the stores kept as files at paths (migrate-objects; a UsageError when none is)."""
    cfg = None
    if config_path is None and not (maps_dir or blocks_dir or rados_opts.get("pool") or rados_opts.get("blocks_pool")):
        if config_mod.DEFAULT_PATH.exists():
            config_path = str(config_mod.DEFAULT_PATH)
        else:
            raise UsageError("say which stores to scan: --config PATH, or --maps-dir/--blocks-dir (filed), "
                             "or --pool/--blocks-pool (rados)")
    warnings: list[str] = []
    if config_path is not None:
        cfg = config_mod.load(config_path)
        warnings += cfg.warnings
    options = dict(rados_opts, maps_dir=maps_dir, blocks_dir=blocks_dir, pithos_migrate=pithos_migrate)
    if paths_only:
        backend, roles = backends.path_stores(cfg, options)
        if roles != backends.ROLES:
            options["roles"] = roles  # a mixed config: its store kept in a dir alone
    return backends.from_options(cfg, backend, validate, given_options(), **options), warnings


def unread_stores(be, config_path) -> list[str]:
    """What a command that reads both stores says at its end when the flags named only one
    (``--maps-dir`` alone): the other store was not read. (At the end, so that a run refused
    later is still one line; with --config the stores are the config's.)"""
    if config_path is not None:
        return []
    return [f"only the {backends.ROLES[1 - backends.ROLES.index(role)]} store was read: the {role} store was "
            f"not named (--{flag.replace('_', '-')}, or --config)" for role, flag in backends.unnamed_stores(be)]


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


def jobs_option(f=None, *, note: str = ""):
    """-j/--jobs, with one default for every command (default_read_jobs): each of them, the
    writers too, mostly waits on metadata reads and renames of one store."""
    if f is None:
        return functools.partial(jobs_option, note=note)

    @click.option("-j", "--jobs", type=click.IntRange(1, 4096), default=None,
                  help=f"Parallel workers [default: {READ_JOBS_PER_CPU} per CPU, at most {READ_JOBS_MAX}: threads "
                       f"waiting for the disk are cheap{note}]; on NFS larger values help (e.g. 64 or 128).")
    @functools.wraps(f)
    def wrapper(*args, jobs=None, **kw):
        return f(*args, jobs=jobs if jobs is not None else default_read_jobs(), **kw)

    return wrapper


def pithos_db_option(help: str):  # noqa: A002 - click's own word
    """--pithos-db URL, the one spelling of Pithos's database (--db stays as a hidden alias)."""

    def deco(f):
        @functools.wraps(f)
        def wrapper(*args, pithos_db=None, old_db=None, **kw):
            if pithos_db is not None and old_db is not None and pithos_db != old_db:
                raise UsageError("--pithos-db and --db name two databases: give one (--pithos-db)")
            return f(*args, pithos_db=pithos_db if pithos_db is not None else old_db, **kw)

        opts = [click.option("--pithos-db", "pithos_db", metavar="URL",
                             help=help + " postgresql://USER@HOST[:PORT]/DB; no password here: use PGPASSWORD "
                                         "or ~/.pgpass."),
                click.option("--db", "old_db", metavar="URL", hidden=True)]
        return apply_options(wrapper, opts)

    return deco
