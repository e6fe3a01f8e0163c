"""Each command's exit codes, written once: its --help ends with them, its man page's EXIT
STATUS lists them (scripts/gen-man), and tests hold the README and the docs to them."""

from __future__ import annotations

import click

from ..core.errors import EXIT_TIME_BOXED

# every command: the signal handling of verify/cli/main.py (and verify/native/nativejob.py) ends a run so
STOPPED = {130: "interrupted (SIGINT, Ctrl-C)", 143: "terminated (SIGTERM)"}
ERROR = "usage or config error"

READS = {0: "nothing found (informational findings do not count)", 1: "findings",
         2: f"{ERROR}, a store unreachable or part of one unreadable"}
READS_STOPPED = {130: "interrupted (SIGINT): no report, logs, metrics or state written", 143: "terminated (SIGTERM): as 130"}
# scan and check: what a stopped run keeps
RESUMABLE_STOPPED = {130: READS_STOPPED[130] + "; with --state, the finished shards kept for --resume",
                     143: READS_STOPPED[143]}
TIME_BOXED = {EXIT_TIME_BOXED: "stopped at --max-duration, the finished shards kept in --state: run it again with "
                               "--resume to continue"}
FIXES = {0: "nothing left to do", 1: "something left to do: a preview's plan, conflicts or failures",
         2: f"{ERROR}, or a store unreadable"}
JOURNALED_STOPPED = {130: "interrupted (SIGINT) between two journaled steps: run it again to go on",
                     143: "terminated (SIGTERM): as 130"}
CREATES = {0: "written (or, with --dry-run, what would be written said)", 2: f"{ERROR}, or the output not writable"}
EDITS = {0: "done, or nothing to change, or the preview shown", 2: f"{ERROR}, or a node unreachable or refused"}


def exit_status(codes: dict[int, str], stopped: dict[int, str] | None = None):
    """Gives a click command its exit codes (``cmd.exit_codes``) and ends its --help with them."""
    table = {**codes, **(stopped or STOPPED)}

    def deco(cmd: click.Command) -> click.Command:
        cmd.exit_codes = table
        cmd.epilog = "\b\nExit status:\n" + "\n".join(f"  {code:<4} {text}" for code, text in sorted(table.items()))
        return cmd

    return deco
