"""Checkpoints: what an interrupted or time-boxed scan or check already finished, in its state dir.

``DIR/checkpoint/COMMAND/`` holds ``meta.json`` (the fingerprint of the stores and the
options the run reads with, when it began, the ``--verify-data-sample`` window it reads)
and one ``PART.json.gz`` per finished part: a scan shard (a range of a filed store's
top-level dirs, a range of a RADOS pool's listing slices) or a whole later stage of
``check``. Each file is written atomically (temp, fsync, rename): a crash, SIGKILL
included, leaves a part finished or absent, never half written.

A run with ``--resume`` takes the finished parts from the checkpoint instead of reading
them again; shard results merge in any order (verify/core/summary.py), so the final report
is the one an uninterrupted run gives. It refuses a checkpoint made for other stores or
options, and starts afresh, saying so, from one older than :data:`MAX_AGE_S` (its
findings would be too old to report as today's). A run without ``--resume`` starts
afresh too, and says so when it discards a checkpoint. A finished run removes it.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

from .. import __version__
from ..durable.atomic import fsync_dir, remove_temps, replaced, write_atomic
from ..durable.locks import run_lock
from ..core.errors import StoreError, TimeBoxed, UsageError
from ..core.findings import Finding
from ..core.summary import Lock, ShardResult

MAX_AGE_S = 7 * 86400  # a week: a nightly time box continues for six more nights, no longer
DEFAULT_SHARDS = 16  # shards per store when checkpointing (--shards overrides): a stop loses at most one
PARTS = 256  # what a store is cut into: a filed store's top-level dirs, a RADOS pool's listing slices
META = "meta.json"
PART_SUFFIX = ".json.gz"


def fingerprint(command: str, backend, options: dict) -> dict:
    """What a checkpoint belongs to: the command, archverify's version, the stores, the options
    that decide the findings. How a store is read (``engine``: ops in flight) is left out."""
    stores = {role: {k: v for k, v in d.items() if k != "engine"} for role, d in backend.describe().items()}
    fp = {"command": command, "version": __version__, "backend": backend.name, "stores": stores, "options": options}
    return json.loads(json.dumps(fp))  # as a checkpoint's meta.json reads back (lists, not tuples)


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k} {a!r} -> {b!r}")
    return out


def default_shards(jobs: int) -> int:
    """Shards per store when checkpointing: :data:`DEFAULT_SHARDS`, fewer when ``jobs`` is above
    PARTS / DEFAULT_SHARDS, so that each of a filed shard's threads still has a top-level dir to walk."""
    return max(1, min(DEFAULT_SHARDS, PARTS // max(1, jobs)))


def parts_done(n: int) -> str:
    return f"{n} part{'' if n == 1 else 's'} done"


def part_name(store: str, lo: int, hi: int) -> str:
    """A scan shard's part: ``scan.maps.0-16``."""
    return f"scan.{store}.{lo}-{hi}"


def _encode(result: ShardResult, elapsed: float) -> bytes:
    doc = {"counters": dict(result.counters), "elapsed": elapsed,
           "findings": [[f.kind, f.store, f.name, f.path, f.detail, f.version] for f in result.findings],
           "locks": [[lk.store, lk.name, lk.owner] for lk in result.locks]}
    return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), mtime=0)


def _decode(raw: bytes) -> tuple[ShardResult, float]:
    doc = json.loads(gzip.decompress(raw))
    findings = [Finding(k, s, n, p, d, v) for k, s, n, p, d, v in doc["findings"]]
    locks = [Lock(*lk) for lk in doc["locks"]]
    return ShardResult(Counter(doc["counters"]), findings, locks), float(doc["elapsed"])


