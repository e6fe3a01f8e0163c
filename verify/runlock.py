"""``--lock FILE``: one run at a time, for cron.

An flock on FILE, held for the whole run and released by the kernel when the
process ends however it ends, so a crashed run never leaves a stale lock. The
holder (host, pid, since) is written into the file for the refusal message.
"""

from __future__ import annotations

from .locks import lock_file as held

__all__ = ["held"]
