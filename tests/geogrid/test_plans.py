"""geogrid.plans: edit a draft, see its impact, commit it, and look the network up in time.

Every test runs on a GeoPackage store and on a PostGIS store (the public API end to end).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

import geopandas as gpd
import shapely

from geogrid.plans import commit_plan, diff_plan, discard_plan, edit_plan, grids_at, list_plans, new_plan, plan_log
from layers.errors import EditConflict, TopologyError
from layers.store import GeoPackageStore, Store, open_store
from tests._stores import snapshot

X0, Y0, D = 117.20, 39.10, 0.01


@pytest.fixture(params=["gpkg", "postgis"])
def store(request, tmp_path, tiny_grids) -> Store:
    g = tiny_grids.copy()
    g["households"] = pd.array([100, 60, 40, 30, 30, 20, 20], dtype="Int64")
    incidents = gpd.GeoDataFrame(
        {
            "incident_id": ["in-G1-east", "in-G1-west", "in-G3"],
            "reported_at": pd.to_datetime(["2025-01-01T08:00Z"] * 3),
            "category": ["x"] * 3,
            "source": ["hotline"] * 3,
            "status": ["closed"] * 3,
        },
        geometry=[
            shapely.Point(X0 + D * 0.75, Y0 + D / 4),
            shapely.Point(X0 + D * 0.25, Y0 + D / 4),
            shapely.Point(X0 + D * 1.5, Y0 + D / 4),
        ],
        crs="EPSG:4326",
    )
    s = (
        GeoPackageStore(tmp_path / "plan.gpkg")
        if request.param == "gpkg"
        else open_store(request.getfixturevalue("postgis_url"))
    )
    s.write({"grids": g, "incidents": incidents})
    return s


EAST_OF_G1 = shapely.box(X0 + D / 2, Y0, X0 + D, Y0 + D / 2)


def test_redraw_diff_commit_and_time_travel(store):
    plan = new_plan(store, "G1 east to G2", author="li")
    plan, cs = edit_plan(store, plan.plan_id, "transfer_area", author="li", region=EAST_OF_G1, to_grid="G2")
    assert plan.version == 1 and cs.changed == ("G1", "G2")
    diff = diff_plan(store, plan.plan_id)
    assert diff.incidents.values.tolist() == [["in-G1-east", "G1", "G2"]]
    assert diff.area_moved[["level", "from_id", "to_id"]].values.tolist() == [[2, "G1", "G2"]]
    expected = gpd.GeoSeries([EAST_OF_G1], crs=4326).to_crs(4548).area.iloc[0]
    assert diff.summary["area_moved_m2"] == pytest.approx(expected, rel=1e-6)
    assert diff.summary["households_moved"] == 15  # half of G1's 30, by area
    impact = diff.impact_table().set_index("grid_id")
    assert impact.loc["G2", "incidents_delta"] == 1 and impact.loc["G1", "households_delta"] == -15
    assert list_plans(store)["status"].tolist() == ["open"]

    before_commit = datetime.now(UTC)
    version = commit_plan(store, plan.plan_id, author="li")
    assert version.version == 2
    old = grids_at(store, before_commit).set_index("grid_id")
    new = grids_at(store, datetime.now(UTC)).set_index("grid_id")
    assert shapely.equals(old.geometry["G1"], shapely.box(X0, Y0, X0 + D, Y0 + D / 2))
    assert shapely.equals(new.geometry["G1"], shapely.box(X0, Y0, X0 + D / 2, Y0 + D / 2))
    assert plan_log(store, plan.plan_id)["operation"].tolist() == ["create", "transfer_area", "commit"]
    with pytest.raises(ValueError, match="no time zone"):
        grids_at(store, "2025-01-01 08:00")


def test_refused_edit_leaves_the_store_as_it_was(store):
    plan = new_plan(store, "x", author="li")
    before = snapshot(store)
    crossing = shapely.box(X0 + D * 0.8, Y0, X0 + D * 1.2, Y0 + D / 4)
    with pytest.raises(TopologyError, match="crosses a parent boundary"):
        edit_plan(store, plan.plan_id, "transfer_area", author="li", region=crossing, to_grid="G1")
    with pytest.raises(EditConflict):
        edit_plan(store, plan.plan_id, "merge_grids", author="li", expected_version=5, ids=["G1", "G2"])
    assert snapshot(store) == before


def test_the_later_of_two_editors_gets_the_conflict(store):
    plan = new_plan(store, "x", author="li")
    seen = plan.version  # both planners opened version 0
    edit_plan(store, plan.plan_id, "merge_grids", author="li", expected_version=seen, ids=["G1", "G2"])
    with pytest.raises(EditConflict, match="someone else changed it"):
        edit_plan(
            store, plan.plan_id, "transfer_area", author="wang", expected_version=seen, region=EAST_OF_G1, to_grid="G2"
        )
    g, info = store.read_plan(plan.plan_id)
    assert info.version == 1 and "G2" not in set(g["grid_id"])  # li's merge is there, wang's edit is not


def test_unsound_plan_is_not_committed(store):
    plan = new_plan(store, "x", author="li")
    g, _ = store.read_plan(plan.plan_id)
    g.loc[g["grid_id"] == "G4", "geometry"] = shapely.box(X0 + D, Y0 + D / 2, X0 + 2 * D, Y0 + D * 0.9)
    store.save_plan(plan.plan_id, g, expected_version=0, author="qgis", operation="import", parameters={})
    before = snapshot(store)
    with pytest.raises(TopologyError, match="cannot be committed"):
        commit_plan(store, plan.plan_id, author="li")
    assert snapshot(store) == before
    discard_plan(store, plan.plan_id, author="li")
    assert store.plan_info(plan.plan_id).status == "discarded"


def test_diff_counts_what_the_edit_counted(demo_grids):
    """A split nodes its line into the neighbours' edges: they are renoded, not changed, in the diff too."""
    from geogrid.edits import split_grid
    from geogrid.plans import diff_grids

    x0, y0, x1, y1 = demo_grids.set_index("grid_id").geometry["D01-S01-C01-G01"].bounds
    cut = shapely.LineString([((x0 + x1) / 2, y0 - 0.0002), ((x0 + x1) / 2, y1 + 0.0002)])
    new, cs = split_grid(demo_grids, "D01-S01-C01-G01", cut)
    assert cs.renoded  # the case: neighbours gained vertices
    diff = diff_grids(demo_grids, new)
    counts = {k: diff.summary[k] for k in ("added", "removed", "changed")}
    assert counts == {"added": len(cs.added), "removed": len(cs.removed), "changed": len(cs.changed)}
    assert not set(cs.renoded) & set(diff.grids["grid_id"])
