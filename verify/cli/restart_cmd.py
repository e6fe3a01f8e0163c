"""``archverify restart``: stop Archipelago on every node, then start it on every node."""

from __future__ import annotations

import click

from ..ops import restart as restart_mod
from ..ops.nodes import label
from .conventions import Run, conventions
from .node_options import node_options, resolve_nodes
from .exit_status import ERROR, exit_status


@exit_status({0: "restarted, or the preview shown",
              2: ERROR + ", or a node failed to stop or start (a table says where each is)"})
@click.command("restart")
@node_options
@click.option("--force", is_flag=True, help="'archipelago stop -f': stop even with volumes mapped (their I/O freezes).")
@conventions(writes=True)
def command(config_path, nodes_spec, node_cmd, force, run: Run):
    """'archipelago stop' on every node, then 'archipelago start' on every node.

    Without --yes, only asks each node's 'archipelago status' and prints every
    command the restart would run, node by node. With --yes, each exit code and
    'archipelago status' is checked; on the first failure the restart stops and
    prints where every node is and how to resume. Examples:

    \b
      archverify restart --nodes node1,node2,node3          # what it would run
      archverify restart --nodes node1,node2,node3 --yes
      archverify restart --nodes node1,node2 --node-cmd 'ssh -l root -o BatchMode=yes {node}' --yes
    """
    nodes, runner = resolve_nodes(nodes_spec, node_cmd)
    resume = ("archverify restart" + (f" --nodes {nodes_spec}" if nodes_spec else "") + (" --force" if force else "")
              + " --yes")
    steps: list[str] = []

    def log(line: str) -> None:
        steps.append(line)
        run.say(line)

    try:
        restart_mod.restart(runner, nodes, force=force, dry_run=not run.apply, log=log, resume=resume)
    except restart_mod.RestartFailed as e:
        click.echo(e.table(), err=True)
        raise
    if not run.human:
        run.emit(applied=run.apply, force=force, nodes=[label(n) for n in nodes], steps=steps)
    elif run.apply:
        click.echo("done: Archipelago restarted on every node")
    else:
        click.echo("preview only: nothing was run but 'archipelago status'; run again with --yes to restart")
