"""``check --prometheus-textfile``: the run's numbers for node_exporter's textfile collector.

Rendered by prometheus_client and written through :mod:`verify.durable.atomic` (a temp file
renamed over the target, removed if the disk is full), so node_exporter never reads
half a file. ``last_success`` is the end of the last
run that ran every stage it was asked to (exit code 0 or 1); a failed run keeps the
previous value, read back from the file it replaces, so an alert on its age works.

Every sample carries ``archverify_instance``: which check wrote it (``--instance``, by
default the config file's name without ``.conf``, or the stores named on the command
line). node_exporter merges every ``*.prom`` file of its directory, so two checks on
one host write one file each (``archverify-NAME.prom``); the label keeps their series
apart, and a file that holds another instance's metrics is refused, never replaced.
The ``severity`` label is one of :data:`SEVERITIES`: an ``unreadable`` finding is an
``error`` there (its run also exits 2, which ``archverify_check_exit_code`` says).
"""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ..durable.atomic import write_atomic
from ..core.findings import KINDS, Severity
from ..core.summary import EXIT_TROUBLE, Summary

LAST_SUCCESS = "archverify_check_last_success_timestamp_seconds"
INSTANCE = "archverify_instance"
# the severity label's closed set, from the findings' severities
SEVERITIES = ("info", "warning", "error")
SEVERITY_LABEL = {Severity.INFO: "info", Severity.WARNING: "warning", Severity.ERROR: "error",
                  Severity.UNREADABLE: "error"}


def default_instance(config_path: str | None, stores: dict[str, str | None]) -> str:
    """The config file's name without ``.conf`` (``archipelago``), else the stores as given
    (``maps=/srv/maps,blocks=pool blocks``): stable from run to run, whatever the run's end."""
    if config_path:
        name = os.path.basename(os.fspath(config_path))
        return name[:-5] if name.endswith(".conf") and len(name) > 5 else name
    return ",".join(f"{role}={where}" for role, where in stores.items() if where) or "default"


def _previous(path: str) -> tuple[float | None, set[str]]:
    """The last success the file records, and the instances its samples name."""
    last, instances = None, set()
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if INSTANCE in s.labels:
                    instances.add(s.labels[INSTANCE])
                if s.name == LAST_SUCCESS:
                    last = s.value
    except (OSError, ValueError):
        return None, set()
    return last, instances


def owner_conflict(path: str | os.PathLike, instance: str) -> str | None:
    """The reason not to write ``path`` for ``instance``: it holds another check's metrics
    (a file from before the label is this instance's)."""
    _, instances = _previous(os.fspath(path))
    others = sorted(instances - {instance})
    if not others:
        return None
    return (f"{os.fspath(path)} holds the metrics of archverify_instance {others[0]!r}, not {instance!r}: give each "
            "check its own textfile (e.g. archverify-NAME.prom), or the same --instance as before")


def _gauges(reg: CollectorRegistry, instance: str):
    """A setter of one labelled gauge per call, in ``reg`` (kept as its ``registry``)."""

    def gauge(name: str, doc: str, value: float) -> None:
        Gauge(name, doc, [INSTANCE], registry=reg).labels(instance).set(value)

    gauge.registry = reg
    return gauge


def write_textfile(path: str | os.PathLike, summary: Summary, new: int | None = None, resolved: int | None = None,
                   now: float | None = None, instance: str = "default") -> None:
    path = os.fspath(path)
    now = time.time() if now is None else now
    reg = CollectorRegistry()
    gauge = _gauges(reg, instance)
    per_kind = summary.per_kind
    g = Gauge("archverify_check_findings", "Findings of the last check run, per kind", [INSTANCE, "kind", "severity"],
              registry=reg)
    for kind, k in KINDS.items():
        g.labels(instance, kind, SEVERITY_LABEL[k.severity]).set(per_kind.get(kind, 0))
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
    last = now if complete else _previous(path)[0]
    if last is not None:
        gauge(LAST_SUCCESS, "When the last complete run ended", last)
    write_atomic(path, generate_latest(gauge.registry))


def write_failure(path: str | os.PathLike, exit_code: int, now: float | None = None, instance: str = "default") -> None:
    """A run that ended before it had numbers (exit 2 before reading: a broken config, a dead
    monitor, the lock held; or 130/143, stopped by a signal) still says so: its exit code and
    when it ended, with the last complete run's time kept. The previous run's findings are not
    repeated as if they were this run's: an alert on them waits for the next complete run.
    Another instance's file is left alone."""
    path = os.fspath(path)
    if owner_conflict(path, instance):
        return
    now = time.time() if now is None else now
    gauge = _gauges(CollectorRegistry(), instance)
    gauge("archverify_check_exit_code", "Exit code of the last run (0 clean, 1 findings, 2 incomplete)", exit_code)
    gauge("archverify_check_last_run_timestamp_seconds", "When the last run ended", now)
    last = _previous(path)[0]
    if last is not None:
        gauge(LAST_SUCCESS, "When the last complete run ended", last)
    write_atomic(path, generate_latest(gauge.registry))
