"""Progress of a run's stages, for the person at a terminal and for journald.

At a terminal: a tqdm bar per stage. With ``--progress`` and stderr not a terminal (a
systemd unit, as the shipped one runs it; cron with a log file): one plain line every
``interval`` seconds, written by a thread of its own so that it comes even while the
work sends no tick (stage, done/total, rate, ETA), and one when a stage starts and
ends, so a journal shows where a long run is. Otherwise: nothing.

Totals come from the previous run's measurements (``check --state`` keeps them,
:mod:`verify.ops.state`): the same store has about as many files, references and blocks
as last night, so its count is the total and its duration the first ETA. Where there
is no previous run, a cheap estimate may serve (PostgreSQL's row estimate, a RADOS
pool's object count): shown as one, ``~`` before the total.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import TextIO

INTERVAL_ENV = "ARCHVERIFY_PROGRESS_INTERVAL"  # seconds between plain lines (default 10)
DEFAULT_INTERVAL = 10.0


@dataclass(frozen=True)
class Measure:
    """How much one stage counted and how long it took."""

    count: int
    seconds: float
    estimated: bool = False  # a cheap first count (a database's estimate), not a previous run's

    def as_dict(self) -> dict:
        return {"count": self.count, "seconds": round(self.seconds, 3)}

    @classmethod
    def from_dict(cls, d) -> Measure | None:
        try:
            count, seconds = int(d["count"]), float(d["seconds"])
        except (KeyError, TypeError, ValueError):
            return None
        return cls(count, seconds) if count >= 0 and seconds >= 0 else None


# tqdm's own bar with "~" before an estimated total: "1.2k/~100k"
ESTIMATED_BAR = "{l_bar}{bar}| {n_fmt}/~{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


def duration(seconds: float) -> str:
    s = int(round(max(seconds, 0)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _interval() -> float:
    try:
        return max(float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL)), 0.0)
    except ValueError:
        return DEFAULT_INTERVAL


class Progress:
    """One run's progress: how it is shown, what the previous run measured, what this one measures."""

    def __init__(self, enabled: bool | None = None, expected: dict[str, Measure] | None = None,
                 stream: TextIO | None = None, interval: float | None = None):
        self.stream = stream if stream is not None else sys.stderr
        try:
            tty = self.stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        if enabled is None:
            enabled = tty
        self.mode = None if not enabled else ("bar" if tty else "lines")
        self.expected = dict(expected or {})
        self.measured: dict[str, Measure] = {}
        self.interval = _interval() if interval is None else interval

    @property
    def enabled(self) -> bool:
        return self.mode is not None

    def stage(self, key: str, desc: str, unit: str = "file") -> Stage:
        """A stage's counter; ``key`` names it in the state (``scan``, ``references``, ``data``)."""
        return Stage(self, key, desc, unit)

    def record(self, key: str, count: int, seconds: float) -> None:
        prev = self.measured.get(key)
        if prev is not None:  # a stage run in parts (shards) is one measure
            count, seconds = prev.count + count, prev.seconds + seconds
        self.measured[key] = Measure(count, seconds)

    def measured_dict(self) -> dict:
        return {k: m.as_dict() for k, m in self.measured.items()}


def as_progress(p: Progress | bool | None) -> Progress:
    """``--progress``/``--no-progress``/unset, or a Progress already made by the command."""
    return p if isinstance(p, Progress) else Progress(p)


class Stage:
    """Counts one stage; shows it as the run's Progress says. ``update`` is the backends' tick."""

    def __init__(self, progress: Progress, key: str, desc: str, unit: str):
        self.progress, self.key, self.desc, self.unit = progress, key, desc, unit
        self.expect = progress.expected.get(key)
        self.estimated = bool(self.expect and self.expect.estimated)
        self.count = 0
        self.t0 = self.last = time.monotonic()
        self.bar = None
        self.closed = False
        self._stop = threading.Event()
        self._ticker = None
        if progress.mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(desc=desc, unit=unit, unit_scale=True, file=progress.stream, leave=False,
                            dynamic_ncols=True, total=self.expect.count if self.expect and self.expect.count else None,
                            bar_format=ESTIMATED_BAR if self.estimated else None)
        elif progress.mode == "lines":
            if self.expect and self.expect.estimated:
                self._line(f"started; about {self.expect.count:,} {unit}s expected")
            else:
                self._line("started" + (f"; the previous run counted {self.expect.count:,} {unit}s in "
                                        f"{duration(self.expect.seconds)}" if self.expect else ""))
            if progress.interval > 0:
                # a line every interval even while no tick comes (a long listing, a slow pool): a journal
                # that stays silent cannot be told from a hung run
                self._ticker = threading.Thread(target=self._tick, name=f"progress-{key}", daemon=True)
                self._ticker.start()

    def update(self, n: int = 1) -> None:
        self.count += n
        if self.bar is not None:
            if self.bar.total is not None and self.count > self.bar.total:
                self.bar.total = self.count  # more than last time: no ETA beyond "almost done"
            self.bar.update(n)
        elif self.progress.mode == "lines" and self._ticker is None:
            now = time.monotonic()
            if now - self.last >= self.progress.interval:
                self.last = now
                self._line(self.status(now))

    def _tick(self) -> None:
        while not self._stop.wait(self.progress.interval):
            self._line(self.status())

    def status(self, now: float | None = None) -> str:
        """``done/total (pct), rate, ETA`` as far as they are known."""
        elapsed = (now if now is not None else time.monotonic()) - self.t0
        rate = self.count / elapsed if elapsed > 0 else 0.0
        total = self.expect.count if self.expect else None
        about = "~" if self.estimated else ""
        text = f"{self.count:,}" + (f"/{about}{total:,} {self.unit}s ({100 * self.count / total:.0f}%)" if total
                                    else f" {self.unit}s")
        text += f", {rate:,.0f} {self.unit}s/s"
        eta = self.eta(elapsed, rate)
        if eta is not None:
            text += f", ETA {duration(eta)}"
        return text

    def eta(self, elapsed: float, rate: float) -> float | None:
        if not self.expect:
            return None
        left = max(self.expect.count - self.count, 0)
        if rate > 0:
            return left / rate
        if self.estimated and not self.expect.seconds:
            return None  # an estimate without a cap has no duration
        return max(self.expect.seconds - elapsed, 0.0)  # nothing counted yet: the previous duration

    def close(self, ended: str = "done") -> None:
        """End the stage: ``done``, ``interrupted`` (a signal) or ``stopped`` (an error). Only a stage
        that ran to its end is recorded as the next run's expectation, and only it says ``done``."""
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        seconds = time.monotonic() - self.t0
        if ended == "done":
            self.progress.record(self.key, self.count, seconds)
        if self.bar is not None:
            self.bar.close()
        elif self.progress.mode == "lines":
            if ended == "done":
                self._line(f"done: {self.count:,} {self.unit}s in {duration(seconds)}")
            else:
                self._line(f"{ended} after {self.count:,} {self.unit}s in {duration(seconds)}; not finished")

    def _line(self, text: str) -> None:
        try:
            self.progress.stream.write(f"archverify: progress: {self.desc}: {text}\n")
            self.progress.stream.flush()
        except (OSError, ValueError):
            pass  # journald gone: progress is never worth failing a run for

    def __enter__(self) -> Stage:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # SIGTERM arrives as errors.Terminated, a KeyboardInterrupt
            self.close("interrupted" if issubclass(exc_type, KeyboardInterrupt) else "stopped")
