"""Plans over HTTP: ETags, If-Match (428 / 412), topology conflicts (409), and the stored plan left unchanged.

Every test runs with the app on a GeoPackage store and on a PostGIS store (``postgresql://`` in Settings).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api import Settings, create_app
from api.settings import Role
from layers.store import open_store
from tests._stores import snapshot
from tests.api._support import TestClient

KEYS = {"p-viewer-0123456789": Role.VIEWER, "p-planner-0123456789": Role.PLANNER, "p-admin-0123456789": Role.ADMIN}
AS = {role.label: {"Authorization": f"Bearer {key}"} for key, role in KEYS.items()}

X0, Y0 = 117.20, 39.10


def _box(x0: float, y0: float, x1: float, y1: float) -> dict[str, object]:
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


# Inside street S1: the lower half of G2's neighbour G1 moves to G2 (stays within the parent).
INSIDE = {"op": "transfer_area", "region": _box(X0 + 0.005, Y0 + 0.004, X0 + 0.009, Y0 + 0.006), "to_grid": "G2"}
# Reaches into street S2 without cascade: refused, the findings show where.
ACROSS = {"op": "transfer_area", "region": _box(X0 + 0.005, Y0 + 0.004, X0 + 0.015, Y0 + 0.006), "to_grid": "G2"}


@pytest.fixture(params=["gpkg", "postgis"])
def store_path(request, store_path, grids) -> Path | str:
    """The store the app serves: the GeoPackage file, or the same grids in a PostGIS schema (a URL)."""
    if request.param == "gpkg":
        return store_path
    url: str = request.getfixturevalue("postgis_url")
    open_store(url).write({"grids": grids})
    return url


@pytest.fixture
def plans(store_path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(store=store_path, api_keys=dict(KEYS)))) as c:
        yield c


def _sha(location: Path | str) -> Any:
    """Everything the store holds (the file's bytes, or every row of the schema)."""
    return snapshot(open_store(location))


def _new(c: TestClient, name: str = "redraw 望海楼") -> str:
    r = c.post("/plans", json={"name": name}, headers=AS["planner"])
    assert r.status_code == 201, r.text
    assert r.json() == {"plan_id": r.json()["plan_id"], "version": 0}
    assert r.headers["etag"] == '"0"'
    assert r.headers["location"] == f"/plans/{r.json()['plan_id']}"
    return str(r.json()["plan_id"])


def test_a_plan_is_created_listed_read_edited_diffed_and_committed(plans):
    pid = _new(plans)
    listed = plans.get("/plans", headers=AS["viewer"]).json()
    assert [(p["plan_id"], p["name"], p["status"], p["version"]) for p in listed] == [(pid, "redraw 望海楼", "open", 0)]

    got = plans.get(f"/plans/{pid}", headers=AS["viewer"])
    assert got.status_code == 200 and got.headers["etag"] == '"0"'
    assert len(got.json()["grids"]["features"]) == 7

    edit = plans.post(f"/plans/{pid}/edits", json=INSIDE, headers={**AS["planner"], "If-Match": '"0"'})
    assert edit.status_code == 200, edit.text
    assert edit.headers["etag"] == '"1"'
    body = edit.json()
    assert body["version"] == 1 and sorted(body["changed"]) == ["G1", "G2"]
    assert "m² moved" in body["summary"] and len(body["grids"]["features"]) == 7

    diff = plans.get(f"/plans/{pid}/diff", headers=AS["viewer"])
    assert diff.status_code == 200 and diff.headers["etag"] == '"1"'
    d = diff.json()
    assert d["summary"]["changed"] == 2 and d["summary"]["area_moved_m2"] > 30_000
    assert {row["grid_id"] for row in d["impact"]} == {"G1", "G2"}
    assert sum(row["area_delta_m2"] for row in d["impact"]) == pytest.approx(0, abs=1)

    assert plans.post(f"/plans/{pid}/commit", headers={**AS["planner"], "If-Match": '"1"'}).status_code == 403
    done = plans.post(f"/plans/{pid}/commit", headers={**AS["admin"], "If-Match": '"1"'})
    assert done.status_code == 200, done.text
    assert done.json()["network_version"] == 2
    gone = plans.get(f"/plans/{pid}", headers=AS["viewer"]).json()
    assert gone["plan"]["status"] == "committed" and gone["grids"] is None
    assert plans.get(f"/plans/{pid}/diff", headers=AS["viewer"]).status_code == 409


@pytest.mark.parametrize(
    ("if_match", "body", "status", "code"),
    [
        (None, INSIDE, 428, "PreconditionRequired"),
        ('"7"', INSIDE, 412, "EditConflict"),
        ("garbage", INSIDE, 400, "InvalidParameterValue"),
        ('"0"', ACROSS, 409, "TopologyConflict"),
    ],
    ids=["missing-if-match", "stale", "not-an-etag", "breaks-topology"],
)
def test_a_refused_edit_leaves_the_stored_plan_as_it_was(plans, store_path, if_match, body, status, code):
    pid = _new(plans)
    before = _sha(store_path)
    headers = {**AS["planner"], **({"If-Match": if_match} if if_match else {})}
    r = plans.post(f"/plans/{pid}/edits", json=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["code"] == code
    assert _sha(store_path) == before
    if status == 409:
        kinds = {f["properties"]["kind"] for f in r.json()["findings"]["features"]}
        assert kinds == {"outside_parent"}
        assert "cascade=True" in r.json()["description"]
    assert plans.get(f"/plans/{pid}", headers=AS["viewer"]).headers["etag"] == '"0"'


@pytest.mark.parametrize(("route", "method"), [("/commit", "POST"), ("", "DELETE")], ids=["commit", "discard"])
@pytest.mark.parametrize(("if_match", "status"), [(None, 428), ('"3"', 412)], ids=["missing", "stale"])
def test_commit_and_discard_need_a_current_if_match(plans, store_path, route, method, if_match, status):
    pid = _new(plans)
    before = _sha(store_path)
    headers = {**AS["admin"], **({"If-Match": if_match} if if_match else {})}
    assert plans.request(method, f"/plans/{pid}{route}", headers=headers).status_code == status
    assert _sha(store_path) == before


def test_a_plan_whose_grids_are_unsound_is_not_committed(plans, store_path):
    pid = _new(plans)
    store = open_store(store_path)
    grids, _info = store.read_plan(pid)
    grids.loc[grids["grid_id"] == "G1", "geometry"] = grids.loc[grids["grid_id"] == "G2", "geometry"].to_numpy()
    store.save_plan(pid, grids, expected_version=0, author="test", operation="test", parameters={})
    before = _sha(store_path)
    r = plans.post(f"/plans/{pid}/commit", headers={**AS["admin"], "If-Match": '"1"'})
    assert r.status_code == 409 and r.json()["findings"]["features"]
    assert _sha(store_path) == before


def test_discard(plans):
    pid = _new(plans)
    r = plans.delete(f"/plans/{pid}", headers={**AS["planner"], "If-Match": 'W/"0"'})
    assert r.status_code == 200 and r.json()["status"] == "discarded"
    assert r.headers["etag"] == '"1"'
    again = plans.delete(f"/plans/{pid}", headers={**AS["planner"], "If-Match": '"1"'})
    assert again.status_code == 412 and "discarded" in again.json()["description"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"op": "rotate_grid", "grid_id": "G1"}, "does not match any of the expected tags"),
        ({"op": "transfer_area", "to_grid": "G2"}, "transfer_area.region"),
        ({**INSIDE, "region": {"type": "Polygon", "coordinates": [[[1, 2], [3, 4]]]}}, "transfer_area.region"),
        ({**INSIDE, "region": {"type": "Point", "coordinates": [117.2, 39.1]}}, "transfer_area.region"),
        ({**INSIDE, "region": _box(117.2, 39.1, 190.0, 39.2)}, "outside WGS-84"),
        (
            {**INSIDE, "region": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}},
            "Self-intersection",
        ),
        ({"op": "split_grid", "grid_id": "G1"}, "split_grid.line"),
        ({"op": "split_grid", "grid_id": "G1", "line": {"type": "LineString", "coordinates": [[1, 1]]}}, "line"),
        ({"op": "reshape_boundary", "grid_a": "G1", "line": _box(0, 0, 1, 1)}, "reshape_boundary.grid_b"),
        ({"op": "merge_grids", "ids": ["G1"]}, "merge_grids.ids"),
        ({"op": "reparent", "grid_id": "G1"}, "reparent.new_parent"),
        ({"op": "update_attributes", "grid_id": "G1", "values": {}}, "update_attributes.values"),
        ({**INSIDE, "evil": 1}, "transfer_area.evil"),
    ],
    ids=[
        "unknown-op",
        "missing-region",
        "short-ring",
        "point-region",
        "lon-out-of-range",
        "bow-tie",
        "missing-line",
        "one-point-line",
        "missing-grid-b",
        "merge-one",
        "missing-parent",
        "no-values",
        "unknown-field",
    ],
)
def test_bad_edit_bodies_are_422_naming_the_field(plans, store_path, body, field):
    pid = _new(plans)
    before = _sha(store_path)
    r = plans.post(f"/plans/{pid}/edits", json=body, headers={**AS["planner"], "If-Match": '"0"'})
    assert r.status_code == 422, r.text
    assert field in r.json()["description"]
    assert _sha(store_path) == before


