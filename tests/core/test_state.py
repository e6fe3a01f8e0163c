"""``check --state DIR`` stays bounded (verify/ops/state.py): counts and digests for old runs, full
lists for the newest few, new and resolved still right run after run, the same within a tiny
memory budget (spilled findings, streamed comparison); old state files are read."""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from verify.core import findingset
from verify.report import html as html_report
from verify.ops import runfile, state
from verify.core.errors import StoreError
from verify.core.findings import Finding
from verify.core.spill import MIN_MEMORY, Spill
from verify.core.summary import Summary

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


def nights(rng: random.Random, runs: int):
    """The same sequence of finding sets each time it is made: orphans come and go, maps change."""
    cur = {("object_orphan", "blocks", n) for n in names(rng, 20_000)}
    cur |= {("map_v1", "maps", n) for n in names(rng, 300)} | {("object_missing", "blocks", n) for n in names(rng, 50)}
    for i in range(runs):
        if i:
            gone = set(rng.sample(sorted(cur), 400))
            cur = (cur - gone) | {("object_orphan", "blocks", n) for n in names(rng, 150 + 40 * i)}
            cur |= {("map_corrupt", "maps", n) for n in names(rng, 5)}
        yield set(cur)


def run_nights(d: Path, spill: Spill | None) -> list[tuple]:
    out = []
    for cur in nights(random.Random(11), 5):
        if spill is None:
            delta = state.compare_and_save(d, summary(cur), STAGES, False)
        else:
            with findingset.using(spill):
                s = summary(cur)
                assert s.findings.spilled  # the budget is tiny: the findings are on disk
                delta = state.compare_and_save(d, s, STAGES, False)
                out.append((list(delta.new), list(delta.resolved), state.read_run(_last(d))["findings"]))
            continue
        out.append((list(delta.new), list(delta.resolved), state.read_run(_last(d))["findings"]))
    return out


def _last(d: Path) -> Path:
    return sorted((d / "runs").glob("*.json.gz"))[-1]


def test_a_tiny_memory_budget_gives_the_same_new_and_resolved(tmp_path):
    in_ram = run_nights(tmp_path / "ram", None)
    spill = Spill(MIN_MEMORY, str(tmp_path))
    spilled = run_nights(tmp_path / "spill", spill)
    assert spilled == in_ram
    assert sum(len(n) + len(r) for n, r, _ in in_ram[1:]) > 2000  # past the budget's share of new/resolved
    assert {"findings-run", "state-new", "state-resolved"} <= spill.made  # every list spilled
    assert not list(tmp_path.glob("archverify-spill-*"))  # and its spill dir went with the run
    assert not list((tmp_path / "spill" / "runs").glob(".*"))  # no temp list left in the state dir


def test_a_run_file_is_one_json_document_whose_head_reads_alone(tmp_path):
    d = tmp_path / "state"
    keys = {("object_orphan", "blocks", f"{i:064x}") for i in range(10_000)} | {("map_v1", "maps", "vol\udcff,]")}
    state.compare_and_save(d, summary(keys), STAGES, False, progress={"scan": {"count": 3, "seconds": 1.0}})
    f = _last(d)
    with gzip.open(f, "rt", encoding="utf-8") as fh:
        whole = json.load(fh)
    assert [tuple(k) for k in whole["findings"]] == sorted(keys)
    head = runfile.read_head(f)
    assert head["findings"] is True and head["counts"] == whole["counts"] and head["progress"] == whole["progress"]
    with gzip.open(f, "rt", encoding="utf-8") as fh:
        assert len(fh.readline()) < 4096  # the head line holds no finding
    # a run file of the one-line layout (what earlier versions wrote) is the baseline just the same
    whole["findings"] = [["object_orphan", "blocks", "0" * 64]]
    with gzip.open(f, "wt", encoding="utf-8") as fh:
        json.dump(whole, fh, separators=(",", ":"))
    delta = state.compare_and_save(d, summary({("object_orphan", "blocks", "1" * 64)}), STAGES, False)
    assert list(delta.new) == [("object_orphan", "blocks", "1" * 64)]
    assert list(delta.resolved) == [("object_orphan", "blocks", "0" * 64)]


@pytest.mark.parametrize("damage", ["truncated", "unsorted", "not_a_key"])
def test_a_damaged_previous_list_is_one_line_naming_the_file(tmp_path, damage):
    d = tmp_path / "state"
    keys = {("object_orphan", "blocks", f"{i:064x}") for i in range(9000)}
    state.compare_and_save(d, summary(keys), STAGES, False)
    f = _last(d)
    with gzip.open(f, "rt", encoding="utf-8") as fh:
        lines = fh.readlines()
    if damage == "truncated":
        lines = lines[:5000]
    elif damage == "unsorted":
        lines[6000], lines[7000] = lines[7000], lines[6000]
    else:
        lines[8000] = '["object_orphan",3],\n'
    with gzip.open(f, "wt", encoding="utf-8") as fh:
        fh.writelines(lines)
    with pytest.raises(StoreError) as e:
        state.compare_and_save(d, summary(keys), STAGES, False)
    assert str(e.value).startswith(f"{f}: unreadable state file (") and "\n" not in str(e.value)
    assert len(list((d / "runs").glob("*.json.gz"))) == 1 and not list((d / "runs").glob(".*"))
