"""Fixtures shared by the store tests."""

from __future__ import annotations

import secrets

import pytest

from layers.postgis import PostGISStore
from layers.store import GeoPackageStore, Store
from tests._stores import two_grids


@pytest.fixture(params=["gpkg", "postgis"])
def store(request, tmp_path) -> Store:
    """A store of each kind holding :func:`tests._stores.two_grids` (a fresh PostGIS schema each time)."""
    s: Store
    if request.param == "gpkg":
        s = GeoPackageStore(tmp_path / "s.gpkg")
    else:
        s = PostGISStore(request.getfixturevalue("postgis_dsn"), schema=f"t_{secrets.token_hex(6)}")
    s.write({"grids": two_grids()})
    return s
