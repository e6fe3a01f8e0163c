"""``archverify finalize``: the guide's finalizing steps as one safe, resumable command."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from .. import finalize as fin
from .. import report
from ..durable import catch_stop_signals
from ..restart import RestartFailed
from .conventions import conventions, state_option
from .node_options import node_options, resolve_nodes
from .store_options import jobs_option, store_options

DEFAULT_STATE_DIR = "/var/lib/archverify/finalize"
RADOS_FLAGS = ("ceph_conf", "client_id", "keyring", "namespace")  # what archipelago.conf does not say of a pool


def rados_flags(f):
    """scan's own -c/--ceph-conf, --id, --keyring and --namespace (the pools come from the config)."""
    params = [p for p in store_options(lambda: None).__click_params__ if p.name in RADOS_FLAGS]
    f.__click_params__ = getattr(f, "__click_params__", []) + params
    return f


@click.command("finalize")
@node_options
@click.option("--fix", is_flag=True, help="Also run migrate-objects and upgrade-maps while pithos_migrate is on.")
@click.option("--force", is_flag=True, help="Go on with volumes mapped or locks held ('archipelago stop -f').")
@state_option(default=DEFAULT_STATE_DIR, old_names=("--state-dir",),
              help="Where the journal (and the fixes' journals and logs) live; a rerun continues from it.")
@click.option("--quarantine-dir", type=click.Path(file_okay=False),
              help="Where pins go (STORE/NAME below it); must be on the stores' filesystem "
                   "[default: .archverify-quarantine beside each store dir].")
@jobs_option
@click.option("--max-shown", type=click.IntRange(0), default=report.DEFAULT_SHOWN, show_default=True,
              help="Findings listed per kind in the report (-v: all).")
@click.option("--vlmc", "vlmc_cmd", default="vlmc", show_default=True,
              help="The vlmc command online map upgrades run (on this node).")
@rados_flags
@conventions(writes=True)
def command(config_path, nodes_spec, node_cmd, fix, force, state_dir, quarantine_dir, jobs, max_shown, vlmc_cmd, run,
            **rados_opts):
    """Finish the upgrade: pithos_migrate on, restarts, fixes, pithos_migrate off again.

    Objects whose old and new paths coincide are pinned (hard-linked aside) before
    pithos_migrate goes on and put back if filed removes them. Every completed
    step goes to a journal in --state: after an interruption, run the same
    command again and it continues where it stopped. Exit code as 'scan'.

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
    opts = fin.Options(config_path, [n for n in nodes if n is not None] or None, runner, Path(state_dir), fix=fix,
                       force=force, jobs=jobs, quarantine_root=quarantine_dir, log=run.say,
                       rados={k: v for k, v in rados_opts.items() if v is not None}, vlmc=tuple(shlex.split(vlmc_cmd)))
    finalizer = fin.Finalizer(opts)
    try:
        out = finalizer.run(yes)
    except RestartFailed as e:
        click.echo(e.table(), err=True)
        raise
    journal = os.path.join(state_dir, fin.JOURNAL)
    pools = finalizer.cluster.pools if finalizer.cluster is not None else {}
    stores = {r: {"type": "filed", "dir": d} for r, d in out.dirs.items()}
    stores.update({r: {"type": "rados", "pool": p} for r, p in pools.items()})
    if not run.human:
        run.emit(state=out.state, exit_code=out.exit_code, journal=journal, stores=stores,
                 summary=out.summary.as_dict() if out.summary is not None else None,
                 findings=[f.as_dict() for f in out.summary.findings] if out.summary is not None else [])
    elif out.summary is not None and not run.quiet:
        kind = "mixed" if pools and out.dirs else "rados" if pools else "filed"
        report.write_human(sys.stdout, out.summary, kind, stores, max_shown,
                           command="finalize",
                           verbose=run.verbose)
    if run.human and out.state == "finished":
        click.echo(f"finalize finished; journal {journal}")
    sys.exit(out.exit_code)

