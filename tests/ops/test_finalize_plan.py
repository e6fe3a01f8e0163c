"""The finalize plan tells the truth before it acts, against stand-in Archipelago nodes: it runs the
preflight --yes runs and exits 3 with what would block, says what is missing (no vlmc) and still
what it would do, marks the steps a resumed journal has done, counts each step's work, estimates,
gives its steps in JSON, warns when --nodes is left at this node only; a fix step's failures name
the log that lists them, and --pithos-db upgrades the v0 maps inside the flow."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from standins.harness import STANDINS
from verify.core import formats as F
from verify.ops.finalize.flow import DEFAULT_NODES_WARNING, EXIT_BLOCKED, STEPS, Finalizer
from verify.ops.sample import AT_RISK_NAMES, FiledStoreWriter, pithos_hash

from test_finalize import Crash, clean_store, options, running  # noqa: F401  (the fixture)


def plan(c, tmp_path, *extra, env=None):
    r = c.archverify("finalize", *c.nodes_arg(), "--state", str(tmp_path / "state"), *extra, env=env)
    assert "Traceback" not in r.stderr, r.stderr
    return r, r.stdout + r.stderr


def test_the_plan_exits_3_with_what_would_block_and_force_lets_it_go(tmp_path, running):
    store, _, c = running(lambda s: clean_store(s, misplaced=False))
    before = {n: c.conf(n).read_text() for n in c.nodes}
    c.standin("n2", "vlmc", "map", "vol-001")
    r, out = plan(c, tmp_path)
    assert r.returncode == EXIT_BLOCKED
    assert "busy: n2: 1 volume(s) mapped (vol-001)" in out and "--yes would refuse now" in out
    assert "gnt-node modify --drained=True" in out  # how to drain
    assert "nothing done; run again with --yes" not in out
    yes = c.archverify("finalize", *c.nodes_arg(), "--state", str(tmp_path / "state"), "--yes")
    assert yes.returncode == 2 and "not idle" in yes.stderr + yes.stdout  # the plan said so
    r, out = plan(c, tmp_path, "--force")
    assert r.returncode == 0 and "--force: --yes would go on" in out
    c.standin("n2", "vlmc", "unmap", "vol-001")
    c.standin("n1", "vlmc", "open", "vol-000")  # a held lock blocks too
    r, out = plan(c, tmp_path)
    assert r.returncode == EXIT_BLOCKED and "lock(s) held: maps:vol-000_lock" in out
    c.standin("n1", "vlmc", "close", "vol-000")
    r, out = plan(c, tmp_path)
    assert r.returncode == 0 and "nothing done; run again with --yes to proceed" in out
    assert {n: c.conf(n).read_text() for n in c.nodes} == before and c.events("stop") == []


def test_without_vlmc_the_plan_says_what_is_missing_and_what_it_would_do(tmp_path, running):
    store, _, c = running(lambda s: clean_store(s, misplaced=False))
    bin_dir = tmp_path / "bin"  # Archipelago's commands, but no vlmc
    bin_dir.mkdir()
    for cmd in ("archipelago", "archipelago-standin"):
        (bin_dir / cmd).write_text(f'#!/bin/sh\nexec {STANDINS / cmd} "$@"\n')
        (bin_dir / cmd).chmod(0o755)
    path = os.pathsep.join([str(bin_dir)] + [p for p in os.environ["PATH"].split(os.pathsep)
                                             if Path(p).resolve() != Path(STANDINS).resolve()])
    assert shutil.which("vlmc", path=path) is None
    r, out = plan(c, tmp_path, "--fix", env={"PATH": path})
    assert r.returncode == EXIT_BLOCKED, out
    for n in c.nodes:
        assert re.search(rf"missing: {n}: 'vlmc showmapped' failed: .*vlmc.*: --yes needs vlmc", out), out
    assert "missing: vlmc: not found on this node" in out  # the fix step's online upgrade runs it here
    for i, step in enumerate(STEPS, 1):  # and still the whole plan
        assert f"  {i}. {step}: " in out
    assert not (tmp_path / "state" / "finalize.journal").exists() and c.events("stop") == []


def test_a_resumed_plan_marks_the_steps_done_and_counts_and_estimates_in_json(tmp_path, running):
    store, info, c = running(lambda s: clean_store(s, misplaced=True))

    def crash(step):
        if step == "enable":
            raise Crash(step)

    with pytest.raises(Crash):
        Finalizer(options(c, tmp_path, [], after_step=crash)).run(yes=True)
    r, out = plan(c, tmp_path, "--fix", "--format", "json")
    assert r.returncode == 0, out
    doc = json.loads(r.stdout)
    assert doc["state"] == "plan"
    steps = doc["plan"]["steps"]
    assert [s["step"] for s in steps] == list(STEPS)
    assert [s["step"] for s in steps if s["done"]] == ["preflight", "pin", "stop", "enable"]
    by = {s["step"]: s for s in steps}
    assert by["pin"]["objects_at_risk"] == len(AT_RISK_NAMES)  # pinned, and still at risk until the end
    assert by["fix"]["objects_to_move"] == len(info["unmigrated"]) + len(info["leftover"]) + len(info["misplaced"])
    assert by["fix"]["maps_to_upgrade"] == len(info["v1"])
    assert by["settle"]["objects_at_old_paths"] == len(info["unmigrated"]) + len(info["leftover"])
    est = doc["plan"]["estimate"]
    assert est["scans"] == 3 and est["restart_phases"] == 3 and est["nodes"] == 2  # scan, settle, final; start, stop-off, start-off
    assert est["seconds_per_scan"] > 0 and doc["plan"]["blocked_by"] == []
    r, out = plan(c, tmp_path, "--fix")
    assert re.search(r"  4\. enable: .* \[done\]", out) and not re.search(r"  5\. start: .*\[done\]", out)
    assert "--yes resumes the finalize started" in out
    assert re.search(r"  7\. fix: migrate-objects and upgrade-maps \(objects to move 5, maps to upgrade 1\)", out), out
    assert re.search(r"estimate: 3 scan\(s\) of about [\d.]+s each", out)


def test_default_nodes_warns(tmp_path, running):
    store, _, c = running(lambda s: clean_store(s, misplaced=False))
    r = c.archverify("finalize", "--config", str(c.conf("n1")), "--state", str(tmp_path / "state"))
    assert r.returncode == 0, r.stderr
    assert DEFAULT_NODES_WARNING in r.stdout + r.stderr
    r, out = plan(c, tmp_path)
    assert DEFAULT_NODES_WARNING not in out


def v0_store(root: Path) -> dict:
    """clean_store plus one Pithos (v0) map, which only --pithos-db can upgrade (its size)."""
    info = clean_store(root, misplaced=False)
    blocks, maps = FiledStoreWriter(root / "blocks"), FiledStoreWriter(root / "maps")
    hashes = []
    for i in range(2):
        data = bytes([i + 1]) * 4096
        hashes.append(pithos_hash(data))
        blocks.put(hashes[-1], data)
    name = pithos_hash(b"".join(bytes.fromhex(h) for h in hashes))
    maps.put(name, F.write_v0(hashes))
    info["v0"] = name
    info["v0_size"] = 2 * F.BLOCK_SIZE_4M
    return info


def test_a_failed_fix_names_its_log_and_pithos_db_upgrades_v0_maps(tmp_path, running, pg_admin):
    from pg_server import pithos_database

    store, info, c = running(v0_store)
    r, out = plan(c, tmp_path, "--fix")
    assert "1 v0 map(s) stay: give --pithos-db" in out
    args = [*c.nodes_arg(), "--state", str(tmp_path / "state"), "--fix", "--yes"]
    r = c.archverify("finalize", *args)
    out = r.stdout + r.stderr
    failed = tmp_path / "state" / "upgrade-logs" / "failed.log"
    assert f"1 map upgrade(s) failed: each listed with its reason in {failed}" in out, out
    assert info["v0"] in failed.read_text() and "--pithos-db" in failed.read_text()
    # the log's advice, followed: a new finalize with the database upgrades the v0 map in its fix step
    url = pithos_database(pg_admin, "pithos_finalize", [(1, info["v0"], info["v0_size"], info["v0"], False, 0, 1, "u", 1.0)])
    # vlmc_fixes: the stand-in of the mapper that opens v0 maps (--assume_v0 --v0_size)
    r = c.archverify("finalize", *args, "--pithos-db", url, "--vlmc", str(STANDINS / "vlmc_fixes"),
                     env={"VLMC_FIXES_MAPS": str(store / "maps")})
    out = r.stdout + r.stderr
    assert "Traceback" not in out
    assert r.returncode == 0, out + failed.read_text()
    head = next(p for p in (store / "maps").rglob(info["v0"]) if p.is_file()).read_bytes()
    assert F.is_v2_header(head) and F.parse_v2_header(head).size == info["v0_size"]
    assert failed.read_text() == ""
