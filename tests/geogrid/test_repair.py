"""Repair: hand-made defects with exact areas, refusals, the demo with jitter, properties."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import geopandas as gpd
import shapely
from pyproj import Geod

import geogrid.repair as repair_mod
from benchmarks.bench_repair import jitter_grids
from geogrid.hierarchy import check_grids
from geogrid.repair import REPAIR_ACTIONS, _repair_grids, repair_grids
from layers.errors import TopologyError

X0, Y0, D = 117.20, 39.10, 0.01
GEOD = Geod(ellps="WGS84")


def geod_area(g: shapely.Geometry) -> float:
    return abs(GEOD.geometry_area_perimeter(g)[0])


def with_geom(g: gpd.GeoDataFrame, gid: str, geom: shapely.Geometry) -> gpd.GeoDataFrame:
    g = g.copy()
    g.loc[g["grid_id"] == gid, "geometry"] = geom
    return g


def geom_of(g: gpd.GeoDataFrame, gid: str) -> shapely.Geometry:
    return g.loc[g["grid_id"] == gid, "geometry"].iloc[0]


def test_sound_input_is_returned_unchanged(tiny_grids):
    result = repair_grids(tiny_grids)
    assert not result.changed
    assert len(result.log) == 0 and len(result.refused) == 0
    assert result.grids.geometry.geom_equals_exact(tiny_grids.geometry, tolerance=0).all()
    assert list(result.grids.columns) == list(tiny_grids.columns)


def test_overlap_goes_to_the_sibling_with_the_longest_shared_edge(tiny_grids):
    # G1 grows a bump into G2: its bottom (D/2) borders G1, its top (D/2) and right side borders G2.
    rise = D / 10
    bump = shapely.box(X0, Y0 + D / 2, X0 + D / 2, Y0 + D / 2 + rise)
    g = with_geom(tiny_grids, "G1", shapely.union(shapely.box(X0, Y0, X0 + D, Y0 + D / 2), bump))
    result = repair_grids(g)
    row = result.log[result.log["action"] == "overlap_resolved"]
    assert len(row) == 1
    assert row["grid_id"].iloc[0] == "G2"
    assert row["other_ids"].iloc[0] == ("G1",)
    assert row["area_m2"].iloc[0] == pytest.approx(geod_area(bump), rel=1e-3)
    assert geom_of(result.grids, "G1").equals(geom_of(tiny_grids, "G1"))
    assert check_grids(result.grids).sound


def test_overlap_with_equal_shared_edges_goes_to_the_first_id(tiny_grids):
    rise = D / 10
    g = with_geom(tiny_grids, "G1", shapely.box(X0, Y0, X0 + D, Y0 + D / 2 + rise))
    result = repair_grids(g.iloc[::-1])
    row = result.log[result.log["action"] == "overlap_resolved"]
    assert list(row["grid_id"]) == ["G1"]
    assert check_grids(result.grids).sound


def test_gap_goes_to_the_neighbour_with_the_longest_shared_edge(tiny_grids):
    # G2 pulled down from the top: a 1/10 strip under S1's top edge is a gap, bordered by G2 only.
    strip = D / 20
    g = with_geom(tiny_grids, "G2", shapely.box(X0, Y0 + D / 2, X0 + D, Y0 + D - strip))
    result = repair_grids(g, max_gap_m2=1e5)
    rows = result.log[result.log["action"] == "gap_filled"]
    assert list(rows["grid_id"]) == ["G2"]
    assert rows["area_m2"].iloc[0] == pytest.approx(
        geod_area(shapely.box(X0, Y0 + D - strip, X0 + D, Y0 + D)), rel=1e-3
    )
    assert geom_of(result.grids, "G2").equals(geom_of(tiny_grids, "G2"))
    assert check_grids(result.grids).sound


def test_child_is_clipped_to_its_parent_and_the_other_side_keeps_its_area(tiny_grids):
    poke = D / 10
    g = with_geom(tiny_grids, "G3", shapely.box(X0 + D - poke, Y0, X0 + 2 * D, Y0 + D / 2))
    result = repair_grids(g)
    clipped = result.log[result.log["action"] == "clipped"]
    assert list(clipped["grid_id"]) == ["G3"]
    assert clipped["parent_id"].iloc[0] == "S2"
    assert clipped["other_ids"].iloc[0] == ("G1",)  # the piece lies in S1, where G1 keeps it
    assert clipped["area_m2"].iloc[0] == pytest.approx(
        geod_area(shapely.box(X0 + D - poke, Y0, X0 + D, Y0 + D / 2)), rel=1e-3
    )
    assert geom_of(result.grids, "G3").equals(geom_of(tiny_grids, "G3"))
    assert geom_of(result.grids, "G1").equals(geom_of(tiny_grids, "G1"))
    assert check_grids(result.grids).sound


def test_gap_at_a_parent_edge_is_never_given_to_another_parents_child(tiny_grids):
    # G3 (in S2) shrinks away from the S1/S2 border: the strip is S2's; G1 (S1) is nearer but may not take it.
    strip = D / 50
    g = with_geom(tiny_grids, "G3", shapely.box(X0 + D + strip, Y0, X0 + 2 * D, Y0 + D / 2))
    result = repair_grids(g, max_gap_m2=1e5)
    rows = result.log[result.log["action"] == "gap_filled"]
    assert set(rows["grid_id"]) == {"G3"}
    assert geom_of(result.grids, "G1").equals(geom_of(tiny_grids, "G1"))
    assert check_grids(result.grids).sound


def test_near_coincident_vertex_is_snapped_and_logged(tiny_grids):
    off = 0.2 / 111_000  # 0.2 m
    g2 = shapely.Polygon([(X0, Y0 + D / 2 + off), (X0 + D, Y0 + D / 2), (X0 + D, Y0 + D), (X0, Y0 + D)])
    result = repair_grids(with_geom(tiny_grids, "G2", g2), snap_m=0.5)
    snapped = result.log[result.log["action"] == "snapped"]
    assert list(snapped["grid_id"]) == ["G2"]
    assert snapped["distance_m"].iloc[0] == pytest.approx(0.2, rel=0.05)
    assert geom_of(result.grids, "G2").equals(geom_of(tiny_grids, "G2"))
    assert "gap_filled" not in set(result.log["action"])
    assert check_grids(result.grids, gap_width_m=1.0).sound


def test_invalid_geometry_is_made_valid_and_logged(tiny_grids):
    bow_tie = shapely.Polygon([(X0, Y0), (X0 + D, Y0), (X0, Y0 + D / 2), (X0 + D, Y0 + D / 2)])
    result = repair_grids(with_geom(tiny_grids, "G1", bow_tie), max_gap_m2=2e5)
    made = result.log[result.log["action"] == "made_valid"]
    assert list(made["grid_id"]) == ["G1"]
    assert "Self-intersection" in made["message"].iloc[0]
    # make_valid keeps two triangles; the two it drops are gaps given back to G1 (its longest edges).
    assert set(result.log.loc[result.log["action"] == "gap_filled", "grid_id"]) == {"G1"}
    assert geom_of(result.grids, "G1").equals(geom_of(tiny_grids, "G1"))
    assert check_grids(result.grids).sound


def test_ids_attributes_index_and_crs_are_kept(tiny_grids):
    g = with_geom(tiny_grids, "G1", shapely.box(X0, Y0, X0 + D, Y0 + D / 2 + D / 10))
    g.index = [f"r{i}" for i in range(len(g))]
    result = repair_grids(g.sample(frac=1, random_state=1))
    out = result.grids.loc[g.index]
    assert list(out.index) == list(g.index)
    assert out.crs == g.crs
    pd.testing.assert_frame_equal(pd.DataFrame(out.drop(columns="geometry")), pd.DataFrame(g.drop(columns="geometry")))


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        pytest.param(
            lambda g: g.assign(parent_id=g["parent_id"].where(g["grid_id"] != "G3", "nope")),
            "does not exist",
            id="orphan",
        ),
        pytest.param(lambda g: g[g["grid_id"] != "G4"], "larger than max_gap_m2", id="large-gap"),
        pytest.param(
            lambda g: g.assign(parent_id=g["parent_id"].where(g["grid_id"] != "G3", "S1")), "lose 100%", id="straddler"
        ),
        pytest.param(lambda g: g[~g["grid_id"].isin(["G3", "G4"])], "no child on level 2", id="childless-parent"),
    ],
)
def test_refusals_raise_with_the_reason_and_change_nothing(tiny_grids, edit, words):
    g = edit(tiny_grids)
    before = g.copy()
    with pytest.raises(TopologyError, match=words) as info:
        repair_grids(g, max_gap_m2=100.0)
    assert "nothing was changed" in str(info.value)
    assert len(info.value.findings) >= 1
    assert g.geometry.geom_equals_exact(before.geometry, tolerance=0).all()


def test_all_refusals_are_listed_at_once(tiny_grids):
    g = tiny_grids[tiny_grids["grid_id"] != "G4"].copy()
    g.loc[g["grid_id"] == "G1", "parent_id"] = "nope"
    with pytest.raises(TopologyError) as info:
        repair_grids(g, max_gap_m2=100.0)
    assert set(info.value.findings["kind"]) == {"hierarchy", "gap"}


def test_skip_repairs_the_rest_and_returns_the_refusals(tiny_grids):
    g = tiny_grids[tiny_grids["grid_id"] != "G4"]
    g = with_geom(g, "G1", shapely.box(X0, Y0, X0 + D, Y0 + D / 2 + D / 10))
    result = repair_grids(g, max_gap_m2=100.0, errors="skip")
    assert list(result.refused["kind"]) == ["gap"]
    assert "overlap_resolved" in set(result.log["action"])
    left = check_grids(result.grids)
    assert set(left.findings["kind"]) == {"gap", "parent_not_tiled"}  # the refused gap only


def test_demo_with_planted_jitter_is_repaired_and_checks_sound(demo_grids):
    g = jitter_grids(demo_grids, 40, shift_m=3.0, seed=1)
    assert not check_grids(g).sound
    result = repair_grids(g)
    assert set(result.log["action"]) <= set(REPAIR_ACTIONS)
    assert {"gap_filled", "overlap_resolved"} <= set(result.log["action"])
    assert check_grids(result.grids).sound
    # Area is conserved per parent: each community is tiled exactly again.
    basic = result.grids[result.grids["level"] == 3].to_crs(4548)
    comm = result.grids[result.grids["level"] == 2].to_crs(4548).set_index("grid_id")
    sums = basic.assign(a=basic.area).groupby("parent_id")["a"].sum()
    assert (sums - comm.area.loc[sums.index]).abs().max() < 0.01


@st.composite
def jitters(draw):
    return draw(st.integers(1, 12)), draw(st.floats(0.3, 6.0)), draw(st.integers(0, 2**16))


@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(jitters())
def test_property_after_repair_the_checks_find_nothing_repair_claims_fixed(demo_grids, params):
    k, shift, seed = params
    g = jitter_grids(demo_grids, k, shift_m=shift, seed=seed)
    result = repair_grids(g, snap_m=0.5, errors="skip")
    assert len(result.refused) == 0
    after = check_grids(result.grids)
    assert after.sound, list(after.findings["message"][:5])
    # Ids, order and attributes survive; only geometries of logged grids changed.
    assert list(result.grids["grid_id"]) == list(g["grid_id"])
    moved = ~result.grids.geometry.geom_equals_exact(g.geometry, tolerance=0)
    named = set(result.log["grid_id"]) | {i for ids in result.log["other_ids"] for i in ids}
    assert set(result.grids.loc[moved, "grid_id"]) <= named
    total = lambda x: float(x[x["level"] == 3].to_crs(4548).area.sum())  # noqa: E731
    assert total(result.grids) == pytest.approx(total(demo_grids), rel=1e-9)


# -- incremental repair: only the grids in play are rebuilt ----------------------------
def _move_inner_vertex(grids: gpd.GeoDataFrame, gid: str, shift_m: float) -> gpd.GeoDataFrame:
    """Move the first vertex of ``gid`` that lies > 20 m inside its parent by ``shift_m`` metres east."""
    poly = geom_of(grids, gid)
    parent = geom_of(grids, grids.loc[grids["grid_id"] == gid, "parent_id"].iloc[0])
    ring = shapely.get_coordinates(poly.exterior).copy()
    inner = [i for i in range(len(ring) - 1) if parent.exterior.distance(shapely.Point(ring[i])) > 20 / 111_000]
    i = inner[0]
    ring[i, 0] += shift_m / (111_320 * 0.776)  # ~39.1 N
    if i == 0:
        ring[-1] = ring[0]
    return with_geom(grids, gid, shapely.Polygon(ring, [h.coords for h in poly.interiors]))


def _same_result(a, b) -> None:
    """Incremental and full rebuild agree: same grids (up to ring start), same log, same refusals."""
    ga, gb = shapely.normalize(a.grids.geometry.to_numpy()), shapely.normalize(b.grids.geometry.to_numpy())
    assert shapely.equals_exact(ga, gb, tolerance=0).all()
    cols = ["action", "level", "grid_id", "parent_id", "other_ids", "message"]
    pd.testing.assert_frame_equal(a.log[cols], b.log[cols])
    assert a.log["area_m2"].to_numpy() == pytest.approx(b.log["area_m2"].to_numpy(), rel=1e-9, nan_ok=True)
    assert a.summary["changed"] == b.summary["changed"]
    assert list(a.refused["message"]) == list(b.refused["message"])


def test_repair_of_one_family_leaves_every_other_grid_byte_identical(demo_grids, monkeypatch):
    basic = demo_grids[demo_grids["level"] == 3]
    gid = str(basic["grid_id"].iloc[len(basic) // 2])
    family = str(basic.loc[basic["grid_id"] == gid, "parent_id"].iloc[0])
    g = _move_inner_vertex(demo_grids, gid, 3.0)
    assert not check_grids(g).sound
    rebuilt: list[tuple[int, int]] = []
    full = repair_mod._repair_level

    def spy(lv, rows, *args, **kwargs):
        rebuilt.append((lv, len(rows)))
        return full(lv, rows, *args, **kwargs)

    monkeypatch.setattr(repair_mod, "_repair_level", spy)
    result = repair_grids(g)
    monkeypatch.undo()
    # Levels 0-2 are exact and skipped; on level 3 only a handful of grids around the moved vertex are rebuilt.
    assert [lv for lv, _ in rebuilt] == [3]
    assert rebuilt[0][1] <= 12
    assert check_grids(result.grids).sound
    assert {"gap_filled", "overlap_resolved"} & set(result.log["action"])
    assert set(result.log["parent_id"]) == {family}
    outside = (result.grids["parent_id"].astype(str) != family).to_numpy(dtype=bool)
    before = shapely.to_wkb(g.geometry.to_numpy()[outside])
    after = shapely.to_wkb(result.grids.geometry.to_numpy()[outside])
    assert (before == after).all()  # byte for byte, every level
    # Inside the family only the grids the log names changed, and the family still tiles its parent.
    changed = set(result.grids.loc[~result.grids.geometry.geom_equals_exact(g.geometry, 0), "grid_id"])
    assert gid in changed
    assert changed <= set(result.log["grid_id"]) | {i for ids in result.log["other_ids"] for i in ids}
    _same_result(result, _repair_grids(g, incremental=False))


def test_incremental_repair_of_a_sound_layer_changes_nothing(demo_grids):
    result = repair_grids(demo_grids)
    assert not result.changed and len(result.refused) == 0
    before, after = shapely.to_wkb(demo_grids.geometry.to_numpy()), shapely.to_wkb(result.grids.geometry.to_numpy())
    assert (before == after).all()


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda g: g[g["grid_id"] != "G4"], id="large-gap"),
        pytest.param(lambda g: g.assign(parent_id=g["parent_id"].where(g["grid_id"] != "G3", "S1")), id="straddler"),
        pytest.param(lambda g: g[~g["grid_id"].isin(["G3", "G4"])], id="childless-parent"),
    ],
)
def test_incremental_and_full_repair_refuse_alike(tiny_grids, edit):
    g = edit(tiny_grids)
    _same_result(
        repair_grids(g, max_gap_m2=100.0, errors="skip"),
        _repair_grids(g, max_gap_m2=100.0, errors="skip", incremental=False),
    )


@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@example((3, 1.0, 1), 2.0)  # snapping moved two grids' edges off the parent edge they twinned
@given(jitters(), st.sampled_from([0.0, 0.5, 2.0]))
def test_property_incremental_repair_equals_the_full_rebuild(demo_grids, params, snap_m):
    k, shift, seed = params
    g = jitter_grids(demo_grids, 4 * k, shift_m=shift, seed=seed)
    fast = repair_grids(g, snap_m=snap_m, errors="skip")
    _same_result(fast, _repair_grids(g, snap_m=snap_m, errors="skip", incremental=False))
    assert check_grids(fast.grids).sound
    # Grids the log does not name are byte-identical to the input.
    named = set(fast.log["grid_id"]) | {i for ids in fast.log["other_ids"] for i in ids}
    quiet = ~fast.grids["grid_id"].isin(named).to_numpy(dtype=bool)
    assert (shapely.to_wkb(fast.grids.geometry.to_numpy()[quiet]) == shapely.to_wkb(g.geometry.to_numpy()[quiet])).all()


# -- regressions found by the differential harness (tests/fuzz/repair.py) -------------
def _as_multipolygons(g: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Every grid a MultiPolygon, as after a GeoPackage round trip."""
    multi = [shapely.MultiPolygon(list(shapely.get_parts(x))) for x in g.geometry]
    return g.set_geometry(gpd.GeoSeries(multi, index=g.index, crs=g.crs))


