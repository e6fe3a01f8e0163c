"""``archverify pithos-migrate status|enable|disable``: the filed setting, on every node."""

from __future__ import annotations

import click

from .. import confedit
from ..nodes import label
from .node_options import node_options, resolve_nodes
from .output_options import warn


@click.group("pithos-migrate")
def command():
    """Show or set pithos_migrate in [blockerb] and [blockerm] of archipelago.conf.

    Edits keep comments, order and spacing, replace a 'pithos-migrate' (hyphen)
    key, write atomically with owner and mode kept, leave a timestamped backup
    beside the file, and change nothing when the value is already right. A
    rados_blocker section is refused: pithos_migrate is a filed setting. The
    running Archipelago reads it only at start: follow with 'archverify restart'.
    """


@command.command("status")
@node_options
def status(config_path, nodes_spec, node_cmd):
    """pithos_migrate of each section on each node, as Archipelago reads it."""
    nodes, runner = resolve_nodes(nodes_spec, node_cmd)
    read = []  # every node's file first: an error stops the command before half a table is printed
    for node in nodes:
        where = f"{node}:{config_path}" if node is not None else config_path
        text = runner.read_file(node, config_path).decode("utf-8", "surrogateescape")
        read.append((node, *confedit.status(text, where)))
    click.echo(f"{'node':<20} {'section':<9} {'type':<14} pithos_migrate")
    for node, states, warnings in read:
        warn(warnings)
        for st in states:
            if st.value is None:
                val = "n/a (rados_blocker)"
            else:
                val = ("on" if st.value else "off") + ("" if st.raw is not None else " (unset)")
            if st.hyphen:
                val += "  ('pithos-migrate' present: ignored; enable/disable fixes it)"
            click.echo(f"{label(node):<20} {st.section:<9} {st.type or '?':<14} {val}")


def _set(value, config_path, nodes_spec, node_cmd, dry_run):
    nodes, runner = resolve_nodes(nodes_spec, node_cmd)
    changes = confedit.apply_on_nodes(runner, nodes, config_path, value, dry_run=dry_run)
    word = "on" if value else "off"
    for c in changes:
        warn(c.warnings)
        if not c.changes:
            click.echo(f"{label(c.node)}: already {word}, nothing changed")
            continue
        for ch in c.changes:
            click.echo(f"{label(c.node)}: {'would change' if dry_run else 'changed'} {ch}")
        if c.backup:
            click.echo(f"{label(c.node)}: backup {c.backup}")
    if any(c.changes for c in changes) and not dry_run:
        click.echo("takes effect when Archipelago starts again: archverify restart"
                   + (f" --nodes {nodes_spec}" if nodes_spec else ""))


@command.command("enable")
@node_options
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
def enable(config_path, nodes_spec, node_cmd, dry_run):
    """pithos_migrate = True on every node (filed migrates old Pithos objects as they are accessed)."""
    _set(True, config_path, nodes_spec, node_cmd, dry_run)


@command.command("disable")
@node_options
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
def disable(config_path, nodes_spec, node_cmd, dry_run):
    """pithos_migrate = False on every node (filed serves old paths in place, unlinks nothing)."""
    _set(False, config_path, nodes_spec, node_cmd, dry_run)
