"""OGC API – Features: documents, links, paging, bbox, datetime and property filters, and QGIS's requests."""

from __future__ import annotations

import pandas as pd
import pytest

import shapely

from api import Settings, create_app
from api.features import CRS84, EPSG4326, LIMIT_MAX
from layers.schema import INCIDENT_STATUSES
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
        ("datetime=2025-03-01", ["E1"]),  # the day in Asia/Shanghai ends at 16:00 UTC: E2 (23:59 UTC) is 2 March
        ("datetime=2025-03-02", ["E2", "E3"]),
        ("datetime=2025-03-01T00:00:00Z", ["E1"]),
        ("datetime=2025-03-01T08:00:00", ["E1"]),  # no zone: the store's (Asia/Shanghai), as QGIS sends it
        ("datetime=2025-03-01T/..", ["E1", "E2", "E3", "E4", "E6"]),  # GDAL's -where "reported_at >= '2025-03-01'"
        ("datetime=../2025-03-01T", ["E1", "E5"]),  # GDAL's "<= '2025-03-01'": the day included
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
        "next-day",
        "instant",
        "instant-no-zone",
        "gdal-from-day",
        "gdal-to-day",
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
        "datetime=2025-02-30",
        "datetime=2025-03-02/2025-03-01",
        "datetime=a/b/c",
        "source=phone",
        "status=lost",
        "datetime=..",
    ],
    ids=["word", "no-such-day", "reversed", "three-parts", "source", "status", "dots"],
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


# -- the API document: valid OpenAPI 3.0, one path per collection with its own parameters --------


def _api(client):
    return client.get("/openapi.json").json()


def _params(doc, path):
    out = {}
    for p in doc["paths"][path]["get"]["parameters"]:
        if "$ref" in p:
            p = doc["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]
        out[p["name"]] = p
    return out


def test_the_api_document_is_valid_openapi_30(full_client):
    from openapi_spec_validator import OpenAPIV30SpecValidator

    doc = _api(full_client)
    assert doc["openapi"] == "3.0.3"
    errors = [e.message[:300] for e in OpenAPIV30SpecValidator(doc).iter_errors()]
    assert errors == []
    assert "prefixItems" not in full_client.get("/openapi.json").text


def test_each_collection_has_its_own_items_path_with_its_filters(full_client):
    doc = _api(full_client)
    assert not [p for p in doc["paths"] if "{collection_id}" in p]
    grids, incidents = _params(doc, "/collections/grids/items"), _params(doc, "/collections/incidents/items")
    assert {"level", "parent_id", "level_name", "bbox", "limit", "filter"} <= set(grids)
    assert "datetime" not in grids and "category" not in grids  # grids have no time and no category
    assert {"category", "source", "status", "datetime"} <= set(incidents) and "level" not in incidents
    # What GDAL and QGIS need to treat a parameter as a filter: in query, form style, not exploded, typed.
    level = grids["level"]
    assert (level["in"], level["style"], level["explode"], level["schema"]["type"]) == (
        "query",
        "form",
        False,
        "integer",
    )
    assert incidents["source"]["schema"]["enum"] == ["grid_worker", "hotline", "snapshot", "camera", "other"]
    assert grids["limit"]["schema"]["maximum"] == LIMIT_MAX and grids["limit"]["schema"]["default"] == 100
    assert "/collections/cameras/queryables" in doc["paths"]


# -- queryables and CQL2 ------------------------------------------------------------------------------


def test_queryables_are_a_json_schema_linked_from_the_collection(full_client):
    coll = full_client.get("/collections/incidents").json()
    url = _link(coll, "http://www.opengis.net/def/rel/ogc/1.0/queryables", "application/schema+json")
    r = full_client.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "application/schema+json"
    doc = r.json()
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == url and doc["type"] == "object" and doc["additionalProperties"] is False
    assert doc["properties"]["reported_at"]["format"] == "date-time"
    assert doc["properties"]["status"]["enum"] == list(INCIDENT_STATUSES)
    grids = full_client.get("/collections/grids/queryables").json()["properties"]
    assert grids["level"] == {
        "title": "level",
        "type": "integer",
        "description": grids["level"]["description"],
        "minimum": 0,
    }
    assert full_client.get("/collections/nowhere/queryables").status_code == 404


@pytest.mark.parametrize(
    ("cid", "cql", "expected"),
    [
        ("grids", "level = 2", ["G1", "G2", "G3", "G4"]),
        ("grids", "level >= 1 AND parent_id <> 'S1'", ["S1", "S2", "G3", "G4"]),
        ("grids", "parent_id IS NULL", ["D"]),
        ("grids", "NOT parent_id = 'S1'", ["S1", "S2", "G3", "G4"]),  # D's parent is null: unknown, left out
        ("grids", "level = 0 OR grid_id = 'G4'", ["D", "G4"]),
        ("incidents", "category = '环境卫生' AND source = 'hotline'", ["E1"]),
        ("incidents", "reported_at >= TIMESTAMP('2025-04-01T00:00:00Z')", ["E4", "E6"]),
        ("incidents", "closed_at IS NULL AND status <> 'closed'", ["E2", "E4"]),
        ("cameras", "range_m > 55 AND fov_deg < 360", ["C2", "C3"]),
    ],
    ids=["eq", "and-ne", "is-null", "not-three-valued", "or", "chinese", "timestamp", "null-and", "float"],
)
def test_cql2_text_filters_are_answered_by_the_server(full_client, cid, cql, expected):
    fc = full_client.get(f"/collections/{cid}/items", params={"filter": cql}).json()
    assert _ids(fc) == expected, fc
    assert fc["numberMatched"] == len(expected)


def test_cql2_json_and_filters_combined_with_parameters(full_client):
    import json

    tree = {"op": "=", "args": [{"property": "level"}, 2]}
    fc = full_client.get(
        "/collections/grids/items", params={"filter": json.dumps(tree), "filter-lang": "cql2-json", "parent_id": "S2"}
    ).json()
    assert _ids(fc) == ["G3", "G4"]


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"filter": "level = 2 AND"}, "not valid cql2-text"),
        ({"filter": "levle = 2"}, "not a queryable"),
        ({"filter": "level = '2'"}, "compares a int with a str"),
        ({"filter": "name LIKE '网格%'"}, "operator 'like'"),
        ({"filter": "level IN (1, 2)"}, "operator 'in'"),
        ({"filter": "S_INTERSECTS(geometry, BBOX(117, 39, 118, 40))"}, "s_intersects"),
        ({"filter": "level + 1 = 2"}, "'+'"),
        ({"filter": "level = 2", "filter-lang": "cql-text"}, "filter-lang"),
    ],
    ids=["syntax", "unknown-property", "type", "like", "in", "spatial", "arithmetic", "lang"],
)
def test_unsupported_cql2_is_a_400_naming_what(full_client, query, words):
    r = full_client.get("/collections/grids/items", params=query)
    assert r.status_code == 400, r.text
    assert words in r.json()["description"]