def _reference_clean(result, min_area_m2: float = 1.0) -> None:
    from geogrid._reference_repair import reference_defects

    left = reference_defects(result.grids, min_area_m2=min_area_m2)
    assert left.empty, left[["kind", "level", "grid_ids", "area_m2"]].to_string()


def test_multipolygon_grids_are_repaired_not_skipped(tiny_grids):
    # G1 has a second part drawn inside G2 (an exclave); every grid is a MultiPolygon. The incremental
    # path saw no edge segments in a MultiPolygon and returned the layer unchanged.
    exclave = shapely.box(X0 + D / 4, Y0 + 0.6 * D, X0 + D / 2, Y0 + 0.8 * D)
    g = with_geom(tiny_grids, "G1", shapely.MultiPolygon([geom_of(tiny_grids, "G1"), exclave]))
    g = _as_multipolygons(g)
    result = repair_grids(g)
    assert result.changed
    assert shapely.area(shapely.intersection(geom_of(result.grids, "G1"), exclave)) == 0
    _reference_clean(result)
    _same_result(result, _repair_grids(g, incremental=False))


def test_skip_lists_the_refusals_of_the_grids_it_leaves_as_they_are(tiny_grids):
    # An exact copy of G1 lies wholly under its sibling: raise refuses it; skip left it as it was
    # and returned no refusal (it re-ran the level without it and kept only the last run's refusals).
    dup = tiny_grids[tiny_grids["grid_id"] == "G1"].assign(grid_id="G1b")
    g = pd.concat([tiny_grids, dup], ignore_index=True)
    with pytest.raises(TopologyError) as info:
        repair_grids(g)
    skipped = repair_grids(g, errors="skip")
    assert list(skipped.refused["grid_ids"]) == [("G1b",)] == list(info.value.findings["grid_ids"])
    assert list(skipped.refused["kind"]) == ["outside_parent"]


