"""Test clusters: nodes as dirs with their own archipelago.conf, commands run through a local template.

Each node ``N`` is ``ROOT/N`` holding ``archipelago.conf``; the node command template
``env -C ROOT/{node} ARCHIP_NODE={node} ARCHIPELAGO_CONF=...`` runs a command "on" N
with the stand-ins on PATH, so ``--config archipelago.conf`` (relative) names each
node's own file, as ``/etc/archipelago/archipelago.conf`` would on real nodes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

STANDINS = Path(__file__).resolve().parent
FIXTURES = STANDINS.parent / "fixtures"
REPO = STANDINS.parents[1]


def conf_text(variant: str = "filed", blocks: str = "/srv/archip/blocks", maps: str = "/srv/archip/maps") -> str:
    text = (FIXTURES / f"archipelago-{variant}.conf").read_text()
    return text.replace("@BLOCKS@", str(blocks)).replace("@MAPS@", str(maps))


@dataclass
class Cluster:
    root: Path
    nodes: list[str]
    state_file: Path
    template: str
    env: dict

    config = "archipelago.conf"

    def conf(self, node: str) -> Path:
        return self.root / node / self.config

    def state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}

    def events(self, cmd: str | None = None) -> list[dict]:
        return [e for e in self.state().get("events", []) if cmd is None or e["cmd"] == cmd]

    def standin(self, node: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a stand-in command on ``node`` as the cluster would."""
        env = {**os.environ, **self.env, "ARCHIP_NODE": node, "ARCHIPELAGO_CONF": str(self.conf(node))}
        return subprocess.run(list(args), env=env, capture_output=True, text=True, check=check, cwd=self.root / node)

    def nodes_arg(self) -> list[str]:
        return ["--config", self.config, "--nodes", ",".join(self.nodes), "--node-cmd", self.template]

    def archverify(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        e = {**os.environ, **self.env, "PYTHONPATH": str(REPO), **(env or {})}
        return subprocess.run([sys.executable, "-m", "verify", *args], env=e, capture_output=True, text=True,
                              cwd=self.root)


def make_cluster(tmp: Path, blocks: Path, maps: Path, nodes=("n1", "n2"), variant: str = "filed",
                 monkeypatch=None) -> Cluster:
    root = tmp / "nodes"
    for n in nodes:
        (root / n).mkdir(parents=True, exist_ok=True)
        (root / n / "archipelago.conf").write_text(conf_text(variant, blocks, maps))
    state = tmp / "standin-state.json"
    env = {"PATH": f"{STANDINS}{os.pathsep}{os.environ['PATH']}", "ARCHIP_STANDIN_STATE": str(state),
           "ARCHIP_NODE": nodes[0], "ARCHIPELAGO_CONF": str(root / nodes[0] / "archipelago.conf")}
    if monkeypatch is not None:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
    template = f"env -C {root}/{{node}} ARCHIP_NODE={{node}} ARCHIPELAGO_CONF={root}/{{node}}/archipelago.conf"
    return Cluster(root, list(nodes), state, template, env)


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every regular file's content, by name (objects are unique per name in a store)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if p.is_file() and not p.is_symlink():
                out.setdefault(f, hashlib.sha256(p.read_bytes()).hexdigest())
    return out
