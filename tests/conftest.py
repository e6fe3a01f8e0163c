# the session's servers: a local Ceph cluster (tests/rados_cluster.py) and the real PostgreSQL
# of the Pithos database tests (tests/pg_server.py), each started once, on first use
pytest_plugins = ["rados_cluster", "pg_server"]

import pytest  # noqa: E402

from verify import durable  # noqa: E402


@pytest.fixture(autouse=True)
def _writer_signals_released():
    """A writer command run in-process keeps its stop-signal handlers for the rest of the
    process, as the real command does; each test starts with the handlers it had before."""
    yield
    durable.release_stop_signals()
