"""What ``check --state DIR`` keeps between runs, and what changed since the last one.

Each run writes ``DIR/runs/<UTC time>.json.gz``: its exit code, the stages it ran,
the stores and the ``--instance`` name, its counts per store and kind with a digest
of each kind's set of names, the first :data:`DELTA_CAP` new and resolved findings
(with their counts), and one ``[kind, store, name]`` per finding (no paths or
details). Only the newest :data:`FULL_RUNS` runs keep that full list: when a run is
saved, the one that falls out of that window is rewritten without it, so an old run
costs a few KB however many findings it had, and the state dir stays under
:func:`size_bound`. The newest file is the previous run of the next one.

Format ``version`` 2; a file without a version (version 1: the full list and no
counts) is read as well, and compacted like any other once it is old.
A finding is *new* when the previous run did not have it; it is *resolved* when the
previous run had it and this run checked its kind fully. Kinds this run did not
check fully (a skipped stage, a ``--verify-data-sample`` slice) are carried over
unchanged, so they are neither resolved now nor new next time.

A run also keeps what each stage counted and how long it took (``progress``): the
next run's progress shows them as its totals and first ETAs (:mod:`verify.core.progress`),
and how many ``--verify-data-sample`` runs read their slice (``sample_runs``): the next
sampled run reads the slice after theirs (verify.ops.check.SampleWindow), whatever the date.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..core import findingset
from . import runfile
from ..core.errors import StoreError
from ..core.findings import KINDS
from ..core.progress import Measure
from ..core.spill import SpillList
from ..core.summary import Summary

KEEP_RUNS = 60  # two months of nightly runs
FULL_RUNS = 3  # the newest runs that keep every finding (the next run's baseline, the report's lists)
DELTA_CAP = 100  # new and resolved findings named per run (all are counted)
VERSION = runfile.VERSION
DELTA_SHARE = 0.05  # of --memory: each of the new and resolved lists (past it, they spill)
COMPACT_BYTES = 24 * 1024  # a compacted run's file is at most this: counts, digests, DELTA_CAP names twice
FINDING_BYTES = 48  # gzipped bytes per finding in a full list, at most (64-hex names are random)
Key = tuple[str, str, str]

# which kinds each stage decides (the scan decides everything else)
REFERENCE_KINDS = frozenset({"object_missing", "object_orphan", "map_corrupt", "map_data_missing"})
DATA_KINDS = frozenset({"object_content_mismatch"})


@dataclass
class Delta:
    previous: str | None  # the previous run's file name, None on the first run
    new: SpillList | list[Key] = field(default_factory=list)  # all of them, sorted; past a share of
    resolved: SpillList | list[Key] = field(default_factory=list)  # --memory, in the spill dir


def _key_size(key: Key) -> int:
    return 200 + len(key[2])


def covered_kinds(stages: list[str], data_complete: bool) -> set[str]:
    """Kinds a run with these stages checked completely."""
    kinds = set(KINDS) - REFERENCE_KINDS - DATA_KINDS if "scan" in stages else set()
    if "references" in stages:
        kinds |= REFERENCE_KINDS
    if "data" in stages and data_complete:
        kinds |= DATA_KINDS
    return kinds


def size_bound(findings: int) -> int:
    """Bytes the state dir stays under when no run had more than ``findings`` findings."""
    return FULL_RUNS * (findings * FINDING_BYTES + COMPACT_BYTES) + (KEEP_RUNS - FULL_RUNS) * COMPACT_BYTES


def _runs(d: Path) -> list[Path]:
    return sorted((d / "runs").glob("*.json.gz"))


def digest(names: list[str]) -> str:
    """One kind's set of ``store/name`` keys as 32 hex: two runs with the same digest had the same findings."""
    h = hashlib.sha256()
    for n in sorted(names):
        h.update(n.encode("utf-8", "surrogatepass") + b"\n")
    return h.hexdigest()[:32]


def _summarize(findings: list[Key]) -> tuple[list, dict[str, str]]:
    counts: dict[tuple[str, str], int] = {}
    names: dict[str, list[str]] = {}
    for kind, store, name in findings:
        counts[(store, kind)] = counts.get((store, kind), 0) + 1
        names.setdefault(kind, []).append(f"{store}/{name}")
    return [[s, k, n] for (s, k), n in sorted(counts.items())], {k: digest(v) for k, v in sorted(names.items())}


def read_run(path: Path) -> dict:
    """One run file as version 2 (``counts`` and ``digests`` made from a version 1 file's list), its
    list whole (for the report); ``findings`` is None for a compacted run.
    Raises OSError, EOFError, ValueError, KeyError, TypeError."""
    doc = runfile.read_head(path)
    doc["time"], doc["exit_code"] = float(doc["time"]), int(doc["exit_code"])
    doc["findings"] = list(runfile.keys(path)) if doc["findings"] else None
    if doc.get("version", 1) == 1:
        doc["counts"], doc["digests"] = _summarize(doc["findings"] or [])
    doc["counts"] = [(str(s), str(k), int(n)) for s, k, n in doc["counts"]]
    return doc


def _unreadable(path: Path, e: Exception) -> StoreError:
    return StoreError(f"{path}: unreadable state file ({e}); move it away to start afresh")


