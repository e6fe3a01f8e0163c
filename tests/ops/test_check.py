"""``archverify check``: references, entry-level corruption, data, and the cron options.

Generated stores plant every check finding (and things that must NOT be findings:
deleted maps, deleted entries, zero blocks, snapshots and clones sharing objects,
blocks with trailing zeros, blocks still at their old Pithos path); the stores the
real Archipelago v0.4 wrote (tests/fixtures/golden/, from Archipelago's own C peers,
grnet/archipelago develop 81bf5b5, decoded in the facts files kept with them)
pin the reference stage to what the real code leaves behind.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from planted_check import CHECK_KINDS, Planted, build_store
from verify.ops import check as check_op
from verify.core import formats as F
from verify.core import layout
from verify.ops import scan as scan_op
from verify.backends.filed.backend import FiledBackend
from verify.cli.main import cli
from verify.ops.sample import FiledStoreWriter, pithos_hash

GOLDEN = Path(__file__).parents[1] / "fixtures" / "golden"
REPO = Path(__file__).resolve().parents[2]


def backend(p: Planted) -> FiledBackend:
    return FiledBackend(str(p.maps), str(p.blocks))


def keys(summary, kinds=None) -> set:
    return {(f.kind, f.store, f.name) for f in summary.findings if kinds is None or f.kind in kinds}


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Planted:
    return build_store(tmp_path_factory.mktemp("planted"))


def test_reports_exactly_what_was_planted(planted):
    s = check_op.check(backend(planted), jobs=2, progress=False)
    got = keys(s, CHECK_KINDS | {"map_corrupt"})
    assert got == planted.expect
    assert s.exit_code == 1


def test_check_includes_every_scan_finding(planted):
    be = backend(planted)
    scanned = keys(scan_op.scan(be, 2, progress=False))
    checked = keys(check_op.check(be, 2, progress=False))
    # one map finding per map: a map the reference stage finds corrupt loses the scan's lesser one
    corrupt = {name for kind, store, name in checked if kind == "map_corrupt" and store == "maps"}
    superseded = {k for k in scanned if k[1] == "maps" and k[2] in corrupt and k[0] != "map_corrupt"}
    assert superseded == {("map_v0", "maps", hashlib.sha256(b"ragged").hexdigest())}
    scanned -= superseded
    assert scanned <= checked
    assert checked - scanned == (planted.expect - scanned) | {("map_data_missing", "maps", "archip_huge-volume")}


def test_missing_detail_names_referencing_maps_and_indexes(planted):
    s = check_op.check(backend(planted), jobs=1, progress=False)
    for f in s.findings:
        if f.kind != "object_missing":
            continue
        for map_name, idx in planted.missing_refs[f.name].items():
            assert f"{map_name}[{','.join(map(str, idx))}]" in f.detail
        assert f.path == layout.v04_path(f.name.encode()).decode()


def test_absurd_map_gives_one_map_data_missing(planted):
    s = check_op.check(backend(planted), jobs=2, progress=False)
    assert [f.name for f in s.findings if f.kind == "map_data_missing"] == ["archip_huge-volume"]


def test_jobs_do_not_change_results(planted):
    one = check_op.check(backend(planted), jobs=1, progress=False, verify_data=True)
    four = check_op.check(backend(planted), jobs=4, progress=False, verify_data=True)
    assert keys(one) == keys(four)
    c1, c4 = one.counters, four.counters
    for k in ("refs.references", "refs.referenced_objects", "refs.stored_objects", "data.objects", "data.bytes"):
        assert c1[k] == c4[k]


def test_paths_kept_by_the_scan_give_what_a_second_walk_gives(planted, monkeypatch):
    """The reference stage marks the blocks the scan walked from the paths it kept (all shards, some
    of them within a small budget, none): the same findings, paths, details and counters."""
    from verify.backends.filed import check as filed_check

    seen = []
    real_refs, real_keep = filed_check.check_references, FiledBackend.keep_heads
    monkeypatch.setattr(filed_check, "check_references",
                        lambda *a, **kw: seen.append(sum(hi - lo for lo, hi, _p in a[4] or ())) or real_refs(*a, **kw))
    runs = {}
    for label, budget in (("all", 0), ("some", 1), ("none", -1)):
        if label == "some":
            budget = 500  # fits a few of the 8 shards of planted's blocks store
        monkeypatch.setattr(FiledBackend, "keep_heads",
                            lambda self, _b=0, budget=budget: real_keep(self, 0) if budget == 0 else (
                                real_keep(self, budget) if budget > 0 else None))
        s = check_op.check(backend(planted), jobs=2, progress=False, shards_per_store=8)
        runs[label] = ([(f.kind, f.store, f.name, f.path, f.detail) for f in s.findings],
                       {k: v for k, v in s.counters.items() if k.startswith("refs.")})
    assert seen[0] == 256 and 0 < seen[1] < 256 and seen[2] == 0
    assert runs["all"] == runs["none"] and runs["some"] == runs["none"]
    assert any(k == "object_orphan" for k, *_ in runs["none"][0])


def test_verify_data_finds_flipped_and_truncated_blocks(planted):
    s = check_op.check(backend(planted), jobs=2, progress=False, verify_data=True)
    assert keys(s, {"object_content_mismatch"}) == {("object_content_mismatch", "blocks", n) for n in planted.flipped}
    # every other Pithos block (trailing zeros, old path, orphan) hashed and matched
    assert s.counters["data.objects"] >= len(planted.pithos) + len(planted.flipped)
    without = check_op.check(backend(planted), jobs=2, progress=False)
    assert not keys(without, {"object_content_mismatch"})


def test_sample_windows_cover_the_store_once_a_week(planted):
    be = backend(planted)
    total = be.verify_data(2, check_op.SampleWindow.of(None).as_tuple()).counters["data.objects"]
    assert total >= len(planted.pithos) + len(planted.flipped)
    seen = []
    for day in range(20000, 20007):
        w = check_op.SampleWindow.of(1 / 7, day)
        res = be.verify_data(2, w.as_tuple())
        seen.append({f.name for f in res.findings})
        assert res.counters["data.objects"] + res.counters["data.unsampled"] == total
    union = set().union(*seen)
    assert union == planted.flipped
    assert sum(len(x) for x in seen) == len(union)  # each block in exactly one day's slice
    # the same day gives the same slice
    w = check_op.SampleWindow.of(1 / 7, 20003)
    assert {f.name for f in be.verify_data(1, w.as_tuple()).findings} == seen[3]


def test_sample_window_rule():
    w = check_op.SampleWindow.of(0.25, 5)
    fp = lambda name: int.from_bytes(hashlib.sha256(name).digest()[:8], "big")  # noqa: E731
    names = [os.urandom(8).hex().encode() for _ in range(2000)]
    days = [check_op.SampleWindow.of(0.25, d) for d in range(4)]
    for n in names:
        assert sum(d.contains(fp(n)) for d in days) == 1
    assert w.start == (5 * w.width) % (1 << 64)


# ---------------------------------------------------------------- a slow pure-Python oracle


def _plain_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return len(raw) >= 6


def naive_references(maps_dir: Path, blocks_dir: Path):
    """The reference rules, read straight off FORMATS with os.walk and verify.core.formats."""
    needed, kept, corrupt = {}, set(), set()

    def read(rel):
        try:
            return (maps_dir / rel).read_bytes()
        except FileNotFoundError:
            return None

    for dirpath, _dirs, files in os.walk(maps_dir):
        if Path(dirpath).relative_to(maps_dir).parts.__len__() != 3:
            continue
        for name in files:
            raw = os.fsencode(name)
            if not _plain_utf8(raw):
                continue
            if len(raw) < 6 or F.is_mapdata_name(raw) or name.endswith(("_lock", "_hash")) or "_lock" in name or "_hash" in name:
                continue
            data = (Path(dirpath) / name).read_bytes()
            h = F.classify(data[:64], len(data), raw)
            if h.cls == F.HeaderClass.V0:
                if len(data) % 32:
                    corrupt.add(name)
                m = F.parse_v0(data[: len(data) // 32 * 32])
                ents = m.entries
            elif h.cls == F.HeaderClass.V1:
                ents = F.parse_v1(data).entries
            elif h.cls == F.HeaderClass.V2:
                ents, nr = [], F.nr_objs(h.size, h.blocksize)
                for i in range(nr):
                    blk, off = F.entry_location(i, h.blocksize)
                    md = read(layout.v04_path(F.mapdata_name(name, blk).encode()).decode())
                    if md is None:
                        break  # the map cannot load: nothing past here is read
                    if len(md) < off + 128:
                        corrupt.add(name)
                        ents.append(None)
                        continue
                    try:
                        ents.append(F.parse_v2_entry(md, off))
                    except F.MapFormatError:
                        corrupt.add(name)
                        ents.append(None)
                if h.flags & F.MF_DELETED:
                    corrupt.discard(name)
                    kept.update(e.name for e in ents if e is not None and not e.zero or (e and e.deleted))
                    continue
            else:
                continue
            for i, e in enumerate(ents):
                if e is None:
                    continue
                if e.deleted:
                    kept.add(e.name)
                elif not e.zero:
                    needed.setdefault(e.name, set()).add((name, i))
    stored = set()
    hash_files = []
    for dirpath, _dirs, files in os.walk(blocks_dir):
        rel = Path(dirpath).relative_to(blocks_dir)
        if len(rel.parts) != 3:
            continue
        for name in files:
            raw = os.fsencode(name)
            if not _plain_utf8(raw):
                continue
            if name.endswith("_hash"):
                hash_files.append(name)
                continue
            if name.endswith("_lock") or "_lock" in name or "_hash" in name:
                continue
            dirs = str(rel).encode()
            if dirs == layout.v04_dirs(raw) or dirs == layout.pithos_dirs(raw):
                stored.add(name)
    missing = set(needed) - stored
    orphans = stored - set(needed) - kept
    for hf in hash_files:
        base = hf[:-5].encode()
        if not any((blocks_dir / p.decode()).is_file() for p in (layout.pithos_path(base), layout.v04_path(base)) if p):
            orphans.add(hf)
    return missing, orphans, corrupt


def test_fast_path_agrees_with_the_naive_oracle(planted, tmp_path):
    from verify.ops.sample import write_sample

    for p_maps, p_blocks in ((planted.maps, planted.blocks),
                             (lambda s: (s.maps_dir, s.blocks_dir))(write_sample(tmp_path / "sample"))):
        missing, orphans, corrupt = naive_references(Path(p_maps), Path(p_blocks))
        s = check_op.check(FiledBackend(str(p_maps), str(p_blocks)), 2, progress=False)
        assert {f.name for f in s.findings if f.kind == "object_missing"} == missing
        assert {f.name for f in s.findings if f.kind == "object_orphan"} == orphans
        entry_corrupt = {f.name for f in s.findings if f.kind == "map_corrupt"}
        assert corrupt <= entry_corrupt


# ---------------------------------------------------------------- the real Archipelago stores

DANGLING = "292fddfe96c5db60c18eb7cc13ea1a6288378d6eee45857f7422fdd161d9f52d"  # facts: NOT IN BLOCKS
P_MAP = "cf3c2dba1fb61d4c13efe4e7c43165a39ff15f7350ef40593240e58887871ed5"  # the upgraded v0 map naming it
ORPHAN = "3588f081cdde6dde6eb1925e161fc12e4c604883c2cbda24aa53f87023bddaad"  # facts: refs=(unreferenced)
# direct I/O: copy-ups whose sendfile failed left unreferenced 0-byte objects (facts-directio.txt)
DIRECTIO_ORPHANS = {
    ORPHAN,
    "bravo-clone1_0000000000000001_0000000000000000",
    "bravo-clone1_0000000000000001_0000000000000002",
    "alpha-vol1_0000000000000002_0000000000000000",
    "bravo-vm1_0000000000000001_0000000000000001",
}


@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for name in ("after", "after-directio"):
        d = tmp_path_factory.mktemp(name)
        with tarfile.open(GOLDEN / f"{name}.tar.gz") as tf:
            tf.extractall(d)
        out[name] = d
    return out


@pytest.mark.parametrize("store,orphans", [("after", {ORPHAN}), ("after-directio", DIRECTIO_ORPHANS)])
def test_golden_references(golden, store, orphans):
    d = golden[store]
    s = check_op.check(FiledBackend(str(d / "maps"), str(d / "blocks")), 2, progress=False, verify_data=True)
    assert keys(s, CHECK_KINDS | {"map_corrupt", "map_data_missing"}) == (
        {("object_missing", "blocks", DANGLING)} | {("object_orphan", "blocks", o) for o in orphans})
    (miss,) = [f for f in s.findings if f.kind == "object_missing"]
    assert f"{P_MAP}[10]" in miss.detail
    # alpha-vol2 is deleted: its 0x0f entries name removed objects, its Pithos entries keep theirs
    assert s.counters["refs.maps_deleted"] == 1
    assert s.counters["refs.deleted_entries"] == 4
    # every Pithos block the real code wrote hashes to its name (27 of them, 6 at old paths)
    assert s.counters["data.objects"] == 27


# ---------------------------------------------------------------- the command and cron


def run_cli(*args):
    return CliRunner().invoke(cli, ["check", *map(str, args)], catch_exceptions=False)


def store_args(p: Planted):
    return ["--maps-dir", p.maps, "--blocks-dir", p.blocks, "--no-progress"]


def test_cli_json_and_exit_code(planted):
    r = run_cli(*store_args(planted), "--format", "json", "--verify-data")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["command"] == "check"
    got = {(f["kind"], f["store"], f["name"]) for f in doc["findings"] if f["kind"] in CHECK_KINDS | {"map_corrupt"}}
    assert got == planted.expect | {("object_content_mismatch", "blocks", n) for n in planted.flipped}
    assert doc["check"]["stages_run"] == ["scan", "references", "data"]


def test_clean_store_exits_zero(tmp_path):
    w = FiledStoreWriter(tmp_path / "blocks")
    names = []
    for i in range(5):
        data = os.urandom(300)
        names.append(pithos_hash(data))
        w.put(names[-1], data)
    FiledStoreWriter(tmp_path / "maps").put_v2("volume", 5 * F.BLOCK_SIZE_4M, [F.Entry(n, 0) for n in names])
    r = run_cli("--maps-dir", tmp_path / "maps", "--blocks-dir", tmp_path / "blocks", "--verify-data", "-q")
    assert r.exit_code == 0
    assert len(r.stdout.strip().splitlines()) == 1


def test_check_needs_the_blocks_store(planted):
    r = run_cli("--maps-dir", planted.maps)
    assert r.exit_code == 2


def test_second_concurrent_run_is_refused(planted, tmp_path):
    lock = tmp_path / "check.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from verify.durable import lock_file\n"
         "with lock_file(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)", str(lock)],
        stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "verify", "check", *map(str, store_args(planted)),
                            "--lock", str(lock)], capture_output=True, text=True, cwd=REPO,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
        assert r.returncode == 2
        assert r.stdout == ""  # refused before any work: no report
        assert "Traceback" not in r.stderr
        assert time.monotonic() - t0 < 10
    finally:
        holder.kill()
        holder.wait()
    # the lock is free again once its holder is gone, whatever way it ended
    r = run_cli(*store_args(planted), "--lock", lock, "-q")
    assert r.exit_code == 1


def test_since_last_new_and_resolved(tmp_path):
    p = build_store(tmp_path / "store", seed=11)
    state = tmp_path / "state"
    r1 = run_cli(*store_args(p), "--state", state, "--since-last", "--format", "json")
    first = json.loads(r1.stdout)["check"]["since_last"]
    assert {k: first[k] for k in ("previous", "baseline", "new", "resolved")} == \
        {"previous": None, "baseline": False, "new": None, "resolved": None}
    quiet = run_cli(*store_args(p), "--state", tmp_path / "other-state", "-q").stdout
    assert "no baseline yet" in quiet and "new 0" not in quiet
    human = run_cli(*store_args(p), "--state", tmp_path / "third-state", "--since-last").stdout
    assert "no baseline yet" in human
    # restore one missing object, lose a referenced one
    fixed = F.copyup_name("volume-b", 1, 2)
    FiledStoreWriter(p.blocks).put(fixed, b"restored")
    lost = p.pithos[0]
    for where in ("v04", "pithos"):
        path = FiledStoreWriter(p.blocks).path(lost, where) if where == "v04" or layout.is_hex64(lost.encode()) else None
        if path is not None and path.exists():
            path.unlink()
    r2 = run_cli(*store_args(p), "--state", state, "--since-last", "--format", "json")
    sl = json.loads(r2.stdout)["check"]["since_last"]
    assert sl["new_findings"] == [["object_missing", "blocks", lost]]
    assert sl["resolved_findings"] == [["object_missing", "blocks", fixed]]
    assert (sl["new"], sl["resolved"], sl["baseline"]) == (1, 1, True)
    runs = sorted((state / "runs").glob("*.json.gz"))
    assert len(runs) == 2
    with gzip.open(runs[-1], "rt") as fh:
        assert ["object_missing", "blocks", lost] in json.load(fh)["findings"]
    # a run without --verify-data does not resolve yesterday's content mismatches
    run_cli(*store_args(p), "--state", state, "--verify-data", "-q")
    r4 = run_cli(*store_args(p), "--state", state, "--since-last", "--format", "json")
    assert not any(k[0] == "object_content_mismatch" for k in json.loads(r4.stdout)["check"]["since_last"]["resolved_findings"])


def _labelled(prom) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(prom.read_text()) for s in fam.samples}


def test_prometheus_textfile_parses(planted, tmp_path):
    prom = tmp_path / "archverify.prom"
    r = run_cli(*store_args(planted), "--verify-data", "--prometheus-textfile", prom, "--instance", "site-a", "-q")
    assert r.exit_code == 1
    samples = _labelled(prom)
    inst = ("archverify_instance", "site-a")
    assert {lb for _, lbs in samples for lb in lbs if lb[0] == "archverify_instance"} == {inst}  # on every sample
    assert all(inst in lbs for _, lbs in samples)
    per_kind = {}
    for e in planted.expect:
        per_kind[e[0]] = per_kind.get(e[0], 0) + 1
    for kind, n in per_kind.items():
        assert samples[("archverify_check_findings", (inst, ("kind", kind), ("severity", _sev(kind))))] == n
    assert samples[("archverify_check_findings", (inst, ("kind", "object_content_mismatch"), ("severity", "error")))] == 3
    # a closed set of severities: an unreadable finding counts as an error there
    assert {dict(lbs)["severity"] for name, lbs in samples if name == "archverify_check_findings"} == \
        {"info", "warning", "error"}
    assert samples[("archverify_check_findings", (inst, ("kind", "unreadable"), ("severity", "error")))] == 0
    assert samples[("archverify_check_bytes_verified", (inst,))] > 0
    assert samples[("archverify_check_maps_checked", (inst,))] > 0
    assert samples[("archverify_check_objects_checked", (inst,))] > 0
    assert samples[("archverify_check_exit_code", (inst,))] == 1
    assert abs(samples[("archverify_check_last_success_timestamp_seconds", (inst,))] - time.time()) < 120
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically, nothing left behind


def test_two_checks_on_one_host_keep_their_textfiles_apart(planted, tmp_path):
    """node_exporter merges every *.prom file: each check has its own, with its own archverify_instance;
    a check pointed at another's file is refused before it reads, and that file is left as it was."""
    conf = tmp_path / "site-b.conf"
    conf.write_text((REPO / "tests/fixtures/archipelago-filed.conf").read_text()
                    .replace("@MAPS@", str(planted.maps)).replace("@BLOCKS@", str(planted.blocks)))
    a, b = tmp_path / "archverify-site-a.prom", tmp_path / "archverify-site-b.prom"
    assert run_cli(*store_args(planted), "--prometheus-textfile", a, "--instance", "site-a", "-q").exit_code == 1
    assert run_cli("--config", conf, "--prometheus-textfile", b, "-q").exit_code == 1
    assert {dict(lbs)["archverify_instance"] for _, lbs in _labelled(b)} == {"site-b"}  # the config's name
    before = a.read_bytes()
    r = run_cli("--config", conf, "--prometheus-textfile", a, "-q")
    assert r.exit_code == 2
    assert "holds the metrics of archverify_instance 'site-a', not 'site-b'" in r.output
    assert a.read_bytes() == before
    # nor does a run of the other instance that ends before reading replace it
    bad = tmp_path / "bad.conf"
    bad.write_text("[blockerb\narchip_dir = /nowhere\n")
    assert run_cli("--config", bad, "--prometheus-textfile", a, "-q").exit_code == 2
    assert a.read_bytes() == before


