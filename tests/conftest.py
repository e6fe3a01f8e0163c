# the session's servers: a local Ceph cluster (tests/rados_cluster.py) and the real PostgreSQL
# of the Pithos database tests (tests/pg_server.py), each started once, on first use
pytest_plugins = ["rados_cluster", "pg_server"]
