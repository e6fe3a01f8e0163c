"""The journal: durable appends, torn last lines ignored, intents matched to completions."""

import os

from verify.errors import LockedError
from verify.journal import Journal, run_lock


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


def test_torn_last_line_is_ignored_and_not_glued_to_the_next(tmp_path):
    path = tmp_path / "x.journal"
    j = Journal(path)
    j.append({"ev": "intent", "id": "a"})
    with open(path, "ab") as fh:
        fh.write(b'{"ev": "done", "id": "a"')  # a crash mid-append
    j = Journal(path)  # the next run
    assert [r["id"] for r in j.pending()] == ["a"]
    j.append({"ev": "done", "id": "a"})
    assert j.pending() == []
    assert len(j.records()) == 2


def test_failed_closes_an_intent(tmp_path):
    j = Journal(tmp_path / "x.journal")
    j.append({"ev": "intent", "id": "a"})
    j.append({"ev": "failed", "id": "a", "error": "x"})
    assert j.pending() == []


def test_missing_journal_reads_empty(tmp_path):
    assert Journal(tmp_path / "none.journal").records() == []


def test_run_lock_excludes_a_second_run(tmp_path):
    with run_lock(tmp_path, "migrate-objects"):
        pid = os.fork()
        if pid == 0:
            try:
                with run_lock(tmp_path, "migrate-objects"):
                    os._exit(0)
            except LockedError:
                os._exit(3)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 3
    with run_lock(tmp_path, "migrate-objects"):
        pass
