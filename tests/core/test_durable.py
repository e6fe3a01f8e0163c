"""The durable layer: the journal (torn last line), atomic writes on a full disk, the locks
(a second writer on one store, whatever its journal dir), and writers stopped by SIGINT/SIGTERM
amid their work (after a chosen finished step): exit 130/143, no half-written file, and a rerun
ends as an uninterrupted run."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from crashpoints import fast_dir, tree
from verify.durable import atomic, locks
from verify.core import signals
from verify.core import formats as F
from verify.durable.atomic import atomic_write
from verify.durable.journal import Journal
from verify.durable.locks import run_lock, store_locks
from verify.core.errors import Interrupted, LockedError, StoreError
from verify.ops.sample import FiledStoreWriter, pithos_hash, write_sample

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


# ---- the journal ------------------------------------------------------------------------


def test_append_and_read_back(tmp_path):
    j = Journal(tmp_path / "j" / "x.journal")
    j.append({"ev": "intent", "id": "a", "op": "move"})
    j.append({"ev": "intent", "id": "b"})
    j.append({"ev": "done", "id": "a"})
    recs = j.records()
    assert [r["id"] for r in recs] == ["a", "b", "a"]
    assert all("t" in r for r in recs)
    assert [r["id"] for r in j.pending()] == ["b"]
    assert j.done_ids() == {"a"}


def test_torn_last_line_is_skipped_reported_and_cut_before_the_next_append(tmp_path):
    path = tmp_path / "x.journal"
    j = Journal(path)
    j.append({"ev": "intent", "id": "a"})
    j.close()
    with open(path, "ab") as fh:
        fh.write(b'{"ev": "done", "id": "a"')  # a crash mid-append
    reported = []
    j = Journal(path, report=reported.append)  # the next run
    assert [r["id"] for r in j.pending()] == ["a"]
    assert j.torn is not None and j.torn.line == 2
    assert len(reported) == 1
    j.append({"ev": "done", "id": "a"})
    j.close()
    assert j.pending() == [] and len(j.records()) == 2
    assert len(reported) == 1  # reported once
    # the torn bytes were cut, not left in the middle where they would be an error
    assert path.read_bytes().count(b"\n") == 2 and b'"id": "a"{' not in path.read_bytes()
    assert Journal(path, report=reported.append).records() == j.records()


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path):
    path = tmp_path / "x.journal"
    path.write_bytes(b'{"ev":"intent","id":"a"}')
    j = Journal(path, report=pytest.fail)
    j.append({"ev": "done", "id": "a"})
    j.close()
    assert [r["ev"] for r in j.records()] == ["intent", "done"]


@pytest.mark.parametrize("bad", [b"garbage", b'{"ev": "intent", "id"', b"[1, 2]"])
def test_a_bad_line_in_the_middle_is_an_error_naming_file_and_line(tmp_path, bad):
    path = tmp_path / "x.journal"
    path.write_bytes(b'{"ev":"intent","id":"a"}\n' + bad + b'\n{"ev":"done","id":"a"}\n')
    with pytest.raises(StoreError) as e:
        Journal(path).records()
    assert e.value.exit_code == 2
    assert str(path) in str(e.value) and "line 2" in str(e.value)


def test_missing_journal_reads_empty(tmp_path):
    assert Journal(tmp_path / "none.journal").records() == []


def test_finalize_journal_is_the_durable_one(tmp_path):
    """finalize's torn last line is skipped, as in every other journal."""
    from verify.ops.finalize.flow import Journal as FinalizeJournal

    j = FinalizeJournal(tmp_path / "state")
    j.append("begin", params={})
    j.append("preflight")
    with open(j.path, "ab") as fh:
        fh.write(b'{"step": "pi')
    j.unlock()
    again = FinalizeJournal(tmp_path / "state")
    assert [r["step"] for r in again.load()] == ["begin", "preflight"]
    again.append("pin")
    again.unlock()
    assert [r["step"] for r in FinalizeJournal(tmp_path / "state").load()] == ["begin", "preflight", "pin"]


# ---- atomic writes -------------------------------------------------------------------------


def _enospc_after(monkeypatch, nbytes: int):
    """os.write fails with ENOSPC once ``nbytes`` have been written (a disk filling up mid-file)."""
    real = os.write
    left = [nbytes]

    def write(fd, data):
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real(fd, bytes(data[: left[0]]))
        left[0] -= n
        return n

    monkeypatch.setattr(os, "write", write)


