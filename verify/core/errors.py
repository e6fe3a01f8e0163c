"""Errors a user can act on: one line each, an exit code, caught once in main().

The message says what is wrong and with which file or object; a traceback never
reaches a user.
"""

from __future__ import annotations


class ArchverifyError(Exception):
    """Base: ``str(err)`` is the one-line message, ``exit_code`` what the process returns."""

    exit_code = 2


class ConfigError(ArchverifyError):
    """archipelago.conf is missing, unreadable or inconsistent."""


class StoreError(ArchverifyError):
    """A store (filed dir, RADOS pool, database) cannot be reached or read at all."""


class UsageError(ArchverifyError):
    """Options that contradict each other or name nothing."""


class OutputError(ArchverifyError):
    """The report (--output) or the log files (--logdir) cannot be written."""


class LockedError(ArchverifyError):
    """Another archverify run holds the lock file."""


class Refused(ArchverifyError):
    """A write that would be unsafe now (cluster running, volumes mapped, ...)."""


class ClusterError(ArchverifyError):
    """The Dask cluster cannot be reached, has no workers, or lost a shard for good."""


class Interrupted(ArchverifyError):
    """SIGINT or SIGTERM: stopped between two steps; the exit code is 128 + the signal number."""

    def __init__(self, signo: int, detail: str = "every step begun was finished and journaled: "
                                                   "run the same command again to continue"):
        name = {2: "SIGINT", 15: "SIGTERM"}.get(signo, f"signal {signo}")
        super().__init__(f"interrupted by {name}" + (f"; {detail}" if detail else ""))
        self.signo = signo
        self.exit_code = 128 + signo


class TimeBoxed(KeyboardInterrupt):
    """``--max-duration`` ran out: the run stops as on Ctrl-C (native passes stopped and joined,
    no report), keeping the shards it finished for ``--resume``; exit :data:`EXIT_TIME_BOXED`."""


EXIT_TIME_BOXED = 75  # sysexits' EX_TEMPFAIL: not finished, try again (cron and systemd can tell it from 0-2)


class Terminated(KeyboardInterrupt):
    """SIGTERM: stops the run like Ctrl-C (threads told to stop and joined, no report), exit 143."""
