"""``archverify finalize``: the guide's finalizing steps as one safe, resumable command."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from ..ops.finalize import flow as fin
from ..ops.pithos import db as pithosdb
from ..report import render as report
from ..durable import catch_stop_signals
from ..ops.restart import RestartFailed
from .conventions import conventions, state_option
from .node_options import node_options, resolve_nodes
from .output_options import max_shown_option
from .store_options import given_options, jobs_option, pithos_db_option, rados_options
from .exit_status import ERROR, JOURNALED_STOPPED, exit_status

DEFAULT_STATE_DIR = "/var/lib/archverify/finalize"


@exit_status({0: "finished with nothing found, or the plan shown",
              1: "findings in the final check, or objects still at an old path (waiting)",
              2: ERROR + ", a node or store unreachable, or refused (volumes mapped, locks held)",
              fin.EXIT_BLOCKED: "the plan shown, and --yes would refuse now (volumes mapped, locks held, "
                                "vlmc missing: listed)"}, JOURNALED_STOPPED)
@click.command("finalize")
@node_options
@click.option("--fix", is_flag=True, help="Also run migrate-objects and upgrade-maps while pithos_migrate is on.")
@click.option("--force", is_flag=True, help="Go on with volumes mapped or locks held ('archipelago stop -f').")
@state_option(default=DEFAULT_STATE_DIR, old_names=("--state-dir",),
              help="Where the journal (and the fixes' journals and logs) live; a rerun continues from it.")
@click.option("--quarantine-dir", type=click.Path(file_okay=False),
              help="Where pins go (STORE/NAME below it); must be on the stores' filesystem "
                   "[default: .archverify-quarantine beside each store dir].")
@click.option("--backup-dir", type=click.Path(file_okay=False),
              help="--fix: upgrade-maps saves the original bytes of every map it touches here "
                   "[default: map-backups in --state].")
@click.option("--logdir", type=click.Path(file_okay=False),
              help="--fix: upgrade-maps writes upgraded.log, failed.log and invalid.log here "
                   "[default: upgrade-logs in --state].")
@pithos_db_option("--fix: read v0 map sizes from Pithos's database, so v0 maps are upgraded too:")
@jobs_option
@max_shown_option
@click.option("--vlmc", "vlmc_cmd", default="vlmc", show_default=True,
              help="The vlmc command online map upgrades run (on this node).")
@rados_options(pools_help=" [default: the config's; must be the config's]")
@conventions(writes=True)
def command(config_path, nodes_spec, node_cmd, fix, force, state_dir, quarantine_dir, backup_dir, logdir, pithos_db,
            jobs, max_shown, vlmc_cmd, run, pool, blocks_pool, **rados_opts):
    """Finish the upgrade: pithos_migrate on, restarts, fixes, pithos_migrate off again.

    Objects whose old and new paths coincide are pinned (hard-linked aside) before
    pithos_migrate goes on and put back if filed removes them. Every completed
    step goes to a journal in --state: after an interruption, run the same
    command again and it continues where it stopped.

    On RADOS pools (rados_blocker in the config): preflight, upgrade-maps (online
    while Archipelago runs, offline when it is stopped on every node), then the
    final scan and check; the pithos_migrate steps do not apply to pools. With
    one store filed and the other RADOS, the steps above run for the filed store
    (pithos_migrate in its section only), the scans read both, --fix upgrades the
    maps in the pool, and the final step is a scan and check.

    \b
      archverify finalize --nodes node1,node2,node3              # the plan
      archverify finalize --nodes node1,node2,node3 --fix --yes  # do it
      archverify finalize --nodes node1,node2 -c /etc/ceph/ceph.conf --yes   # RADOS pools
    """
    yes = run.apply
    if yes:
        catch_stop_signals()  # from here a signal stops finalize between two journaled steps (exit 130/143)
    nodes, runner = resolve_nodes(nodes_spec, node_cmd)
    sizes = None
    if pithos_db:
        from .upgrade_cmd import sizes_from_pithos_db

        pithosdb.resolve_url(pithos_db)  # a bad URL fails now, not at the fix step

        def sizes():
            return sizes_from_pithos_db(pithos_db)
    pools = {r: p for r, p in (("maps", pool), ("blocks", blocks_pool)) if p is not None}
    opts = fin.Options(config_path, [n for n in nodes if n is not None] or None, runner, Path(state_dir), fix=fix,
                       force=force, jobs=jobs, quarantine_root=quarantine_dir, log=run.say,
                       rados={k: v for k, v in rados_opts.items() if v is not None}, pools=pools,
                       given=given_options(),
                       backup_dir=Path(backup_dir) if backup_dir else None, logdir=Path(logdir) if logdir else None,
                       pithos_sizes=sizes, vlmc=tuple(shlex.split(vlmc_cmd)))
    finalizer = fin.Finalizer(opts)
    try:
        out = finalizer.run(yes)
    except RestartFailed as e:
        click.echo(e.table(), err=True)
        raise
    journal = os.path.join(state_dir, fin.JOURNAL)
    stores = out.stores
    if not run.human:
        run.emit(state=out.state, exit_code=out.exit_code, journal=journal, stores=stores, plan=out.plan,
                 summary=out.summary.as_dict() if out.summary is not None else None,
                 findings=[f.as_dict() for f in out.summary.findings] if out.summary is not None else [])
    elif out.summary is not None and not run.quiet:
        report.write_human(sys.stdout, out.summary, out.kind, stores, max_shown,
                           command="finalize",
                           verbose=run.verbose)
    if run.human and out.state == "finished":
        click.echo(f"finalize finished; journal {journal}")
    sys.exit(out.exit_code)

