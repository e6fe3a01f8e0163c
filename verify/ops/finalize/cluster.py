"""The nodes' archipelago.conf, read and held alike: finalize acts on the stores they all share."""

from __future__ import annotations

from dataclasses import dataclass, field

from verify.config import archipelago as config_mod
from verify.core.errors import ConfigError, Refused
from ..nodes import label

ROLES = ("maps", "blocks")


@dataclass
class Cluster:
    config: object  # the first node's ArchipConfig: the stores every node names
    places: dict[str, dict]  # role -> where the store is ({"type", "dir" or "pool"}), as reports name it
    direct: bool = config_mod.DIRECT_DEFAULT  # filed's direct I/O of the maps store on any node
    configs: dict = field(default_factory=dict)  # node -> ArchipConfig
    warnings: list[str] = field(default_factory=list)


def read_cluster(opts) -> Cluster:
    """Every node's archipelago.conf, checked; all must name the same stores (dirs, pools)."""
    errors: list[str] = []
    warnings: list[str] = []
    configs = {}
    for node in opts.node_list:
        where = f"{node}:{opts.config_path}" if node is not None else opts.config_path
        try:
            data = opts.runner.read_file(node, opts.config_path)
        except config_mod.UnreadableConfig as e:
            errors.append(str(e))
            continue
        cfg, problems = config_mod.check(data, where)
        errors += [str(p) for p in problems if p.level == "error"]
        warnings += [str(p) for p in problems if p.level == "warning"]
        if cfg is not None:
            configs[node] = cfg
    if errors:
        for e in errors:
            opts.log(f"  config: {e}")
        raise ConfigError(f"{len(errors)} config problem(s) on the nodes (listed above); fix them and run again")
    locations: dict[str, tuple[str, str]] = {}
    first = label(opts.node_list[0])
    for node, cfg in configs.items():
        for role in ROLES:
            sc = cfg.stores[role]
            key, what = sc.location
            if locations.setdefault(role, (key, what)) != (key, what):
                raise Refused(f"{label(node)}: [{sc.section}] {key} {what} differs from {locations[role][1]} on "
                              f"{first}; every node must share the same stores")
    cfg = next(iter(configs.values()))
    direct = any(c.stores["maps"].direct for c in configs.values())  # any node padding: pad
    return Cluster(cfg, {role: cfg.stores[role].place for role in ROLES}, direct, configs, warnings)
