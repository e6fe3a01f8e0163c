"""``archverify restart``: stop Archipelago on every node, then start it on every node."""

from __future__ import annotations

import click

from .. import restart as restart_mod
from .node_options import node_options, resolve_nodes


@click.command("restart")
@node_options
@click.option("--force", is_flag=True, help="'archipelago stop -f': stop even with volumes mapped (their I/O freezes).")
@click.option("--dry-run", is_flag=True, help="Print the commands each node would run; run nothing but status.")
def command(config_path, nodes_spec, node_cmd, force, dry_run):
    """'archipelago stop' on every node, then 'archipelago start' on every node.

    Each exit code and 'archipelago status' is checked; on the first failure the
    restart stops and prints where every node is and how to resume. Examples:

    \b
      archverify restart --nodes node1,node2,node3
      archverify restart --nodes node1,node2 --node-cmd 'ssh -l root -o BatchMode=yes {node}'
    """
    nodes, runner = resolve_nodes(nodes_spec, node_cmd)
    resume = "archverify restart" + (f" --nodes {nodes_spec}" if nodes_spec else "") + (" --force" if force else "")
    try:
        restart_mod.restart(runner, nodes, force=force, dry_run=dry_run, log=click.echo, resume=resume)
    except restart_mod.RestartFailed as e:
        click.echo(e.table(), err=True)
        raise
    click.echo("done: Archipelago restarted on every node" if not dry_run else "dry run: nothing done")
