"""What every archverify writer relies on to survive a crash, a full disk or a signal, in one place.

Each piece has its own module: atomic writes and fsyncs (verify/durable/atomic.py), the journal
(verify/durable/journal.py), the locks (verify/durable/locks.py), the stop between two steps on SIGINT or
SIGTERM (verify/core/signals.py). A writer (verify/ops/finalize/flow.py, verify/ops/fixes/, the writing
commands) may import them from here as one set.
"""

from __future__ import annotations

from .atomic import (
    TMP_PREFIX, atomic_write, fsync_dir, now_iso, remove_temps, replaced, stale_temps, temp_name, write_atomic,
    written_temp,
)
from .journal import Journal, TornLine  # noqa: F401
from .locks import STORE_LOCK_NAME, lock_file, run_lock, store_locks  # noqa: F401
from ..core.signals import (
    catch_stop_signals, check_stop, map_steps, release_stop_signals, step_pool, stop_between_steps, stop_requested,
)
