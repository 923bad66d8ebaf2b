"""The analysis endpoints answer what the engine answers, as GeoJSON, and refuse bad parameters with 400/404."""

from __future__ import annotations

import re

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


# -- Local Moran clusters and emerging hot spots on the small demo district ---------------------------------
@pytest.fixture(scope="module")
def demo_api(small_demo):
    """A client on the small demo's store, and its grids and incidents as the store gives them back."""
    from api import Settings, create_app
    from layers.store import open_store
    from tests.api._support import TestClient

    _, path = small_demo
    store = open_store(path)
    with TestClient(create_app(Settings(store=path))) as c:
        yield c, store.read("grids"), store.read("incidents")


def _same_as(doc, expected):
    """Every feature's properties equal the engine's row, column by column, in the engine's order."""
    from tests._frames import rows_of

    assert doc["type"] == "FeatureCollection"
    fields = [c for c in expected.columns if c != expected.geometry.name]
    assert [f["properties"] for f in doc["features"]] == rows_of(expected, fields)
    assert all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") for f in doc["features"])


@pytest.mark.parametrize(
    ("query", "kwargs"),
    [
        (
            "level=3&since=2025-04-01&until=2025-09-30",
            {"level": 3, "since": "2025-04-01", "until": "2025-09-30"},
        ),
        (
            "level=2&category=占道经营&population=population",
            {"level": 2, "category": "占道经营", "population": "population"},
        ),
        (
            "level=2&p_method=normal&permutations=199&seed=4&fdr=0.1",
            {"level": 2, "p_method": "normal", "permutations": 199, "seed": 4, "fdr": 0.1},
        ),
        (
            "level=2&category=占道经营&category=噪音扰民&weights=rook&time_field=closed_at&since=2025-06-01",
            {
                "level": 2,
                "category": ["占道经营", "噪音扰民"],
                "weights": "rook",
                "time_field": "closed_at",
                "since": "2025-06-01",
            },
        ),
        ("level=3&weights=400", {"level": 3, "weights": 400.0}),
    ],
    ids=["window", "category-per-resident", "normal-permutations-fdr", "two-categories-rook-closed", "distance-band"],
)
def test_local_moran_route_is_incident_clusters(demo_api, query, kwargs):
    from geogrid.hotspots import incident_clusters

    client, grids, incidents = demo_api
    r = client.get(f"/hotspots?statistic=local-moran&{query}")
    assert r.status_code == 200, r.text
    expected = incident_clusters(incidents, grids, **kwargs)
    _same_as(r.json(), expected)
    if query.startswith("level=3"):  # a half year on the basic grids: clusters and outliers to show
        assert {f["properties"]["cluster"] for f in r.json()["features"]} >= {"HH", "LH", "not significant"}