class Checkpoint:
    """The finished parts of one run; :meth:`part` runs a part or takes it from here."""

    def __init__(self, root: Path, meta: dict, parts: dict[str, tuple[ShardResult, float]], resumed: bool):
        self.root, self.meta, self.parts, self.resumed = root, meta, parts, resumed
        self.reused_elapsed = 0.0  # time the parts taken from here took when they ran
        self.done_now = 0

    @classmethod
    @contextlib.contextmanager
    def held(cls, state_dir: str | os.PathLike, command: str, print_fp: dict, resume: bool,
             warn: Callable[[str], None], extra: dict | None = None, now: float | None = None) -> Iterator[Checkpoint]:
        """The checkpoint of ``command`` in ``state_dir``, locked for this run (one run per dir and command).

        ``extra``: what a new checkpoint keeps for the runs that continue it (the sample window)."""
        root = Path(state_dir) / "checkpoint" / command
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(run_lock(root.parent, command, remove=True))
            except OSError as e:  # writing the holder into the lock file (a full disk)
                raise StoreError(f"{root.parent}: cannot lock the checkpoint: {e.strerror or e}") from None
            yield cls._open(root, print_fp, resume, warn, extra or {}, time.time() if now is None else now)

    @classmethod
    def _open(cls, root: Path, print_fp: dict, resume: bool, warn, extra: dict, now: float) -> Checkpoint:
        try:
            remove_temps(str(root))  # of a run killed while it wrote a part (we hold the lock)
        except OSError as e:
            raise StoreError(f"{root}: cannot clean the checkpoint: {e.strerror or e}") from None
        meta = _read_meta(root)
        if meta is not None:
            began = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(meta.get("began", 0)))
            done = len(_part_files(root))
            if not resume:
                warn(f"{root}: discarding the checkpoint of the run begun {began} ({parts_done(done)}); "
                     "starting afresh (give --resume to continue it)")
            elif meta.get("fingerprint") != print_fp:
                diff = "; ".join(_differences(meta.get("fingerprint") or {}, print_fp)[:3])
                raise UsageError(f"{root}: the checkpoint is of another store or options ({diff}); "
                                 "not resuming: run without --resume to start afresh")
            elif now - meta.get("began", 0) > MAX_AGE_S:
                warn(f"{root}: the checkpoint of the run begun {began} is older than {MAX_AGE_S // 86400} days; "
                     "starting afresh")
            else:
                return cls(root, meta, _load_parts(root), True)
            shutil.rmtree(root, ignore_errors=True)
        meta = {"began": now, "fingerprint": print_fp, **extra}
        try:
            root.mkdir(parents=True, exist_ok=True)
            write_atomic(root / META, json.dumps(meta, indent=1, sort_keys=True) + "\n")
        except OSError as e:
            raise StoreError(f"{root}: cannot write the checkpoint: {e.strerror or e}") from None
        return cls(root, meta, {}, False)

    def part(self, name: str, run: Callable[[], ShardResult], progress: Callable[[int], object] | None = None,
             ) -> ShardResult:
        """Part ``name``'s result: kept from an earlier run (its files fed to ``progress``), or run now and kept."""
        if name in self.parts:
            result, elapsed = self.parts[name]
            self.reused_elapsed += elapsed
            if progress is not None:
                progress(sum(v for k, v in result.counters.items() if k.endswith(".files")))
            return result
        t0 = time.monotonic()
        result = run()
        elapsed = time.monotonic() - t0
        try:
            with replaced(self.root / f"{name}{PART_SUFFIX}", binary=True) as fh:
                fh.write(_encode(result, elapsed))
        except OSError as e:
            raise StoreError(f"{self.root}: cannot write the checkpoint: {e.strerror or e}") from None
        self.parts[name] = (result, elapsed)
        self.done_now += 1
        return result

    def finish(self) -> None:
        """The run is complete: nothing is left to resume."""
        shutil.rmtree(self.root, ignore_errors=True)
        with contextlib.suppress(OSError):
            fsync_dir(self.root.parent)

    @contextlib.contextmanager
    def time_boxed(self, max_duration: str | None) -> Iterator[None]:
        """A :class:`TimeBoxed` stop becomes the one line that says what is kept and how to go on."""
        try:
            yield
        except TimeBoxed:
            raise TimeBoxed(f"stopped at the time box (--max-duration {max_duration}): "
                            f"{parts_done(len(self.parts))} ({self.done_now} in this run) are kept in {self.root}; run the same command "
                            "with --resume to continue") from None


def _read_meta(root: Path) -> dict | None:
    try:
        meta = json.loads((root / META).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise StoreError(f"{root / META}: unreadable checkpoint ({e}); remove {root} to start afresh") from None
    if not isinstance(meta, dict):
        raise StoreError(f"{root / META}: unreadable checkpoint (not an object); remove {root} to start afresh")
    return meta


def _part_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob(f"*{PART_SUFFIX}") if not p.name.startswith("."))


def _load_parts(root: Path) -> dict[str, tuple[ShardResult, float]]:
    parts = {}
    for p in _part_files(root):
        try:
            parts[p.name[: -len(PART_SUFFIX)]] = _decode(p.read_bytes())
        except (OSError, ValueError, KeyError, TypeError, EOFError) as e:
            raise StoreError(f"{p}: unreadable checkpoint part ({e}); remove {root} to start afresh") from None
    return parts


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``6h``, ``90m``, ``3600s``, ``1h30m``, or plain seconds: how long, in seconds (ValueError otherwise)."""
    t = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", t):
        seconds = float(t)
    elif t and re.fullmatch(f"(?:{_DURATION.pattern})+", t):
        seconds = sum(float(n) * _UNIT_S[u] for n, u in _DURATION.findall(t))
    else:
        raise ValueError(f"{text!r}: give a duration such as 6h, 90m, 3600s or 1h30m")
    if seconds <= 0:
        raise ValueError(f"{text!r}: give a duration above zero")
    return seconds