def test_incremental_repair_clips_children_under_a_hole_punched_into_their_parent(tiny_grids):
    # Two levels: D and its four grids. D gets a hole (an enclave) inside G1, whose own edges all still
    # twin; G4 pokes 8 m out of D elsewhere, so the level is repaired incrementally. G1 was not
    # brought into play (only the children's untwinned edges were) and kept the enclave.
    g = tiny_grids[~tiny_grids["grid_id"].isin(["S1", "S2"])].assign(
        parent_id=lambda f: f["parent_id"].where(f["level"] == 0, "D")
    )
    g = g.assign(level=g["level"].clip(upper=1))
    hole = shapely.box(X0 + 0.2 * D, Y0 + 0.1 * D, X0 + 0.4 * D, Y0 + 0.3 * D)
    outline = [(X0, Y0), (X0 + D, Y0), (X0 + 2 * D, Y0), (X0 + 2 * D, Y0 + D / 2), (X0 + 2 * D, Y0 + D)]
    outline += [(X0 + D, Y0 + D), (X0, Y0 + D), (X0, Y0 + D / 2)]  # the children's corners: edges twin exactly
    g = with_geom(g, "D", shapely.Polygon(outline, [hole.exterior.coords]))
    g = with_geom(
        g,
        "G4",
        shapely.Polygon(
            [(X0 + D, Y0 + D / 2), (X0 + 2 * D, Y0 + D / 2), (X0 + 2 * D + 1e-4, Y0 + D), (X0 + D, Y0 + D)]
        ),
    )
    result = repair_grids(g, errors="skip")
    assert shapely.area(shapely.intersection(geom_of(result.grids, "G1"), hole)) == 0
    _reference_clean(result)
    _same_result(result, _repair_grids(g, errors="skip", incremental=False))


