"""OGC API – Features: documents, links, paging, bbox, datetime and property filters, and QGIS's requests."""

from __future__ import annotations

import pandas as pd
import pytest

import shapely

from api import Settings, create_app
from api.features import CRS84, EPSG4326, LIMIT_MAX
from layers.store import GeoPackageStore
from tests.api._support import TestClient

JSON = {"Accept": "application/json"}
# The Accept headers QGIS's OAPIF provider sends (src/providers/wfs/oapif).
QGIS_API = "application/vnd.oai.openapi+json;version=3.0, application/openapi+json;version=3.0, application/json"
QGIS_ITEMS = "application/geo+json, application/json"


def _link(doc, rel, type_=None):
    found = [lk for lk in doc["links"] if lk["rel"] == rel and (type_ is None or lk.get("type") == type_)]
    assert found, f"no {rel} link of type {type_} in {doc['links']}"
    return found[0]["href"]


def _ids(fc):
    return [f["id"] for f in fc["features"]]


def _all_pages(client, url, headers=None):
    pages, ids = 0, []
    while url:
        r = client.get(url, headers=headers or {"Accept": QGIS_ITEMS})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/geo+json"
        fc = r.json()
        ids += _ids(fc)
        pages += 1
        nxt = [lk for lk in fc["links"] if lk["rel"] == "next"]
        url = nxt[0]["href"] if nxt else None
        assert pages < 1000
    return ids, pages


# -- the documents ---------------------------------------------------------------------------


def test_landing_page_negotiates_json_and_html(full_client):
    r = full_client.get("/", headers=JSON)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert "Accept" in r.headers["vary"]
    doc = r.json()
    rels = {lk["rel"]: lk for lk in doc["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= set(rels)
    assert rels["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    assert rels["data"]["href"] == "http://localhost/collections"
    assert all(lk.get("type") for lk in doc["links"])

    browser = full_client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert browser.headers["content-type"].startswith("text/html")
    assert 'href="http://localhost/maps/grids"' in browser.text
    assert full_client.get("/?f=json", headers={"Accept": "text/html"}).headers["content-type"] == "application/json"
    assert full_client.get("/?f=html").headers["content-type"].startswith("text/html")
    assert full_client.get("/").headers["content-type"] == "application/json"  # no preference: JSON


def test_conformance_declares_core_geojson_oas30_and_crs(full_client):
    classes = full_client.get("/conformance").json()["conformsTo"]
    for c in ("core", "geojson", "oas30"):
        assert f"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/{c}" in classes
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in classes


def test_collections_have_extents_crs_and_item_links(full_client, grids, incidents):
    doc = full_client.get("/collections").json()
    by_id = {c["id"]: c for c in doc["collections"]}
    assert set(by_id) == {"grids", "incidents", "cameras"}
    g = by_id["grids"]
    assert g["extent"]["spatial"]["bbox"][0] == pytest.approx(list(grids.total_bounds))
    assert g["storageCrs"] == CRS84 and CRS84 in g["crs"]
    assert _link(g, "items", "application/geo+json") == "http://localhost/collections/grids/items"
    assert "temporal" not in g["extent"]
    assert by_id["incidents"]["extent"]["temporal"]["interval"] == [["2024-12-31T16:00:00Z", "2025-06-30T10:00:00Z"]]
    assert full_client.get("/collections/incidents").json() == by_id["incidents"]


def test_only_layers_the_store_holds_are_collections(client):
    assert [c["id"] for c in client.get("/collections").json()["collections"]] == ["grids"]
    r = client.get("/collections/incidents")
    assert r.status_code == 404
    assert "grids" in r.json()["description"]


# -- items -----------------------------------------------------------------------------------


def test_items_are_geojson_with_ids_counts_and_links(full_client, grids):
    r = full_client.get("/collections/grids/items")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/geo+json"
    assert r.headers["content-crs"] == f"<{CRS84}>"
    fc = r.json()
    assert fc["type"] == "FeatureCollection"
    assert _ids(fc) == list(grids["grid_id"])
    assert fc["numberMatched"] == fc["numberReturned"] == len(grids)
    assert _link(fc, "self", "application/geo+json").startswith("http://localhost/collections/grids/items")
    assert not [lk for lk in fc["links"] if lk["rel"] in ("next", "prev")]
    first = fc["features"][0]
    assert first["properties"]["name"] == "河北区" and first["properties"]["parent_id"] is None
    assert shapely.geometry.shape(first["geometry"]).equals(grids.geometry.iloc[0])


def test_one_item_and_a_missing_one(full_client, incidents):
    r = full_client.get("/collections/incidents/items/E3")
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    f = r.json()
    assert f["id"] == "E3" and f["properties"]["reported_at"] == "2025-03-02T08:00:00Z"
    assert f["properties"]["description"] == incidents["description"].iloc[0]  # data, returned as it is
    assert _link(f, "collection") == "http://localhost/collections/incidents"
    missing = full_client.get("/collections/incidents/items/E99")
    assert missing.status_code == 404 and "E99" in missing.json()["description"]


def test_paging_with_next_links_returns_every_feature_once(full_client, grids):
    ids, pages = _all_pages(full_client, "/collections/grids/items?limit=2")
    assert ids == list(grids["grid_id"])
    assert pages == 4
    fc = full_client.get("/collections/grids/items?limit=2&offset=4").json()
    assert _ids(fc) == ["G2", "G3"]
    assert fc["numberMatched"] == 7 and fc["numberReturned"] == 2
    assert "offset=2" in _link(fc, "prev") and "offset=6" in _link(fc, "next")


def test_a_limit_above_the_maximum_is_served_as_the_maximum(full_client):
    r = full_client.get(f"/collections/grids/items?limit={LIMIT_MAX * 10}")
    assert r.status_code == 200
    assert r.json()["numberReturned"] == 7


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("level=2", ["G1", "G2", "G3", "G4"]),
        ("level=0", ["D"]),
        ("parent_id=S2", ["G3", "G4"]),
        ("level=2&parent_id=S1", ["G1", "G2"]),
        ("level=7", []),
    ],
    ids=["level", "top", "parent", "both", "none"],
)
def test_grid_property_filters(full_client, query, expected):
    fc = full_client.get(f"/collections/grids/items?{query}").json()
    assert _ids(fc) == expected
    assert fc["numberMatched"] == len(expected)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("source=hotline", ["E1", "E4"]),
        ("status=closed&category=环境卫生", ["E1", "E3", "E6"]),
        ("datetime=2025-03-01", ["E1", "E2"]),
        ("datetime=2025-03-01T00:00:00Z", ["E1"]),
        ("datetime=2025-03-01T08:00:00%2B08:00", ["E1"]),  # 08:00 in Beijing is 00:00 UTC
        ("datetime=2024-12-31T16:00:00Z", ["E5"]),
        ("datetime=2025-03-01T00:00:00Z/2025-03-02T08:00:00Z", ["E1", "E2", "E3"]),
        ("datetime=../2025-01-01T00:00:00Z", ["E5"]),
        ("datetime=2025-04-01T00:00:00Z/..", ["E4", "E6"]),
        ("datetime=../..", ["E1", "E2", "E3", "E4", "E5", "E6"]),
        ("datetime=2025-03-01/2025-03-31&source=camera", ["E3"]),
    ],
    ids=[
        "source",
        "status+category",
        "day",
        "instant",
        "instant-offset",
        "instant-utc",
        "closed",
        "open-start",
        "open-end",
        "open",
        "interval+filter",
    ],
)
def test_incident_filters_and_datetime(full_client, query, expected):
    fc = full_client.get(f"/collections/incidents/items?{query}").json()
    assert _ids(fc) == expected, fc.get("description")


