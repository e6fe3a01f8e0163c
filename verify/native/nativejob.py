"""Run a GIL-free native pass in a thread, feed a progress bar, and stop it cleanly.

Signals reach only the main thread. A native loop must never outlive the Python
objects that own its buffers, so the main thread only waits and polls here: when
SIGINT or SIGTERM arrives (as KeyboardInterrupt or :class:`~verify.core.errors.Terminated`),
it sets the loop's stop flag, waits for the thread to return, and only then lets
the exception unwind. Everything freed after that is no longer in use. How a run reacts
to the signal itself (which exception, when, its exit code) is verify/core/signals.py.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable, TypeVar

# how a run reacts to a signal is verify/core/signals.py's; a pass checks for a stop there
from ..core.errors import StoreError
from ..core.signals import checkpoint, main_thread_takes_the_signals

T = TypeVar("T")
POLL_S = 0.1


def compiled(name: str):
    """The compiled module ``verify.native.<name>``; a missing one is one line, not a traceback."""
    import importlib

    try:
        return importlib.import_module(f"verify.native.{name}")
    except ImportError as e:  # pragma: no cover - a broken install, not a user error
        raise StoreError(f"the compiled checker is missing ({e}); reinstall archverify (make build)") from None


def run(work: Callable[[], T], stop: Callable[[], None], count: Callable[[], int] | None = None,
        progress: Callable[[int], object] | None = None, name: str = "native-pass",
        every: Callable[[], object] | None = None) -> T:
    """``work()`` in a thread; ``stop()`` and a join on any interruption; ``work``'s exception re-raised.

    Every 0.1 s meanwhile, ``progress`` gets how much ``count()`` (units done so far, read while
    ``work`` runs) grew, and ``every()`` is called (a pass that hands its results over while it
    runs); what either raises stops the pass. ``stop`` must make ``work`` return soon.
    """
    checkpoint()
    out: list = []
    error: list[BaseException] = []
    seen = count() if count is not None and progress is not None else 0

    def poll():
        nonlocal seen
        if every is not None:
            every()
        if count is not None and progress is not None:
            now = count()
            if now > seen:
                progress(now - seen)
                seen = now

    def target():
        # a signal this thread (or a C thread it starts) took would wait unseen for the main
        # thread's next poll, and a fast pass could end meanwhile: the main thread takes them all
        main_thread_takes_the_signals()
        try:
            out.append(work())
        except BaseException as e:  # re-raised in the caller's thread
            error.append(e)

    t = threading.Thread(target=target, name=name, daemon=True)
    t.start()
    try:
        while t.is_alive():
            t.join(POLL_S)
            checkpoint()
            poll()
    except BaseException:
        stop()
        join_stopped([t], stop)
        raise
    if error:
        raise error[0]
    poll()
    return out[0] if out else None


def join_stopped(threads: Iterable[threading.Thread], stop: Callable[[], None]) -> None:
    """Wait for threads already told to stop; a further signal meanwhile only repeats the stop."""
    for t in threads:
        while True:
            try:
                t.join()
                break
            except BaseException:
                stop()


def wait_futures(futures: list, stop: Callable[[], None]) -> None:
    """Each future's result in turn; on any interruption, ``stop()`` and wait for all of them first."""
    try:
        for f in futures:
            f.result()
    except BaseException:
        stop()
        for f in futures:
            f.cancel()  # not started yet: never will
        from concurrent.futures import wait  # here: a scan that never gets here does not import it (and logging)

        while True:
            try:
                wait(futures)
                break
            except BaseException:
                stop()
        raise
