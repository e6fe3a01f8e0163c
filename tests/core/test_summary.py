"""verify/core/summary.py: shard results merge in any order; exit codes come from severities."""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from verify.core.findings import KINDS, MAP_KINDS, Finding, Severity
from verify.core.findingset import FindingSet, using
from verify.core.spill import Spill
from verify.core.summary import Lock, ShardResult, Summary


def _result(rng: random.Random, n: int) -> ShardResult:
    kinds = ["map_v1", "object_unmigrated", "stray_entry", "unreadable", "object_orphan"]
    r = ShardResult()
    for _ in range(n):
        k = rng.choice(kinds)
        name = f"obj-{rng.randrange(20)}"
        r.findings.append(Finding(k, rng.choice(["maps", "blocks"]), name, f"aa/bb/cc/{name}-{rng.randrange(3)}"))
        r.counters[f"maps.{rng.choice(['files', 'v1'])}"] += 1
    r.locks.append(Lock("maps", f"vol-{rng.randrange(5)}_lock", rng.choice(["", "node1_7000"])))
    return r


def test_merge_is_associative_and_order_free():
    rng = random.Random(7)
    parts = [_result(rng, rng.randrange(0, 15)) for _ in range(5)]
    want = Summary.from_result(ShardResult.merge_all(parts))
    for perm in itertools.islice(itertools.permutations(parts), 30):
        s = Summary.from_result(ShardResult.merge_all(perm))
        assert (s.findings, s.counters, s.locks) == (want.findings, want.counters, want.locks)
    a, b, c = parts[:3]
    left = Summary.from_result(a.merge(b).merge(c))
    right = Summary.from_result(a.merge(b.merge(c)))
    assert (left.findings, left.counters, left.locks) == (right.findings, right.counters, right.locks)


def test_one_finding_per_kind_store_and_name():
    fs = [Finding("object_unmigrated", "blocks", "x" * 64, f"p{i}") for i in range(6)]
    fs.append(Finding("object_unmigrated", "maps", "x" * 64, "q"))
    s = Summary.from_result(ShardResult(findings=fs))
    assert [(f.store, f.path) for f in s.findings] == [("blocks", "p0"), ("maps", "q")]
    assert s.per_kind == Counter({"object_unmigrated": 2})


def _dedupe_by_comparisons(findings):
    """The dedupe rule written plainly (sort everything, group, sort again): the oracle."""
    groups: dict = {}
    for f in sorted(findings, key=lambda f: (f.kind, f.store, f.name, f.path or "", f.detail)):
        groups.setdefault((f.kind, f.store, f.name), []).append(f)
    out = []
    for g in groups.values():
        extra = ""
        if len(g) > 1:
            extra = "; also at " + ", ".join(x.path or "?" for x in g[1:4]) + (
                f" and {len(g) - 4} more" if len(g) > 4 else "")
        out.append(Finding(g[0].kind, g[0].store, g[0].name, g[0].path, g[0].detail + extra))
    return sorted(out, key=lambda f: (-KINDS[f.kind].severity, f.kind, f.store, f.name))


@pytest.mark.parametrize("seed", range(5))
def test_order_of_findings_and_locks_is_that_of_plain_comparisons(seed):
    rng = random.Random(seed)
    kinds = sorted(KINDS)
    findings = [Finding(rng.choice(kinds), rng.choice(["maps", "blocks"]), f"o{rng.randrange(30)}",
                        rng.choice([None, "", "aa/bb/cc/x", "aa/bb/cc/y", "dd/ee/ff/x"]), rng.choice(["", "d1", "d2"]))
                for _ in range(rng.randrange(50, 400))]
    locks = [Lock(rng.choice(["maps", "blocks"]), f"v{rng.randrange(40)}_lock", rng.choice(["", "n1_1", "n2_7"]))
             for _ in range(rng.randrange(10, 200))]
    s = Summary.from_result(ShardResult(findings=list(findings), locks=list(locks)))
    assert s.findings == _dedupe_by_comparisons(findings)
    assert s.locks == sorted(locks)  # the dataclass's own order
    worst = max(KINDS[f.kind].severity for f in findings)
    assert s.exit_code == (2 if worst == Severity.UNREADABLE else 1 if worst >= Severity.WARNING else 0)


