"""What ``check`` adds to the scan's report: the stages, the reference and data
numbers, what changed since the last run, and the one-line ``--quiet`` summary.

Machine formats carry the same facts under a ``check`` key; the human wording may change.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ops.check import ran_stages, skipped_stages
from ..core.findings import printable
from .render import FindingsTable, ScanCounts
from ..ops.state import Delta
from ..core.summary import Summary


def check_facts(summary: Summary, delta: Delta | None, since_last: bool) -> dict:
    c = summary.counters
    d = {
        "stages_run": ran_stages(summary),
        "stages_skipped": skipped_stages(summary),
        "maps_read": sum(c.get(f"refs.maps_{v}", 0) for v in ("v0", "v1", "v2")),
        "maps_deleted": c.get("refs.maps_deleted", 0),
        "entries": c.get("refs.entries", 0),
        "references": c.get("refs.references", 0),
        "referenced_objects": c.get("refs.referenced_objects", 0),
        "stored_objects": c.get("refs.stored_objects", 0),
        # counts of findings come from the finding stream (one per object, whatever its paths)
        "missing_objects": summary.per_kind.get("object_missing", 0),
        "orphans": summary.per_kind.get("object_orphan", 0),
        "data_objects": c.get("data.objects", 0),
        "data_bytes": c.get("data.bytes", 0),
    }
    if delta is not None:
        if delta.previous is None:  # nothing to compare with: no counts that read as "nothing changed"
            d["since_last"] = {"previous": None, "baseline": False, "new": None, "resolved": None}
        else:
            d["since_last"] = {"previous": delta.previous, "baseline": True, "new": len(delta.new),
                               "resolved": len(delta.resolved)}
        if since_last:
            d["since_last"]["new_findings"] = [list(k) for k in delta.new]
            d["since_last"]["resolved_findings"] = [list(k) for k in delta.resolved]
    return d


@dataclass(frozen=True)
class CheckFacts:
    """The check's section of a report: stages, reference and data numbers, changes since the last run.

    In JSON and JSONL it is the ``check`` key; for people, lines after the scan's."""

    facts: dict
    key = "check"

    def data(self) -> dict:
        return self.facts

    def human(self, w, max_shown: int) -> None:
        facts = self.facts
        w(f"check stages: {', '.join(facts['stages_run'])}")
        if facts["stages_skipped"]:
            w(f"; SKIPPED {', '.join(facts['stages_skipped'])} (part of a store was unreadable: fix that first)")
        w("\n")
        if "references" in facts["stages_run"]:
            w(f"references: {facts['maps_read']:,} maps read ({facts['maps_deleted']:,} deleted), "
              f"{facts['references']:,} entries needing an object, {facts['referenced_objects']:,} distinct objects; "
              f"{facts['stored_objects']:,} stored; {facts['missing_objects']:,} missing, {facts['orphans']:,} orphans\n")
        if "data" in facts["stages_run"]:
            w(f"data: {facts['data_objects']:,} Pithos blocks hashed, {facts['data_bytes'] / 1e6:,.1f} MB\n")
        sl = facts.get("since_last")
        if sl is not None:
            if sl["previous"] is None:
                w("since last run: no baseline yet (the first run with this state dir); "
                  "the next run says what is new and what is resolved\n")
            else:
                w(f"since last run: {sl['new']:,} new, {sl['resolved']:,} resolved\n")
            for label, key in (("new", "new_findings"), ("resolved", "resolved_findings")):
                for kind, store, name in sl.get(key, [])[:max_shown]:
                    w(f"  {label:<9} {kind:<24} {store}:{name}\n")


def sections(summary: Summary, facts: dict, verbose: bool = False, stores: dict | None = None) -> tuple:
    """The check's report: the scan's counts, the check's facts, then the findings."""
    return ScanCounts(summary), CheckFacts(facts), FindingsTable(summary, verbose=verbose, stores=stores)


def quiet_line(summary: Summary, facts: dict) -> str:
    code = summary.exit_code
    verdict = {0: "OK", 1: "FINDINGS", 2: "INCOMPLETE"}[code]
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(summary.per_kind.items()))
    sl = facts.get("since_last")
    if sl is None:
        since = ""
    elif not sl["baseline"]:
        since = "; no baseline yet (first run with this state dir)"
    else:
        since = f"; new {sl['new']}, resolved {sl['resolved']}"
    skipped = f"; skipped {'+'.join(facts['stages_skipped'])}" if facts["stages_skipped"] else ""
    line = (f"archverify check: {verdict} (exit {code}): {len(summary.findings)} findings"
            + (f" ({kinds})" if kinds else "")
            + f"{since}; {facts['maps_read']} maps, "
            f"{facts['stored_objects']} objects, {facts['references']} references"
            + (f", {facts['data_bytes'] / 1e6:.1f} MB verified" if facts["data_objects"] else "")
            + f"{skipped}; {summary.elapsed:.1f}s")
    return printable(line)
