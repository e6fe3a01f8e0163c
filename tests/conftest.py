pytest_plugins = ["rados_cluster"]  # the session's local Ceph cluster (tests/rados_cluster.py)