@pytest.mark.parametrize("room", [0, 10])
def test_atomic_write_on_a_full_disk_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch, room):
    target = tmp_path / "upgraded.log"
    target.write_bytes(b"old\n")
    _enospc_after(monkeypatch, room)
    with pytest.raises(OSError) as e:
        atomic_write(target, b"new content " * 1000)
    assert e.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["upgraded.log"]
    assert target.read_bytes() == b"old\n"


def test_store_write_on_a_full_disk_leaves_no_temp_at_the_store_root(tmp_path, monkeypatch):
    from verify.durable import fsops

    root = tmp_path / "maps"
    root.mkdir()
    _enospc_after(monkeypatch, 100)
    with pytest.raises(OSError):
        fsops.atomic_replace(str(root), "ab/cd/ef/some-map", b"x" * 5000)
    monkeypatch.undo()
    assert [p.name for p in root.iterdir()] == ["ab"]  # the dirs made, no temp, no half file
    assert not (root / "ab" / "cd" / "ef" / "some-map").exists()


def test_atomic_write_replaces_whole(tmp_path):
    target = tmp_path / "f"
    atomic_write(target, b"one")
    atomic_write(target, b"two", mode=0o600)
    assert target.read_bytes() == b"two" and (target.stat().st_mode & 0o777) == 0o600
    assert os.listdir(tmp_path) == ["f"]


# ---- locks -----------------------------------------------------------------------------------


def _child(fn) -> int:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        except LockedError:
            code = 3
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_run_lock_excludes_a_second_run(tmp_path):
    with run_lock(tmp_path, "migrate-objects"):
        assert _child(lambda: run_lock(tmp_path, "migrate-objects").__enter__()) == 3
    assert _child(lambda: run_lock(tmp_path, "migrate-objects").__enter__()) == 0


def test_store_lock_exists_only_while_held_and_names_its_holder(tmp_path):
    root = tmp_path / "maps"
    root.mkdir()
    with store_locks([str(root), str(root) + "/"], "upgrade-maps"):  # one store named twice: one lock
        text = (root / locks.STORE_LOCK_NAME).read_text()
        assert str(os.getpid()) in text and socket.gethostname() in text
        assert _child(lambda: store_locks([str(root)], "migrate-objects").__enter__()) == 3
    assert not (root / locks.STORE_LOCK_NAME).exists()
    assert _child(lambda: store_locks([str(root)], "migrate-objects").__enter__()) == 0


def _hold(*code: str) -> subprocess.Popen:
    """Another process holding a lock until killed (prints 'held' once it does)."""
    p = subprocess.Popen([sys.executable, "-c", "\n".join(code + ("print('held', flush=True)",
                                                                  "import time; time.sleep(120)"))],
                         stdout=subprocess.PIPE, text=True, cwd=REPO, env=ENV)
    assert p.stdout.readline().strip() == "held"
    return p


def _archverify(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "verify", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env=ENV, timeout=300, **kw)


def test_second_writer_on_one_store_with_another_journal_dir_exits_2_naming_the_holder(tmp_path):
    s = write_sample(tmp_path / "store")
    before = tree(s.maps_dir)
    holder = _hold("import contextlib, sys",
                   "from verify.durable.locks import run_lock, store_locks",
                   "stack = contextlib.ExitStack()",
                   f"stack.enter_context(run_lock({str(tmp_path / 'j1')!r}, 'upgrade-maps'))",
                   f"stack.enter_context(store_locks([{str(s.maps_dir)!r}], 'upgrade-maps'))")
    try:
        for cmd in (["upgrade-maps", "--offline", "--backup-dir", tmp_path / "bk"],
                    ["migrate-objects", "--blocks-dir", s.blocks_dir]):
            r = _archverify(*cmd, "--maps-dir", s.maps_dir, "--journal-dir", tmp_path / "j2", "--yes")
            assert r.returncode == 2, r.stderr
            assert r.stdout == "" and "Traceback" not in r.stderr
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1
            assert str(holder.pid) in lines[0] and socket.gethostname() in lines[0]
        assert tree(s.maps_dir) == {**before, locks.STORE_LOCK_NAME: tree(s.maps_dir)[locks.STORE_LOCK_NAME]}
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone however it ended: the next writer runs, and leaves no lock file behind
    r = _archverify("upgrade-maps", "--offline", "--maps-dir", s.maps_dir, "--backup-dir", tmp_path / "bk",
                    "--journal-dir", tmp_path / "j2", "--yes")
    assert r.returncode in (0, 1), r.stderr
    assert not (s.maps_dir / locks.STORE_LOCK_NAME).exists()


