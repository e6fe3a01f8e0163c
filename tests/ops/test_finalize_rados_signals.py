"""``archverify finalize --yes`` on a RADOS config and on a mixed one (filed blocks, RADOS maps), as a
real process against the stand-in nodes and the real test Ceph, stopped by SIGINT, SIGTERM and
SIGKILL at seeded journal lengths run after run, then run to its end: the same end as an
uninterrupted run of the same command on a store built the same way (every object of the
namespace byte for byte, the nodes' configs, the blocks dir, the journal finished).
"""

from __future__ import annotations

import hashlib
import random
import signal
import time
from pathlib import Path

import pytest

from test_finalize import blocks_content, journal_steps
from test_finalize_mixed import VLMC, make_mixed
from test_finalize_rados import make_pools
from test_finalize_signals import _finalize, _records, _wait

SEED = 20600
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


def pool_state(be) -> dict[tuple[str, str], str]:
    """(store, object) -> sha256 of its bytes, for every object of the backend's namespace."""
    out = {}
    for store in be.pools():
        cursor = None
        while True:
            names, cursor = be.list_page(store, cursor)
            for n in names:
                out[(store, n.decode("utf-8", "surrogateescape"))] = hashlib.sha256(be.read(store, n)).hexdigest()
            if cursor is None:
                break
    return out


def configs(c, root: Path) -> dict[str, str]:
    """Each node's archipelago.conf, the test's own dirs written as ROOT."""
    return {n: c.conf(n).read_text().replace(str(root), "ROOT") for n in c.nodes}


def end_state(be, c, root: Path, blocks: Path | None) -> dict:
    return {"pools": pool_state(be), "configs": configs(c, root),
            "blocks": blocks_content(blocks.parent) if blocks is not None else None}


def _args(be, c, state: Path, extra: list[str]) -> list[str]:
    return [*c.nodes_arg(), "-c", be.ceph_conf, "--keyring", be.keyring, "--namespace", be.namespace,
            "--state", str(state), "--yes", *extra]


def stopped_again_and_again(be, c, root: Path, extra: list[str], schedule: list[tuple], rng) -> list[tuple]:
    """Run after run, each sent ``sig`` once the journal has ``n`` records (SIGINT and SIGTERM: and one
    more than the run found), then up to ``jitter`` s later (seeded); then the command once more to
    its end. SIGINT and SIGTERM stop a run at the end of the step under way (130/143, one line),
    SIGKILL wherever it lands. Returns (signal, exit code, journal records) of each stopped run."""
    state = root / "state"
    journal = state / "finalize.journal"
    args = _args(be, c, state, extra)
    stopped = []
    for k, (sig, n, jitter) in enumerate(schedule):
        before = _records(journal)
        if sig != signal.SIGKILL:  # once this run journaled a step: its handlers are in place
            n = max(n, before + 1)
        p = _finalize(c, args)
        while p.poll() is None and _records(journal) < n:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, jitter))  # between two steps or inside one
        if p.poll() is None:
            p.send_signal(sig)
        out, err = _wait(p, f"run {k} at {n} records")
        where = f"run {k}, {sig.name} after {n} records: exit {p.returncode}\n{out}\n{err}"
        assert "Traceback" not in err and "Traceback" not in out, where
        if before and _records(journal) > before and p.returncode != -signal.SIGKILL:
            assert any(ln.startswith("resuming") for ln in out.splitlines()), where  # and it said it resumed
        if p.returncode == 0:
            break
        if sig == signal.SIGKILL:
            assert p.returncode == -signal.SIGKILL, where
        else:
            assert p.returncode == 128 + sig and len(err.strip().splitlines()) == 1, where
        stopped.append((sig.name, p.returncode, _records(journal)))
    else:  # every run was stopped: the same command once more, to its end
        # a SIGKILL that landed after the run journaled its end (while the process exited) left
        # a finished finalize: the next run says so and starts afresh, as it must
        said = "the previous finalize finished" if journal_steps(root)[-1] == "finished" else "resuming"
        r = c.archverify("finalize", *args)
        assert r.returncode == 0, r.stdout + r.stderr
        assert any(line.startswith(said) for line in r.stdout.splitlines()), r.stdout
    assert journal_steps(root)[-1] == "finished"
    return stopped


def uninterrupted(be, c, root: Path, extra: list[str]) -> None:
    r = c.archverify("finalize", *_args(be, c, root / "state", extra))
    assert r.returncode == 0, r.stdout + r.stderr
    assert journal_steps(root)[-1] == "finished"


def test_rados_finalize_stopped_then_resumed(ceph_cluster, tmp_path, monkeypatch):
    """Offline (every node stopped): preflight, upgrade, final. Ctrl-C, or SIGTERM, in preflight (the
    run stops once it is journaled), then SIGKILL at seeded moments of the reruns: in the upgrade or
    the final scan, or while the run starts."""
    ref_root = tmp_path / "ref"
    ref_root.mkdir()
    ref_be, ref_c = make_pools(ceph_cluster, ref_root, monkeypatch)
    uninterrupted(ref_be, ref_c, ref_root, [])
    want = end_state(ref_be, ref_c, ref_root, None)
    rng = random.Random(SEED)
    for first in (signal.SIGINT, signal.SIGTERM):
        root = tmp_path / first.name
        root.mkdir()
        be, c = make_pools(ceph_cluster, root, monkeypatch)
        # the first SIGKILL lands as the second record is journaled: what is left of the run lasts
        # longer than the test's 2 ms look at the journal, however loaded the machine; a later one
        # at a seeded moment, perhaps after the run's end (then the run finished)
        schedule = [(first, 1, 0.0), (signal.SIGKILL, 2, 0.0), (signal.SIGKILL, 2, 0.9)]
        stopped = stopped_again_and_again(be, c, root, [], schedule, rng)
        assert [s for s, _, _ in stopped][:2] == [first.name, "SIGKILL"], stopped
        assert end_state(be, c, root, None) == want


def test_mixed_finalize_stopped_again_and_again(ceph_cluster, tmp_path, monkeypatch):
    """Filed blocks, RADOS maps, ``--fix``: the filed steps (pins, restarts, migrate-objects, the
    config edits) and the pool's v1 map upgraded through vlmc, stopped at seeded journal lengths."""
    ref_root, root = tmp_path / "ref", tmp_path / "run"
    ref_root.mkdir()
    root.mkdir()
    extra = ["--fix", "--vlmc", " ".join(VLMC)]
    ref_maps, ref_c, ref_blocks = make_mixed(ceph_cluster, ref_root, monkeypatch)
    uninterrupted(ref_maps, ref_c, ref_root, extra)
    want = end_state(ref_maps, ref_c, ref_root, ref_blocks)
    maps, c, blocks = make_mixed(ceph_cluster, root, monkeypatch)
    rng = random.Random(SEED + 1)
    moments = sorted(rng.sample(range(1, 14), 6))
    schedule = [(SIGNALS[k % 3], n, 0.2) for k, n in enumerate(moments)]
    stopped = stopped_again_and_again(maps, c, root, extra, schedule, rng)
    assert len(stopped) >= 3 and {s for s, _, _ in stopped} >= {"SIGINT", "SIGTERM"}, stopped
    assert end_state(maps, c, root, blocks) == want
