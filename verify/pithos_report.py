"""The human report of ``pithos-check``: rows and map versions instead of files scanned.

JSON, JSONL and ``--logdir`` output are the common ones of :mod:`verify.report`; the
pithos counters are in the summary's ``counters`` (``pithos.rows``, ``pithos.v0`` ...).
"""

from __future__ import annotations

from typing import TextIO

from . import __version__
from .findings import KINDS
from .report import SEVERITY_WORD
from .summary import Summary


def write_human(out: TextIO, summary: Summary, backend: str, stores: dict, max_shown: int = 20) -> None:
    w = out.write
    c = summary.counters
    rows = c.get("pithos.rows", 0)
    rate = f", {rows / summary.elapsed:,.0f} rows/s" if summary.elapsed > 0 and rows else ""
    w(f"archverify {__version__} pithos-check ({backend}): maps={stores['maps'].get('dir') or stores['maps'].get('pool')}"
      f", database={stores['pithos_db']['url']}\n")
    w(f"checked {rows:,} versions with a map ({c.get('pithos.snapshots', 0):,} snapshots) "
      f"in {summary.elapsed:.2f}s{rate}\n")
    w("maps found: " + ", ".join(f"{v} {c.get(f'pithos.{v}', 0):,}" for v in ("v2", "v1", "v0", "corrupt"))
      + f"; in no form {c.get('pithos.none', 0):,}")
    if c.get("pithos.unavailable_skipped"):
        w(f" ({c['pithos.unavailable_skipped']:,} of them snapshots still being made: not a loss)")
    w("\n\n")
    per_kind = summary.per_kind
    if not per_kind:
        w("OK: every map the Pithos database needs is in the maps store, with the right size.\n")
        return
    w(f"{'kind':<26}{'count':>10}  severity  what to do\n")
    for kind, k in KINDS.items():
        if per_kind.get(kind):
            w(f"{kind:<26}{per_kind[kind]:>10,}  {SEVERITY_WORD[k.severity]:<8}  {k.advice}\n")
    shown = summary.findings[:max_shown]
    w(f"\nfirst {len(shown)} of {len(summary.findings):,} findings (all of them: --format json or --logdir DIR):\n")
    for f in shown:
        w(f"  {f.kind:<24} {f.store}:{f.path or f.name}  ({f.detail})\n")
    w("\n")
    code = summary.exit_code
    if code == 2:
        w("INCOMPLETE: some maps could not be read (see 'unreadable'); fix access and check again.\n")
    elif code == 1:
        w(f"NOT DONE: {len(summary.findings):,} findings. Maps Pithos needs are missing or disagree with the "
          "database: restore them from backup before upgrading or deleting anything.\n")
    else:
        w("OK: only informational findings.\n")
