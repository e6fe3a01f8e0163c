"""How a run reacts to SIGINT and SIGTERM: one policy, for the reading and the writing commands.

- A reading run (scan, check, pithos-check; :class:`stop_on_signals`): the signal raises
  KeyboardInterrupt or :class:`~verify.core.errors.Terminated` into our own code, the run stops
  and joins its native threads (verify/native/nativejob.py) and writes nothing; once its work is
  done (:func:`work_done`) a signal no longer aborts the writing of its outputs.
- A writing run (upgrade, migrate, finalize; :func:`catch_stop_signals`,
  :func:`stop_between_steps`): the signal only *asks* to stop; the step in hand is finished
  and journaled, and :func:`check_stop` raises :class:`~verify.core.errors.Interrupted` before the next.
- Either way the run ends with one line, ``archverify: interrupted`` or ``terminated``
  (:func:`stop_word`), and exit 128 + the signal: 130 for SIGINT, 143 for SIGTERM
  (:func:`exit_code`); before a command installs its handlers, and on a second signal, at
  once (:func:`exit_now`). Once the interpreter begins to exit, the signals are ignored: the
  work is over, and a late signal must not turn the exit code into a death by signal.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from concurrent.futures import Executor, ThreadPoolExecutor

from .errors import Interrupted, Terminated, TimeBoxed

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STEP_WAIT_S = 0.2  # how long a writing run waits for a step before it looks at the signals again


def exit_code(signo: int) -> int:
    """The exit code of a run stopped by ``signo``: 130 (SIGINT), 143 (SIGTERM)."""
    return 128 + signo


def stop_word(signo: int) -> str:
    """The word of the one line a stopped run ends with."""
    return "terminated" if signo == signal.SIGTERM else "interrupted"


def exit_now(signum: int, frame=None) -> None:
    """Exit at once on SIGINT/SIGTERM, with the line and code of a stopped run.

    For the moments no native loop can run (starting up, a second signal while the run
    stops): os._exit frees nothing, so nothing can be freed under a running thread.
    """
    os.write(2, f"archverify: {stop_word(signum)}\n".encode())
    os._exit(exit_code(signum))


# ---- a reading run: unwind, stop and join the native threads, write nothing -----------

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
            for sig in STOP_SIGNALS:
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
                signal.signal(sig, signal.SIG_IGN if handler is exit_now else handler)

    def _on_signal(self, signum, frame) -> None:
        if self.caught is not None:
            exit_now(signum)
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


# ---- a writing run: stop between two steps ------------------------------------------

_stop: dict = {"signo": None, "depth": 0, "saved": None}


def _on_signal(signo, _frame) -> None:
    if _stop["signo"] is None:
        _stop["signo"] = signo


def catch_stop_signals() -> None:
    """From now on SIGINT/SIGTERM only set the stop flag (writer commands: for the rest of the process).

    Once the interpreter begins to exit they are ignored: the work is over, and a
    late signal must not turn the run's exit code into a death by signal.
    """
    if threading.current_thread() is threading.main_thread():
        for s in STOP_SIGNALS:
            previous = signal.signal(s, _on_signal)
            _stop.setdefault("before_catch", {}).setdefault(s, previous)
        if not _stop.get("atexit"):
            _stop["atexit"] = True
            atexit.register(_ignore_stop_signals)


def release_stop_signals() -> None:
    """Undo :func:`catch_stop_signals` and clear the flag: for a process that goes on after a
    writer command returned (a program embedding archverify, the test suite)."""
    for s, h in _stop.pop("before_catch", {}).items():
        signal.signal(s, h)
    _stop["signo"] = None


def _ignore_stop_signals() -> None:
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)  # process-wide, and kept by the interpreter's own teardown


@contextlib.contextmanager
def stop_between_steps() -> Iterator[None]:
    """Within: a signal sets the stop flag, which :func:`check_stop` turns into :class:`Interrupted`.

    Nests; the outermost one (when the handlers were not already ours) restores the
    previous handlers and clears the flag. Outside the main thread, nothing changes.
    """
    main = threading.current_thread() is threading.main_thread()
    installs = main and _stop["depth"] == 0 and signal.getsignal(signal.SIGTERM) is not _on_signal
    if installs:
        _stop["saved"] = {s: signal.signal(s, _on_signal) for s in STOP_SIGNALS}
    _stop["depth"] += 1
    try:
        yield
    finally:
        _stop["depth"] -= 1
        if installs:
            for s, h in _stop["saved"].items():
                signal.signal(s, h)
            _stop["saved"] = None
            _stop["signo"] = None


def stop_requested() -> int | None:
    """The signal that asked to stop, if any."""
    return _stop["signo"]


def main_thread_takes_the_signals() -> None:
    """Block SIGINT and SIGTERM in the calling worker thread (and the threads it starts): the
    kernel then hands them to the main thread, whose wait wakes and runs the handler at once."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def step_pool(jobs: int) -> ThreadPoolExecutor:
    """The threads of a writing run's steps: SIGINT and SIGTERM are blocked in them.

    The kernel then hands the signal to the main thread, whose wait for a step wakes and
    runs the handler at once. A signal that a worker took instead would wait, unseen,
    until the next step ended, and on a loaded machine the rest of the run could finish
    before the stop was asked for.
    """
    from concurrent.futures import ThreadPoolExecutor  # here: a reading run does not import it (and logging)

    return ThreadPoolExecutor(max_workers=max(1, jobs), initializer=main_thread_takes_the_signals)


def map_steps(pool: Executor, step: Callable, items: Iterable) -> list:
    """``step`` over ``items`` in ``pool``, results in order. On the first exception (an
    :class:`Interrupted` from :func:`check_stop`) the steps not begun are cancelled, the
    ones in hand are finished, and it is raised."""
    from concurrent.futures import wait

    futures = [pool.submit(step, it) for it in items]
    try:
        out = []
        for f in futures:
            # woken every STEP_WAIT_S: a signal that a thread other than this one took (one
            # started by a library, say) has its handler run here meanwhile, not after the step
            while not wait((f,), timeout=STEP_WAIT_S).done:
                pass
            out.append(f.result())
        return out
    except BaseException:
        for f in futures:
            f.cancel()
        raise


def check_stop() -> None:
    """Between two steps: raise :class:`Interrupted` if a signal asked to stop."""
    if _stop["signo"] is not None:
        raise Interrupted(_stop["signo"])