def test_a_degenerate_sliver_face_does_not_crash_the_union():
    # polygonize can return a near-zero-width sliver that coverage_union_all rejects even alone
    # ("CoverageUnion cannot process overlapping inputs"); seen when three moved vertices met.
    from geogrid._repair_impl import union_faces

    sliver = shapely.from_wkt(
        "POLYGON ((500058.1595496582 4329669.094092222, 500123.87415224983 4329779.669076913, "
        "500058.15954965836 4329669.094092222, 500058.1595496582 4329669.094092222))"
    )
    square = shapely.box(0, 0, 1, 1)
    assert union_faces([sliver]) is sliver
    assert shapely.equals(union_faces([square, sliver]), shapely.union(square, sliver))


def _top_level(geoms: dict[str, shapely.Geometry]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"grid_id": list(geoms), "parent_id": [None] * len(geoms), "level": [0] * len(geoms)},
        geometry=list(geoms.values()),
        crs="EPSG:32650",
    )


def test_an_enclave_between_top_level_grids_is_left_alone():
    # A lake cut out where two districts meet is land outside the jurisdiction, as check_grids says:
    # repair filled it (or refused it as a gap larger than max_gap_m2).
    lake = shapely.Point(500_100, 4_300_050).buffer(20)
    g = _top_level(
        {
            "A": shapely.box(500_000, 4_300_000, 500_100, 4_300_100).difference(lake),
            "B": shapely.box(500_100, 4_300_000, 500_200, 4_300_100).difference(lake),
        }
    )
    for max_gap_m2 in (5000.0, 100.0):
        result = repair_grids(g, max_gap_m2=max_gap_m2)
        assert not result.changed, result.log[["action", "grid_id", "area_m2"]]


