pytest_plugins = ["pg_server"]  # the real PostgreSQL of the Pithos database tests
