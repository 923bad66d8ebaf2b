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