def test_a_sliver_hole_between_top_level_grids_is_still_a_gap():
    x0, y0 = 500_000, 4_300_000
    g = _top_level(
        {
            "A": shapely.box(x0, y0, x0 + 100, y0 + 100),
            "B": shapely.box(x0 + 100.5, y0, x0 + 200, y0 + 100),
            "C": shapely.box(x0, y0 + 100, x0 + 200, y0 + 200),
            "E": shapely.box(x0, y0 - 100, x0 + 200, y0),
        }
    )
    result = repair_grids(g, snap_m=0.0)
    filled = result.log[result.log["action"] == "gap_filled"]
    assert filled["area_m2"].tolist() == [pytest.approx(50.0, rel=1e-3)]  # measured in the GK zone repair picks
    _reference_clean(result)


def test_children_of_a_parent_under_a_refused_duplicate_are_not_refused(tiny_grids):
    # S1b, an exact copy of S1 with no children, is refused and left as it is; the faces under both
    # were given to S1b's group, so S1's children G1 and G2 were refused as "100% outside their parent".
    dup = tiny_grids[tiny_grids["grid_id"] == "S1"].assign(grid_id="S1b")
    g = pd.concat([tiny_grids, dup], ignore_index=True)
    result = repair_grids(g, errors="skip")
    assert list(result.refused["grid_ids"]) == [("S1b",)]
    assert not result.changed


