"""Camera coverage: hand-computed views, occlusion, per-grid areas, blind spots, the demo's buildings."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import geopandas as gpd
import shapely

from geogrid.coverage import blind_spots, camera_views, grid_coverage, rank_blind_hotspots, unseen_incidents
from layers.errors import CRSError

M = "EPSG:3857"
RES = 256  # arc segments per 90°: polygonal arcs within 0.003 % of the true area


def cams(rows: list[tuple[float, float, float, float, float]], status: list[str] | None = None) -> gpd.GeoDataFrame:
    x, y, h, f, r = (list(c) for c in zip(*rows, strict=True))
    df = {"camera_id": [f"c{i}" for i in range(len(rows))], "heading_deg": h, "fov_deg": f, "range_m": r}
    if status is not None:
        df["status"] = status
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(x, y), crs=M)


def grid(*boxes: tuple[float, float, float, float]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"grid_id": [f"g{i}" for i in range(len(boxes))]}, geometry=[shapely.box(*b) for b in boxes], crs=M
    )


def test_one_90_degree_camera_in_a_square_grid():
    # Camera in the south-west corner of a 100 m square looking north-east, range 50 m: a quarter disc.
    out = grid_coverage(grid((0, 0, 100, 100)), cams([(0, 0, 45, 90, 50)]), resolution=RES)
    assert out["covered_m2"].iloc[0] == pytest.approx(math.pi * 50**2 / 4, rel=1e-4)
    assert out["ratio"].iloc[0] == pytest.approx(math.pi * 2500 / 4 / 10_000, rel=1e-4)
    assert out["cameras"].iloc[0] == 1


def test_heading_is_clockwise_from_north():
    # Looking east (90°) from the west edge covers the grid to the east, not the one to the north.
    out = grid_coverage(grid((0, -10, 20, 10), (-10, 10, 10, 30)), cams([(0, 0, 90, 60, 15)]), resolution=RES)
    assert out["covered_m2"].iloc[0] == pytest.approx(math.pi * 225 / 6, rel=1e-4)
    assert out["covered_m2"].iloc[1] == pytest.approx(0.0, abs=1e-6)


def test_two_overlapping_views_are_counted_once():
    # Two domes of radius 10 whose centres are 10 m apart inside a big grid: the lens counts once.
    out = grid_coverage(grid((-50, -50, 50, 50)), cams([(0, 0, 0, 360, 10), (10, 0, 0, 360, 10)]), resolution=RES)
    lens = 2 * 100 * math.acos(0.5) - 5 * math.sqrt(400 - 100)
    assert out["covered_m2"].iloc[0] == pytest.approx(2 * math.pi * 100 - lens, rel=1e-4)
    assert out["cameras"].iloc[0] == 2


def test_a_dome_cut_by_a_building():
    # A 10 x 10 m building 10 m east of a dome of range 100: the shadow is the wedge of
    # half-angle atan(5/10) beyond the building's front face (and the building itself).
    b = gpd.GeoDataFrame(geometry=[shapely.box(10, -5, 20, 5)], crs=M)
    out = grid_coverage(grid((-200, -200, 200, 200)), cams([(0, 0, 0, 360, 100)]), buildings=b, resolution=RES)
    half = math.atan(0.5)
    shadow = half * 100**2 - 10 * 5  # circular sector minus the triangle in front of the face
    assert out["covered_m2"].iloc[0] == pytest.approx(math.pi * 100**2 - shadow, rel=1e-4)


@pytest.mark.parametrize("orient", ["ccw", "cw"], ids=["ccw-building", "cw-building"])
def test_occlusion_does_not_depend_on_ring_orientation(orient):
    poly = shapely.box(10, -5, 20, 5)
    poly = poly if orient == "ccw" else poly.reverse()
    b = gpd.GeoDataFrame(geometry=[poly], crs=M)
    v = camera_views(cams([(0, 0, 0, 360, 100)]), buildings=b, resolution=RES)
    assert v["area_m2"].iloc[0] == pytest.approx(math.pi * 1e4 - (math.atan(0.5) * 1e4 - 50), rel=1e-4)
    assert not v.geometry.iloc[0].contains(shapely.Point(50, 0))  # behind the building
    assert v.geometry.iloc[0].contains(shapely.Point(-50, 0))  # the other way


def test_a_building_behind_the_range_changes_nothing_and_a_courtyard_is_seen_through_nothing():
    far = gpd.GeoDataFrame(geometry=[shapely.box(200, 0, 210, 10)], crs=M)
    a = camera_views(cams([(0, 0, 0, 360, 50)]), buildings=far)["area_m2"].iloc[0]
    assert a == pytest.approx(camera_views(cams([(0, 0, 0, 360, 50)]))["area_m2"].iloc[0])
    # A building with a courtyard: the camera outside does not see into the courtyard.
    ring = shapely.Polygon(shapely.box(10, -20, 50, 20).exterior.coords, [shapely.box(20, -10, 40, 10).exterior.coords])
    v = camera_views(cams([(0, 0, 0, 360, 100)]), buildings=gpd.GeoDataFrame(geometry=[ring], crs=M))
    assert not v.geometry.iloc[0].intersects(shapely.Point(30, 0))


def test_min_distance_cuts_the_apex():
    v = camera_views(cams([(0, 0, 0, 90, 20), (0, 0, 0, 360, 20)]), min_distance_m=10, resolution=RES)
    assert v["area_m2"].tolist() == pytest.approx([math.pi * 300 / 4, math.pi * 300], rel=1e-4)


def test_offline_cameras_are_blind_unless_included():
    c = cams([(0, 0, 0, 360, 10)], status=["offline"])
    g = grid((-20, -20, 20, 20))
    assert grid_coverage(g, c)["covered_m2"].iloc[0] == 0
    assert grid_coverage(g, c, include_offline=True)["covered_m2"].iloc[0] > 300


def test_results_keep_index_and_crs():
    g = grid((0, 0, 10, 10), (10, 0, 20, 10)).set_index(pd.Index([7, 3]))
    out = grid_coverage(g, cams([(5, 5, 0, 360, 3)]))
    assert out.index.tolist() == [7, 3]
    assert out.crs == g.crs
    views = camera_views(cams([(5, 5, 0, 360, 3)]).to_crs(4326))
    assert views.crs.to_epsg() == 4326


def test_mixed_crs_is_an_error():
    with pytest.raises(CRSError, match="mixed CRSs"):
        grid_coverage(grid((0, 0, 10, 10)), cams([(5, 5, 0, 360, 3)]).to_crs(4326))
    with pytest.raises(CRSError, match="not a projected CRS"):
        grid_coverage(grid((0, 0, 10, 10)), cams([(5, 5, 0, 360, 3)]), metric_crs="EPSG:4326")


def test_blind_spots_and_unseen_incidents_on_a_small_case():
    g = grid((0, 0, 20, 10))
    c = cams([(0, 0, 45, 90, 10)])
    streets = gpd.GeoDataFrame(geometry=[shapely.LineString([(0, 5), (20, 5)])], crs=M)
    b = blind_spots(g, c, streets=streets, resolution=RES)
    assert b["blind_m2"].iloc[0] == pytest.approx(200 - 25 * math.pi, rel=1e-4)
    assert b["blind_street_m"].iloc[0] == pytest.approx(20 - math.sqrt(75), rel=1e-4)
    # blind_m2 has exact arcs; the drawn blind part has chords (256 per 90°): a hair larger.
    assert b["blind_m2"].iloc[0] <= b.geometry.iloc[0].area <= b["blind_m2"].iloc[0] * (1 + 1e-5)
    inc = gpd.GeoDataFrame(
        {"category": ["a", "a", "b"]}, geometry=[shapely.Point(1, 1), shapely.Point(15, 5), shapely.Point(19, 9)], crs=M
    )
    u = unseen_incidents(g, c, inc)
    assert u[["category", "incidents", "unseen"]].values.tolist() == [["a", 2, 1], ["b", 1, 1]]


def test_rank_blind_hotspots_puts_heavy_blind_grids_first():
    cov = pd.DataFrame({"grid_id": ["a", "b", "c"], "ratio": [1.0, 0.5, 0.0]})
    r = rank_blind_hotspots(cov, pd.Series({"a": 100.0, "b": 10.0, "c": 1.0}))
    assert r["grid_id"].tolist() == ["b", "c", "a"]
    assert r["rank"].tolist() == [1, 2, 3]


@pytest.fixture(scope="module")
def demo_cov(demo_district):
    d = demo_district
    return {
        "off": blind_spots(d.grids, d.cameras, streets=d.streets, level=3),
        "all": grid_coverage(d.grids, d.cameras),
        "level3": grid_coverage(d.grids, d.cameras, level=3),
        "on": grid_coverage(d.grids, d.cameras, level=3, buildings=d.buildings),
    }


def test_demo_covered_plus_blind_is_the_area_for_every_grid(demo_cov):
    b = demo_cov["off"]
    assert len(b) == 990
    assert (b["blind_street_m"] <= b["street_m"] + 1e-6).all()
    rel = (b["covered_m2"] + b["blind_m2"] - b["area_m2"]).abs() / b["area_m2"]
    assert (rel < 1e-4).all(), b.loc[rel.idxmax()]


def test_demo_levels_agree_and_occlusion_only_takes_away(demo_cov):
    b = demo_cov["all"]
    assert len(b) == 1 + 9 + 114 + 990
    per_level = b.groupby("level")["covered_m2"].sum()
    assert per_level.max() - per_level.min() < 1e-4 * per_level.mean()
    assert 0.3 < per_level.iloc[0] / 23.76e6 < 0.95
    l3 = demo_cov["level3"].set_index("grid_id")  # exact arcs on both sides
    occ = demo_cov["on"].set_index("grid_id")
    assert (occ["covered_m2"] <= l3["covered_m2"] + 1e-6).all()
    assert occ["covered_m2"].sum() < 0.95 * l3["covered_m2"].sum()  # buildings block a real share


def test_demo_buildings_are_realistic_and_off_the_streets(demo_district):
    from geogrid.demo import METRIC_EPSG

    b = demo_district.buildings.to_crs(METRIC_EPSG)
    assert 3_000 < len(b) < 20_000
    assert b["building_id"].is_unique
    assert set(b["kind"]) == {"slab", "tower", "low_rise"}
    assert b["floors"].between(1, 40).all()
    assert (b["height_m"] == 3.0 * b["floors"]).all()
    assert shapely.is_valid(b.geometry.to_numpy()).all()
    assert b.area.between(100, 2_000).all()
    streets = demo_district.streets.to_crs(METRIC_EPSG).geometry.to_numpy()
    hits = shapely.STRtree(b.geometry.to_numpy()).query(streets, predicate="dwithin", distance=8.0)
    assert hits.shape[1] == 0  # no footprint within 8 m of a street centre line
    cams_xy = demo_district.cameras.to_crs(METRIC_EPSG).geometry.to_numpy()
    assert shapely.STRtree(b.geometry.to_numpy()).query(cams_xy, predicate="within").shape[1] == 0
    footprint = b.area.sum() / 23.76e6
    assert 0.05 < footprint < 0.4


def test_demo_buildings_are_deterministic():
    from geopandas.testing import assert_geodataframe_equal

    from geogrid.demo import build_demo

    a = build_demo(seed=2, n_incidents=10, n_cameras=10)
    b = build_demo(seed=2, n_incidents=10, n_cameras=10)
    assert_geodataframe_equal(a.buildings, b.buildings)
    assert "buildings" in a.layers()


# -- exact arcs (issue 11, item 7: 8 segments per 90° left grids up to 100 % short) -----------------
UTM = "EPSG:32650"
X0, Y0 = 440_000.0, 4_420_000.0  # real projected coordinates, far from the origin


def utm_grid(*geoms: shapely.Geometry) -> gpd.GeoDataFrame:
    moved = [shapely.affinity.translate(g, X0, Y0) for g in geoms]
    return gpd.GeoDataFrame({"grid_id": [f"g{i}" for i in range(len(geoms))]}, geometry=moved, crs=UTM)


def utm_cams(rows: list[tuple[float, float, float, float, float]]) -> gpd.GeoDataFrame:
    c = cams(rows).set_crs(UTM, allow_override=True)
    return c.set_geometry(c.geometry.translate(X0, Y0))


def test_two_cameras_back_to_back_and_a_corner_dome_give_the_exact_area():
    # The case: a 200 m square, two 90° 100 m cameras at its centre looking NW and SE,
    # a 50 m dome on a corner: two quarter discs and a quarter of the dome lie in the square.
    out = grid_coverage(
        utm_grid(shapely.box(-100, -100, 100, 100)),
        utm_cams([(0, 0, 315, 90, 100), (0, 0, 135, 90, 100), (100, 100, 0, 360, 50)]),
    )
    want = 2 * math.pi * 100**2 / 4 + math.pi * 50**2 / 4  # 17,671.46 m² (it gave 17,558.1)
    assert out["covered_m2"].iloc[0] == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("depth", [1.0, 0.01, 0.0001], ids=["1m", "1cm", "0.1mm"])
def test_a_grid_grazed_only_by_an_arc(depth):
    # A dome of range 100 whose arc dips ``depth`` into the grid to its north: the grid sees the
    # circular segment of that height (it saw nothing: the polygon's chords stayed outside).
    r = 100.0
    out = grid_coverage(utm_grid(shapely.box(-50, r - depth, 50, r + 50)), utm_cams([(0, 0, 0, 360, r)]))
    h = (Y0 + r) - ((r - depth) + Y0)  # the depth as the coordinates hold it (1e-9 m steps here)
    segment = r * r * math.acos((r - h) / r) - (r - h) * math.sqrt(2 * r * h - h * h)
    # abs: a near-tangent crossing is placed to ~1e-11 m along the edge, 25 m from the grid centre
    assert out["covered_m2"].iloc[0] == pytest.approx(segment, rel=1e-6, abs=1e-9)
    assert out["cameras"].iloc[0] == 1


@pytest.mark.parametrize("encoding", ["polygon", "multipolygon"])
@pytest.mark.parametrize("orient", ["ccw", "cw"])
def test_multipolygon_grid_with_a_hole_and_an_exclave(encoding, orient):
    # A dome of range 10 at the origin; grid 0 is the west half-plane box with a 4 x 10 hole
    # (inside the disc) plus an exclave in the north-east quadrant; grid 1 fills the hole.
    west = shapely.Polygon(shapely.box(-20, -20, 0, 20).exterior.coords, [shapely.box(-5, -5, -1, 5).exterior.coords])
    ne = shapely.box(0, 0, 20, 20)
    hole = shapely.box(-5, -5, -1, 5)
    g0 = shapely.MultiPolygon([west, ne])
    g1 = shapely.MultiPolygon([hole]) if encoding == "multipolygon" else hole
    geoms = np.array([g0, g1], dtype=object)
    geoms = shapely.orient_polygons(geoms, exterior_cw=orient == "cw")
    out = grid_coverage(utm_grid(*geoms), utm_cams([(0, 0, 0, 360, 10)]))
    want = [math.pi * 100 / 2 - 40 + math.pi * 100 / 4, 40.0]
    assert out["covered_m2"].tolist() == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("encoding", ["polygons", "multipolygon"])
def test_an_occluded_dome_keeps_its_arcs_exact(encoding):
    # A 10 x 20 m building 20 m east of a dome of range 100 (in two halves, or one two-part
    # MultiPolygon): the hidden wedge (half-angle atan(1/2)) beyond the face, cut by grids that
    # halve the disc through the shadow.
    halves = [shapely.box(X0 + 20, Y0 - 10, X0 + 30, Y0), shapely.box(X0 + 20, Y0, X0 + 30, Y0 + 10)]
    b = gpd.GeoDataFrame(geometry=halves if encoding == "polygons" else [shapely.MultiPolygon(halves)], crs=UTM)
    grids = utm_grid(shapely.box(-200, 0, 200, 200), shapely.box(-200, -200, 200, 0))
    out = grid_coverage(grids, utm_cams([(0, 0, 0, 360, 100)]), buildings=b)
    hidden_half = math.atan(0.5) * 100**2 / 2 - 20 * 10 / 2  # per half: sector minus triangle
    want = math.pi * 100**2 / 2 - hidden_half
    assert out["covered_m2"].tolist() == pytest.approx([want, want], rel=1e-9)


def test_lonlat_grids_match_the_reference():
    from geogrid._reference_coverage import reference_covered_area

    grids = utm_grid(shapely.box(-100, -100, 100, 100), shapely.box(100, -100, 300, 100)).to_crs("EPSG:4326")
    c = utm_cams([(0, 0, 80, 120, 150), (200, 0, 0, 360, 99.99)]).to_crs("EPSG:4326")
    out = grid_coverage(grids, c)["covered_m2"].to_numpy()
    ref = reference_covered_area(grids, c)
    assert (out >= ref["covered_m2_low"].to_numpy() - 1e-6).all()
    assert (out <= ref["covered_m2_high"].to_numpy() + 1e-6).all()


def test_method_reference_and_blind_spots_agree_with_the_exact_areas():
    g = utm_grid(shapely.box(-100, -100, 100, 100), shapely.box(100, -100, 300, 100))
    c = utm_cams([(0, 0, 315, 90, 100), (0, 0, 135, 90, 100), (100, 100, 0, 360, 50)])
    fast = grid_coverage(g, c)
    ref = grid_coverage(g, c, method="reference")
    assert ref["covered_m2"].to_numpy() == pytest.approx(fast["covered_m2"].to_numpy(), rel=1e-6)
    b = blind_spots(g, c)
    assert b["covered_m2"].to_numpy() == pytest.approx(fast["covered_m2"].to_numpy(), rel=1e-12)
    assert (b["covered_m2"] + b["blind_m2"]).to_numpy() == pytest.approx(b["area_m2"].to_numpy(), rel=1e-12)
    with pytest.raises(ValueError, match="method must be"):
        grid_coverage(g, c, method="fast")


def test_a_camera_a_hand_from_a_wall_does_not_see_through_the_building():
    # A dome 0.1 m in front of a 20 m wall (not touching it): the wall was seen under ~179.4°,
    # so it cast no shadow and the camera saw through the building. The hidden part is the
    # sector of half-angle atan(10 / 0.1) beyond the wall, minus the triangle in front of it.
    b = gpd.GeoDataFrame(geometry=[shapely.box(X0 - 10, Y0, X0 + 10, Y0 + 10)], crs=UTM)
    out = grid_coverage(utm_grid(shapely.box(-100, -100, 100, 100)), utm_cams([(0, -0.1, 0, 360, 50)]), buildings=b)
    hidden = 50**2 * math.atan(100) - 20 * 0.1 / 2
    assert out["covered_m2"].iloc[0] == pytest.approx(math.pi * 50**2 - hidden, rel=1e-9)
