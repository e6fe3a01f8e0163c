"""``check --prometheus-textfile``: the run's numbers for node_exporter's textfile collector.

Rendered by prometheus_client and written through :mod:`verify.atomic` (a temp file
renamed over the target, removed if the disk is full), so node_exporter never reads
half a file. ``last_success`` is the end of the last
run that ran every stage it was asked to (exit code 0 or 1); a failed run keeps the
previous value, read back from the file it replaces, so an alert on its age works.
"""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from .durable import write_atomic
from .findings import KINDS
from .summary import EXIT_TROUBLE, Summary

LAST_SUCCESS = "archverify_check_last_success_timestamp_seconds"


def _previous_success(path: str) -> float | None:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name == LAST_SUCCESS:
                    return s.value
    except (OSError, ValueError):
        return None
    return None


def write_textfile(path: str | os.PathLike, summary: Summary, new: int | None = None, resolved: int | None = None,
                   now: float | None = None) -> None:
    path = os.fspath(path)
    now = time.time() if now is None else now
    reg = CollectorRegistry()

    def gauge(name: str, doc: str, value: float) -> None:
        Gauge(name, doc, registry=reg).set(value)

    per_kind = summary.per_kind
    g = Gauge("archverify_check_findings", "Findings of the last check run, per kind", ["kind", "severity"], registry=reg)
    for kind, k in KINDS.items():
        g.labels(kind, k.severity.name.lower()).set(per_kind.get(kind, 0))
    c = summary.counters
    gauge("archverify_check_maps_checked", "Maps whose entries the last run read (v0, v1, v2)",
          sum(c.get(f"refs.maps_{v}", 0) for v in ("v0", "v1", "v2")))
    gauge("archverify_check_map_references", "Map entries that need an object, in the last run", c.get("refs.references", 0))
    gauge("archverify_check_objects_referenced", "Distinct objects named by map entries", c.get("refs.referenced_objects", 0))
    gauge("archverify_check_objects_checked", "Objects found in the blocks store where v0.4 reads them",
          c.get("refs.stored_objects", 0))
    gauge("archverify_check_files_scanned", "Files the scan stage listed in both stores", summary.files_scanned)
    gauge("archverify_check_bytes_verified", "Bytes of Pithos blocks hashed by --verify-data", c.get("data.bytes", 0))
    gauge("archverify_check_objects_verified", "Pithos blocks hashed by --verify-data", c.get("data.objects", 0))
    gauge("archverify_check_duration_seconds", "Wall time of the last run", summary.elapsed)
    gauge("archverify_check_exit_code", "Exit code of the last run (0 clean, 1 findings, 2 incomplete)", summary.exit_code)
    gauge("archverify_check_last_run_timestamp_seconds", "When the last run ended", now)
    if new is not None:
        gauge("archverify_check_findings_new", "Findings the previous run did not have", new)
    if resolved is not None:
        gauge("archverify_check_findings_resolved", "Findings of the previous run gone now", resolved)
    complete = summary.exit_code != EXIT_TROUBLE and not any(k.startswith("check.skipped.") for k in c)
    last = now if complete else _previous_success(path)
    if last is not None:
        gauge(LAST_SUCCESS, "When the last complete run ended", last)
    write_atomic(path, generate_latest(reg))


def write_failure(path: str | os.PathLike, exit_code: int, now: float | None = None) -> None:
    """A run that ended before it had numbers (exit 2 before reading: a broken config, a dead
    monitor, the lock held; or 130/143, stopped by a signal) still says so: its exit code and
    when it ended, with the last complete run's time kept. The previous run's findings are not
    repeated as if they were this run's: an alert on them waits for the next complete run."""
    path = os.fspath(path)
    now = time.time() if now is None else now
    reg = CollectorRegistry()
    Gauge("archverify_check_exit_code", "Exit code of the last run (0 clean, 1 findings, 2 incomplete)",
          registry=reg).set(exit_code)
    Gauge("archverify_check_last_run_timestamp_seconds", "When the last run ended", registry=reg).set(now)
    last = _previous_success(path)
    if last is not None:
        Gauge(LAST_SUCCESS, "When the last complete run ended", registry=reg).set(last)
    write_atomic(path, generate_latest(reg))
