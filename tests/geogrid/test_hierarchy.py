"""Hierarchy and topology checks: every finding kind on small hand-made hierarchies.

Expected areas come from the geodesic area of the shapes drawn (pyproj.Geod), not from
the code under test; the checks measure in a Gauss–Krüger zone, within 0.1 %.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import geopandas as gpd
import shapely
from geopandas.testing import assert_geodataframe_equal
from pyproj import Geod

from geogrid.hierarchy import FINDING_KINDS, check_grids
from layers.errors import CRSError, ValidationError
from tests import geometries as geo

X0, Y0, D = 117.20, 39.10, 0.01
GEOD = Geod(ellps="WGS84")
M_PER_DEG_LAT = 111_000.0  # near 39°N, to turn "1 m" into degrees when drawing


def geod_area(g: shapely.Geometry) -> float:
    return abs(GEOD.geometry_area_perimeter(g)[0])


def geod_length(g: shapely.Geometry) -> float:
    return GEOD.geometry_length(g)


def with_geom(g: gpd.GeoDataFrame, gid: str, geom: shapely.Geometry) -> gpd.GeoDataFrame:
    g = g.copy()
    g.loc[g["grid_id"] == gid, "geometry"] = geom
    return g


def box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.box(x0, y0, x1, y1)


def kinds_of(result) -> list[tuple[str, int, tuple[str, ...]]]:
    f = result.findings
    return list(zip(f["kind"], f["level"], f["grid_ids"], strict=True))


def one(result, kind: str):
    f = result.findings[result.findings["kind"] == kind]
    assert len(f) == 1, f"expected one {kind}, got {len(f)}: {list(f['message'])}"
    return f.iloc[0]


# -- the valid fixture and the shape of the result --------------------------------
def test_valid_hierarchy_is_sound(tiny_grids):
    result = check_grids(tiny_grids)
    assert result.sound
    assert len(result.findings) == 0
    assert list(result.findings.columns) == ["kind", "level", "grid_ids", "area_m2", "length_m", "message", "geometry"]
    assert result.findings.crs == "EPSG:4326"
    assert result.summary["levels"] == {0: 1, 1: 2, 2: 4}
    assert result.summary["metric_crs"] == "EPSG:4548"  # CGCS2000 GK zone of Tianjin


def test_missing_crs_raises(tiny_grids):
    with pytest.raises(CRSError, match="no CRS"):
        check_grids(tiny_grids.set_crs(None, allow_override=True))


def test_unusable_layer_raises_with_the_rows(tiny_grids):
    g = tiny_grids.copy()
    g.loc[g["grid_id"] == "G4", "grid_id"] = "G3"
    with pytest.raises(ValidationError, match="duplicate grid_id 'G3'"):
        check_grids(g)


# -- one finding kind at a time, with hand-computed areas ------------------------
def test_overlap_of_two_siblings(tiny_grids):
    rise = D / 10
    g = with_geom(tiny_grids, "G1", box(X0, Y0, X0 + D, Y0 + D / 2 + rise))
    result = check_grids(g)
    f = one(result, "overlap")
    assert (f["level"], f["grid_ids"]) == (2, ("G1", "G2"))
    assert f["area_m2"] == pytest.approx(geod_area(box(X0, Y0 + D / 2, X0 + D, Y0 + D / 2 + rise)), rel=1e-3)
    assert "overlap by" in f["message"]
    assert f["geometry"].geom_type == "Polygon"
    assert not result.sound
    assert {k for k, _, _ in kinds_of(result)} == {"overlap", "edge_mismatch"}


def test_sliver_gap_from_a_vertex_moved_1_m(tiny_grids):
    up = 1.0 / M_PER_DEG_LAT
    g2 = shapely.Polygon([(X0, Y0 + D / 2 + up), (X0 + D, Y0 + D / 2), (X0 + D, Y0 + D), (X0, Y0 + D)])
    result = check_grids(with_geom(tiny_grids, "G2", g2), gap_width_m=2.0)
    triangle = shapely.Polygon([(X0, Y0 + D / 2), (X0 + D, Y0 + D / 2), (X0, Y0 + D / 2 + up)])
    expected = geod_area(triangle)  # ~ 864 m x 1 m / 2
    gap = one(result, "gap")
    assert gap["level"] == 2
    assert {"G1", "G2"} <= set(gap["grid_ids"])
    assert gap["area_m2"] == pytest.approx(expected, rel=1e-3)
    assert "sliver" in gap["message"]
    edges = result.findings[result.findings["kind"] == "edge_mismatch"]
    assert {"G1", "G2"} <= {i for ids in edges["grid_ids"] for i in ids}
    untiled = one(result, "parent_not_tiled")
    assert (untiled["level"], untiled["grid_ids"]) == (1, ("S1",))
    assert untiled["area_m2"] == pytest.approx(expected, rel=1e-3)


def test_t_junction_is_an_edge_mismatch_without_area(tiny_grids):
    # Split G2 into two: their shared vertex lies on G1's top edge, which lacks it.
    g = tiny_grids[tiny_grids["grid_id"] != "G2"]
    halves = gpd.GeoDataFrame(
        {"grid_id": ["G2a", "G2b"], "parent_id": ["S1", "S1"], "level": [2, 2]},
        geometry=[box(X0, Y0 + D / 2, X0 + D / 2, Y0 + D), box(X0 + D / 2, Y0 + D / 2, X0 + D, Y0 + D)],
        crs="EPSG:4326",
    )
    g = gpd.GeoDataFrame(gpd.pd.concat([g, halves], ignore_index=True), geometry="geometry", crs="EPSG:4326")
    result = check_grids(g)
    assert {k for k, _, _ in kinds_of(result)} == {"edge_mismatch"}
    # one finding per pair of neighbours whose common edge does not match, naming both
    f = {tuple(r.grid_ids): r for r in result.findings.itertuples()}
    assert set(f) == {("G1", "G2a"), ("G1", "G2b")}
    top_edge = geod_length(shapely.LineString([(X0, Y0 + D / 2), (X0 + D, Y0 + D / 2)]))
    for r in f.values():  # both cells' lines along the half edge, counted once
        assert r.length_m == pytest.approx(top_edge / 2, rel=1e-3)
        assert np.isnan(r.area_m2)
    assert "'G1' and 'G2a'" in f[("G1", "G2a")].message


def test_child_poking_outside_its_parent(tiny_grids):
    poke = D / 10
    g = with_geom(tiny_grids, "G3", box(X0 + D - poke, Y0, X0 + 2 * D, Y0 + D / 2))
    result = check_grids(g)
    expected = geod_area(box(X0 + D - poke, Y0, X0 + D, Y0 + D / 2))
    f = one(result, "outside_parent")
    assert (f["level"], f["grid_ids"]) == (2, ("G3", "S2"))
    assert f["area_m2"] == pytest.approx(expected, rel=1e-3)
    assert "into 'S1'" in f["message"]
    assert one(result, "overlap")["grid_ids"] == ("G1", "G3")
    assert "parent_not_tiled" not in set(result.findings["kind"])


def test_parent_not_tiled_by_its_children(tiny_grids):
    result = check_grids(tiny_grids[tiny_grids["grid_id"] != "G4"])
    expected = geod_area(box(X0 + D, Y0 + D / 2, X0 + 2 * D, Y0 + D))
    untiled = one(result, "parent_not_tiled")
    assert (untiled["level"], untiled["grid_ids"]) == (1, ("S2",))
    assert untiled["area_m2"] == pytest.approx(expected, rel=1e-3)
    gap = one(result, "gap")
    assert gap["level"] == 2
    assert gap["grid_ids"] == ("G1", "G2", "G3")  # the grids around the hole
    assert gap["area_m2"] == pytest.approx(expected, rel=1e-3)
    assert "sliver" not in gap["message"]


def test_child_straddling_into_another_parent(tiny_grids):
    g = tiny_grids.copy()
    g.loc[g["grid_id"] == "G3", "parent_id"] = "S1"  # G3 lies in S2
    result = check_grids(g)
    g3_area = geod_area(box(X0 + D, Y0, X0 + 2 * D, Y0 + D / 2))
    out = one(result, "outside_parent")
    assert out["grid_ids"] == ("G3", "S1")
    assert out["area_m2"] == pytest.approx(g3_area, rel=1e-3)
    untiled = one(result, "parent_not_tiled")
    assert untiled["grid_ids"] == ("S2", "G3")
    assert untiled["area_m2"] == pytest.approx(g3_area, rel=1e-3)
    assert "'G3'" in untiled["message"]


HOLE = box(X0 + 0.003, Y0 + 0.001, X0 + 0.005, Y0 + 0.003)  # inside G1, S1 and D


def _punch(g: gpd.GeoDataFrame, ids: list[str]) -> gpd.GeoDataFrame:
    for gid in ids:
        g = with_geom(g, gid, g.loc[g["grid_id"] == gid, "geometry"].iloc[0].difference(HOLE))
    return g


@pytest.mark.parametrize(
    ("punched", "expected"),
    [
        pytest.param(["D", "S1", "G1"], [], id="enclave-in-every-level-is-not-a-gap"),
        pytest.param(["D"], [("outside_parent", 1, ("S1", "D"))], id="enclave-only-in-district-streets-leak"),
        pytest.param(["G1"], [("gap", 2, ("G1",)), ("parent_not_tiled", 1, ("S1",))], id="hole-in-a-grid-is-a-gap"),
    ],
)
def test_holes_enclaves_and_gaps(tiny_grids, punched, expected):
    result = check_grids(_punch(tiny_grids, punched))
    assert kinds_of(result) == expected
    for area in result.findings["area_m2"]:
        assert area == pytest.approx(geod_area(HOLE), rel=1e-3)


def test_exempt_area_is_not_a_gap(tiny_grids):
    missing = box(X0 + D, Y0 + D / 2, X0 + 2 * D, Y0 + D)
    g = tiny_grids[tiny_grids["grid_id"] != "G4"]
    assert not check_grids(g).sound
    assert check_grids(g, exempt=missing).sound
    assert check_grids(g, exempt=gpd.GeoSeries([missing], crs="EPSG:4326").to_crs("EPSG:4548")).sound


def test_outline_larger_than_the_district_leaves_gaps_on_every_level(tiny_grids):
    outline = box(X0, Y0, X0 + 2 * D, Y0 + 1.5 * D)
    result = check_grids(tiny_grids, outline=outline)
    expected = geod_area(box(X0, Y0 + D, X0 + 2 * D, Y0 + 1.5 * D))
    gaps = result.findings[result.findings["kind"] == "gap"]
    assert list(gaps["level"]) == [0, 1, 2]
    assert gaps["area_m2"].to_numpy() == pytest.approx([expected] * 3, rel=1e-3)


def test_bow_tie_is_reported_and_the_other_checks_still_run(tiny_grids):
    result = check_grids(with_geom(tiny_grids, "G1", geo.BOW_TIE))
    inv = one(result, "invalid")
    assert (inv["level"], inv["grid_ids"]) == (2, ("G1",))
    assert "Self-intersection" in inv["message"]
    assert inv["geometry"].distance(shapely.Point(X0 + D / 2, Y0 + D / 2)) < 1e-6  # where it crosses
    # make_valid gives two triangles meeting at the centre: half of each lies in G2.
    s1 = geod_area(box(X0, Y0, X0 + D, Y0 + D))
    assert one(result, "overlap")["grid_ids"] == ("G1", "G2")
    assert one(result, "overlap")["area_m2"] == pytest.approx(s1 / 4, rel=1e-3)
    assert one(result, "gap")["area_m2"] == pytest.approx(s1 / 4, rel=1e-3)


def test_empty_geometry_is_reported_not_raised(tiny_grids):
    result = check_grids(with_geom(tiny_grids, "G2", shapely.Polygon()))
    assert ("invalid", 2, ("G2",)) in kinds_of(result)
    assert one(result, "gap")["area_m2"] == pytest.approx(geod_area(box(X0, Y0 + D / 2, X0 + D, Y0 + D)), rel=1e-3)


# -- the hierarchy of parent links ------------------------------------------------
def _reparent(g: gpd.GeoDataFrame, **parents: str | None) -> gpd.GeoDataFrame:
    g = g.copy()
    for gid, p in parents.items():
        g.loc[g["grid_id"] == gid, "parent_id"] = p
    return g


@pytest.mark.parametrize(
    ("edit", "expected", "words"),
    [
        pytest.param(lambda g: _reparent(g, G3="nope"), ("G3", "nope"), "does not exist", id="unknown-parent"),
        pytest.param(lambda g: _reparent(g, G3=None), ("G3",), "no parent_id", id="missing-parent"),
        pytest.param(lambda g: _reparent(g, G3="D"), ("G3", "D"), "on level 0, not 1", id="parent-on-wrong-level"),
        pytest.param(lambda g: _reparent(g, D="G1"), ("D", "G1"), "level-0 grid", id="top-level-with-parent"),
    ],
)
def test_parent_link_problems_are_findings(tiny_grids, edit, expected, words):
    result = check_grids(edit(tiny_grids))
    h = result.findings[result.findings["kind"] == "hierarchy"]
    assert expected in list(h["grid_ids"])
    assert h["message"].str.contains(words).any()


def test_cycle_is_reported_once_with_its_members(tiny_grids):
    result = check_grids(_reparent(tiny_grids, D="G1"))
    cycles = result.findings[result.findings["message"].str.contains("cycle")]
    assert list(cycles["grid_ids"]) == [("D", "G1", "S1")]


def test_a_level_with_no_grids(tiny_grids):
    g = tiny_grids.copy()
    g.loc[g["level"] == 2, "level"] = 3
    result = check_grids(g)
    h = result.findings[result.findings["kind"] == "hierarchy"]
    assert (2, ()) in list(zip(h["level"], h["grid_ids"], strict=True))
    assert h["message"].str.contains("level 2 has no grids").any()


# -- determinism, options ---------------------------------------------------------
def _broken(g: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    g = with_geom(g, "G1", box(X0, Y0, X0 + D, Y0 + D / 2 + D / 10))
    g = _reparent(g, G4="nope")
    return g[g["grid_id"] != "G3"]


def test_findings_are_ordered_the_same_whatever_the_row_order(tiny_grids):
    g = _broken(tiny_grids)
    a = check_grids(g).findings
    b = check_grids(g.sample(frac=1, random_state=3)).findings
    assert len(a) > 4
    assert_geodataframe_equal(a, b)
    order = [FINDING_KINDS.index(k) for k in a["kind"]]
    assert order == sorted(order)


def test_levels_option_reports_only_those_levels(tiny_grids):
    result = check_grids(_broken(tiny_grids), levels=[1])
    assert set(result.findings["level"][result.findings["kind"] != "hierarchy"]) == {1}


def test_metric_crs_is_explicit_and_areas_agree(tiny_grids):
    g = tiny_grids[tiny_grids["grid_id"] != "G4"]
    gk = check_grids(g)
    utm = check_grids(g, metric_crs="EPSG:32650")
    assert utm.summary["metric_crs"] == "EPSG:32650"
    assert utm.findings["area_m2"].to_numpy() == pytest.approx(gk.findings["area_m2"].to_numpy(), rel=1e-3)


def test_progress_is_called(tiny_grids):
    seen: list[str] = []
    check_grids(tiny_grids, progress=seen.append)
    assert seen[:2] == ["validity", "hierarchy"]
    assert "nesting 1/2" in seen


def test_to_dict_is_the_json_contract(tiny_grids):
    d = check_grids(tiny_grids[tiny_grids["grid_id"] != "G4"]).to_dict()
    assert set(d) == {"sound", "summary", "findings"}
    assert d["summary"]["counts"] == {"gap": {"2": 1}, "parent_not_tiled": {"1": 1}}
    f = d["findings"][0]
    assert set(f) == {"kind", "level", "grid_ids", "area_m2", "length_m", "message", "geometry"}
    assert f["length_m"] is None
    assert f["geometry"]["type"] == "Polygon"


# -- property: nested rectangular subdivisions ------------------------------------
UNIT = 1e-4  # degrees (~9-11 m)


@st.composite
def subdivisions(draw):
    """3 levels: a district, vertical strips, cells stacked in each strip; exactly noded."""
    widths = draw(st.lists(st.integers(5, 20), min_size=1, max_size=4))
    height = draw(st.integers(2, 5)) * 5
    cuts = [sorted(draw(st.sets(st.integers(1, height // 5 - 1), max_size=3))) for _ in widths]
    return widths, height, [[c * 5 for c in cs] for cs in cuts]


def build(widths, height, cuts, *, move=None):
    xs = np.concatenate([[0], np.cumsum(widths)])
    pt = lambda x, y: (X0 + x * UNIT, Y0 + y * UNIT)  # noqa: E731
    rows = [("D", None, 0, shapely.box(*pt(0, 0), *pt(xs[-1], height)))]
    cells = []
    for s, cs in enumerate(cuts):
        rows.append((f"S{s}", "D", 1, shapely.box(*pt(xs[s], 0), *pt(xs[s + 1], height))))
        ys = [0, *cs, height]
        left = cuts[s - 1] if s > 0 else []
        right = cuts[s + 1] if s + 1 < len(cuts) else []
        for k in range(len(ys) - 1):
            y0, y1 = ys[k], ys[k + 1]
            ring = [(xs[s], y0), (xs[s + 1], y0)]
            ring += [(xs[s + 1], y) for y in right if y0 < y < y1]
            ring += [(xs[s + 1], y1), (xs[s], y1)]
            ring += [(xs[s], y) for y in reversed(left) if y0 < y < y1]
            cells.append((f"C{s}_{k}", f"S{s}", ring))
    for n, (gid, parent, ring) in enumerate(cells):
        coords = [pt(x, y) for x, y in ring]
        if move is not None and n == move[0]:
            i, (dx, dy) = move[1], move[2]
            coords[i] = (coords[i][0] + dx, coords[i][1] + dy)
        rows.append((gid, parent, 2, shapely.Polygon(coords)))
    g = gpd.GeoDataFrame(
        {"grid_id": [r[0] for r in rows], "parent_id": [r[1] for r in rows], "level": [r[2] for r in rows]},
        geometry=[r[3] for r in rows],
        crs="EPSG:4326",
    )
    return g, cells, xs[-1]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subdivisions())
def test_property_nested_rectangular_subdivisions_are_sound(sub):
    g, _, _ = build(*sub)
    result = check_grids(g)
    assert result.sound, list(result.findings["message"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subdivisions(), st.data(), st.floats(1.5, 20.0), st.floats(0, 2 * np.pi))
def test_property_moving_one_shared_vertex_beyond_the_gap_width_is_reported(sub, data, shift_m, angle):
    _, cells, _ = build(*sub)
    count = Counter(p for _, _, ring in cells for p in ring)
    inner = [(n, i) for n, (_, _, ring) in enumerate(cells) for i, p in enumerate(ring) if count[p] > 1]
    assume(inner)
    n, i = data.draw(st.sampled_from(inner))
    dx = shift_m * np.cos(angle) / (111_320 * np.cos(np.radians(Y0)))
    dy = shift_m * np.sin(angle) / M_PER_DEG_LAT
    g, _, _ = build(*sub, move=(n, i, (dx, dy)))
    result = check_grids(g, gap_width_m=1.0)
    assert not result.sound
    level2 = result.findings[result.findings["level"] == 2]
    assert cells[n][0] in {gid for ids in level2["grid_ids"] for gid in ids}


# -- the demo district with planted defects ---------------------------------------
M_PER_DEG_LON = 111_320 * np.cos(np.radians(39.17))


def _neighbours_of(g: gpd.GeoDataFrame, gid: str, *, same_parent: bool) -> list[str]:
    row = g[g["grid_id"] == gid].iloc[0]
    lv = g[(g["level"] == row["level"]) & (g["grid_id"] != gid)]
    touching = lv[
        lv.geometry.intersects(row.geometry) & (shapely.length(lv.geometry.intersection(row.geometry).to_numpy()) > 0)
    ]
    keep = (touching["parent_id"] == row["parent_id"]) == same_parent
    return sorted(touching.loc[keep, "grid_id"])


def test_demo_district_with_planted_defects(demo_grids):
    g = demo_grids.copy()
    assert check_grids(g).sound
    basic = sorted(g.loc[g["level"] == 3, "grid_id"])
    geom = lambda gid: g.loc[g["grid_id"] == gid, "geometry"].iloc[0]  # noqa: E731
    # overlap: grid A swells 10 m into its sibling B
    a = basic[100]
    b = _neighbours_of(g, a, same_parent=True)[0]
    bulge = geom(b).intersection(geom(a).buffer(10 / M_PER_DEG_LAT))
    g = with_geom(g, a, geom(a).union(bulge))
    # gap: a 30 m hole punched into grid C
    c = basic[300]
    hole = geom(c).representative_point().buffer(30 / M_PER_DEG_LAT, quad_segs=32)
    assert geom(c).contains(hole)
    g = with_geom(g, c, geom(c).difference(hole))
    # sliver: one vertex of grid E shared with a neighbour moved 0.5 m (inside the 1 m gap width)
    e = basic[500]
    ring = np.asarray(geom(e).exterior.coords)
    outline = geom(g.loc[g["grid_id"] == e, "parent_id"].iloc[0]).boundary
    i = next(k for k in range(1, len(ring) - 1) if outline.distance(shapely.Point(ring[k])) > 1e-4)
    inward = np.asarray(geom(e).representative_point().coords[0]) - ring[i]
    inward_m = inward * [M_PER_DEG_LON, M_PER_DEG_LAT]
    ring[i] += inward / np.hypot(*inward_m) * 0.5  # 0.5 m into E: a sliver gap opens behind it
    g = with_geom(g, e, shapely.Polygon(ring))
    # outside its parent: grid F swells 10 m into a grid of another community
    f = next(x for x in basic[600:] if _neighbours_of(g, x, same_parent=False))
    other = _neighbours_of(g, f, same_parent=False)[0]
    g = with_geom(g, f, geom(f).union(geom(other).intersection(geom(f).buffer(10 / M_PER_DEG_LAT))))
    # straddler: grid S is given the parent of a neighbour in another community
    s = next(x for x in basic[800:] if _neighbours_of(g, x, same_parent=False))
    true_parent = g.loc[g["grid_id"] == s, "parent_id"].iloc[0]
    wrong = g.loc[g["grid_id"] == _neighbours_of(g, s, same_parent=False)[0], "parent_id"].iloc[0]
    g.loc[g["grid_id"] == s, "parent_id"] = wrong
    # orphan
    o = basic[900]
    g.loc[g["grid_id"] == o, "parent_id"] = "不存在"

    result = check_grids(g)
    found = set(kinds_of(result))
    f_ = result.findings
    assert ("overlap", 3, tuple(sorted((a, b)))) in found
    ov = f_[(f_["kind"] == "overlap") & (f_["grid_ids"] == tuple(sorted((a, b))))]
    assert ov["area_m2"].iloc[0] == pytest.approx(geod_area(bulge), rel=1e-3)
    gaps = f_[(f_["kind"] == "gap") & f_["grid_ids"].map(lambda t: t == (c,))]
    assert gaps["area_m2"].iloc[0] == pytest.approx(geod_area(hole), rel=1e-3)
    slivers = f_[(f_["kind"] == "gap") & f_["grid_ids"].map(lambda t: e in t) & f_["message"].str.contains("sliver")]
    assert len(slivers) >= 1, f_[f_["grid_ids"].map(lambda t: e in t)]["message"].tolist()
    assert any(k == "edge_mismatch" and e in ids for k, _, ids in found)
    assert ("outside_parent", 3, (f, g.loc[g["grid_id"] == f, "parent_id"].iloc[0])) in found
    assert ("outside_parent", 3, (s, wrong)) in found
    assert any(k == "parent_not_tiled" and ids[0] == true_parent and s in ids for k, _, ids in found)
    assert ("hierarchy", 3, (o, "不存在")) in found


# -- agreement with shapely.coverage_is_valid --------------------------------------
def _verdicts(g: gpd.GeoDataFrame) -> tuple[dict[int, bool], dict[int, bool]]:
    result = check_grids(g, gap_width_m=0.0, min_area_m2=0.0)
    f = result.findings
    ours, theirs = {}, {}
    for lv in sorted(set(g["level"])):
        geoms = shapely.make_valid(g.loc[g["level"] == lv].geometry.to_numpy())
        theirs[lv] = bool(shapely.coverage_is_valid(geoms, gap_width=0.0))
        bad = f[(f["level"] == lv) & f["kind"].isin(["overlap", "edge_mismatch"])]
        ours[lv] = bad.empty
    return ours, theirs


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda t, d: t, id="tiny-valid"),
        pytest.param(lambda t, d: with_geom(t, "G1", box(X0, Y0, X0 + D, Y0 + D / 2 + D / 10)), id="tiny-overlap"),
        pytest.param(lambda t, d: with_geom(t, "G3", box(X0 + D - D / 10, Y0, X0 + 2 * D, Y0 + D / 2)), id="tiny-leak"),
        pytest.param(lambda t, d: t[t["grid_id"] != "G4"], id="tiny-hole"),
        pytest.param(lambda t, d: d, id="demo-valid"),
        pytest.param(lambda t, d: _jittered(d), id="demo-jittered"),
    ],
)
def test_per_level_verdict_agrees_with_coverage_is_valid(tiny_grids, demo_grids, make):
    ours, theirs = _verdicts(make(tiny_grids, demo_grids))
    assert ours == theirs


def _jittered(d: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    from benchmarks.bench_repair import jitter_grids

    return jitter_grids(d, 30, shift_m=2.0, seed=3)


# -- real public boundary data shipped inside an installed package (libpysal) -------
def _libpysal_example(rel: str) -> gpd.GeoDataFrame:
    from pathlib import Path

    import libpysal  # a dependency of geogrid; its wheel ships the boundary files

    return gpd.read_file(Path(libpysal.__file__).parent / "examples" / rel)


def _us_nested() -> gpd.GeoDataFrame:
    """48 US states (libpysal us_income/us48.shp, lon/lat, no .prj) under 9 census divisions under the country."""
    s = _libpysal_example("us_income/us48.shp").set_crs("EPSG:4326")
    regions = sorted(s["SUB_REGION"].unique())
    rid = {r: f"R{i}" for i, r in enumerate(regions)}
    rows = [("US", None, 0, "USA", shapely.coverage_union_all(s.geometry.to_numpy()))]
    rows += [
        (rid[r], "US", 1, r, shapely.coverage_union_all(s.geometry[s["SUB_REGION"] == r].to_numpy())) for r in regions
    ]
    rows += [
        (a, rid[r], 2, n, geom)
        for a, r, n, geom in zip(s["STATE_ABBR"], s["SUB_REGION"], s["STATE_NAME"], s.geometry, strict=True)
    ]
    return gpd.GeoDataFrame(
        {
            "grid_id": [r[0] for r in rows],
            "parent_id": [r[1] for r in rows],
            "level": [r[2] for r in rows],
            "name": [r[3] for r in rows],
        },
        geometry=[r[4] for r in rows],
        crs="EPSG:4326",
    )


# The shipped .prj names EPSG:30166 but the coordinates lie outside its area of use (the
# door refuses it); a transverse Mercator centred on Tokyo puts them over the Kanto plain.
TOKYO_CRS = "+proj=tmerc +lat_0=36 +lon_0=139.8333333 +k=0.9999 +x_0=340000 +y_0=0 +ellps=bessel +units=m +no_defs"


def _tokyo() -> gpd.GeoDataFrame:
    """262 municipalities of the Tokyo metropolitan area (libpysal tokyo/tokyomet262.shp): real defects."""
    s = _libpysal_example("tokyo/tokyomet262.shp").set_crs(TOKYO_CRS, allow_override=True)
    return gpd.GeoDataFrame(
        {"grid_id": s["GEOCODE"], "parent_id": None, "level": 0, "name": s["AREANAME"]}, geometry=s.geometry, crs=s.crs
    )


def test_real_nested_boundaries_give_no_false_findings():
    g = _us_nested()
    assert g["level"].value_counts().to_dict() == {0: 1, 1: 9, 2: 48}
    result = check_grids(g)
    assert result.sound, list(result.findings["message"][:5])
    ours, theirs = _verdicts(g)
    assert ours == theirs == {0: True, 1: True, 2: True}


def test_real_boundaries_with_defects_are_found():
    result = check_grids(_tokyo())
    counts = result.summary["counts"]
    assert counts["invalid"] == {0: 10}  # ring self-intersections, as is_valid_reason says
    assert counts["overlap"][0] > 100 and counts["gap"][0] > 100
    worst = result.findings[result.findings["kind"] == "overlap"].iloc[0]
    assert worst["grid_ids"] == ("08448", "08449")
    assert worst["area_m2"] == pytest.approx(541_514, rel=0.01)
    ours, theirs = _verdicts(_tokyo())
    assert ours == theirs == {0: False}


def test_real_boundaries_repair_removes_overlaps_and_gaps():
    from geogrid.repair import repair_grids

    result = repair_grids(_tokyo(), max_gap_m2=1e4)
    left = check_grids(result.grids).summary["counts"]
    assert not {"invalid", "overlap", "gap"} & set(left)


def test_real_boundaries_repair_is_sound():
    # once a strict xfail: 2 pairs kept a near-collinear edge; the repair now rebuilds them exactly
    from geogrid.repair import repair_grids

    assert check_grids(repair_grids(_tokyo(), max_gap_m2=1e4).grids).sound


def test_edge_twins_survive_a_hash_collision(monkeypatch):
    from geogrid import _hierarchy_impl as impl

    cells = np.array([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), shapely.box(0, 1, 2.5, 2)], dtype=object)
    segs = impl.Segments.of(cells)
    expected = impl.twinned(segs.key, segs.forward)
    assert expected.sum() == 2  # only the edge x = 1 between the two lower boxes twins
    monkeypatch.setattr(impl, "_HASH_MUL", np.uint64(0))  # every row hashes alike: the exact sort takes over
    np.testing.assert_array_equal(impl.twinned(segs.key, segs.forward), expected)
    np.testing.assert_array_equal(impl.untwinned(cells, segs), [True, True, True])


@pytest.mark.parametrize("collide", [False, True], ids=["hashed", "hash-collision"])
def test_edge_twin_mates_and_the_tiling_shortcut_agree_with_the_full_sort(monkeypatch, collide):
    # Twin mates pair each twinned segment with the other one of its key; exactly_tiled uses them to
    # skip pairs inside one family, and must give the same answer as sorting every segment again.
    from geogrid import _hierarchy_impl as impl

    if collide:
        monkeypatch.setattr(impl, "_HASH_MUL", np.uint64(0))

    def block(x0: int, x1: int) -> shapely.Polygon:  # [x0, x1] x [0, 3] with a vertex at every integer point
        xs, ys = range(x0, x1 + 1), range(4)
        ring = [(x, 0) for x in xs] + [(x1, y) for y in ys[1:]] + [(x, 3) for x in xs[::-1][1:]]
        return shapely.Polygon(ring + [(x0, y) for y in ys[::-1][1:-1]])

    # A: its copy plus the centre cell of B; B: the other eight cells of its 3 x 3; C: its copy.
    # The centre's edges twin with B's cells across two families: neither A nor B is tiled.
    parents = np.array([block(-1, 0), block(0, 3), block(3, 4)], dtype=object)
    ring = [shapely.box(i, j, i + 1, j + 1) for i in range(3) for j in range(3) if (i, j) != (1, 1)]
    kids = np.array([block(-1, 0), shapely.box(1, 1, 2, 2), *ring, block(3, 4)], dtype=object)
    top = impl.build_level(0, np.arange(3), np.array(["A", "B", "C"], dtype=object), parents, 1.0)
    low = impl.build_level(1, np.arange(11), np.array(list("abcdefghijk"), dtype=object), kids, 1.0)
    mate = low.mate
    assert mate is not None
    twins = impl.twinned(low.segs.key, low.segs.forward)
    np.testing.assert_array_equal(mate >= 0, twins)
    np.testing.assert_array_equal(mate[mate[twins]], np.flatnonzero(twins))
    np.testing.assert_array_equal(low.segs.key[mate[twins]], low.segs.key[twins])
    fam = np.array([0, 0, *[1] * 8, 2])
    fast = impl.exactly_tiled(top, low, fam)
    np.testing.assert_array_equal(fast, [False, False, True])
    full = impl.exactly_tiled(top, dataclasses.replace(low, mate=None), fam)
    np.testing.assert_array_equal(fast, full)


def test_a_long_mismatched_edge_is_paired_with_the_neighbour_that_only_nears_its_ends():
    # B's bottom leaves A's single 100 m top edge within the gap width only near x = 0 (GEOS flags the
    # whole edge); at the edge's midpoint B is 4 m away. The finding still names both grids.
    a = box(0, 0, 100, 10)
    b = shapely.Polygon([(0, 10), (5, 10.4), (50, 14), (100, 10), (100, 20), (0, 20)])
    grids = gpd.GeoDataFrame(
        {"grid_id": ["D", "A", "B"], "parent_id": [None, "D", "D"], "level": [0, 1, 1]},
        geometry=[box(0, 0, 100, 20), a, b],
        crs="EPSG:3857",
    )
    found = check_grids(grids, gap_width_m=1.0).findings
    mism = found[found["kind"] == "edge_mismatch"]
    assert [tuple(t) for t in mism["grid_ids"]] == [("A", "B")]
    assert "'A' and 'B'" in mism["message"].iloc[0]


# -- MultiPolygon grids, exclaves, notches and enclaves (issue "Verdicts you can trust") ----------------
UTM = "EPSG:32650"
E0, N0 = 500_000.0, 4_330_000.0


def utm_layer(rows: list[tuple[str, str | None, int, shapely.Geometry]]) -> gpd.GeoDataFrame:
    """A layer in UTM 50N from (grid_id, parent_id, level, geometry in metres around the origin)."""
    ids, parents, levels, geoms = zip(*rows, strict=True)
    g = gpd.GeoDataFrame(
        {"grid_id": list(ids), "parent_id": list(parents), "level": list(levels)}, geometry=list(geoms), crs=UTM
    )
    return g.set_geometry(g.geometry.translate(E0, N0))


def sq(x: float, y: float = 0.0, s: float = 100.0) -> shapely.Polygon:
    return shapely.box(x, y, x + s, y + s)


def multi(*polys: shapely.Polygon) -> shapely.MultiPolygon:
    return shapely.MultiPolygon(list(polys))


def agrees_with_reference(g: gpd.GeoDataFrame, **kw) -> None:
    from geogrid._reference_check import check_grids_reference
    from tests.fuzz import Outcome
    from tests.fuzz.check import compare

    out = Outcome("check", 0, "unit")
    compare(check_grids(g, metric_crs=UTM, **kw).findings, check_grids_reference(g, metric_crs_=UTM), out)
    assert not out.failed, out.details


def test_exact_copy_of_a_two_part_grid_is_an_overlap():
    # the minimal case: three 100 m squares, the outer two one grid, plus a copy of that grid
    two = multi(sq(0), sq(200))
    g = utm_layer(
        [
            ("D", None, 0, sq(0, s=100) | sq(100) | sq(200)),
            ("a", "D", 1, two),
            ("b", "D", 1, multi(sq(100))),
            ("c", "D", 1, two),
        ]
    )
    result = check_grids(g, metric_crs=UTM)
    over = one(result, "overlap")
    assert over["grid_ids"] == ("a", "c")
    assert over["area_m2"] == pytest.approx(20_000, rel=1e-9)
    agrees_with_reference(g)


def test_two_overlapping_multipolygon_squares_do_not_crash():
    g = utm_layer(
        [
            ("D", None, 0, shapely.box(0, 0, 200, 100)),
            ("a", "D", 1, multi(shapely.box(0, 0, 120, 100))),
            ("b", "D", 1, multi(shapely.box(80, 0, 200, 100))),
        ]
    )
    over = one(check_grids(g, metric_crs=UTM), "overlap")
    assert over["area_m2"] == pytest.approx(4_000, rel=1e-9)
    agrees_with_reference(g)


def test_exclave_drawn_inside_a_neighbour_is_an_overlap():
    part = shapely.box(140, 40, 160, 60)  # a part of a inside b, b unchanged
    g = utm_layer(
        [("D", None, 0, shapely.box(0, 0, 200, 100)), ("a", "D", 1, multi(sq(0), part)), ("b", "D", 1, sq(100))]
    )
    result = check_grids(g, metric_crs=UTM)
    assert one(result, "overlap")["area_m2"] == pytest.approx(400, rel=1e-9)
    assert "outside_parent" not in set(result.findings["kind"])
    agrees_with_reference(g)


def test_multipolygon_child_outside_its_multipolygon_parent():
    g = utm_layer(
        [
            ("D", None, 0, shapely.box(0, 0, 400, 100)),
            ("S1", "D", 1, multi(sq(0), sq(200))),
            ("S2", "D", 1, multi(sq(100), sq(300))),
            ("a", "S1", 2, multi(sq(0), sq(100))),  # its second part lies in S2
            ("b", "S1", 2, multi(sq(200))),
            ("c", "S2", 2, multi(sq(300))),
        ]
    )
    result = check_grids(g, metric_crs=UTM)
    out = one(result, "outside_parent")
    assert out["grid_ids"] == ("a", "S1")
    assert out["area_m2"] == pytest.approx(10_000, rel=1e-9)
    agrees_with_reference(g)


def test_acute_notch_in_the_outline_where_two_grids_meet_is_sound():
    # a 1 m wide, 40 m deep notch cut into the district where a and b meet, at every level
    notch = shapely.Polygon([(99.5, 100), (100, 60), (100.5, 100)])
    a, b = sq(0) - notch, sq(100) - notch
    g = utm_layer([("D", None, 0, a | b), ("a", "D", 1, a), ("b", "D", 1, b)])
    assert shapely.coverage_is_valid(g.geometry[g["level"] == 1].to_numpy())
    result = check_grids(g, metric_crs=UTM)
    assert result.sound, list(result.findings["message"])


@pytest.mark.parametrize("tops", [1, 2, 3], ids=["one-top-grid", "two-top-grids", "three-top-grids"])
def test_enclave_bordered_by_several_top_level_grids_is_not_a_gap(tops):
    hole = shapely.Point(200, 100).buffer(20, quad_segs=4)  # centred where the top-level grids meet
    cols = {1: [shapely.box(0, 0, 400, 200)], 2: [shapely.box(0, 0, 200, 200), shapely.box(200, 0, 400, 200)]}
    cols[3] = [shapely.box(0, 0, 200, 200), shapely.box(200, 0, 400, 100), shapely.box(200, 100, 400, 200)]
    rows: list[tuple[str, str | None, int, shapely.Geometry]] = []
    for i, top in enumerate(cols[tops]):
        rows.append((f"D{i}", None, 0, top - hole))
        for j, kid in enumerate(
            shapely.get_parts(shapely.intersection(top, [shapely.box(0, 0, 400, 100), shapely.box(0, 100, 400, 200)]))
        ):
            if kid.area > 0:
                rows.append((f"D{i}-{j}", f"D{i}", 1, kid - hole))
    result = check_grids(utm_layer(rows), metric_crs=UTM)
    assert result.sound, list(result.findings["message"])


def test_a_hole_narrower_than_the_gap_width_between_top_level_grids_is_a_gap():
    sliver = shapely.box(199.8, 40, 200.2, 60)  # 0.4 m wide: not an enclave
    g = utm_layer(
        [("A", None, 0, shapely.box(0, 0, 200, 100) - sliver), ("B", None, 0, shapely.box(200, 0, 400, 100) - sliver)]
    )
    result = check_grids(g, metric_crs=UTM)
    assert one(result, "gap")["area_m2"] == pytest.approx(8.0, rel=1e-6)
    agrees_with_reference(g)


TOKYO_PINNED = {"invalid": 10, "overlap": 210, "overlap_1m2": 130, "overlap_m2": 878_276.6, "gap_m2": 477.2}
"""Tokyo's defects as the reference computes them (libpysal tokyomet262, stored CRS), read or stored."""


