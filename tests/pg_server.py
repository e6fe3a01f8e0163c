"""A real PostgreSQL server for the tests, started by scripts/pg-dev-cluster.

One throwaway cluster per test session on a free port of 127.0.0.1, stopped and
removed at the end. Registered as a pytest plugin from conftest.py. The tests that
need it are skipped (with the reason shown) only when PostgreSQL's server
binaries are not installed; any other failure to start it is an error.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "pg-dev-cluster"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pg_server():
    """``(admin_url, cluster_dir)``: a superuser URL (postgresql://postgres@127.0.0.1:PORT/postgres)."""
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb") and not os.environ.get("PG_BINDIR"):
        pytest.skip("PostgreSQL server is not installed (Debian package 'postgresql'): Pithos database tests skipped")
    base = tempfile.mkdtemp(prefix="archverify-pg-")
    os.chmod(base, 0o711)  # the server runs as 'postgres' when the tests run as root
    cluster = os.path.join(base, "pg")
    port = str(_free_port())
    try:
        out = subprocess.run([str(SCRIPT), "start", cluster, port], check=True, capture_output=True, text=True,
                             timeout=120)
    except subprocess.CalledProcessError as e:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"scripts/pg-dev-cluster start failed: {e.stderr.strip()}") from None
    try:
        yield out.stdout.strip(), cluster
    finally:
        subprocess.run([str(SCRIPT), "stop", cluster], check=False, capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin(pg_server):
    """Creates throwaway databases on the session's server: ``pg_admin(name) -> url``."""
    import psycopg

    admin_url, _ = pg_server

    def create(name: str) -> str:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return admin_url.rsplit("/", 1)[0] + "/" + name

    return create


def pithos_database(pg_admin, name: str, rows) -> str:
    """A fresh database ``name`` holding Pithos's schema and ``rows`` (one node each): its URL."""
    import psycopg

    from verify.ops.pithos.sample import create_schema, load_rows

    url = pg_admin(name)
    with psycopg.connect(url) as conn:
        create_schema(conn)
        load_rows(conn, rows, nodes=len(rows))
    return url


def analysed_sample(pg_admin, name: str, where):
    """The Pithos sample's maps under ``where`` and its rows in a fresh, analysed database ``name``:
    (sample, url, PostgreSQL's estimate of the rows, which pithos-check shows as its total)."""
    import psycopg

    from verify.ops.pithos.sample import write_pithos_sample

    sample = write_pithos_sample(where / "maps")
    url = pithos_database(pg_admin, name, sample.rows)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE versions")
        estimate = int(conn.execute("SELECT reltuples FROM pg_class WHERE relname = 'versions'").fetchone()[0])
    return sample, url, estimate
