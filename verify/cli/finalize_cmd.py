"""``archverify finalize``: the guide's finalizing steps as one safe, resumable command."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .. import finalize as fin
from .. import report
from ..durable import catch_stop_signals
from ..restart import RestartFailed
from .node_options import node_options, resolve_nodes
from .store_options import jobs_option

DEFAULT_STATE_DIR = "/var/lib/archverify/finalize"


@click.command("finalize")
@node_options
@click.option("--fix", is_flag=True, help="Also run migrate-objects and upgrade-maps while pithos_migrate is on.")
@click.option("--yes", is_flag=True, help="Proceed; without it, print the plan and the preflight and do nothing.")
@click.option("--force", is_flag=True, help="Go on with volumes mapped or locks held ('archipelago stop -f').")
@click.option("--state-dir", type=click.Path(file_okay=False), default=DEFAULT_STATE_DIR, show_default=True,
              help="Where the journal (and the fixes' journals and logs) live; a rerun continues from it.")
@click.option("--quarantine-dir", type=click.Path(file_okay=False),
              help="Where pins go (STORE/NAME below it); must be on the stores' filesystem "
                   "[default: .archverify-quarantine beside each store dir].")
@jobs_option
@click.option("--max-shown", type=click.IntRange(0), default=20, show_default=True, help="Findings listed in the report.")
def command(config_path, nodes_spec, node_cmd, fix, yes, force, state_dir, quarantine_dir, jobs, max_shown):
    """Finish the upgrade: pithos_migrate on, restarts, fixes, pithos_migrate off again.

    Objects whose old and new paths coincide are pinned (hard-linked aside) before
    pithos_migrate goes on and put back if filed removes them. Every completed
    step goes to a journal in --state-dir: after an interruption, run the same
    command again and it continues where it stopped. Exit code as 'scan'.

    \b
      archverify finalize --nodes node1,node2,node3              # the plan
      archverify finalize --nodes node1,node2,node3 --fix --yes  # do it
    """
    if yes:
        catch_stop_signals()  # from here a signal stops finalize between two journaled steps (exit 130/143)
    nodes, runner = resolve_nodes(nodes_spec, node_cmd)
    opts = fin.Options(config_path, [n for n in nodes if n is not None] or None, runner, Path(state_dir), fix=fix,
                       force=force, jobs=jobs, quarantine_root=quarantine_dir, log=click.echo)
    try:
        out = fin.Finalizer(opts).run(yes)
    except RestartFailed as e:
        click.echo(e.table(), err=True)
        raise
    if out.summary is not None:
        stores = {r: {"type": "filed", "dir": d} for r, d in out.dirs.items()}
        report.write_human(sys.stdout, out.summary, "filed", stores, max_shown, command="finalize")
    if out.state == "finished":
        click.echo(f"finalize finished; journal {os.path.join(state_dir, fin.JOURNAL)}")
    sys.exit(out.exit_code)