def test_camera_filters(full_client):
    assert _ids(full_client.get("/collections/cameras/items?status=online").json()) == ["C1", "C3"]
    assert _ids(full_client.get("/collections/cameras/items?owner=交通").json()) == ["C2"]


def test_bbox_in_crs84_and_in_epsg_4326_axis_order(full_client):
    west = full_client.get("/collections/grids/items?bbox=117.2001,39.1001,117.2049,39.1049&level=2").json()
    assert _ids(west) == ["G1"]
    swapped = full_client.get(
        f"/collections/grids/items?bbox=39.1001,117.2001,39.1049,117.2049&bbox-crs={EPSG4326}&level=2"
    ).json()
    assert _ids(swapped) == ["G1"]
    # bbox touches the shared edge of G1 and G3 region: intersecting, not only inside
    edge = full_client.get("/collections/grids/items?bbox=117.2099,39.1001,117.2101,39.1002&level=2").json()
    assert _ids(edge) == ["G1", "G3"]
    points = full_client.get("/collections/incidents/items?bbox=117.2,39.1,117.205,39.105").json()
    assert _ids(points) == ["E1"]


def test_crs_epsg_4326_returns_latitude_first(full_client):
    r = full_client.get(f"/collections/cameras/items/C1?crs={EPSG4326}")
    assert r.headers["content-crs"] == f"<{EPSG4326}>"
    assert r.json()["geometry"]["coordinates"] == pytest.approx([39.101, 117.201])


@pytest.mark.parametrize(
    "query",
    [
        "bbox=1,2,3",
        "bbox=a,b,c,d",
        "bbox=0,50,1,40",
        "bbox=0,0,1,91",
        "bbox=nan,0,1,1",
        "bbox-crs=EPSG:3857&bbox=0,0,1,1",
        "crs=EPSG:3857",
        "limit=0",
        "limit=x",
        "offset=-1",
        "levle=2",
        "datetime=2025-01-01",
        "category=x",
        "level=-1",
        "f=html",
    ],
    ids=[
        "bbox-3",
        "bbox-text",
        "bbox-south-north",
        "bbox-range",
        "bbox-nan",
        "bbox-crs",
        "crs",
        "limit-0",
        "limit-text",
        "offset",
        "typo",
        "datetime-on-grids",
        "filter-of-other-collection",
        "level",
        "f",
    ],
)
def test_invalid_parameters_are_400_with_the_reason(full_client, query):
    r = full_client.get(f"/collections/grids/items?{query}")
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "InvalidParameterValue"
    assert r.json()["description"]


