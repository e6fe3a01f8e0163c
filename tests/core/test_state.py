"""``check --state DIR`` stays bounded (verify/state.py): counts and digests for old runs, full
lists for the newest few, new and resolved still right run after run; old state files are read."""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from pathlib import Path

from verify import html_report, state
from verify.findings import Finding
from verify.summary import Summary

STAGES = ["scan", "references"]


def summary(keys) -> Summary:
    return Summary([Finding(k, s, n) for k, s, n in sorted(keys)], Counter(), [])


def names(rng: random.Random, n: int) -> list[str]:
    return [f"{rng.getrandbits(256):064x}" for _ in range(n)]


def dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())


def test_many_findings_stay_under_the_bound_and_new_and_resolved_stay_right(tmp_path):
    rng = random.Random(7)
    d = tmp_path / "state"
    cur = {("object_orphan", "blocks", n) for n in names(rng, 60_000)}
    cur |= {("object_missing", "blocks", n) for n in names(rng, 500)}
    peak = 0
    runs = 8
    for i in range(runs):
        prev = set(cur) if i else None
        if i:  # each night some orphans go, some come, and one missing object is restored
            gone = set(rng.sample(sorted(cur), 300))
            cur = (cur - gone) | {("object_orphan", "blocks", n) for n in names(rng, 200 + 50 * i)}
        peak = max(peak, len(cur))
        delta = state.compare_and_save(d, summary(cur), STAGES, False, instance="site", stores={})
        if prev is None:
            assert delta.previous is None
        else:
            assert set(delta.new) == cur - prev
            assert set(delta.resolved) == prev - cur
        assert dir_bytes(d) <= state.size_bound(peak), (i, dir_bytes(d), state.size_bound(peak))
    files = sorted((d / "runs").glob("*.json.gz"))
    assert len(files) == runs
    docs = [state.read_run(f) for f in files]
    assert [doc["findings"] is not None for doc in docs] == [False] * (runs - state.FULL_RUNS) + [True] * state.FULL_RUNS
    # a compacted run still has its counts and its new/resolved counts
    old = docs[1]
    assert sum(n for _, _, n in old["counts"]) > 0 and old["new"]["count"] > 0
    assert len(old["new"]["first"]) == min(old["new"]["count"], state.DELTA_CAP)
    # an old run costs a few KB however many findings it had
    assert max(f.stat().st_size for f in files[:-state.FULL_RUNS]) <= state.COMPACT_BYTES
    # the last run's full list has what this run found
    assert set(docs[-1]["findings"]) == cur
    # the report reads them all: each run's total, the last run's lists
    h = html_report.load_history(d)
    assert sum(h.runs[-1].per_kind.values()) == len(cur)
    assert h.runs[0].findings is None and h.runs[-1].findings is not None


def test_same_findings_same_digest_and_a_change_changes_it(tmp_path):
    d = tmp_path / "state"
    keys = {("object_orphan", "blocks", "a" * 64), ("map_v1", "maps", "vol")}
    for _ in range(2):
        state.compare_and_save(d, summary(keys), STAGES, False)
    state.compare_and_save(d, summary(keys | {("object_orphan", "blocks", "b" * 64)}), STAGES, False)
    a, b, c = (state.read_run(f)["digests"] for f in sorted((d / "runs").glob("*.json.gz")))
    assert a == b and a["map_v1"] == c["map_v1"] and a["object_orphan"] != c["object_orphan"]


def write_v1(d: Path, when: float, findings: list[list[str]]) -> Path:
    """A run file as archverify wrote it before format 2: the full list, no version, no counts."""
    (d / "runs").mkdir(parents=True, exist_ok=True)
    f = d / "runs" / f"20260101T000000.{int(when) % 10**9:09d}Z-1.json.gz"
    with gzip.open(f, "wt", encoding="utf-8") as fh:
        json.dump({"time": when, "exit_code": 1, "stages": STAGES, "covered": [], "findings": sorted(findings),
                   "progress": {}}, fh)
    return f


def test_a_state_dir_of_the_old_format_is_read_and_compacted_in_turn(tmp_path):
    d = tmp_path / "state"
    old = [["object_orphan", "blocks", "c" * 64], ["object_missing", "blocks", "d" * 64]]
    v1 = write_v1(d, 1_700_000_000.0, old)
    now = {("object_orphan", "blocks", "c" * 64), ("object_orphan", "blocks", "e" * 64)}
    delta = state.compare_and_save(d, summary(now), STAGES, False)
    assert delta.previous == v1.name  # the old file is the baseline
    assert delta.new == [("object_orphan", "blocks", "e" * 64)]
    assert delta.resolved == [("object_missing", "blocks", "d" * 64)]
    for _ in range(state.FULL_RUNS):
        state.compare_and_save(d, summary(now), STAGES, False)
    doc = state.read_run(v1)
    assert doc["version"] == state.VERSION and doc["findings"] is None
    assert sorted(doc["counts"]) == [("blocks", "object_missing", 1), ("blocks", "object_orphan", 1)]
    with gzip.open(v1, "rt") as fh:
        assert "findings" not in json.load(fh)