def _samples(prom) -> dict:
    return {s.name: s.value for fam in text_string_to_metric_families(prom.read_text()) for s in fam.samples
            if set(s.labels) == {"archverify_instance"}}


def test_a_run_that_ends_before_reading_still_writes_its_exit_code(planted, tmp_path):
    """A broken config, a held lock: exit 2 before any number exists. The textfile must say so
    (the incomplete-run alert reads archverify_check_exit_code), keep the last complete run's time,
    and not repeat the previous run's findings as this run's."""
    prom = tmp_path / "archverify.prom"
    inst = ("--instance", "nightly")
    assert run_cli(*store_args(planted), "--prometheus-textfile", prom, *inst, "-q").exit_code == 1
    good = _samples(prom)
    bad_conf = tmp_path / "archipelago.conf"
    bad_conf.write_text("[blockerb\narchip_dir = /nowhere\n")
    r = run_cli("--config", bad_conf, "--prometheus-textfile", prom, *inst, "-q")
    assert r.exit_code == 2
    after = _samples(prom)
    assert after["archverify_check_exit_code"] == 2
    assert after["archverify_check_last_run_timestamp_seconds"] > good["archverify_check_last_run_timestamp_seconds"]
    assert after["archverify_check_last_success_timestamp_seconds"] == \
        good["archverify_check_last_success_timestamp_seconds"]
    assert "archverify_check_findings" not in prom.read_text()
    lock = tmp_path / "run.lock"
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        r = run_cli(*store_args(planted), "--lock", lock, "--prometheus-textfile", prom, *inst, "-q")
    assert r.exit_code == 2 and _samples(prom)["archverify_check_exit_code"] == 2
    assert not list(tmp_path.glob("*.tmp*"))


