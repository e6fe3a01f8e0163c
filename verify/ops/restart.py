"""The restart sequence of the upgrade guide: stop Archipelago on every node, then start it on every node.

Each phase checks every exit code and then ``archipelago status`` (whose exit code
means nothing). A node already in the wanted state is left alone, so a phase can be
run again after a failure and finishes what is left. On the first failure the
phase stops and raises :class:`RestartFailed`, which carries a table of every
node's state for the operator.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Callable

from ..core.errors import ArchverifyError
from .nodes import NodeStatus, Runner, label, wait_state

Log = Callable[[str], None]


@dataclass
class Row:
    node: str | None
    state: str
    done: str  # what this run did on the node


class RestartFailed(ArchverifyError):
    """A node did not stop or start; ``table`` says where every node is."""

    def __init__(self, message: str, rows: list[Row], resume: str):
        super().__init__(message)
        self.rows = rows
        self.resume = resume

    def table(self) -> str:
        w = max([len(label(r.node)) for r in self.rows] + [4])
        lines = [f"{'node':<{w}}  {'state':<8}  this run"]
        lines += [f"{label(r.node):<{w}}  {r.state:<8}  {r.done}" for r in self.rows]
        return "\n".join(lines) + f"\nto resume: {self.resume}"


def _fail(runner: Runner, nodes, done: dict, message: str, resume: str) -> RestartFailed:
    rows = [Row(n, runner.status(n).state, done.get(n, "-")) for n in nodes]
    return RestartFailed(message, rows, resume)


def phase(runner: Runner, nodes: list[str | None], want: str, force: bool = False, dry_run: bool = False,
          log: Log = print, resume: str = "archverify restart") -> list[NodeStatus]:
    """Bring every node to ``want`` ("stopped" or "running"), in order, skipping those already there."""
    done: dict = {}
    out = []
    for node in nodes:
        if dry_run and want == "running":  # the stop phase before it only pretended
            log(f"  {label(node)}: would run: {shlex.join(runner.argv(node, ['archipelago', 'start']))}")
            continue
        st = runner.status(node)
        if st.state == want:
            done[node] = f"already {want}"
            log(f"  {label(node)}: already {want}")
            out.append(st)
            continue
        if want == "stopped":
            cmd = ["archipelago", "stop", "-f"] if force else ["archipelago", "stop"]
        else:
            if st.state == "partial":
                raise _fail(runner, nodes, done, f"{label(node)}: Archipelago is partly running; "
                            "'archipelago start' refuses that: stop it there first", resume)
            cmd = ["archipelago", "start"]
        if dry_run:
            log(f"  {label(node)}: would run: {shlex.join(runner.argv(node, cmd))}")
            out.append(st)
            continue
        r = runner.run(node, cmd)
        if not r.ok:
            done[node] = f"'{' '.join(cmd)}' failed"
            hint = ""
            if want == "stopped" and not force:
                hint = " (volumes mapped? drain the node, or --force to freeze their I/O)"
            raise _fail(runner, nodes, done, f"{label(node)}: '{' '.join(cmd)}' failed: {r.brief()}{hint}", resume)
        st = wait_state(runner, node, want)
        if st.state != want:
            done[node] = f"'{' '.join(cmd)}' ran, status {st.state}"
            raise _fail(runner, nodes, done, f"{label(node)}: after '{' '.join(cmd)}', archipelago status "
                        f"shows {st.state}" + (f" ({st.detail})" if st.detail else ""), resume)
        done[node] = " ".join(cmd[1:])
        log(f"  {label(node)}: {' '.join(cmd[1:])}: {want}")
        out.append(st)
    return out


def restart(runner: Runner, nodes: list[str | None], force: bool = False, dry_run: bool = False, log: Log = print,
            resume: str = "archverify restart") -> None:
    log("stopping Archipelago on every node" + (" (-f: mapped volumes freeze)" if force else ""))
    phase(runner, nodes, "stopped", force, dry_run, log, resume)
    log("starting Archipelago on every node")
    phase(runner, nodes, "running", force, dry_run, log, resume)
