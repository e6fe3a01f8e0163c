"""Caps on the load a run puts on a store: objects per second and bytes per second.

A production cluster serves its users while a nightly check reads it; systemd's
``IOSchedulingClass=idle`` does nothing for RADOS or NFS traffic, so the run itself
keeps below the caps (as rclone's ``--tpslimit`` and ``--bwlimit`` do). The caps are one
token bucket per process in C (verify/native/_native.h ``av_limit_take``), shared by every
thread of every GIL-free loop: the filed walker takes one object per file it visits and
the bytes of each read; the RADOS loop one object per listed object before its first aio
op, and the bytes of each completed read before it issues more; pithos-check one object
per map looked up. Python paths take from the same bucket (:func:`take`).

An object is counted once whatever the run does with it, so ``objects / cap`` bounds
a run's length from below; :func:`estimate_line` says so before a long run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core.errors import UsageError

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_COUNT_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}
_NUMBER = r"\s*(\d+(?:\.\d*)?|\.\d+)\s*"
_SIZE = re.compile(_NUMBER + r"([kmgt]?)(?:i?b)?\s*(?:/s)?\s*", re.I)
_COUNT = re.compile(_NUMBER + r"([kmg]?)\s*(?:/s)?\s*", re.I)


def parse_size(text: str, flag: str) -> float:
    """'50M', '50MiB', '50M/s', '1.5G', '2000000': bytes per second (K, M, G, T are powers of 1024, as rclone's)."""
    m = _SIZE.fullmatch(str(text))
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"{flag} {text!r}: give a positive size per second, e.g. 50M, 1.5G or 2000000")
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


def parse_count(text: str, flag: str) -> float:
    """'2000', '2k', '0.5': objects per second (k, M, G are powers of 1000)."""
    m = _COUNT.fullmatch(str(text))
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"{flag} {text!r}: give a positive number of objects per second, e.g. 2000 or 2k")
    return float(m.group(1)) * _COUNT_UNITS[m.group(2).lower()]


def human_bytes(n: float) -> str:
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        size = 1 << (10 * ("KMGT".index(unit[0]) + 1))
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n:.4g} B"


def human_duration(seconds: float) -> str:
    """'27 h 47 min', '3 min 20 s', '12 s'."""
    s = int(round(max(seconds, 0)))
    if s < 1:
        return "under a second"
    if s >= 3600:
        m = (s + 30) // 60  # to the nearest minute
        return f"{m // 60} h {m % 60} min"
    if s >= 60:
        return f"{s // 60} min {s % 60} s"
    return f"{s} s"


@dataclass(frozen=True)
class Limits:
    """The caps of one run; None: uncapped."""

    objects: float | None = None  # objects per second
    bytes: float | None = None  # bytes per second

    def __bool__(self) -> bool:
        return bool(self.objects or self.bytes)

    def describe(self) -> str:
        """'limits: 2000 objects/s, 50 MiB/s' (what the start line of a run says)."""
        parts = []
        if self.objects:
            parts.append(f"{self.objects:.6g} objects/s")
        if self.bytes:
            parts.append(f"{human_bytes(self.bytes)}/s")
        return "limits: " + (", ".join(parts) if parts else "none")

    def as_dict(self) -> dict:
        return {"objects_per_second": self.objects, "bytes_per_second": self.bytes}


# Each extension module has its own copy of the bucket's pointer: every one whose loops take from it is
# named here. A missing one is a broken install, except the RADOS ones, built only where librados is.
NATIVE_LOOPS = ("verify._scan", "verify.native._filedpass", "verify.native._probe", "verify.native._rados",
                "verify.native._radoscan", "verify.native._radosread")


def _modules():
    """The native modules whose loops take from the bucket (those built here)."""
    import importlib

    out = []
    for name in NATIVE_LOOPS:
        try:
            out.append(importlib.import_module(name))
        except ImportError:
            if not name.startswith("verify.native._rados"):
                raise
    return out


_current = Limits()


def apply(limits: Limits) -> None:
    """Makes ``limits`` the caps of every native loop of this process from now on."""
    global _current
    mods = _modules()
    owner = next(m for m in mods if m.__name__ == "verify._scan")
    address = owner._limit_configure(float(limits.objects or 0), float(limits.bytes or 0))
    for m in mods:
        if m is not owner:
            m._limit_use(address)
    _current = limits


def current() -> Limits:
    return _current


def take(objects: int = 0, nbytes: int = 0) -> None:
    """Waits until the caps let ``objects`` objects and ``nbytes`` bytes go (a Python path's share)."""
    if _current:
        from .. import _scan

        _scan._limit_take(objects, nbytes)


def estimate_line(objects: int | None, limits: Limits, passes: int = 1) -> str | None:
    """'estimate: about 200,000,000 objects; at 2000 objects/s about 27 h 47 min', from the store's
    object count (None when the store cannot tell) and how many times the run goes over it
    (check: the scan and the references, the data too with --verify-data); without an objects
    cap, the count alone."""
    if not objects:
        return None
    text = f"estimate: about {objects:,} objects" + (f", gone over {passes} times" if passes > 1 else "")
    if limits.objects:
        text += f"; at {limits.objects:.6g} objects/s about {human_duration(passes * objects / limits.objects)}"
    return text