@pytest.mark.parametrize(
    ("query", "kwargs"),
    [
        (
            "level=2&category=占道经营&period=W&since=2025-09-01&until=2025-12-31",
            {"level": 2, "category": "占道经营", "period": "W", "since": "2025-09-01", "until": "2025-12-31"},
        ),
        (
            "level=2&time_lag=0&alpha=0.1&fdr=false&min_share=0.5&strict=true&p_method=normal",
            {
                "level": 2,
                "time_lag": 0,
                "alpha": 0.1,
                "fdr": False,
                "min_share": 0.5,
                "strict": True,
                "p_method": "normal",
            },
        ),
        ("level=2&period=Q&population=population", {"level": 2, "period": "Q", "population": "population"}),
        (
            "level=2&category=环境卫生&category=违章停车&weights=300",
            {"level": 2, "category": ["环境卫生", "违章停车"], "weights": 300.0},
        ),
    ],
    ids=["weekly-category-window", "arcgis-options", "quarterly-per-resident", "two-categories-distance-band"],
)
def test_emerging_route_is_emerging_hotspots(demo_api, query, kwargs):
    from geogrid.hotspots import emerging_hotspots

    client, grids, incidents = demo_api
    r = client.get(f"/emerging?{query}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/geo+json"
    expected = emerging_hotspots(incidents, grids, **kwargs)
    doc = r.json()
    assert doc["periods"] == expected.attrs["periods"]
    _same_as(doc, expected)


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/hotspots?statistic=moran", 400, "statistic (query): Input should be 'gi' or 'local-moran'"),
        ("/hotspots?statistic=local-moran&level=9", 404, "level 9 does not occur in the grids"),
        ("/hotspots?statistic=local-moran&permutations=5", 400, "permutations=5: use 0"),
        (
            "/hotspots?statistic=local-moran&category=没有这类",
            404,
            "category '没有这类' does not occur in the incidents",
        ),
        ("/emerging?period=Y", 400, "period (query): Input should be 'M', 'W', 'Q' or 'D'"),
        ("/emerging?weights=bishop", 400, "weights (query): String should match pattern"),
        ("/hotspots?weights=-5", 400, "weights (query): String should match pattern"),
        ("/hotspots?weights=nan", 400, "weights (query): String should match pattern"),
        ("/hotspots?time_field=updated_at", 400, "time_field (query): Input should be 'reported_at' or 'closed_at'"),
        ("/hotspots?category=A&category=", 400, "category (query, value 2): String should have at least 1 character"),
        ("/stats?overdue_after=soon", 400, "overdue_after (query): String should match pattern"),
        ("/stats?source=", 400, "source (query, value 1): String should have at least 1 character"),
        ("/emerging?time_lag=-1", 400, "time_lag (query): Input should be greater than or equal to 0"),
        ("/emerging?alpha=0", 400, "alpha (query): Input should be greater than 0"),
        ("/emerging?min_share=1.5", 400, "min_share (query): Input should be less than or equal to 1"),
        ("/emerging?fdr=maybe", 400, "fdr (query): Input should be a valid boolean"),
        ("/emerging?permutations=5", 400, "permutations=5: use 0"),
        ("/emerging?permutations=10000", 400, "permutations (query): Input should be less than or equal to 9999"),
        ("/emerging?level=9", 404, "level 9 does not occur in the grids"),
        ("/emerging?since=2025-13-01", 400, "since (query): Input should be a valid date"),
        ("/emerging?until=last-week", 400, "'last-week' is not a date: write YYYY-MM-DD"),
        ("/emerging?since=2025-10-15", 400, "the cube has 2 period(s); emerging hot spots need at least 3"),
        ("/emerging?since=2025-12-20", 400, "holds no whole period 'M'"),
        ("/emerging?population=residents", 400, "population='residents' is not a column of the grids"),
        ("/emerging?category=没有这类", 404, "category '没有这类' does not occur in the incidents"),
        ("/emerging?time_field=closed_at", 400, "unknown query parameter(s) time_field"),
    ],
    ids=[
        "statistic",
        "moran-level",
        "moran-permutations",
        "moran-category",
        "period",
        "weights-word",
        "weights-negative",
        "weights-nan",
        "time-field-unknown",
        "empty-category",
        "overdue",
        "empty-source",
        "time-lag",
        "alpha",
        "min-share",
        "fdr",
        "permutations",
        "cube-permutations",
        "level",
        "date",
        "not-a-date",
        "two-periods",
        "no-whole-period",
        "population",
        "category",
        "time-field",
    ],
)
def test_bad_parameters_of_clusters_and_emerging(demo_api, url, status, message):
    client, _, _ = demo_api
    r = client.get(url)
    assert r.status_code == status, r.text
    assert message in r.json()["description"]