# ---- signals -----------------------------------------------------------------------------------


def test_a_signal_stops_a_writer_before_its_next_step(tmp_path):
    with signals.stop_between_steps():
        signals.check_stop()
        os.kill(os.getpid(), signal.SIGTERM)  # handled: only the flag is set
        assert signals.stop_requested() == signal.SIGTERM
        with pytest.raises(Interrupted) as e:
            signals.check_stop()
    assert e.value.exit_code == 143 and e.value.signo == signal.SIGTERM
    assert signals.stop_requested() is None
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_finalize_stopped_by_a_signal_resumes_after_the_last_journaled_step(tmp_path, monkeypatch):
    from verify.ops.finalize import flow as fin

    j = fin.Journal(tmp_path / "state")
    j.append("begin", params={})
    f = fin.Finalizer.__new__(fin.Finalizer)
    f.journal = j
    with signals.stop_between_steps():
        assert f.todo("preflight")
        j.append("preflight")
        os.kill(os.getpid(), signal.SIGINT)
        assert not f.todo("preflight")  # done steps are skipped, signal or not
        with pytest.raises(Interrupted) as e:
            f.todo("pin")
    assert e.value.exit_code == 130
    assert [r["step"] for r in fin.Journal(tmp_path / "state").load()] == ["begin", "preflight"]


# A writer run through this stops itself (SIGSTOP) right after its journal records its k-th
# finished step (ARCHVERIFY_TEST_STOP_AFTER=k): the signal is sent to a process that is
# provably between two steps of the work, however loaded the machine is.
STOP_AFTER = """
import os, runpy, signal, sys, time
from verify.core import signals
from verify.durable import journal

k, seen, append = int(os.environ["ARCHVERIFY_TEST_STOP_AFTER"]), [0], journal.Journal.append

def stopping_append(self, record):
    out = append(self, record)
    if record.get("ev") == "done":
        seen[0] += 1
        if seen[0] == k:
            os.kill(os.getpid(), signal.SIGSTOP)
    if seen[0] >= k:
        # the handshake's other half: no later step ends before the signal sent once we were
        # continued is seen, however slowly the main thread is scheduled
        deadline = time.monotonic() + 120
        while signals.stop_requested() is None and time.monotonic() < deadline:
            time.sleep(0.001)
    return out

journal.Journal.append = stopping_append
sys.argv[0] = "archverify"
runpy.run_module("verify", run_name="__main__", alter_sys=True)
"""