def _previous(d: Path) -> tuple[Path | None, Iterator[Key]]:
    """The previous run's file and its keys, sorted, read as they are merged; a damaged file is one line."""
    runs = _runs(d)
    if not runs:
        return None, iter(())
    try:
        if not runfile.read_head(runs[-1])["findings"]:
            raise KeyError("findings")
    except (OSError, EOFError, ValueError, KeyError, TypeError) as e:
        raise _unreadable(runs[-1], e) from None

    def read() -> Iterator[Key]:
        last = None
        try:
            for k in runfile.keys(runs[-1]):
                if last is not None and k <= last:
                    raise ValueError(f"its list is not sorted at {list(k)}")
                last = k
                yield k
        except (OSError, EOFError, ValueError, KeyError, TypeError) as e:
            raise _unreadable(runs[-1], e) from None
    return runs[-1], read()


def merged(cur: Iterator[Key], prev: Iterator[Key]) -> Iterator[tuple[Key, bool, bool]]:
    """Two sorted streams of distinct keys as one: each key with whether this run and the last had it."""
    end = ("\U0010ffff",)
    a, b = next(cur, end), next(prev, end)
    while a is not end or b is not end:
        if b is end or (a is not end and a < b):
            yield a, True, False
            a = next(cur, end)
        elif a is end or b < a:
            yield b, False, True
            b = next(prev, end)
        else:
            yield a, True, True
            a, b = next(cur, end), next(prev, end)


def load_expected(d: str | os.PathLike) -> dict[str, Measure]:
    """The newest run's per-stage counts and durations; empty when there is none (or it predates them).

    Only a hint for progress: an unreadable file is left to :func:`load_previous` to report."""
    runs = _runs(Path(d))
    if not runs:
        return {}
    try:
        measured = runfile.read_head(runs[-1]).get("progress") or {}
        out = {str(k): Measure.from_dict(v) for k, v in measured.items()}
    except (OSError, EOFError, ValueError, AttributeError, TypeError, KeyError):
        return {}
    return {k: m for k, m in out.items() if m is not None}


def sample_runs(d: str | os.PathLike) -> int:
    """How many sampled runs read their slice, as the newest run kept counted them (0 without one).

    An unreadable newest file is left to :func:`load_previous` to report."""
    runs = _runs(Path(d))
    if not runs:
        return 0
    try:
        done = runfile.read_head(runs[-1]).get("sample_runs", 0)
        return done if isinstance(done, int) and done >= 0 else 0
    except (OSError, EOFError, ValueError, AttributeError, TypeError, KeyError):
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
                     progress: dict | None = None, sample_runs_done: int = 0, instance: str | None = None,
                     stores: dict | None = None) -> Delta:
    """Compare with the previous run, then store this one (atomically); runs beyond FULL_RUNS are
    compacted, beyond KEEP_RUNS removed.

    ``progress``: what each stage counted and how long it took (``Progress.measured_dict()``);
    ``sample_runs_done``: the sampled runs that read their slice, this one included (:func:`sample_runs`);
    ``instance`` and ``stores``: what the run checked, for the report's title."""
    d = Path(d)
    try:
        (d / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"{d}: cannot create the state dir: {e.strerror}") from None
    prev_file, prev = _previous(d)
    prev_name = prev_file.name if prev_file is not None else None
    covered = covered_kinds(stages, data_complete)
    spill = findingset.current()
    share = spill.share(DELTA_SHARE) if spill else 1 << 62
    delta = Delta(prev_name, SpillList(spill, "state-new", share, _key_size),
                  SpillList(spill, "state-resolved", share, _key_size))
    counts: Counter = Counter()
    hashers: dict[str, Any] = {}
    try:
        body = runfile.Body(d / "runs")
    except OSError as e:
        raise StoreError(f"{d}: cannot write this run's state: {e.strerror or e}") from None
    try:
        for key, now, before in merged(summary.findings.keys(), prev):
            kind, store, name = key
            if not now:
                if kind in covered:
                    delta.resolved.append(key)
                    continue  # resolved: not known any more
            elif not before and prev_name is not None:
                delta.new.append(key)
            body.add(key)
            counts[(store, kind)] += 1
            h = hashers.get(kind) or hashers.setdefault(kind, hashlib.sha256())
            h.update(f"{store}/{name}\n".encode("utf-8", "surrogatepass"))
        doc = {"version": VERSION, "time": time.time(), "exit_code": summary.exit_code, "stages": stages,
               "covered": sorted(covered), "instance": instance, "stores": stores or {},
               "baseline": prev_name is not None, "counts": [[s, k, n] for (s, k), n in sorted(counts.items())],
               "digests": {k: h.hexdigest()[:32] for k, h in sorted(hashers.items())},
               "new": {"count": len(delta.new), "first": delta.new[:DELTA_CAP]},
               "resolved": {"count": len(delta.resolved), "first": delta.resolved[:DELTA_CAP]},
               "progress": progress or {}, "sample_runs": sample_runs_done}
        ns = time.time_ns()
        name = time.strftime("%Y%m%dT%H%M%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z-{os.getpid()}.json.gz"
        body.save(d / "runs" / name, doc)
    except OSError as e:
        raise StoreError(f"{d}: cannot write this run's state: {e.strerror or e}") from None
    finally:
        body.close()
    runs = _runs(d)
    for old in runs[:-KEEP_RUNS]:
        with contextlib.suppress(OSError):
            old.unlink()
    for old in runs[-KEEP_RUNS:-FULL_RUNS]:
        _compact(old)
    return delta


def _compact(path: Path) -> None:
    """Rewrite an old run without its list (atomically); one that cannot be read is left as it is
    (the report names it)."""
    try:
        doc = runfile.read_head(path)
        if not doc["findings"]:
            return
        if doc.get("version", 1) == 1:  # counts and digests from its list, then no list
            doc = read_run(path)
        del doc["findings"]
        doc["version"] = VERSION
        runfile.write_compact(path, doc)
    except (OSError, EOFError, ValueError, KeyError, TypeError):
        return
