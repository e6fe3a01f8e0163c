"""--config, --nodes and --node-cmd, shared by the commands that act on every node."""

from __future__ import annotations

import click

from ..config import archipelago as config_mod
from ..ops.nodes import DEFAULT_TEMPLATE, Runner, parse_nodes
from .options import apply_options


def node_options(f):
    opts = [
        click.option("--config", "config_path", default=str(config_mod.DEFAULT_PATH), show_default=True,
                     help="archipelago.conf, at this path on every node."),
        click.option("--nodes", "nodes_spec", metavar="N1,N2,...",
                     help="Nodes to act on (hostnames or IPs), through --node-cmd [default: this node only, locally]."),
        click.option("--node-cmd", "node_cmd", default=DEFAULT_TEMPLATE, show_default=True, metavar="TEMPLATE",
                     help="How to run a command on a node; {node} is replaced by its name. Split like a shell "
                          "would, never run through one here."),
    ]
    return apply_options(f, opts)


def resolve_nodes(nodes_spec, node_cmd):
    """(nodes or [None] for this machine, runner); validates before anything runs."""
    nodes = parse_nodes(nodes_spec)
    return (nodes or [None]), Runner(node_cmd)
