"""Fixtures for the web service: a small store with hostile names, an app and a client on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api import Settings, create_app
from layers.store import GeoPackageStore
from tests.api._support import HOSTILE_LEVEL_NAME, HOSTILE_NAMES, TestClient


@pytest.fixture
def grids(tiny_grids):
    """``tiny_grids`` with hostile names on three basic grids and a hostile level name."""
    g = tiny_grids.copy()
    for gid, name in HOSTILE_NAMES.items():
        g.loc[g["grid_id"] == gid, "name"] = name
    g.loc[g["level"] == 2, "level_name"] = HOSTILE_LEVEL_NAME
    return g


@pytest.fixture
def store_path(tmp_path, grids) -> Path:
    path = tmp_path / "district.gpkg"
    GeoPackageStore(path).write({"grids": grids})
    return path


@pytest.fixture
def client(store_path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(store=store_path))) as c:
        yield c


@pytest.fixture
def incidents():
    """Six incidents in the tiny district: sources, statuses and times chosen for the filters."""
    import pandas as pd

    import geopandas as gpd
    import shapely

    x0, y0 = 117.20, 39.10
    rows = [  # id, x, y, reported_at, category, source, status
        ("E1", x0 + 0.002, y0 + 0.002, "2025-03-01T00:00:00Z", "环境卫生", "hotline", "closed"),
        ("E2", x0 + 0.004, y0 + 0.007, "2025-03-01T23:59:59Z", "小广告", "grid_worker", "reported"),
        ("E3", x0 + 0.012, y0 + 0.002, "2025-03-02T08:00:00Z", "环境卫生", "camera", "closed"),
        ("E4", x0 + 0.018, y0 + 0.008, "2025-04-15T12:30:00Z", "违章停车", "hotline", "handling"),
        ("E5", x0 + 0.015, y0 + 0.005, "2024-12-31T16:00:00Z", "小广告", "snapshot", "closed"),
        ("E6", x0 + 0.001, y0 + 0.009, "2025-06-30T10:00:00Z", "环境卫生", "grid_worker", "closed"),
    ]
    return gpd.GeoDataFrame(
        {
            "incident_id": [r[0] for r in rows],
            "reported_at": pd.to_datetime([r[3] for r in rows], utc=True),
            "closed_at": pd.to_datetime([None] * len(rows), utc=True),
            "category": [r[4] for r in rows],
            "source": [r[5] for r in rows],
            "status": [r[6] for r in rows],
            "description": ['<img src=x onerror="window.__xss=9">'] * len(rows),
        },
        geometry=[shapely.Point(r[1], r[2]) for r in rows],
        crs="EPSG:4326",
    )


@pytest.fixture
def cameras():
    """Three cameras in the tiny district."""
    import geopandas as gpd
    import shapely

    return gpd.GeoDataFrame(
        {
            "camera_id": ["C1", "C2", "C3"],
            "heading_deg": [0.0, 90.0, 180.0],
            "fov_deg": [360.0, 60.0, 90.0],
            "range_m": [50.0, 80.0, 60.0],
            "status": ["online", "offline", "online"],
            "owner": ["公安", "交通", "公安"],
        },
        geometry=[shapely.Point(117.201, 39.101), shapely.Point(117.211, 39.105), shapely.Point(117.219, 39.109)],
        crs="EPSG:4326",
    )


@pytest.fixture
def full_store_path(tmp_path, grids, incidents, cameras) -> Path:
    """A store with all three layers of the tiny district."""
    path = tmp_path / "full.gpkg"
    GeoPackageStore(path).write({"grids": grids, "incidents": incidents, "cameras": cameras})
    return path


@pytest.fixture
def full_client(full_store_path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(store=full_store_path))) as c:
        yield c