@pytest.mark.parametrize(
    ("query", "kwargs"),
    [
        ("level=2&weights=rook&time_field=closed_at", {"level": 2, "weights": "rook", "time_field": "closed_at"}),
        (
            "level=3&weights=250.5&category=小广告&category=市政设施",
            {"level": 3, "weights": 250.5, "category": ["小广告", "市政设施"]},
        ),
    ],
    ids=["rook-closed", "distance-two-categories"],
)
def test_gi_route_takes_the_cli_options(demo_api, query, kwargs):
    """/hotspots has the options of `geogrid hotspots`: weights, time_field, a repeated category."""
    client, grids, incidents = demo_api
    r = client.get(f"/hotspots?{query}")
    assert r.status_code == 200, r.text
    expected = incident_hotspots(incidents, grids, **kwargs)
    _same_as(r.json(), expected)
    queen = incident_hotspots(incidents, grids, **{**kwargs, "weights": "queen"})
    assert not np.allclose(expected["z"].to_numpy(float), queen["z"].to_numpy(float), equal_nan=True)  # it matters


def test_stats_route_takes_the_cli_options(demo_api):
    """/stats has the options of `geogrid stats`: time_field, repeated category and source, overdue_after, smooth."""
    client, grids, incidents = demo_api
    query = (
        "level=2&time_field=closed_at&since=2025-03-01&category=环境卫生&category=小广告&source=hotline"
        "&source=grid_worker&overdue_after=2d&smooth=true"
    )
    r = client.get(f"/stats?{query}")
    assert r.status_code == 200, r.text
    kwargs = {
        "level": 2,
        "time_field": "closed_at",
        "since": "2025-03-01",
        "category": ["环境卫生", "小广告"],
        "source": ["hotline", "grid_worker"],
        "overdue_after": "48h",
        "smooth": True,
    }
    expected = grid_stats(incidents, grids, tz="Asia/Shanghai", **kwargs)
    _same_as(r.json(), expected)
    assert "per_km2_eb" in r.json()["features"][0]["properties"]
    one = grid_stats(incidents, grids, tz="Asia/Shanghai", **{**kwargs, "category": ["环境卫生"]})
    assert expected["count"].sum() > one["count"].sum()  # both categories were counted, not the last one


def test_emerging_beyond_the_service_limits_is_400_naming_the_way_out(small_demo):
    """GEOGRID_EMERGING_MAX_BINS / _MAX_PERMUTED_BINS guard the service: 400 before any work, with the cube's size."""
    from api import Settings, create_app
    from tests.api._support import TestClient

    _, path = small_demo
    with TestClient(create_app(Settings(store=path, emerging_max_bins=20_000, emerging_max_permuted_bins=10**6))) as c:
        r = c.get("/emerging?period=D")
        assert r.status_code == 400, r.text
        assert re.search(
            r"the cube would have [\d,]+ bins \([\d,]+ grids x [\d,]+ periods of 'D'\), more than "
            r"the 20,000 allowed: use a shorter since..until window, a longer period \(W, M, Q\)",
            r.json()["description"],
        ), r.json()["description"]
        r = c.get("/emerging?period=M&permutations=9999")
        assert r.status_code == 400, r.text
        assert "exceed the 1,000,000 bin-permutations allowed" in r.json()["description"]
        assert c.get("/emerging?period=M&level=1&permutations=99").status_code == 200
    defaults = Settings(store=path)
    assert defaults.emerging_max_permuted_bins >= 990 * 52 * 9999  # the documented weekly cube of the demo, at the cap
    assert defaults.emerging_max_bins < 10**7


def test_the_api_document_describes_clusters_and_emerging(demo_api):
    client, _, _ = demo_api
    paths = client.get("/openapi.json").json()["paths"]
    hot = {p["name"]: p for p in paths["/hotspots"]["get"]["parameters"]}
    assert hot["statistic"]["schema"]["enum"] == ["gi", "local-moran"]
    emerging = {p["name"]: p for p in paths["/emerging"]["get"]["parameters"]}
    assert set(emerging) == {
        *("level", "since", "until", "category", "period", "time_lag", "alpha", "fdr", "min_share", "strict"),
        *("permutations", "seed", "p_method", "population", "weights"),
    }
    assert set(hot) - set(emerging) == {"statistic", "time_field"}
    assert hot["category"]["schema"]["type"] == "array"  # repeatable, as the CLI's --category
    assert emerging["period"]["schema"]["enum"] == ["M", "W", "Q", "D"]
