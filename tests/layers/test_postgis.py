"""The PostGIS store honours the same contract as the GeoPackage store."""

from __future__ import annotations

import pandas as pd
import pytest

import geopandas as gpd
import shapely
from geopandas.testing import assert_geodataframe_equal

from layers.errors import StoreError
from layers.postgis import PostGISStore
from layers.store import open_store


@pytest.fixture
def store(postgis_dsn, request):
    return PostGISStore(postgis_dsn, schema=f"t_{request.node.name[:40].lower().replace('[', '_').replace(']', '')}")


def _incidents() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "incident_id": ["e1", "e2"],
            "reported_at": pd.to_datetime(["2025-03-01 08:00", "2025-03-02 09:30"]).tz_localize("Asia/Shanghai"),
            "closed_at": [pd.Timestamp("2025-03-01 12:00", tz="Asia/Shanghai"), pd.NaT],
            "category": ["环境卫生", "占道经营"],
            "source": ["hotline", "grid_worker"],
            "status": ["closed", "handling"],
            "description": ["<img src=x onerror=alert(1)> 垃圾", None],
        },
        geometry=[shapely.Point(117.21, 39.105), shapely.Point(117.215, 39.107)],
        crs="EPSG:4326",
    )


def test_round_trip_grids_and_incidents(store, tiny_grids):
    store.write({"grids": tiny_grids, "incidents": _incidents()}, metadata={"district": "河北区"})
    assert store.layer_names() == ["grids", "incidents"]
    back = store.read("grids")
    assert back["grid_id"].tolist() == tiny_grids["grid_id"].tolist()
    assert back["name"].tolist() == tiny_grids["name"].tolist()
    assert shapely.equals(back.geometry.values, tiny_grids.geometry.values).all()
    inc = store.read("incidents")
    assert inc["description"].iloc[0] == "<img src=x onerror=alert(1)> 垃圾"
    assert inc["reported_at"].iloc[0] == pd.Timestamp("2025-03-01 00:00", tz="UTC")
    assert pd.isna(inc["closed_at"].iloc[1])
    assert store.metadata()["district"] == "河北区"


def test_same_frames_as_geopackage(store, tmp_store, tiny_grids):
    store.write({"grids": tiny_grids})
    tmp_store.write({"grids": tiny_grids})
    assert_geodataframe_equal(store.read("grids"), tmp_store.read("grids"), check_like=True)


def test_bbox_filter(store, tiny_grids):
    store.write({"grids": tiny_grids})
    got = store.read("grids", bbox=(117.2, 39.1, 117.205, 39.103))
    assert set(got["grid_id"]) == {"D", "S1", "G1"}


def test_a_failed_write_changes_nothing(store, tiny_grids):
    store.write({"grids": tiny_grids})
    bad = tiny_grids.copy()
    bad["Bad Column"] = 1  # not a plain SQL name: refused before anything is written
    with pytest.raises(StoreError, match="Bad Column"):
        store.write({"grids": tiny_grids.iloc[:2], "incidents": bad})
    assert store.read("grids")["grid_id"].tolist() == tiny_grids["grid_id"].tolist()
    assert store.layer_names() == ["grids"]


def test_rewriting_a_layer_replaces_it(store, tiny_grids):
    store.write({"grids": tiny_grids})
    store.write({"grids": tiny_grids.iloc[:3]})
    store.write({"grids": tiny_grids.iloc[:2]})
    assert store.read("grids")["grid_id"].tolist() == ["D", "S1"]


def test_open_store_recognises_postgresql_urls(postgis_dsn):
    assert isinstance(open_store("postgresql://postgres@localhost/postgres"), PostGISStore)
