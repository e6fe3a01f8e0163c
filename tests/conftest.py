# the session's servers: a local Ceph cluster (tests/rados_cluster.py) and the real PostgreSQL
# of the Pithos database tests (tests/pg_server.py), each started once, on first use; and a
# copy of archverify that user nobody can run (tests/as_nobody.py)
pytest_plugins = ["rados_cluster", "pg_server", "as_nobody"]

import os  # noqa: E402

import pytest  # noqa: E402

from verify.core import signals  # noqa: E402


@pytest.fixture(autouse=True)
def _writer_signals_released():
    """A writer command run in-process keeps its stop-signal handlers for the rest of the
    process, as the real command does; each test starts with the handlers it had before."""
    yield
    signals.release_stop_signals()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI (CI=true) a skip is a failure: a tool the set-up should have installed is
    missing, and a skipped test would let CI pass without running what users trust."""
    outcome = yield
    rep = outcome.get_result()
    if os.environ.get("CI") == "true" and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"skipped under CI=true, which must run every test: {reason}"