def test_conformance_declares_queryables_filter_and_basic_cql2(full_client):
    classes = set(full_client.get("/conformance").json()["conformsTo"])
    for c in ("queryables", "queryables-query-parameters", "filter", "features-filter"):
        assert f"http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/{c}" in classes
    assert {
        "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
        "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    } <= classes


# -- HEAD, compression, formats ----------------------------------------------------------------------


def test_head_answers_wherever_get_does(full_client):
    from api.auth import iter_routes

    app = full_client.app
    paths = [
        info.path
        for info in iter_routes(app)
        if info.methods and "GET" in info.methods and "{" not in info.path and not info.path.startswith("/static")
    ]
    assert "/collections" in paths and "/maps/grids" in paths
    for path in paths:
        got, head = full_client.get(path), full_client.head(path)
        assert head.status_code == got.status_code, path
        assert head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path
    assert full_client.head("/collections/grids/items/G1").status_code == 200
    assert full_client.head("/collections/grids/items/nope").status_code == 404


def test_large_responses_are_gzipped_small_ones_not(full_client):
    big = full_client.get("/collections/grids/items", headers={"Accept-Encoding": "gzip"})
    assert big.headers["content-encoding"] == "gzip"
    assert int(big.headers["content-length"]) < len(big.content)  # httpx decoded it
    assert big.json()["numberReturned"] == 7
    small = full_client.get("/health", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers
    plain = full_client.get("/collections/grids/items", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers


@pytest.mark.parametrize(
    "path",
    [
        "/conformance",
        "/collections",
        "/collections/grids",
        "/collections/grids/items",
        "/collections/grids/items/G1",
        "/collections/grids/queryables",
    ],
)
def test_f_html_is_a_clear_400_on_every_json_resource(full_client, path):
    r = full_client.get(f"{path}?f=html")
    assert r.status_code == 400, path
    assert "HTML views are the landing page" in r.json()["description"]
    assert full_client.get(f"{path}?f=json").status_code == 200
