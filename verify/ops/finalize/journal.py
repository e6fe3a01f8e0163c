"""finalize's journal: the steps done, one durable record each, and the state dir's run lock."""

from __future__ import annotations

import contextlib
from pathlib import Path

from verify import durable
from verify.core.errors import UsageError

JOURNAL = "finalize.journal"


class Journal:
    """The steps done, one durable record each (:class:`durable.Journal`), and the state dir's run lock."""

    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir)
        self.path = self.dir / JOURNAL
        self.records: list[dict] = []
        self._log: durable.Journal | None = None
        self._lock = contextlib.ExitStack()

    def lock(self) -> None:
        """One finalize per state dir."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"{self.dir}: cannot use as --state-dir: {e.strerror}") from None
        self._lock.enter_context(durable.run_lock(self.dir, "finalize"))

    def unlock(self) -> None:
        if self._log is not None:
            self._log.close()
        self._lock.close()

    @property
    def log(self) -> durable.Journal:
        if self._log is None:
            self._log = durable.Journal(self.path)
        return self._log

    def load(self) -> list[dict]:
        self.records = self.log.records()
        return self.records

    def append(self, step: str, **data) -> dict:
        rec = self.log.append({"step": step, **data})
        self.records.append(rec)
        return rec

    def archive(self) -> Path:
        dst = Path(self.log.archive())
        self.records = []
        return dst

    def done(self, step: str) -> bool:
        return any(r.get("step") == step for r in self.records)

    def get(self, step: str) -> dict:
        for r in reversed(self.records):
            if r.get("step") == step:
                return r
        return {}

    @property
    def finished(self) -> bool:
        return self.done("finished")