@pytest.mark.parametrize("incremental", [True, False], ids=["incremental", "full-rebuild"])
def test_a_notch_in_the_outline_narrower_than_snap_m_stays_open(incremental):
    # a 0.6 m wide, 40 m deep notch cut into the outline exactly where two grids of different
    # parents meet: a sound layer (the check says so), which no repair path may snap shut
    notch = shapely.Polygon([(99.7, 100), (100, 60), (100.3, 100)])
    cells = {"a": shapely.box(0, 0, 100, 100) - notch, "b": shapely.box(100, 0, 200, 100) - notch}
    g = gpd.GeoDataFrame(
        {
            "grid_id": ["D", "S1", "S2", "a", "b"],
            "parent_id": [None, "D", "D", "S1", "S2"],
            "level": [0, 1, 1, 2, 2],
        },
        geometry=[cells["a"] | cells["b"], cells["a"], cells["b"], cells["a"], cells["b"]],
        crs="EPSG:32650",
    )
    g = g.set_geometry(g.geometry.translate(500_000, 4_330_000))
    assert check_grids(g).sound
    result = _repair_grids(g, snap_m=1.0, incremental=incremental)
    assert len(result.log) == 0 and len(result.refused) == 0
    assert all(shapely.equals(x, y) for x, y in zip(result.grids.geometry, g.geometry, strict=True))


@pytest.mark.parametrize("incremental", [True, False], ids=["incremental", "full-rebuild"])
def test_a_seam_meeting_one_side_of_a_notch_does_not_snap_to_the_other_side(incremental):
    # Two children of S1 meet the notch's left side at v, 1.1 m from the notch's right mouth corner
    # (S2's and the outline's vertex): both lie on the outline, so snapping (snap_m=1.5) must not
    # join them. It did, closing part of the notch and clipping 15.8 m² off a sound layer.
    def at(x: float, y: float) -> tuple[float, float]:
        return (500_000 + x, 4_330_000 + y)

    notch = shapely.Polygon([at(99.5, 100), at(100, 68), at(100.5, 100)])
    v = at(99.5 + 0.5 / 64, 99.5)  # exactly on the notch's left side
    s1, s2 = shapely.box(*at(0, 0), *at(100, 100)) - notch, shapely.box(*at(100, 0), *at(200, 100)) - notch
    a1 = shapely.Polygon([at(0, 50), v, at(99.5, 100), at(0, 100)])
    a2 = shapely.Polygon([at(0, 0), at(100, 0), at(100, 68), v, at(0, 50)])
    g = gpd.GeoDataFrame(
        {
            "grid_id": ["D", "S1", "S2", "a1", "a2", "b"],
            "parent_id": [None, "D", "D", "S1", "S1", "S2"],
            "level": [0, 1, 1, 2, 2, 2],
        },
        geometry=[s1 | s2, s1, s2, a1, a2, s2],
        crs="EPSG:32650",
    )
    assert check_grids(g).sound
    result = _repair_grids(g, snap_m=1.5, incremental=incremental)
    assert len(result.log) == 0 and len(result.refused) == 0
    assert all(shapely.equals(x, y) for x, y in zip(result.grids.geometry, g.geometry, strict=True))


@pytest.mark.parametrize("incremental", [True, False], ids=["incremental", "full-rebuild"])
def test_a_parent_sliver_no_child_can_reach_is_rounding_noise_not_a_refusal(incremental):
    # D0 has a 2e-5 m² sliver part on D1's edge that its child cannot take: the check ignores it
    # (under min_area_m2), so repair leaves it. The full rebuild refused it (raise mode raised) while
    # the incremental path never formed it.
    def at(x: float, y: float) -> tuple[float, float]:
        return (500_000 + x, 4_330_000 + y)

    sliver = shapely.Polygon([at(150, 100), at(150.01, 100), at(150, 100.004)])
    d1 = shapely.box(*at(100, 0), *at(200, 100))
    g = gpd.GeoDataFrame(
        {"grid_id": ["D0", "D1", "a", "b"], "parent_id": [None, None, "D0", "D1"], "level": [0, 0, 1, 1]},
        geometry=[
            shapely.MultiPolygon([shapely.box(*at(0, 0), *at(100, 100)), sliver]),
            d1,
            shapely.box(*at(0, 0), *at(100, 100)),
            d1,
        ],
        crs="EPSG:32650",
    )
    result = _repair_grids(g, incremental=incremental)
    assert len(result.refused) == 0
    assert set(result.log["action"]) <= {"noded"}