@pytest.mark.parametrize(
    ("kinds", "code"),
    [
        ([], 0),
        (["object_orphan"], 0),  # info only
        (["map_v1"], 1),
        (["object_conflict", "object_orphan"], 1),
        (["unreadable"], 2),
        (["map_v1", "unreadable", "object_at_risk"], 2),
    ],
)
def test_exit_code_from_the_worst_severity(kinds, code):
    s = Summary.from_result(ShardResult(findings=[Finding(k, "maps", f"n{i}") for i, k in enumerate(kinds)]))
    assert s.exit_code == code
    assert s.as_dict()["exit_code"] == code


def test_every_kind_has_a_severity_and_unknown_kinds_are_refused():
    assert {k.severity for k in KINDS.values()} == set(Severity)
    with pytest.raises(ValueError):
        Finding("map_v3", "maps", "x")


def test_held_locks_are_those_with_an_owner_and_every_lock_is_counted():
    # a scan lists only locks with an owner (unless asked for all); the counters count every one
    r = ShardResult(Counter({"maps.locks": 3, "blocks.locks": 2, "maps.files": 9}),
                    locks=[Lock("maps", "a_lock", "node1_7000"), Lock("blocks", "b_lock", "")])
    s = Summary.from_result(r)
    assert [lk.name for lk in s.held_locks] == ["a_lock"]
    assert s.lock_objects == 5
    assert s.as_dict()["locks"] == 5 and s.as_dict()["locks_held"] == 1


def test_record_kinds_name_finding_kinds():
    """The C records' kind codes (K_* in verify/native/_rules.h) are named by RECORD_KINDS, in order."""
    from verify.core.findings import RECORD_KINDS

    assert len(set(RECORD_KINDS)) == len(RECORD_KINDS)
    assert set(RECORD_KINDS) - {"lock", "ref"} <= set(KINDS)
    pxd = (Path(__file__).resolve().parents[2] / "verify" / "native" / "_rules.h").read_text()
    codes = dict(re.findall(r"^    (K_[A-Z0-9_]+) = (\d+)", pxd, flags=re.M))
    assert sorted(int(v) for v in codes.values()) == list(range(len(RECORD_KINDS)))
    assert RECORD_KINDS[int(codes["K_LOCK"])] == "lock" and RECORD_KINDS[int(codes["K_REF"])] == "ref"
    assert RECORD_KINDS[int(codes["K_MISMATCH"])] == "object_content_mismatch"


def _random_findings(rng, n):
    kinds = sorted(KINDS)
    return [Finding(rng.choice(kinds), rng.choice(["maps", "blocks"]), f"o{rng.randrange(30)}",
                    rng.choice([None, "aa/bb/cc/x", "aa/bb/cc/y", "dd/ee/ff/x", "dd/ee/ff/z", "q/r"]),
                    rng.choice(["", "d1", "d2"]))
            for _ in range(n)]


@pytest.mark.parametrize("seed", range(4))
def test_a_spilled_finding_set_gives_what_the_set_in_memory_gives(seed, tmp_path):
    """Past a tiny budget the set writes sorted runs and merges them: the same findings, the same order,
    the same counts; a drop forgets only what was added before it; no spill file outlives the run."""
    rng = random.Random(seed)
    parts = [_random_findings(rng, rng.randrange(20, 300)) for _ in range(3)]
    drop = {f"o{i}" for i in rng.sample(range(30), 5)}

    def build(spill):
        fs = FindingSet(parts[0], spill)
        other = FindingSet(parts[1], spill)  # a stage's own set, absorbed whole
        fs.drop("maps", drop, MAP_KINDS)
        fs.add(other)
        fs += parts[2]
        return fs.seal()

    with using(Spill(memory=1 << 30, tmpdir=str(tmp_path))) as big:
        whole = build(big)
        assert not whole.spilled
        expect = list(whole)
    kept = [f for f in parts[0] if not (f.store == "maps" and f.name in drop and f.kind in MAP_KINDS)]
    assert expect == _dedupe_by_comparisons(kept + parts[1] + parts[2])
    with using(Spill(memory=4096, tmpdir=str(tmp_path))) as tiny:
        spilled = build(tiny)
        assert spilled.spilled and tiny.spilled_bytes > 0
        assert list(spilled) == expect and list(spilled) == expect  # read twice: the same
        assert len(spilled) == len(expect) and spilled.per_kind == Counter(f.kind for f in expect)
        assert spilled.first_per_kind(2) == {k: [f for f in expect if f.kind == k][:2] for k in spilled.per_kind}
    assert list(tmp_path.iterdir()) == []
