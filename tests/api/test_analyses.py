"""The analysis endpoints answer what the engine answers, as GeoJSON, and refuse bad parameters with 400/404."""

from __future__ import annotations

import numpy as np
import pytest

from geogrid.coverage import blind_spots, grid_coverage
from geogrid.hierarchy import check_grids
from geogrid.hotspots import incident_hotspots
from geogrid.stats import grid_stats
from layers.store import GeoPackageStore


def _props(doc, key="grid_id"):
    assert doc["type"] == "FeatureCollection"
    return {f["properties"][key]: f["properties"] for f in doc["features"]}


def test_checks_of_a_sound_network(full_client, grids):
    r = full_client.get("/checks")
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    doc = r.json()
    assert doc["sound"] is True and doc["features"] == []
    assert doc["summary"]["grids"] == len(grids) == check_grids(grids).summary["grids"]


def test_checks_report_an_overlap_as_a_feature(tmp_path, grids):
    import shapely

    from api import Settings, create_app
    from tests.api._support import TestClient

    bad = grids.copy()
    g1 = bad.index[bad["grid_id"] == "G1"][0]
    bad.loc[g1, "geometry"] = shapely.box(117.20, 39.10, 117.2105, 39.105)  # pokes 0.0005° into G3
    path = tmp_path / "bad.gpkg"
    GeoPackageStore(path).write({"grids": bad})
    with TestClient(create_app(Settings(store=path))) as c:
        doc = c.get("/checks").json()
    expected = check_grids(bad).findings
    assert doc["sound"] is False
    assert sorted(f["properties"]["kind"] for f in doc["features"]) == sorted(expected["kind"])
    assert any(
        f["properties"]["kind"] == "overlap" and f["geometry"]["type"].endswith("Polygon") for f in doc["features"]
    )


def test_stats_equal_the_engine(full_client, full_store_path):
    store = GeoPackageStore(full_store_path)
    expected = grid_stats(store.read("incidents"), store.read("grids"), level=2, since="2025-01-01")
    doc = full_client.get("/stats?level=2&since=2025-01-01").json()
    got = _props(doc)
    assert set(got) == set(expected["grid_id"])
    for gid, count in zip(expected["grid_id"], expected["count"], strict=True):
        assert got[gid]["count"] == count


def test_hotspots_equal_the_engine(full_client, full_store_path):
    store = GeoPackageStore(full_store_path)
    expected = incident_hotspots(store.read("incidents"), store.read("grids"), permutations=99, seed=3)
    got = _props(full_client.get("/hotspots?permutations=99&seed=3").json())
    assert set(got) == set(expected["grid_id"])
    for gid, z, p in zip(expected["grid_id"], expected["z"], expected["p"], strict=True):
        if z != z:  # NaN (no variance) travels as null
            assert got[gid]["z"] is None
        else:
            assert got[gid]["z"] == pytest.approx(z) and got[gid]["p"] == pytest.approx(p)


@pytest.mark.parametrize(
    ("query", "kwargs"),
    [
        ("", {}),
        ("?population=population", {"population": "population"}),
        ("?p_method=normal", {"p_method": "normal"}),
    ],
    ids=["binomial-default", "per-resident", "normal"],
)
def test_hotspots_inference_options_equal_the_engine(tmp_path, grids, incidents, query, kwargs):
    from api import Settings, create_app
    from tests.api._support import TestClient

    g = grids.assign(population=np.arange(len(grids)) * 37 % 500 + 20)
    path = tmp_path / "pop.gpkg"
    GeoPackageStore(path).write({"grids": g, "incidents": incidents})
    store = GeoPackageStore(path)
    expected = incident_hotspots(store.read("incidents"), store.read("grids"), **kwargs)
    with TestClient(create_app(Settings(store=path))) as c:
        got = _props(c.get("/hotspots" + query).json())
    assert set(got) == set(expected["grid_id"])
    binomial = kwargs.get("p_method") != "normal"
    for k, row in enumerate(expected.itertuples(index=False)):
        props = got[row.grid_id]
        assert props["bin"] == row.bin
        assert props["p"] is None if row.p != row.p else props["p"] == pytest.approx(row.p)
        assert ("expected" in props) == binomial
        if binomial:
            assert props["expected"] == pytest.approx(expected["expected"].iloc[k])


def test_coverage_and_blind_spots_equal_the_engine(full_client, full_store_path):
    store = GeoPackageStore(full_store_path)
    g, cams = store.read("grids"), store.read("cameras")
    cov = grid_coverage(g, cams, level=2)
    got = _props(full_client.get("/coverage?level=2").json())
    for gid, ratio in zip(cov["grid_id"], cov["ratio"], strict=True):
        assert got[gid]["ratio"] == pytest.approx(ratio)
    blind = blind_spots(g, cams, level=2)
    got = _props(full_client.get("/coverage/blind-spots?level=2").json())
    for gid, m2 in zip(blind["grid_id"], blind["blind_m2"], strict=True):
        assert got[gid]["blind_m2"] == pytest.approx(m2)


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/stats?level=7", 404),
        ("/hotspots?since=last-week", 400),
        ("/hotspots?permutations=5", 400),
        ("/hotspots?population=residents", 400),
        ("/hotspots?p_method=poisson", 400),
        ("/stats?by=owner", 400),
        ("/coverage?level=-1", 400),
    ],
    ids=["no-level", "bad-date", "few-permutations", "no-such-column", "bad-p-method", "bad-by", "negative-level"],
)
def test_bad_parameters(full_client, url, status):
    r = full_client.get(url)
    assert r.status_code == status, r.text
    assert r.json()["description"]


def test_hotspots_population_names_a_grid_column(full_client):
    r = full_client.get("/hotspots?population=residents")
    assert r.status_code == 400
    assert "population='residents' is not a column of the grids" in r.json()["description"]


def test_a_store_without_incidents_is_404_naming_the_layer(client):
    r = client.get("/stats")
    assert r.status_code == 404 and "incidents" in r.json()["description"]


def test_stats_by_category_of_an_unknown_category(full_client):
    r = full_client.get("/stats?category=nope&by=category")
    assert r.status_code == 200
    assert r.json()["features"] == []


def test_hotspots_of_an_empty_period(full_client):
    r = full_client.get("/hotspots?until=2000-01-01")
    assert r.status_code == 200
    assert {f["properties"]["bin"] for f in r.json()["features"]} == {0}


@pytest.mark.parametrize("url", ["/checks?levle=1", "/maps/command-centre?sinse=2025-01-01", "/stats?until=0"])
def test_unknown_parameters_and_non_dates_are_400(full_client, url):
    assert full_client.get(url).status_code == 400