def test_incremental_equals_full_rebuild_when_a_parent_gains_a_vertex_of_a_kept_child():
    # Long-lane seed 3001935 (an enclave cut on the seam of two top-level grids, stored as is): the
    # level-2 repair nodes a vertex P into L2_001 that G0011 (a child of L2_006, all edges twinned)
    # has. The full rebuild nodes G0011's edges against it and logs a 4.6e-7 m² overlap for G0024;
    # the incremental path kept G0011 out of play and logged G0024 "noded" instead.
    g = gpd.read_parquet(Path(__file__).parents[1] / "data" / "repair_parent_gained_vertex.parquet")
    inc = _repair_grids(g, snap_m=0.5, max_gap_m2=5000.0, errors="skip")
    full = _repair_grids(g, snap_m=0.5, max_gap_m2=5000.0, errors="skip", incremental=False)
    assert shapely.equals(inc.grids.geometry.to_numpy(), full.grids.geometry.to_numpy()).all()
    cols = ["action", "level", "grid_id", "other_ids"]
    assert inc.log[cols].values.tolist() == full.log[cols].values.tolist()
    assert (
        inc.refused[["kind", "level", "grid_ids"]].values.tolist()
        == full.refused[["kind", "level", "grid_ids"]].values.tolist()
    )


def test_a_face_with_a_near_zero_width_spike_stays_with_the_grid_that_covers_it():
    # Discovery seed 5000139: b's exclave part, drawn inside a along the a | c seam, leaves a face of a
    # with a spike between two nearly collinear edges. point_on_surface put its point on c's side of
    # the seam, so c (another parent's child) silently took 272 m² of a: no clip, no refusal.
    a = shapely.from_wkt(
        "POLYGON ((116.77679565771341 39.1175627910613, 116.77740997689166 39.11874668609983, "
        "116.77760029929827 39.11868395514106, 116.77778937130162 39.11806655117422, "
        "116.77679565771341 39.1175627910613))"
    )
    b = shapely.from_wkt(
        "POLYGON ((116.77778937130162 39.11806655117422, 116.77760029929827 39.11868395514106, "
        "116.77873836335453 39.11874890646757, 116.77953886706105 39.11806773243956, "
        "116.77839526694632 39.1172254567855, 116.77778937130162 39.11806655117422))"
    )
    exclave = shapely.from_wkt(
        "POLYGON ((116.77768162272712 39.11814966887025, 116.77723045415233 39.11814966887025, "
        "116.77723045415233 39.11840071597889, 116.7773342965122 39.11860083744502, "
        "116.77762575302087 39.11860083744502, 116.77768162272712 39.11841839806928, "
        "116.77768162272712 39.11814966887025))"
    )
    c = shapely.from_wkt(
        "POLYGON ((116.77656746489572 39.1174915752815, 116.77571208623675 39.1178497407995, "
        "116.77667130955072 39.119044018409056, 116.77694900714913 39.11908141030125, "
        "116.77740997689166 39.11874668609983, 116.77679565771341 39.1175627910613, "
        "116.77676266877934 39.11751961813238, 116.77656746489572 39.1174915752815))"
    )
    g = gpd.GeoDataFrame(
        {
            "grid_id": ["D", "A", "B", "C", "a", "b", "c"],
            "parent_id": [None, "D", "D", "D", "A", "B", "C"],
            "level": [0, 1, 1, 1, 2, 2, 2],
        },
        geometry=[shapely.union_all([a, b, c]), a, b, c, a, shapely.MultiPolygon([b, exclave]), c],
        crs="EPSG:4326",
    )
    for incremental in (True, False):
        result = _repair_grids(g, snap_m=0.0, errors="skip", incremental=incremental)
        assert len(result.refused) == 0
        clipped = result.log[result.log["action"] == "clipped"]
        assert clipped[["grid_id", "other_ids"]].values.tolist() == [["b", ("a",)]]
        assert shapely.area(shapely.difference(geom_of(result.grids, "c"), c)) < 1e-12  # deg²: 0.01 m²
        _reference_clean(result)


