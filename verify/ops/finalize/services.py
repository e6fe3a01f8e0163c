"""Archipelago on every node, as finalize drives it: what is mapped, stop and start, and
pithos_migrate switched in the configs between the two.

The two switches of finalize (on before lazy migration, off once it is done) are the
same three journaled steps, stop, edit, start: :data:`SWITCHES` names them and
:meth:`ServiceControl.switch_step` runs any of the six.
"""

from __future__ import annotations

import shutil

from verify.config import confedit
from .. import restart as restart_mod
from ..nodes import NodeError, label

# step -> (what the step does: a phase to reach or the pithos_migrate value to write, what it says)
SWITCHES = {
    "stop": ("stopped", "stopping Archipelago on every node"),
    "enable": (True, "pithos_migrate on"),
    "start": ("running", "starting Archipelago on every node"),
    "stop-off": ("stopped", "stopping Archipelago on every node to turn pithos_migrate off"),
    "disable": (False, "pithos_migrate off"),
    "start-off": ("running", "starting Archipelago on every node"),
}


class ServiceControl:
    """Per-node service control for :class:`verify.ops.finalize.flow.Finalizer` (needs ``o``, ``log``, ``step``)."""

    def switch_step(self, name: str) -> None:
        """One of :data:`SWITCHES`: a restart phase on every node, or pithos_migrate written on every node."""
        what, says = SWITCHES[name]
        if isinstance(what, bool):
            self.log(says)
            self.step(name, nodes=self.toggle(what))
            return
        self.log(says + (" (-f)" if name == "stop" and self.o.force else ""))
        self.phase(what)
        self.step(name)

    def phase(self, want: str) -> None:
        resume = "archverify finalize (same options) continues from here"
        restart_mod.phase(self.o.runner, self.o.node_list, want, self.o.force, log=self.log, resume=resume)

    def toggle(self, value: bool) -> list[dict]:
        changes = confedit.apply_on_nodes(self.o.runner, self.o.node_list, self.o.config_path, value)
        for c in changes:
            what = "; ".join(c.changes) if c.changes else "already " + ("on" if value else "off")
            self.log(f"  {label(c.node)}: {what}" + (f" (backup {c.backup})" if c.backup else ""))
        return [{"node": label(c.node), "changes": c.changes, "backup": c.backup} for c in changes]

    def upgrade_mode(self) -> str:
        """'offline' only when Archipelago is stopped on every node; else through the running one."""
        states = [self.o.runner.status(n).state for n in self.o.node_list]
        return "offline" if all(st == "stopped" for st in states) else "vlmc"

    def mapped(self, missing: list[str] | None = None) -> dict[str, list[str]]:
        """Volumes mapped on each node: reasons to refuse without --force. With ``missing`` (the
        plan), a node where 'vlmc showmapped' cannot run is added there instead of ending the run."""
        out = {}
        for node in self.o.node_list:
            try:
                vols = self.o.runner.showmapped(node)
            except NodeError as e:
                if missing is None:
                    raise
                missing.append(f"{e}: --yes needs vlmc (Archipelago's tools) on every node to tell whether a "
                               "volume is mapped; install it there")
                continue
            if vols:
                out[label(node)] = vols
        return out

    def missing_vlmc_here(self, missing: list[str], needed: bool) -> None:
        """The online map upgrade runs --vlmc on this node: say so now if it is not there."""
        if needed and shutil.which(self.o.vlmc[0]) is None:
            missing.append(f"{self.o.vlmc[0]}: not found on this node; the online map upgrade runs it "
                           "(install vlmc, or give its path with --vlmc)")
