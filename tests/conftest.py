"""Shared fixtures."""

from __future__ import annotations

import pytest

import geopandas as gpd
import shapely


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