def _start_stopping(args, k: int) -> subprocess.Popen:
    """Start a writer that stops itself after its k-th finished step; return once it has."""
    p = subprocess.Popen([sys.executable, "-c", STOP_AFTER, *map(str, args)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, cwd=REPO,
                         env={**ENV, "ARCHVERIFY_TEST_STOP_AFTER": str(k)})
    _, status = os.waitpid(p.pid, os.WUNTRACED)  # blocks until it stops itself (or ends)
    if not os.WIFSTOPPED(status):
        p.returncode = os.waitstatus_to_exitcode(status)
        raise AssertionError(f"{args[0]} ended before its step {k} (exit {p.returncode}): {p.stderr.read()}")
    return p


def _leftovers(*dirs) -> list[str]:
    out = []
    for d in dirs:
        for base, _, files in os.walk(d):
            out += [os.path.join(base, f) for f in files
                    if f.startswith(atomic.TMP_PREFIX) or f == locks.STORE_LOCK_NAME or ".tmp." in f]
    return out


def _signal_runs(scratch: Path, pristine: Path, args, stores, journal: str, normal: set[int], seed: int) -> None:
    """Interrupt real writer processes after chosen steps; each must stop between two steps."""

    def fresh(name: str) -> Path:
        dst = scratch / name
        subprocess.run(["cp", "-a", str(pristine), str(dst)], check=True)
        return dst

    start = {name: tree(pristine / name) for name in stores}
    ref = fresh("ref")
    r = _archverify(*args(ref))
    assert r.returncode in normal, r.stderr
    reference = {name: tree(ref / name) for name in stores}
    assert reference != start  # the run did work
    steps = sum(1 for rec in Journal(ref / "j" / journal).records() if rec.get("ev") == "done")
    assert steps >= 20, steps
    rng = random.Random(seed)
    outcomes = []
    for i in range(8):
        work = fresh(f"run{i}")
        sig = (signal.SIGINT, signal.SIGTERM)[i % 2]
        # stopped after a finished step spread over the run (first, last tenth, anywhere between),
        # then continued and signalled at once: the signal lands amid the writes
        k = (1, steps - steps // 10)[i] if i < 2 else rng.randrange(1, steps - steps // 10)
        p = _start_stopping(args(work), k)
        # continued first, then signalled: a signal sent while every thread is stopped goes to
        # whichever thread runs first, not to the main thread that waits for the steps
        os.kill(p.pid, signal.SIGCONT)
        p.send_signal(sig)
        _, err = p.communicate(timeout=300)
        assert p.returncode in normal | {128 + sig}, (i, sig, p.returncode, err)
        assert "Traceback" not in err
        if p.returncode == 128 + sig:
            assert len(err.strip().splitlines()) == 1, err
        now_all = {name: tree(work / name) for name in stores}
        outcomes.append((p.returncode, now_all != start and now_all != reference))
        # no half-written file: nothing of ours left, no step begun and not finished,
        # and every file as it was before or as the uninterrupted run leaves it
        assert _leftovers(work) == []
        assert Journal(work / "j" / journal).pending() == []
        for name in stores:
            for path, digest in now_all[name].items():
                assert digest in (start[name].get(path), reference[name].get(path)), (i, name, path)
        r = _archverify(*args(work))
        assert r.returncode in normal, r.stderr
        for name in stores:
            assert tree(work / name) == reference[name], (i, name)
        subprocess.run(["rm", "-rf", str(work)], check=True)
    # every run was stopped amid the work: each stopped before the end, with some of it done
    assert all(rc == 128 + sig and partial for (rc, partial), sig in
               zip(outcomes, [signal.SIGINT, signal.SIGTERM] * 4)), outcomes


def test_upgrade_maps_stopped_by_signals_resumes_to_the_same_maps(tmp_path):
    with fast_dir() as d:
        scratch = Path(d)
        maps = FiledStoreWriter(scratch / "pristine" / "maps")
        rng = random.Random(7)
        for v in range(150):
            hs = [(rng.random() < 0.5, rng.randbytes(32).hex()) for _ in range(3)] + [(0, F.ZERO_HASH)]
            maps.put(f"archip_sig-vol-{v:03d}", F.write_v1(4 * F.BLOCK_SIZE_4M, hs))
        v0 = b"".join(bytes.fromhex(pithos_hash(bytes([i]))) for i in range(2))
        v0name = hashlib.sha256(v0).hexdigest()
        maps.put(v0name, v0, "pithos")

        def args(root: Path):
            return ["upgrade-maps", "--offline", "--yes", "-j", "2", "--maps-dir", root / "maps",
                    "--backup-dir", root / "bk", "--logdir", root / "logs", "--journal-dir", root / "j",
                    "--v0-size", f"{v0name}={2 * F.BLOCK_SIZE_4M - 5}"]

        _signal_runs(scratch, scratch / "pristine", args, ["maps"], "upgrade-maps.journal", {0}, seed=11)


def test_migrate_objects_stopped_by_signals_resumes_to_the_same_store(tmp_path):
    with fast_dir() as d:
        scratch = Path(d)
        s = write_sample(scratch / "pristine" / "store")
        blocks = FiledStoreWriter(s.blocks_dir)
        for i in range(1000):
            data = f"unmigrated block {i}".encode()
            blocks.put(pithos_hash(data), data, "pithos")

        def args(root: Path):
            return ["migrate-objects", "--yes", "-j", "2", "--maps-dir", root / "store" / "maps",
                    "--blocks-dir", root / "store" / "blocks", "--journal-dir", root / "j"]

        _signal_runs(scratch, scratch / "pristine", args, ["store"], "migrate-objects.journal", {0, 1}, seed=12)
