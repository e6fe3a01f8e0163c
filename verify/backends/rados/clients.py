"""Every python-rados client this process opens, shut down before the process exits.

A librados client still connected when the process exits keeps its threads (messenger,
timers, log) running while ``exit()`` destroys libceph-common's static state under them,
the option schema among it: a thread that then reads an option finds none (boost::bad_get,
SIGABRT, exit 134) or reads freed memory (SIGSEGV, exit 139), after all the work was done
and its outputs written. python-rados never shuts a client down by itself (its ``Rados``
has no finalizer: one dropped without ``shutdown()`` stays connected to the end). So every
python-rados client is made here and kept until :func:`shutdown`; at interpreter exit
(atexit runs before the interpreter and the C runtime tear anything down) those still
open are shut down. The extension's clients (``verify.native._rados.Cluster``) have the same
guard of their own.
"""

from __future__ import annotations

import atexit
import threading

_OPEN: dict[int, object] = {}  # id -> rados.Rados: python-rados clients take no weak reference
_LOCK = threading.Lock()


def open_client(**kwargs):
    """``rados.Rados(**kwargs)``, kept until :func:`shutdown` (or interpreter exit)."""
    import rados

    client = rados.Rados(**kwargs)
    with _LOCK:
        _OPEN[id(client)] = client
    return client


def shutdown(client, ioctxs=()) -> None:
    """Close ``ioctxs`` (opened on ``client``), then shut ``client`` down (its threads end). Idempotent."""
    try:
        for io in ioctxs:
            io.close()
    finally:
        with _LOCK:
            _OPEN.pop(id(client), None)
        client.shutdown()


@atexit.register
def shutdown_all() -> None:
    """Shut down every client still open (registered on import: after the backends' own close)."""
    with _LOCK:
        clients = list(_OPEN.values())
        _OPEN.clear()
    for c in clients:
        try:
            c.shutdown()
        except Exception:  # noqa: BLE001 - one that cannot be shut down keeps none of the others connected
            pass
