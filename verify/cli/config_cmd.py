"""``archverify config``: what archipelago.conf says, and what is wrong with it."""

from __future__ import annotations

import contextlib
import sys

import click

from ..config import archipelago as config_mod
from ..core.errors import ConfigError
from ..ops.nodes import label
from .conventions import conventions, warn
from .node_options import node_options, resolve_nodes
from .store_options import ceph_options
from .exit_status import exit_status


@contextlib.contextmanager
def _pool_checker(ceph_conf, client_id, keyring=None, timeout=5.0):
    """``name -> bool | None`` through librados when it is installed; None: cannot tell. The client,
    connected at the first question, is shut down when the block ends (one left connected when the
    process exits can abort it: verify/backends/rados/clients.py)."""
    try:
        import rados  # type: ignore  # noqa: F401
    except ImportError:
        yield lambda pool: None
        return
    from ..backends.rados import clients as rados_clients
    from ..backends.rados.backend import stderr_swallowed

    cluster = None

    def exists(pool):
        nonlocal cluster
        try:
            if cluster is None:
                cluster = rados_clients.open_client(conffile=ceph_conf or "", rados_id=client_id,
                                                    conf={"keyring": keyring} if keyring else None)
                with stderr_swallowed():  # librados' own lines: the verdict says "cannot tell"
                    cluster.connect(timeout=int(timeout))
            return bool(cluster.pool_exists(pool))
        except Exception:
            return None

    try:
        yield exists
    finally:
        if cluster is not None:
            rados_clients.shutdown(cluster)


@exit_status({0: "no problem", 1: "warnings only",
              2: "errors in the file (or it cannot be read), or a usage error"})
@click.command("config")
@node_options
@ceph_options
@conventions(format_help="json: one document {tool, version, command, nodes, errors, warnings} with every node's "
                         "stores and problems (level, kind, line).")
def command(config_path, nodes_spec, node_cmd, ceph_conf, client_id, keyring, run):
    """Show the stores archipelago.conf names and check it.

    Reads the file as Archipelago does (no inline '#' comments, an indented line
    continues the value above, the last of repeated keys wins) and lists every
    problem: an error where Archipelago would refuse the file or read something
    else than written for the stores (and every other command refuses the file
    with the same line), a warning where it is harmless but suspicious, such as
    'pithos-migrate' spelled with a hyphen (ignored by Archipelago: migration is
    off without anyone knowing). Also checks that store dirs (and pools, with
    -c/--conf) exist here. -q prints only the problems. With --nodes, every node's file is read through
    --node-cmd and checked. The verdicts are listed in docs/config.md.
    """
    nodes, runner = resolve_nodes(nodes_spec, node_cmd)
    with _pool_checker(ceph_conf, client_id, keyring) as pool_exists:
        docs = []
        for node in nodes:
            where = f"{node}:{config_path}" if node is not None else config_path
            try:
                data = runner.read_file(node, config_path)
            except config_mod.UnreadableConfig as e:  # missing, a FIFO, a device, too large: one error for this node
                cfg, problems = None, [e.problem]
            else:
                cfg, problems = config_mod.check(data, where, pool_exists)
            docs.append((node, where, cfg, problems))
    errors = sum(p.level == "error" for _, _, _, ps in docs for p in ps)
    warnings = sum(p.level == "warning" for _, _, _, ps in docs for p in ps)
    if not run.human:
        # the config's warnings are also the run's (stderr and "warnings"), as in every other command
        warn(f"{p}" for _, _, _, ps in docs for p in ps if p.level == "warning")
        run.emit(nodes=[_doc(*d) for d in docs], errors=errors, warning_count=warnings)
    else:
        for d in docs:
            _human(*d, quiet=run.quiet)
    if errors:
        if not run.human:
            sys.exit(ConfigError.exit_code)
        raise ConfigError(f"{errors} error(s) in the config (listed above)")
    sys.exit(1 if warnings else 0)


def _store_doc(sc) -> dict:
    if sc.type == "filed":
        return {"section": sc.section, "type": "file_blocker", "archip_dir": sc.archip_dir, "lock_dir": sc.lock_dir,
                "pithos_migrate": sc.pithos_migrate, "direct": sc.direct, "hyphen_key": sc.hyphen_key}
    return {"section": sc.section, "type": "rados_blocker", "pool": sc.pool, "cephx_id": sc.cephx_id}


def _doc(node, where, cfg, problems) -> dict:
    return {"node": label(node), "path": where,
            "stores": {role: _store_doc(sc) for role, sc in cfg.stores.items()} if cfg else None,
            "roles": cfg.roles if cfg else None,
            "problems": [{"level": p.level, "kind": p.kind, "where": p.where, "message": p.message}
                         for p in problems]}


def _human(node, where, cfg, problems, quiet: bool = False) -> None:
    click.echo(f"{where}:")
    if cfg is not None and not quiet:
        for role, sc in cfg.stores.items():
            if sc.type == "filed":
                click.echo(f"  {role:<6} [{sc.section}] file_blocker archip_dir={config_mod.show(sc.archip_dir)} "
                           f"pithos_migrate={'on' if sc.pithos_migrate else 'off'} "
                           f"direct={'on' if sc.direct else 'off'}"
                           + (" (a 'pithos-migrate' key is ignored)" if sc.hyphen_key else ""))
            else:
                click.echo(f"  {role:<6} [{sc.section}] rados_blocker pool={sc.pool}"
                           + (f" cephx_id={sc.cephx_id}" if sc.cephx_id else ""))
        click.echo(f"  peers  {' '.join(cfg.roles) or '(none)'}")
    for p in problems:
        click.echo(f"  {p.level.upper()}: {p}")
    if not problems and not quiet:
        click.echo(f"  OK ({label(node)})")