def _sev(kind):
    from verify.report.metrics import SEVERITY_LABEL
    from verify.core.findings import KINDS

    return SEVERITY_LABEL[KINDS[kind].severity]


def test_options_are_validated_before_work(planted):
    assert run_cli(*store_args(planted), "--since-last").exit_code == 2
    assert run_cli(*store_args(planted), "--verify-data-sample", "0").exit_code == 2
    assert run_cli(*store_args(planted), "--verify-data-sample", "1.5").exit_code == 2


def test_unreadable_part_stops_the_later_stages(nobody):
    """A blocks dir the check cannot list: references would be phantoms, so they are not counted."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="check-unsafe-", dir="/tmp"))
    try:
        os.chmod(root, 0o755)
        p = build_store(root / "store", seed=3)
        locked = sorted(d for d in p.blocks.iterdir() if d.is_dir())[0]
        for dirpath, dirs, files in os.walk(root):
            os.chmod(dirpath, 0o755)
            for f in files:
                os.chmod(os.path.join(dirpath, f), 0o644)
        os.chmod(locked, 0)
        # as nobody (tests/as_nobody.py): root reads everything, mode 000 means nothing to it
        r = nobody.archverify("check", *store_args(p), "--verify-data", "--format", "json")
        assert r.returncode == 2, r.stderr
        doc = json.loads(r.stdout)
        assert doc["check"]["stages_skipped"] == ["references", "data"]
        kinds = {f["kind"] for f in doc["findings"]}
        assert "unreadable" in kinds
        assert not kinds & CHECK_KINDS
    finally:
        os.chmod(locked, 0o755)
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def feed_index(idx, maps_dir: Path):
    """Every map of a filed maps dir, handed to the backend-neutral index as a RADOS backend would."""
    problems = {}
    out = []
    for dirpath, _dirs, files in os.walk(maps_dir):
        for name in sorted(files):
            raw = os.fsencode(name)
            if len(raw) < 6 or F.is_mapdata_name(raw) or b"_lock" in raw or b"_hash" in raw:
                continue
            data = (Path(dirpath) / name).read_bytes()
            h = F.classify(data[:64], len(data), raw)
            if h.cls == F.HeaderClass.V0:
                r = idx.add_v0(raw, data)
            elif h.cls == F.HeaderClass.V1:
                r = idx.add_v1(raw, data, F.nr_objs(h.size))
            elif h.cls == F.HeaderClass.V2:
                nr, per = F.nr_objs(h.size, h.blocksize), h.blocksize // 128
                for blk in range(F.mapdata_blocks(h.size, h.blocksize)):
                    md = maps_dir / layout.v04_path(F.mapdata_name(name, blk).encode()).decode()
                    if not md.exists():
                        break
                    cnt = min(per, nr - blk * per)
                    r = idx.add_v2(raw, md.read_bytes()[: cnt * 128], blk * per, cnt, bool(h.flags & F.MF_DELETED))
                    if isinstance(r, list):
                        out += [(n, raw, i) for n, i in r]
                    elif r[0]:
                        problems[name] = r[1]
                continue
            else:
                continue
            if isinstance(r, list):
                out += [(n, raw, i) for n, i in r]
            elif r[0]:
                problems[name] = r[1]
    return problems, out


def stored_names(blocks_dir: Path):
    for dirpath, _dirs, files in os.walk(blocks_dir):
        rel = os.fsencode(os.path.relpath(dirpath, blocks_dir))
        for name in files:
            raw = os.fsencode(name)
            if raw.endswith((b"_lock", b"_hash")):
                continue
            if rel in (layout.v04_dirs(raw), layout.pithos_dirs(raw)):
                yield raw


@pytest.mark.parametrize("store,orphans", [("after", {ORPHAN}), ("after-directio", DIRECTIO_ORPHANS)])
def test_backend_neutral_index_agrees_on_golden(golden, store, orphans):
    from verify.native import _refindex
    from verify.backends.references import missing_findings

    d = golden[store]
    idx = _refindex.ReferenceIndex()
    problems, _ = feed_index(idx, d / "maps")
    assert problems == {}
    idx.freeze()
    assert {o.decode() for o in idx.mark_stored(list(stored_names(d / "blocks")))} == orphans
    assert idx.missing_total() == 1
    idx.start_explain()
    _, refs = feed_index(idx, d / "maps")
    (f,) = missing_findings(refs, idx.missing_counts)
    assert (f.kind, f.name) == ("object_missing", DANGLING)
    assert f"{P_MAP}[10]" in f.detail


def test_backend_neutral_index_agrees_on_planted(planted):
    from verify.native import _refindex

    idx = _refindex.ReferenceIndex()
    problems, _ = feed_index(idx, planted.maps)
    assert set(problems) == planted.corrupt
    idx.freeze()
    orphans = {o.decode() for o in idx.mark_stored(list(stored_names(planted.blocks)))}
    assert orphans == {n for k, _s, n in planted.expect if k == "object_orphan" and not n.endswith("_hash")}
    assert idx.missing_total() == len(planted.missing_refs)


def test_corrupt_maps_are_counted_off_the_version_their_reference_finding_reads():
    """settle_maps takes a corrupt map's version from the reference stage's finding (a field),
    never from a scan finding's words."""
    from collections import Counter

    from verify.core.findings import Finding
    from verify.core.summary import ShardResult

    scanned = ShardResult(Counter({"maps.v1": 2, "maps.v2": 3, "maps.v0": 1}), [
        Finding("map_upgrade_incomplete", "maps", "archip_a", None, "v2 map; upgraded map a exists"),
        Finding("map_v1", "maps", "archip_b", None, "size 1"),
        Finding("map_v0", "maps", "c" * 64, None, "64 bytes"),
        Finding("map_invalid_name", "maps", "d_0123456789abcdef", None, "v2 map, flags 0, epoch 1"),
    ])
    refs = ShardResult(Counter(), [Finding("map_corrupt", "maps", n, None, "entry 0: unknown flag bits 0x80", v)
                                   for n, v in (("archip_a", 1), ("archip_b", 1), ("c" * 64, 0), ("e", 2))])
    got = check_op.settle_maps(scanned, refs)
    assert [f.kind for f in got.findings] == ["map_invalid_name"] + ["map_corrupt"] * 4
    assert {k: v for k, v in got.counters.items() if k.startswith("maps.")} == \
        {"maps.v2": 2, "maps.corrupt": 4}  # v1: a and b; v0: c; v2: e
