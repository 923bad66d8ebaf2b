"""Fixtures for the layers floor: a throwaway PostgreSQL + PostGIS cluster."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgis_dsn() -> Iterator[str]:
    """A DSN to an empty PostGIS database.

    Uses ``GEOGRID_TEST_POSTGIS_DSN`` when set; otherwise starts a private cluster with the
    Debian packages (``postgresql-15``, ``postgresql-15-postgis-3``; scripts/test installs them).
    In CI a missing PostgreSQL is a failure, not a skip.
    """
    if dsn := os.environ.get("GEOGRID_TEST_POSTGIS_DSN"):
        yield dsn
        return
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        msg = "PostgreSQL is not installed (apt-get install postgresql-15 postgresql-15-postgis-3)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    bindir = Path(bins[-1]).parent
    # Not under pytest's tmp tree: that is private to root, and initdb must not run as root.
    base = Path(tempfile.mkdtemp(prefix="geogrid-pg-"))
    base.chmod(0o755)
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        pw = pwd.getpwnam("postgres")
        for p in (base, sock):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    opts = f"-k {sock} -p {port} -c listen_addresses='' -c fsync=off"
    subprocess.run(
        [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-w", "-l", str(base / "log"), "start"],
        check=True,
        capture_output=True,
    )
    dsn = f"host={sock} port={port} user=postgres dbname=postgres"
    try:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as con:
            con.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        yield dsn
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)
