"""Run a GIL-free native pass in a thread, feed a progress bar, and stop it cleanly.

Signals reach only the main thread. A native loop must never outlive the Python
objects that own its buffers, so the main thread only waits and polls here: when
SIGINT or SIGTERM arrives (as KeyboardInterrupt or :class:`~verify.errors.Terminated`),
it sets the loop's stop flag, waits for the thread to return, and only then lets
the exception unwind. Everything freed after that is no longer in use.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Callable, Iterable, TypeVar

from .errors import Terminated, TimeBoxed, signal_exit

T = TypeVar("T")
POLL_S = 0.1


def run(work: Callable[[], T], stop: Callable[[], None], count: Callable[[], int] | None = None,
        progress: Callable[[int], object] | None = None, name: str = "native-pass") -> T:
    """``work()`` in a thread; ``stop()`` and a join on any interruption; ``work``'s exception re-raised.

    Every 0.1 s meanwhile, ``progress`` gets how much ``count()`` (units done so far, read while
    ``work`` runs) grew. ``stop`` must make ``work`` return soon.
    """
    checkpoint()
    out: list = []
    error: list[BaseException] = []
    seen = count() if count is not None and progress is not None else 0

    def poll():
        nonlocal seen
        if count is not None and progress is not None:
            now = count()
            if now > seen:
                progress(now - seen)
                seen = now

    def target():
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


class stop_on_signals:
    """While a command runs: SIGINT raises KeyboardInterrupt, SIGTERM :class:`Terminated`, once.

    The run unwinds, stopping and joining its native threads on the way (:func:`run`), and
    writes nothing. Once the work is done (:func:`work_done`), a signal no longer aborts: the
    outputs are written whole and the run ends as it would have. A second signal exits at
    once (os._exit frees nothing under a running thread).

    An exception raised where Python cannot propagate it (a weakref callback, a __del__ run
    by the garbage collector) is dropped by the interpreter: the next :func:`checkpoint`
    raises it again, and :func:`work_done` is one, so such a run still writes nothing.
    """

    _current: stop_on_signals | None = None

    def __enter__(self) -> stop_on_signals:
        time_box(None)
        self.saved: dict = {}
        self.caught: int | None = None
        self.done = False
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self._on_signal)
            self.unraisablehook = sys.unraisablehook
            sys.unraisablehook = self._unraisable
            stop_on_signals._current = self
        return self

    def __exit__(self, *exc) -> None:
        time_box(None)
        if self.saved:
            stop_on_signals._current = None
            sys.unraisablehook = self.unraisablehook
            for sig, handler in self.saved.items():
                # `python -m verify` exits right after the command: a signal now would only turn its
                # exit code into a death by signal (Python resets its own handlers as it shuts down)
                signal.signal(sig, signal.SIG_IGN if handler is signal_exit else handler)

    def _on_signal(self, signum, frame) -> None:
        if self.caught is not None:
            signal_exit(signum)
        self.caught = signum
        # Raised only into our own code: inside a library (a database driver's finalizer, say)
        # it could leave that library's state half changed under the threads still using it.
        # Elsewhere the next checkpoint raises it, at most one poll interval or batch later.
        module = frame.f_globals.get("__name__", "") if frame is not None else ""
        if not self.done and (module == "verify" or module.startswith("verify.")):
            raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    def _unraisable(self, info) -> None:
        if not (isinstance(info.exc_value, KeyboardInterrupt) and self.caught is not None):
            self.unraisablehook(info)  # ours is raised again at the next checkpoint


_deadline: float | None = None  # time.monotonic() at which --max-duration runs out


def time_box(seconds: float | None) -> None:
    """From now on, :func:`checkpoint` raises :class:`TimeBoxed` once ``seconds`` have passed
    (None: no time box). A native pass polls it, so the box stops it within a poll interval."""
    global _deadline
    _deadline = None if seconds is None else time.monotonic() + seconds


def _signalled() -> None:
    cur = stop_on_signals._current
    if cur is not None and cur.caught is not None and not cur.done:
        raise Terminated() if cur.caught == signal.SIGTERM else KeyboardInterrupt()


def checkpoint() -> None:
    """Raise the caught signal's exception if it has not stopped the run yet (see stop_on_signals),
    or :class:`TimeBoxed` once the time box (:func:`time_box`) has run out."""
    _signalled()
    if _deadline is not None and time.monotonic() >= _deadline:
        raise TimeBoxed()


def work_done() -> None:
    """The command's work is complete: from now on a signal does not abort the writing of its outputs
    (an interrupted run writes none; a finished one writes them whole), and the time box is over."""
    _signalled()
    time_box(None)
    if stop_on_signals._current is not None:
        stop_on_signals._current.done = True
