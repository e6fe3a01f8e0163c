"""``archverify pithos-migrate status|enable|disable``: the filed setting, on every node."""

from __future__ import annotations

import click

from ..config import confedit
from ..ops.nodes import label
from .conventions import Run, conventions
from .node_options import node_options, resolve_nodes
from .output_options import warn
from .exit_status import EDITS, exit_status


@exit_status(EDITS)
@click.group("pithos-migrate")
def command():
    """Show or set pithos_migrate in [blockerb] and [blockerm] of archipelago.conf.

    Edits keep comments, order and spacing, replace a 'pithos-migrate' (hyphen)
    key, write atomically with owner and mode kept, leave a timestamped backup
    beside the file, and change nothing when the value is already right. A
    rados_blocker section is refused: pithos_migrate is a filed setting. enable
    and disable only show what they would change unless --yes. The running
    Archipelago reads it only at start: follow with 'archverify restart'.
    """


@exit_status({0: "shown", 2: EDITS[2]})
@command.command("status")
@node_options
@conventions()
def status(config_path, nodes_spec, node_cmd, run: Run):
    """pithos_migrate of each section on each node, as Archipelago reads it."""
    nodes, runner = resolve_nodes(nodes_spec, node_cmd)
    read = []  # every node's file first: an error stops the command before half a table is printed
    for node in nodes:
        where = f"{node}:{config_path}" if node is not None else config_path
        text = runner.read_file(node, config_path).decode("utf-8", "surrogateescape")
        read.append((node, *confedit.status(text, where)))
    for _, _, warnings in read:
        warn(warnings)
    if not run.human:
        run.emit(path=config_path, nodes=[
            {"node": label(node), "sections": [{"section": st.section, "type": st.type, "value": st.value,
                                                "set": st.raw is not None, "hyphen_key": st.hyphen}
                                               for st in states]}
            for node, states, _ in read])
        return
    if not run.quiet:
        click.echo(f"{'node':<20} {'section':<9} {'type':<14} pithos_migrate")
    for node, states, _ in read:
        for st in states:
            if st.value is None:
                val = "n/a (rados_blocker)"
            else:
                val = ("on" if st.value else "off") + ("" if st.raw is not None else " (unset)")
            if st.hyphen:
                val += "  ('pithos-migrate' present: ignored; enable/disable fixes it)"
            click.echo(f"{label(node):<20} {st.section:<9} {st.type or '?':<14} {val}")


def _set(value: bool, config_path, nodes_spec, node_cmd, run: Run) -> None:
    nodes, runner = resolve_nodes(nodes_spec, node_cmd)
    preview = not run.apply
    changes = confedit.apply_on_nodes(runner, nodes, config_path, value, dry_run=preview)
    word = "on" if value else "off"
    for c in changes:
        warn(c.warnings)
    changed = any(c.changes for c in changes)
    follow = ("archverify restart" + (f" --nodes {nodes_spec}" if nodes_spec else "") + " --yes") if changed else None
    if not run.human:
        run.emit(path=config_path, value=value, applied=not preview, restart_needed=changed and not preview,
                 nodes=[{"node": label(c.node), "changes": c.changes, "backup": c.backup} for c in changes])
        return
    for c in changes:
        where = f"{label(c.node)}: {config_path}"
        if not c.changes:
            run.say(f"{where}: already {word}, nothing to change")
            continue
        for ch in c.changes:
            click.echo(f"{where}: {'would change' if preview else 'changed'} {ch}")
        if c.backup:
            run.say(f"{where}: backup {c.backup}")
        elif preview:
            run.say(f"{where}: would be written atomically, the old file kept as a timestamped backup beside it")
    if changed and preview:
        click.echo(f"preview only: run again with --yes to set pithos_migrate {word}")
    elif changed:
        click.echo(f"takes effect when Archipelago starts again: {follow}")


def _toggle(value: bool, name: str, doc: str):
    """The ``enable`` and ``disable`` subcommands: the same options, one value each."""
    def toggle(config_path, nodes_spec, node_cmd, run: Run):
        _set(value, config_path, nodes_spec, node_cmd, run)

    toggle.__doc__ = doc
    return exit_status(EDITS)(command.command(name)(node_options(conventions(writes=True)(toggle))))


enable = _toggle(True, "enable", """pithos_migrate = True on every node (filed migrates old Pithos objects as they are accessed).

    Shows the changes; writes them with --yes.""")
disable = _toggle(False, "disable", """pithos_migrate = False on every node (filed serves old paths in place, unlinks nothing).

    Shows the changes; writes them with --yes.""")