def test_every_operation_goes_through(plans):
    pid = _new(plans)
    line = {"type": "LineString", "coordinates": [[X0 + 0.005, Y0 - 0.001], [X0 + 0.005, Y0 + 0.006]]}
    edits = [
        {"op": "update_attributes", "grid_id": "G1", "values": {"name": "网格甲", "households": 12}},
        {"op": "split_grid", "grid_id": "G1", "line": line, "new_ids": ["G1a", "G1b"]},
        {"op": "merge_grids", "ids": ["G1a", "G1b"], "new_id": "G1"},
        {"op": "reparent", "grid_id": "G3", "new_parent": "S1", "cascade": True},
    ]
    version = 0
    for body in edits:
        r = plans.post(f"/plans/{pid}/edits", json=body, headers={**AS["planner"], "If-Match": f'"{version}"'})
        assert r.status_code == 200, (body["op"], r.text)
        version = r.json()["version"]
    assert version == len(edits)
    names = {f["properties"]["grid_id"]: f["properties"] for f in r.json()["grids"]["features"]}
    assert names["G1"]["name"] == "网格甲" and names["G3"]["parent_id"] == "S1"


def test_an_unknown_plan_is_404(plans):
    assert plans.get("/plans/p99", headers=AS["viewer"]).status_code == 404
    assert plans.post("/plans/p99/edits", json=INSIDE, headers={**AS["planner"], "If-Match": '"0"'}).status_code == 404