@pytest.mark.parametrize("stored", [False, True], ids=["as-read", "geopackage-round-trip"])
def test_real_boundaries_equal_the_reference_read_or_stored(stored):
    from geogrid._reference_check import check_grids_reference
    from tests.fuzz import Outcome
    from tests.fuzz.check import compare
    from tests.fuzz.gen import _round_trip

    g = _round_trip(_tokyo(), "GPKG") if stored else _tokyo()
    assert (g.geom_type == "MultiPolygon").all() if stored else (g.geom_type == "Polygon").any()
    ref = check_grids_reference(g)
    kinds = ref["kind"].value_counts().to_dict()
    over = ref[ref["kind"] == "overlap"]
    assert kinds["invalid"] == TOKYO_PINNED["invalid"]
    assert len(over) == TOKYO_PINNED["overlap"]
    assert (over["area_m2"] >= 1).sum() == TOKYO_PINNED["overlap_1m2"]
    assert over["area_m2"].sum() == pytest.approx(TOKYO_PINNED["overlap_m2"], abs=0.1)
    assert ref.loc[ref["kind"] == "gap", "area_m2"].sum() == pytest.approx(TOKYO_PINNED["gap_m2"], abs=0.1)
    out = Outcome("check", 0, "tokyo")
    fast = check_grids(g).findings
    compare(fast, ref, out)
    assert not out.failed, out.details
    assert len(fast[fast["kind"] == "overlap"]) == TOKYO_PINNED["overlap"]