@pytest.mark.parametrize("incremental", [True, False], ids=["incremental", "full-rebuild"])
def test_vertices_whose_edges_are_all_shared_are_no_near_miss(incremental):
    # Discovery seed 5001131 (an enclave cut where two districts meet): along the outline, a2's corner
    # P (0.4 m left of the A | B seam) and the b1 | b2 seam's foot Q (0.4 m right, on B's edge with no
    # vertex of B there) are 0.8 m apart and share no grid. Every edge at both is in place, yet
    # snapping joined them: b1 and b2 were clipped, a2 re-noded, on a sound layer.
    x0, y0 = 500_000, 4_300_000

    def poly(*xy):
        return shapely.Polygon([(x0 + x, y0 + y) for x, y in xy])

    g = gpd.GeoDataFrame(
        {
            "grid_id": ["A", "B", "a1", "a2", "b1", "b2"],
            "parent_id": [None, None, "A", "A", "B", "B"],
            "level": [0, 0, 1, 1, 1, 1],
        },
        geometry=[
            poly((0, 0), (99.6, 0), (100, 0), (100, 100), (60, 100), (0, 100)),
            poly((100, 0), (200, 0), (200, 100), (140, 100), (100, 100)),
            poly((0, 0), (99.6, 0), (60, 100), (0, 100)),
            poly((99.6, 0), (100, 0), (100, 100), (60, 100)),
            poly((100, 0), (100.4, 0), (140, 100), (100, 100)),
            poly((100.4, 0), (200, 0), (200, 100), (140, 100)),
        ],
        crs="EPSG:32650",
    )
    assert check_grids(g).sound
    result = _repair_grids(g, snap_m=1.0, incremental=incremental)
    assert not result.changed, result.log[["action", "grid_id", "area_m2"]]


def _incremental_equals_full(g: gpd.GeoDataFrame, **opts: float) -> None:
    inc = _repair_grids(g, errors="skip", **opts)
    full = _repair_grids(g, errors="skip", incremental=False, **opts)
    assert shapely.equals(inc.grids.geometry.to_numpy(), full.grids.geometry.to_numpy()).all()
    cols = ["action", "level", "grid_id", "other_ids"]
    assert inc.log[cols].values.tolist() == full.log[cols].values.tolist()
    assert (
        inc.refused[["kind", "level", "grid_ids"]].values.tolist()
        == full.refused[["kind", "level", "grid_ids"]].values.tolist()
    )


def test_incremental_equals_full_rebuild_where_a_parent_repair_changed_next_to_another_family():
    # Fuzz seed 5002228, reduced (an enclave beside S30 | S50): S50's repair resolves a 3e-10 m² overlap
    # with S30 into a zero-width spike out to S30's vertex V, which S30's child g005 has (all its edges
    # twinned). The full rebuild nodes g005 against the new S50 edges and logs the overlap of g037
    # (S50's child) with g005; the incremental path kept g005 out of play and logged g037 "noded".
    g = gpd.read_parquet(Path(__file__).parents[1] / "data" / "repair_parent_spike_other_family.parquet")
    _incremental_equals_full(g, snap_m=1.0, max_gap_m2=5000.0)


@pytest.mark.parametrize(
    ("name", "opts"),
    [
        ("repair_rounding_face_zero_overlap", {"snap_m": 0.5, "max_gap_m2": 300.0}),  # fuzz seed 5005254
        ("repair_rounding_face_notch", {"snap_m": 0.0, "max_gap_m2": 5000.0}),  # fuzz seed 5001073
    ],
)
def test_incremental_equals_full_rebuild_on_faces_of_rounding_size(name, opts):
    # Fuzz seeds, reduced. Both layers have 0 m² faces, which form (or not) as GEOS nodes the whole
    # linework; the incremental path nodes only part of it: a 0 m² overlap of g035 with g040 and g059
    # came out of one noding only (5005254), and at an outline notch G0002 was clipped by one path and
    # noded by the other (5001073). Such a level goes to the full rebuild.
    g = gpd.read_parquet(Path(__file__).parents[1] / "data" / f"{name}.parquet")
    _incremental_equals_full(g, **opts)


def test_projected_data_beyond_its_zone_is_repaired_with_the_doors_warning():
    # UTM 50N is meant for 114..120 E; these districts lie at 123 E, as real data uses a zone past its
    # strip: repair warns as the door does (validate_layer) and repairs (here: a 0.5 m overlap).
    from pyproj import Transformer

    from layers.errors import OutsideCRSAreaWarning

    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32650", always_xy=True).transform(123.0, 39.0)
    g = _top_level({"A": shapely.box(x, y, x + 100.5, y + 100), "B": shapely.box(x + 100, y, x + 200, y + 100)})
    with pytest.warns(OutsideCRSAreaWarning, match=r"km beyond the area of use of EPSG:32650"):
        result = repair_grids(g)
    assert result.log["action"].tolist() == ["overlap_resolved"]
    assert check_grids(result.grids).sound
