"""``archverify config``: what archipelago.conf says, and what is wrong with it."""

from __future__ import annotations

import sys

import click

from .. import config as config_mod
from ..errors import ConfigError
from ..nodes import label
from .node_options import node_options, resolve_nodes


def _pool_checker(ceph_conf, client_id, timeout=5.0):
    """``name -> bool | None`` through librados when it is installed; None: cannot tell."""
    try:
        import rados  # type: ignore
    except ImportError:
        return lambda pool: None
    cluster = None

    def exists(pool):
        nonlocal cluster
        try:
            if cluster is None:
                cluster = rados.Rados(conffile=ceph_conf or "", rados_id=client_id)
                cluster.connect(timeout=int(timeout))
            return bool(cluster.pool_exists(pool))
        except Exception:
            return None

    return exists


@click.command("config")
@node_options
@click.option("-c", "--ceph-conf", type=click.Path(dir_okay=False), help="rados: ceph.conf to check that pools exist.")
@click.option("--id", "client_id", help="rados: cephx user without 'client.' [default: admin].")
def command(config_path, nodes_spec, node_cmd, ceph_conf, client_id):
    """Show the stores archipelago.conf names and check it.

    Reports missing sections, unknown blocker types, store dirs or pools that do
    not exist, values Archipelago would refuse, and 'pithos-migrate' spelled with
    a hyphen (ignored by Archipelago: migration is off without anyone knowing).
    With --nodes, every node's file is read through --node-cmd and checked.
    Exit code: 0 fine, 1 warnings, 2 errors.
    """
    nodes, runner = resolve_nodes(nodes_spec, node_cmd)
    pool_exists = _pool_checker(ceph_conf, client_id)
    errors = warnings = 0
    for node in nodes:
        where = f"{node}:{config_path}" if node is not None else config_path
        text = runner.read_file(node, config_path).decode("utf-8", "replace")
        cfg, problems = config_mod.check(text, where, pool_exists)
        click.echo(f"{where}:")
        if cfg is not None:
            for role, sc in cfg.stores.items():
                if sc.type == "filed":
                    pm = "on" if sc.pithos_migrate else "off"
                    click.echo(f"  {role:<6} [{sc.section}] file_blocker archip_dir={sc.archip_dir} pithos_migrate={pm}"
                               + (" (a 'pithos-migrate' key is ignored)" if sc.hyphen_key else ""))
                else:
                    click.echo(f"  {role:<6} [{sc.section}] rados_blocker pool={sc.pool}"
                               + (f" cephx_id={sc.cephx_id}" if sc.cephx_id else ""))
            click.echo(f"  peers  {' '.join(cfg.roles) or '(none)'}")
        for p in problems:
            click.echo(f"  {p.level.upper()}: {p.message}")
        errors += sum(p.level == "error" for p in problems)
        warnings += sum(p.level == "warning" for p in problems)
        if not problems:
            click.echo(f"  OK ({label(node)})")
    if errors:
        raise ConfigError(f"{errors} error(s) in the config (listed above)")
    sys.exit(1 if warnings else 0)
