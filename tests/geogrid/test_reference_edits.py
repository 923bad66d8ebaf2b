"""The reference post-conditions of an edit find what they promise (and nothing on a sound edit)."""

from __future__ import annotations

import geopandas as gpd
import shapely

from geogrid._reference_edits import verify_edit


def _layer(a: shapely.Geometry, b: shapely.Geometry, crs: str = "EPSG:32650") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"grid_id": ["D", "a", "b"], "parent_id": [None, "D", "D"], "level": [0, 1, 1]},
        geometry=[shapely.box(0, 0, 200, 100), a, b],
        crs=crs,
    )


BEFORE = _layer(shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100))


def test_a_sound_edit_has_no_problem():
    after = _layer(shapely.box(0, 0, 120, 100), shapely.box(120, 0, 200, 100))
    assert verify_edit(BEFORE, after, "reshape_boundary") == []


def test_overlap_gap_and_outline_are_found():
    after = _layer(shapely.box(0, 0, 120, 100), shapely.box(100, 0, 200, 110))
    problems = verify_edit(BEFORE, after, "reshape_boundary")
    assert "level 1: 'a' and 'b' overlap by 2e+03 m²" in problems
    assert "level 1: 1e+03 m² outside the outline" in problems
    assert "grid 'b': 1e+03 m² outside its parent 'D'" in problems


def test_a_detached_part_is_found():
    a = shapely.MultiPolygon([shapely.box(0, 0, 90, 100), shapely.box(150, 0, 160, 100)])
    b = shapely.difference(shapely.box(90, 0, 200, 100), shapely.box(150, 0, 160, 100))
    problems = verify_edit(BEFORE, _layer(a, b), "transfer_area", region=shapely.box(150, 0, 160, 100), to_grid="a")
    assert "grid 'a' (level 1) has 2 separate parts (had 1)" in problems
    assert "grid 'b' (level 1) has 2 separate parts (had 1)" in problems


def test_a_sliver_on_a_lon_lat_edge_is_not_a_reprojection_artefact():
    # a vertex inserted (to 1e-15 degrees) on a straight lon/lat edge 1 km long
    before = _layer(shapely.box(117.0, 39.0, 117.01, 39.01), shapely.box(117.01, 39.0, 117.02, 39.01), "EPSG:4326")
    before.loc[0, "geometry"] = shapely.box(117.0, 39.0, 117.02, 39.01)
    after = before.copy()
    after.loc[1, "geometry"] = shapely.Polygon(
        [(117.0, 39.0), (117.01, 39.0), (117.01, 39.01), (117.0, 39.01), (117.0, 39.0053), (117.0, 39.0)]
    )
    assert verify_edit(before, after, "reshape_boundary") == []


def test_a_parent_that_stops_being_the_sum_of_its_children_is_found():
    before = BEFORE.copy()
    before["households"] = [30, 10, 20]
    after = before.copy()
    after["households"] = [30, 5, 25]  # households moved between the children: still sound
    assert verify_edit(before, after, "reshape_boundary") == []
    after["households"] = [30, 5, 20]
    assert "grid 'D': households 30 but its children sum to 25 (they did before the edit)" in verify_edit(
        before, after, "reshape_boundary"
    )


def test_users_own_parent_figures_need_not_add_up():
    before = BEFORE.copy()
    before["households"] = [99, 10, 20]  # entered per level, not the sum
    after = before.copy()
    after["households"] = [99, 5, 25]
    assert verify_edit(before, after, "reshape_boundary") == []
