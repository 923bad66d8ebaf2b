"""Shared fixtures, among them a throwaway PostgreSQL + PostGIS cluster (``postgis_dsn``, ``postgis_url``)."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from hypothesis import settings as _hypothesis_settings

import geopandas as gpd
import shapely

# Property tests are derandomized: the same examples on every run, in CI and here, so a red
# example is reproducible (and is a bug to fix, never a retry). HYPOTHESIS_PROFILE=explore
# searches afresh (random seeds, example database) when you want Hypothesis to look further.
_hypothesis_settings.register_profile("default", derandomize=True, database=None, print_blob=True)
_hypothesis_settings.register_profile("explore", derandomize=False, max_examples=500)
_hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def tmp_store(tmp_path):
    """An empty GeoPackage store path in a temporary directory."""
    from layers.store import GeoPackageStore

    return GeoPackageStore(tmp_path / "store.gpkg")


@pytest.fixture
def tiny_grids() -> gpd.GeoDataFrame:
    """A 3-level hierarchy near Tianjin: 1 district, 2 streets, 4 basic grids (exactly nested)."""
    x0, y0, d = 117.20, 39.10, 0.01
    boxes = {
        "D": shapely.box(x0, y0, x0 + 2 * d, y0 + d),
        "S1": shapely.box(x0, y0, x0 + d, y0 + d),
        "S2": shapely.box(x0 + d, y0, x0 + 2 * d, y0 + d),
        "G1": shapely.box(x0, y0, x0 + d, y0 + d / 2),
        "G2": shapely.box(x0, y0 + d / 2, x0 + d, y0 + d),
        "G3": shapely.box(x0 + d, y0, x0 + 2 * d, y0 + d / 2),
        "G4": shapely.box(x0 + d, y0 + d / 2, x0 + 2 * d, y0 + d),
    }
    parents = {"D": None, "S1": "D", "S2": "D", "G1": "S1", "G2": "S1", "G3": "S2", "G4": "S2"}
    levels = {"D": 0, "S1": 1, "S2": 1, "G1": 2, "G2": 2, "G3": 2, "G4": 2}
    names = {
        "D": "河北区",
        "S1": "望海楼街道",
        "S2": "鸿顺里街道",
        "G1": "网格一",
        "G2": "网格二",
        "G3": "网格三",
        "G4": "网格四",
    }
    ids = list(boxes)
    return gpd.GeoDataFrame(
        {
            "grid_id": ids,
            "parent_id": [parents[i] for i in ids],
            "level": [levels[i] for i in ids],
            "level_name": [["district", "street", "grid"][levels[i]] for i in ids],
            "name": [names[i] for i in ids],
        },
        geometry=[boxes[i] for i in ids],
        crs="EPSG:4326",
    )


@pytest.fixture(scope="session")
def demo_district():
    """The demo district as built by default (seed 0, 200,000 incidents), in memory."""
    from geogrid.demo import build_demo

    return build_demo(seed=0)


@pytest.fixture(scope="session")
def demo_gpkg(tmp_path_factory, demo_district):
    """The demo district written to a GeoPackage store (session-wide; treat as read-only)."""
    from layers.store import GeoPackageStore

    path = tmp_path_factory.mktemp("demo") / "demo.gpkg"
    GeoPackageStore(path).write(demo_district.layers(), metadata=demo_district.metadata)
    return path


@pytest.fixture(scope="session")
def demo_grids():
    """The demo district's grids only (seed 0; built without the year of incidents: fast)."""
    from geogrid.demo import build_demo

    return build_demo(seed=0, n_incidents=10, n_cameras=10).grids


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory):
    """A lighter demo district (seed 0, 20,000 incidents, 100 cameras) and its GeoPackage store (read-only)."""
    from geogrid.demo import build_demo
    from layers.store import GeoPackageStore

    demo = build_demo(seed=0, n_incidents=20_000, n_cameras=100)
    path = tmp_path_factory.mktemp("small_demo") / "small_demo.gpkg"
    GeoPackageStore(path).write(demo.layers(), metadata=demo.metadata)
    return demo, path


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


@pytest.fixture
def postgis_url(postgis_dsn) -> str:
    """A ``postgresql://`` URL (what ``open_store`` and ``GEOGRID_STORE`` take) to a fresh schema of ``postgis_dsn``."""
    from psycopg.conninfo import conninfo_to_dict

    params = {k: str(v) for k, v in conninfo_to_dict(postgis_dsn).items()}
    params["schema"] = f"t_{secrets.token_hex(6)}"
    return "postgresql:///?" + urlencode(params)