@pytest.mark.parametrize(
    "query",
    [
        "datetime=yesterday",
        "datetime=2025-03-01T00:00:00",
        "datetime=2025-03-02/2025-03-01",
        "datetime=a/b/c",
        "source=phone",
        "status=lost",
        "datetime=..",
    ],
    ids=["word", "no-zone", "reversed", "three-parts", "source", "status", "dots"],
)
def test_invalid_incident_parameters_are_400(full_client, query):
    assert full_client.get(f"/collections/incidents/items?{query}").status_code == 400


def test_a_changed_store_file_is_read_again(tmp_path, tiny_grids):
    path = tmp_path / "s.gpkg"
    GeoPackageStore(path).write({"grids": tiny_grids})
    with TestClient(create_app(Settings(store=path))) as c:
        assert c.get("/collections/grids/items").json()["numberMatched"] == 7
        GeoPackageStore(path).write({"grids": tiny_grids[tiny_grids["level"] < 2]})
        assert c.get("/collections/grids/items").json()["numberMatched"] == 3


# -- what QGIS does --------------------------------------------------------------------------


def test_the_qgis_request_sequence(full_client, grids):
    """Landing page → API document → conformance → collections → collection → sniff → pages → bbox."""
    landing = full_client.get("/", headers={"Accept": "application/json"}).json()
    api_url = _link(landing, "service-desc", "application/vnd.oai.openapi+json;version=3.0")
    collections_url = _link(landing, "data", "application/json")
    conformance_url = _link(landing, "conformance")

    api = full_client.get(api_url, headers={"Accept": QGIS_API})
    assert api.status_code == 200
    limit = api.json()["components"]["parameters"]["limit"]
    assert limit["schema"]["maximum"] == LIMIT_MAX and limit["schema"]["default"] == 100
    assert {"name", "in", "style", "explode", "schema"} <= set(limit)
    assert full_client.get(conformance_url, headers=JSON).status_code == 200

    collections = full_client.get(collections_url, headers=JSON).json()["collections"]
    grid_collection = next(c for c in collections if c["id"] == "grids")
    bbox = grid_collection["extent"]["spatial"]["bbox"][0]
    assert full_client.get(collections_url + "/grids", headers=JSON).json()["id"] == "grids"

    items_url = f"{collections_url}/grids/items"
    sniff = full_client.get(f"{items_url}?limit=10", headers={"Accept": QGIS_ITEMS})
    assert sniff.headers["content-type"] == "application/geo+json"
    assert sniff.json()["numberMatched"] == len(grids)

    ids, _ = _all_pages(full_client, f"{items_url}?limit=3")
    assert sorted(ids) == sorted(grids["grid_id"]) and len(set(ids)) == len(ids)

    # A map view: bbox in CRS84; and as QGIS sends it for a lat/lon-ordered source CRS.
    minx, miny, maxx, maxy = bbox
    in_view = _ids(full_client.get(f"{items_url}?limit=1000&bbox={minx},{miny},{maxx},{maxy}").json())
    assert sorted(in_view) == sorted(grids["grid_id"])
    latlon = full_client.get(
        f"{items_url}?limit=1000&bbox={miny},{minx},{maxy},{maxx}&bbox-crs={EPSG4326}&crs={EPSG4326}"
    ).json()
    assert sorted(_ids(latlon)) == sorted(in_view)


# -- on the demo district ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_client(demo_gpkg):
    with TestClient(create_app(Settings(store=demo_gpkg))) as c:
        yield c


@pytest.mark.slow
def test_demo_paging_through_all_grids_equals_the_full_set(demo_client, demo_district):
    grids = demo_district.layers()["grids"]
    ids, pages = _all_pages(demo_client, "/collections/grids/items?limit=250")
    assert ids == list(grids["grid_id"])
    assert pages == -(-len(grids) // 250)
    basic = _ids(demo_client.get("/collections/grids/items?level=3&limit=10000").json())
    assert sorted(basic) == sorted(grids.loc[grids["level"] == 3, "grid_id"])


@pytest.mark.slow
def test_demo_bbox_and_datetime_match_a_direct_selection(demo_client, demo_district):
    inc = demo_district.layers()["incidents"]
    minx, miny, maxx, maxy = 117.14, 39.15, 117.16, 39.17
    start, end = pd.Timestamp("2025-03-01T00:00:00Z"), pd.Timestamp("2025-03-31T23:59:59Z")
    reported = pd.to_datetime(inc["reported_at"], utc=True)
    box = shapely.box(minx, miny, maxx, maxy)
    want = inc[inc.geometry.intersects(box) & (reported >= start) & (reported <= end) & (inc["source"] == "hotline")]
    url = (
        f"/collections/incidents/items?bbox={minx},{miny},{maxx},{maxy}"
        "&datetime=2025-03-01T00:00:00Z/2025-03-31T23:59:59Z&source=hotline&limit=10000"
    )
    fc = demo_client.get(url).json()
    assert 0 < fc["numberMatched"] == len(want)
    assert sorted(_ids(fc)) == sorted(want["incident_id"])
