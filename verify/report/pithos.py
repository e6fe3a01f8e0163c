"""What ``pithos-check`` shows people: rows and map versions instead of files scanned.

JSON, JSONL and ``--logdir`` output are the common ones of :mod:`verify.report.render`; the
pithos counters are in the summary's ``counters`` (``pithos.rows``, ``pithos.v0`` ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from .render import FindingsTable, HumanSection
from ..core.summary import Summary


@dataclass(frozen=True)
class PithosFacts(HumanSection):
    """Versions checked and the forms their maps were found in."""

    summary: Summary

    def human(self, w, max_shown: int) -> None:
        summary = self.summary
        c = summary.counters
        rows = c.get("pithos.rows", 0)
        rate = f", {rows / summary.elapsed:,.0f} rows/s" if summary.elapsed > 0 and rows else ""
        w(f"checked {rows:,} versions with a map ({c.get('pithos.snapshots', 0):,} snapshots) "
          f"in {summary.elapsed:.2f}s{rate}\n")
        w("maps found: " + ", ".join(f"{v} {c.get(f'pithos.{v}', 0):,}" for v in ("v2", "v1", "v0", "corrupt"))
          + f"; in no form {c.get('pithos.none', 0):,}")
        if c.get("pithos.unavailable_skipped"):
            w(f" ({c['pithos.unavailable_skipped']:,} of them snapshots still being made: not a loss)")
        w("\n")


def sections(summary: Summary, verbose: bool = False, stores: dict | None = None) -> tuple:
    return PithosFacts(summary), FindingsTable(
        summary, verbose=verbose, stores=stores,
        incomplete="some maps could not be read (see 'unreadable'); fix access and check again.",
        not_done="Maps Pithos needs are missing or disagree with the database: restore them from backup "
                 "before upgrading or deleting anything.",
        clean="every map the Pithos database needs is in the maps store, with the right size.")