def test_method_reference_gives_the_same_area_findings():
    part = shapely.box(140, 40, 160, 60)
    g = utm_layer(
        [("D", None, 0, shapely.box(0, 0, 200, 100)), ("a", "D", 1, multi(sq(0), part)), ("b", "D", 1, sq(100))]
    )
    fast, ref = check_grids(g, metric_crs=UTM), check_grids(g, metric_crs=UTM, method="reference")
    cols = ["kind", "level", "grid_ids"]
    assert fast.findings[cols].values.tolist() == ref.findings[cols].values.tolist()
    assert ref.findings["area_m2"].iloc[0] == pytest.approx(fast.findings["area_m2"].iloc[0], rel=1e-9)
    assert "reference check" in ref.findings["message"].iloc[0]
    with pytest.raises(ValueError, match="'fast' or 'reference'"):
        check_grids(g, method="exact")


def _shifted_block() -> gpd.GeoDataFrame:
    """A 5 x 5 fishnet of 100 m grids plus a copy of its central 3 x 3 block shifted by (7, 5) m, with new ids.

    The copy's centre grid is twinned with its shifted neighbours and the original centre with
    the originals, so no edge of either is invalid: only area says they overlap.
    """
    rows: list[tuple[str, str | None, int, shapely.Geometry]] = [("D", None, 0, shapely.box(0, 0, 500, 500))]
    rows += [(f"g{i}{j}", "D", 1, sq(i * 100, j * 100)) for i in range(5) for j in range(5)]
    rows += [(f"c{i}{j}", "D", 1, sq(i * 100 + 7, j * 100 + 5)) for i in range(1, 4) for j in range(1, 4)]
    return utm_layer(rows)


