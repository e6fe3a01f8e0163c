"""What ``check --state DIR`` keeps between runs, and what changed since the last one.

Each run writes ``DIR/runs/<UTC time>.json.gz``: its exit code, the stages it ran
and one ``[kind, store, name]`` per finding (no paths or details, so a million
findings take a few MB). The newest file is the previous run of the next one.
A finding is *new* when the previous run did not have it; it is *resolved* when the
previous run had it and this run checked its kind fully. Kinds this run did not
check fully (a skipped stage, a ``--verify-data-sample`` slice) are carried over
unchanged, so they are neither resolved now nor new next time.

A run also keeps what each stage counted and how long it took (``progress``): the
next run's progress shows them as its totals and first ETAs (:mod:`verify.progress`),
and how many ``--verify-data-sample`` runs read their slice (``sample_runs``): the next
sampled run reads the slice after theirs (verify.check.SampleWindow), whatever the date.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .durable import replaced
from .errors import StoreError
from .findings import KINDS
from .progress import Measure
from .summary import Summary

KEEP_RUNS = 60  # two months of nightly runs
Key = tuple[str, str, str]

# which kinds each stage decides (the scan decides everything else)
REFERENCE_KINDS = frozenset({"object_missing", "object_orphan", "map_corrupt", "map_data_missing"})
DATA_KINDS = frozenset({"object_content_mismatch"})


@dataclass
class Delta:
    previous: str | None  # the previous run's file name, None on the first run
    new: list[Key] = field(default_factory=list)
    resolved: list[Key] = field(default_factory=list)


def covered_kinds(stages: list[str], data_complete: bool) -> set[str]:
    """Kinds a run with these stages checked completely."""
    kinds = set(KINDS) - REFERENCE_KINDS - DATA_KINDS if "scan" in stages else set()
    if "references" in stages:
        kinds |= REFERENCE_KINDS
    if "data" in stages and data_complete:
        kinds |= DATA_KINDS
    return kinds


def _runs(d: Path) -> list[Path]:
    return sorted((d / "runs").glob("*.json.gz"))


def load_previous(d: Path) -> tuple[str | None, set[Key]]:
    runs = _runs(d)
    if not runs:
        return None, set()
    try:
        with gzip.open(runs[-1], "rt", encoding="utf-8") as fh:
            doc = json.load(fh)
        return runs[-1].name, {tuple(k) for k in doc["findings"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StoreError(f"{runs[-1]}: unreadable state file ({e}); move it away to start afresh") from None


def load_expected(d: str | os.PathLike) -> dict[str, Measure]:
    """The newest run's per-stage counts and durations; empty when there is none (or it predates them).

    Only a hint for progress: an unreadable file is left to :func:`load_previous` to report."""
    runs = _runs(Path(d))
    if not runs:
        return {}
    try:
        with gzip.open(runs[-1], "rt", encoding="utf-8") as fh:
            measured = json.load(fh).get("progress") or {}
        out = {str(k): Measure.from_dict(v) for k, v in measured.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}
    return {k: m for k, m in out.items() if m is not None}


def sample_runs(d: str | os.PathLike) -> int:
    """How many sampled runs read their slice, as the newest run kept counted them (0 without one).

    An unreadable newest file is left to :func:`load_previous` to report."""
    runs = _runs(Path(d))
    if not runs:
        return 0
    try:
        with gzip.open(runs[-1], "rt", encoding="utf-8") as fh:
            done = json.load(fh).get("sample_runs", 0)
        return done if isinstance(done, int) and done >= 0 else 0
    except (OSError, ValueError, AttributeError, TypeError):
        return 0


def prepare(d: str | os.PathLike) -> None:
    """Fail before the run, not after it, when the state dir cannot be written."""
    d = Path(d) / "runs"
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".probe-", dir=d)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise StoreError(f"{d}: cannot write the state dir: {e.strerror}") from None


def compare_and_save(d: str | os.PathLike, summary: Summary, stages: list[str], data_complete: bool,
                     progress: dict | None = None, sample_runs_done: int = 0) -> Delta:
    """Compare with the previous run, then store this one (atomically); old runs beyond KEEP_RUNS go.

    ``progress``: what each stage counted and how long it took (``Progress.measured_dict()``);
    ``sample_runs_done``: the sampled runs that read their slice, this one included (:func:`sample_runs`)."""
    d = Path(d)
    try:
        (d / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"{d}: cannot create the state dir: {e.strerror}") from None
    prev_name, prev = load_previous(d)
    cur = {(f.kind, f.store, f.name) for f in summary.findings}
    covered = covered_kinds(stages, data_complete)
    delta = Delta(prev_name)
    if prev_name is not None:
        delta.new = sorted(cur - prev)
        delta.resolved = sorted(k for k in prev - cur if k[0] in covered)
    known = cur | {k for k in prev if k[0] not in covered}
    doc = {"time": time.time(), "exit_code": summary.exit_code, "stages": stages, "covered": sorted(covered),
           "findings": sorted(known), "progress": progress or {}, "sample_runs": sample_runs_done}
    ns = time.time_ns()
    name = time.strftime("%Y%m%dT%H%M%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z-{os.getpid()}.json.gz"
    try:
        with replaced(d / "runs" / name, binary=True) as raw, gzip.GzipFile(fileobj=raw, mode="wb") as gz:
            gz.write(json.dumps(doc, separators=(",", ":")).encode())
    except OSError as e:
        raise StoreError(f"{d}: cannot write this run's state: {e.strerror or e}") from None
    for old in _runs(d)[:-KEEP_RUNS]:
        with contextlib.suppress(OSError):
            old.unlink()
    return delta