BAD_ATTRIBUTE_EDITS = {
    "unknown-column": ({"no_such_column": 1}, "no_such_column"),
    "protected-column": ({"parent_id": "S2"}, "parent_id"),
    "level": ({"level": 5}, "level"),
    "text-workload": ({"households": "abc"}, "households"),
    "fractional-workload": ({"population": 1.5}, "population"),
    "huge-workload": ({"shops": 1e300}, "shops"),
    "negative-workload": ({"households": -3}, "households"),
    "name-as-number": ({"name": 12}, "name"),
}


@pytest.mark.parametrize("values, named", BAD_ATTRIBUTE_EDITS.values(), ids=BAD_ATTRIBUTE_EDITS.keys())
def test_a_bad_attribute_edit_is_a_4xx_naming_the_column(plans, store_path, values, named):
    pid = _new(plans)
    before = _sha(store_path)
    body = {"op": "update_attributes", "grid_id": "G1", "values": values}
    r = plans.post(f"/plans/{pid}/edits", json=body, headers={**AS["planner"], "If-Match": '"0"'})
    assert r.status_code in (400, 422), r.text
    assert named in r.text, r.text
    assert _sha(store_path) == before


def test_a_nan_workload_is_a_4xx(plans, store_path):
    pid = _new(plans)
    raw = '{"op": "update_attributes", "grid_id": "G1", "values": {"households": NaN}}'
    headers = {**AS["planner"], "If-Match": '"0"', "Content-Type": "application/json"}
    r = plans.post(f"/plans/{pid}/edits", content=raw, headers=headers)
    assert r.status_code in (400, 422), r.text


def test_good_attribute_values_are_stored_with_their_types(plans):
    pid = _new(plans)
    body = {"op": "update_attributes", "grid_id": "G1", "values": {"households": 120, "name": "新网格", "shops": 3.0}}
    r = plans.post(f"/plans/{pid}/edits", json=body, headers={**AS["planner"], "If-Match": '"0"'})
    assert r.status_code in (200, 201), r.text


@pytest.mark.parametrize("name", ["", "   ", "\t"], ids=["empty", "spaces", "tab"])
def test_a_plan_without_a_name_is_422_with_the_reason(plans, store_path, name):
    before = _sha(store_path)
    r = plans.post("/plans", json={"name": name}, headers=AS["planner"])
    assert r.status_code == 422, r.text
    assert "name" in r.json()["description"]
    assert plans.get("/plans", headers=AS["viewer"]).json() == []
    assert _sha(store_path) == before


def test_a_commit_over_a_network_that_moved_on_is_409_not_412(plans, store_path):
    """The plan's If-Match is current; the network it was drawn on is not: a conflict, not a failed precondition."""
    first, second = _new(plans, "first"), _new(plans, "second")
    done = plans.post(f"/plans/{first}/commit", headers={**AS["admin"], "If-Match": '"0"'})
    assert done.status_code == 200, done.text
    before = _sha(store_path)
    r = plans.post(f"/plans/{second}/commit", headers={**AS["admin"], "If-Match": '"0"'})
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "NetworkChanged"
    assert "copied from network version 1" in r.json()["description"]
    assert _sha(store_path) == before
    again = plans.get(f"/plans/{second}", headers=AS["viewer"])
    assert again.headers["etag"] == '"0"' and again.json()["plan"]["status"] == "open"