def test_a_shifted_copy_of_a_block_overlaps_at_every_pair():
    g = _shifted_block()
    over = check_grids(g, metric_crs=UTM).findings.query("kind == 'overlap'")
    assert ("c22", "g22") in set(over["grid_ids"])
    assert over["area_m2"].sum() == pytest.approx(90_000, rel=1e-9)  # the copy lies wholly on the originals
    agrees_with_reference(g)


def test_an_overlap_every_fast_pass_missed_hands_the_level_to_the_exhaustive_path(monkeypatch):
    from geogrid import _hierarchy_impl

    monkeypatch.setattr(_hierarchy_impl, "stacked", lambda geoms, _tree, _dirty: np.zeros(len(geoms), dtype=bool))
    g = _shifted_block()
    over = check_grids(g, metric_crs=UTM).findings.query("kind == 'overlap'")
    assert over["area_m2"].sum() == pytest.approx(90_000, rel=1e-9)
    agrees_with_reference(g)


@pytest.mark.parametrize("empty", [shapely.MultiPolygon(), shapely.Polygon(), None], ids=["multi", "polygon", "none"])
def test_the_reference_calls_a_grid_with_no_geometry_invalid_as_the_fast_check_does(empty):
    """A grid an edit or an enclave cut left with no geometry covers nothing: both checks report it invalid (the
    reference used to skip it, so a layer with an empty grid read as sound: repair seed 12507296)."""
    from geogrid._reference_check import check_grids_reference

    g = utm_layer([("D", None, 0, sq(0)), ("a", "D", 1, sq(0)), ("b", "D", 1, sq(0))])
    g.loc[2, "geometry"] = empty
    fast, ref = check_grids(g, metric_crs=UTM), check_grids(g, metric_crs=UTM, method="reference")
    for found in (fast.findings, ref.findings, check_grids_reference(g, metric_crs_=UTM)):
        assert found[["kind", "level", "grid_ids"]].values.tolist() == [["invalid", 1, ("b",)]]
    assert not fast.sound and not ref.sound  # `geogrid check --reference` too
    g["geometry"] = [empty] * 3  # nothing to measure at all: every grid invalid, no crash
    assert check_grids_reference(g, metric_crs_=UTM)["grid_ids"].tolist() == [("D",), ("a",), ("b",)]
