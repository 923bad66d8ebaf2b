"""The compiled covered-area kernel against GEOS: same areas, same seeing pairs, awkward inputs included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shapely

from geogrid import _coverage_geom as geom

RTOL = 1e-9


def geos_areas(grids: np.ndarray, views: np.ndarray) -> np.ndarray:
    """The reference: per grid, the area of the union of the views clipped to it."""
    out = np.zeros(len(grids))
    for i, g in enumerate(grids):
        live = [v for v in views if v is not None and not v.is_empty]
        if live:
            out[i] = shapely.union_all(shapely.intersection(np.array(live, dtype=object), g)).area
    return out


def assert_same(grids: list | np.ndarray, views: list | np.ndarray, *, fallbacks: int = 0, **kw: int) -> np.ndarray:
    """Kernel areas and pairs equal the GEOS path's; at most ``fallbacks`` grids went to GEOS (returned)."""
    grids = np.array(grids, dtype=object)
    views = np.array(views, dtype=object)
    cov, gi, vi, redo = geom._covered_area_per_grid(grids, views, **kw)
    ref = geos_areas(grids, views)
    scale = np.maximum(shapely.area(grids), 1.0)
    np.testing.assert_allclose(cov / scale, ref / scale, rtol=0, atol=RTOL)
    _, g2, v2 = geom.covered_per_grid(grids, views)
    assert sorted(zip(gi.tolist(), vi.tolist(), strict=True)) == sorted(zip(g2.tolist(), v2.tolist(), strict=True))
    assert (np.diff(gi) >= 0).all()  # grouped by grid
    assert len(redo) <= fallbacks, redo
    return redo


def sector(x: float, y: float, heading: float, fov: float, r: float, res: int = 8) -> shapely.Polygon:
    return geom.sectors(
        np.array([x]), np.array([y]), np.array([heading]), np.array([fov]), np.array([r]), resolution=res
    )[0]


def voronoi(n: int, side: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = shapely.box(0, 0, side, side)
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(rng.uniform(0, side, (n, 2))), extend_to=frame)
    )
    return shapely.intersection(cells, frame)


def random_sectors(n: int, side: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dome = rng.random(n) < 0.2
    return geom.sectors(
        rng.uniform(0, side, n),
        rng.uniform(0, side, n),
        rng.uniform(0, 360, n),
        np.where(dome, 360.0, rng.uniform(30, 120, n)),
        rng.uniform(20, 120, n),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_sectors_over_voronoi_grids(seed):
    assert_same(voronoi(60, 600, seed), random_sectors(120, 600, seed + 10))


def test_threads_share_the_grids_with_the_same_results(monkeypatch):
    from geogrid import _coverage_kernel

    monkeypatch.setattr(_coverage_kernel, "_GRIDS_PER_THREAD", 10)
    grids, views = voronoi(60, 600, 5), random_sectors(120, 600, 6)
    one = geom._covered_area_per_grid(grids, views, threads=1)
    three = geom._covered_area_per_grid(grids, views, threads=3)
    for a, b in zip(one, three, strict=True):
        np.testing.assert_array_equal(a, b)
    assert_same(grids, views, threads=3)


def test_grids_with_too_many_views_go_to_geos():
    grids, views = voronoi(20, 300, 7), random_sectors(60, 300, 8)
    k = np.bincount(shapely.STRtree(views).query(grids)[0], minlength=len(grids))
    redo = assert_same(grids, views, fallbacks=len(grids), max_views=5)
    assert redo.tolist() == np.flatnonzero(k > 5).tolist() != []


def test_far_from_the_origin_like_a_projected_crs():
    # Gauss-Krüger-like coordinates (500 km, 4,300 km): the tolerances scale with them.
    shift = (500_000.0, 4_300_000.0)
    grids = shapely.transform(voronoi(40, 500, 3), lambda c: c + shift)
    views = shapely.transform(random_sectors(80, 500, 4), lambda c: c + shift)
    assert_same(grids, views)


def test_identical_duplicated_views_count_once():
    v = sector(50, 50, 30, 90, 40)
    d = sector(60, 40, 0, 360, 25)
    assert_same([shapely.box(0, 0, 100, 100), shapely.box(40, 40, 70, 70)], [v, v, d, v, d])


def test_cameras_on_one_pole_share_apex_and_edges():
    # Headings 0 / 90 / 180 with 90° fields of view: neighbouring sectors share a radial edge,
    # running the same way or the opposite way; plus a dome on the same pole.
    views = [sector(50, 50, h, 90, r) for h, r in [(0, 40), (90, 40), (180, 30), (270, 40), (45, 60)]]
    views.append(sector(50, 50, 0, 360, 20))
    assert_same([shapely.box(0, 0, 100, 100), shapely.box(30, 30, 50, 50), shapely.box(50, 50, 80, 90)], views)


def test_view_edges_lying_on_grid_edges():
    # Sector edges exactly along the grid's edges, apex on the grid's corner and on its side.
    corner = shapely.Polygon([(0, 0), (40, 0), (40, 40), (0, 40)])
    half = shapely.Polygon([(50, 0), (100, 0), (100, 30), (50, 30)])
    grids = [shapely.box(0, 0, 100, 100), shapely.box(0, -100, 100, 0)]
    assert_same(grids, [corner, half, shapely.box(20, -20, 60, 0), sector(0, 0, 45, 90, 30)])


def test_grids_sharing_an_edge_with_a_view_straddling_it():
    grids = [shapely.box(0, 0, 10, 10), shapely.box(10, 0, 20, 10), shapely.box(0, 10, 20, 20)]
    assert_same(grids, [shapely.box(5, 2, 15, 12), shapely.box(10, 0, 20, 10), sector(10, 10, 0, 360, 6)])


def test_grids_with_holes_and_multipolygon_grids():
    courtyard = shapely.Polygon(
        shapely.box(0, 0, 100, 100).exterior.coords, [shapely.box(30, 30, 70, 70).exterior.coords]
    )
    multi = shapely.MultiPolygon([shapely.box(120, 0, 150, 100), shapely.box(170, 0, 200, 100)])
    views = [sector(50, 50, 0, 360, 45), sector(140, 50, 90, 120, 50), shapely.box(25, 25, 35, 75)]
    assert_same([courtyard, multi], views)


def test_views_with_holes_annulus_and_occluded():
    annulus = geom.sectors(
        np.array([50.0]), np.array([50.0]), np.array([0.0]), np.array([360.0]), np.array([40.0]), min_distance_m=15.0
    )[0]
    occluded = shapely.difference(sector(20, 50, 90, 360, 60), shapely.box(40, 40, 50, 60))
    assert annulus.interiors and occluded.geom_type == "Polygon"
    # A view hole that exactly matches a grid; a grid entirely inside a view's hole.
    grids = [shapely.box(0, 0, 100, 100), shapely.box(45, 45, 55, 55), shapely.box(40, 40, 50, 60)]
    assert_same(grids, [annulus, occluded, sector(50, 50, 200, 60, 35)])


def test_views_covering_whole_grids_and_grids_nothing_sees():
    grids = [shapely.box(0, 0, 10, 10), shapely.box(10, 0, 20, 10), shapely.box(500, 500, 510, 510)]
    assert_same(grids, [shapely.box(-5, -5, 25, 15), shapely.box(-5, -5, 25, 15), sector(5, 5, 0, 360, 3)])


def test_empty_and_missing_views_are_skipped():
    grids = [shapely.box(0, 0, 10, 10)]
    assert_same(grids, [None, shapely.Polygon(), sector(5, 5, 0, 360, 3), None])
    cov, gi, vi = geom.covered_area_per_grid(np.array(grids, dtype=object), np.array([None, shapely.Polygon()]))
    assert cov.tolist() == [0.0] and gi.size == vi.size == 0
    cov, gi, vi = geom.covered_area_per_grid(np.array([None, *grids], dtype=object), np.array([grids[0]]))
    assert cov.tolist() == [0.0, 100.0] and gi.tolist() == [1] and vi.tolist() == [0]


def test_a_view_touching_a_grid_is_not_a_seeing_pair():
    grids = [shapely.box(0, 0, 10, 10)]
    views = [shapely.box(10, 0, 20, 10), shapely.box(10, 10, 20, 20), shapely.box(5, 5, 15, 15)]
    cov, _, vi = geom.covered_area_per_grid(np.array(grids, dtype=object), np.array(views, dtype=object))
    assert cov[0] == pytest.approx(25.0, rel=RTOL)
    assert vi.tolist() == [2]


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 20),  # apex on a 5 m lattice: shared poles and edges are common
            st.integers(0, 20),
            st.sampled_from([0.0, 45.0, 90.0, 135.0, 180.0, 270.0, 33.0]),
            st.sampled_from([90.0, 180.0, 360.0, 60.0]),
            st.sampled_from([10.0, 25.0, 50.0]),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_property_lattice_cameras_agree_with_geos(cams):
    x, y, h, f, r = (np.array(c, dtype=float) for c in zip(*cams, strict=True))
    views = geom.sectors(5 * x, 5 * y, h, f, r, resolution=4)
    grids = [shapely.box(i, j, i + 25, j + 25) for i in range(0, 100, 25) for j in range(0, 100, 25)]
    assert_same(grids, views, fallbacks=1)  # a grid the kernel cannot call goes to GEOS, rarely


# -- exact arcs: sectors as corner polygons plus arcs, against the fine-arc reference bracket --------
def exact_vs_reference(grids: list | np.ndarray, cams: np.ndarray, *, fallbacks: int = 0) -> np.ndarray:
    """Kernel areas with exact arcs lie in the reference's bracket (inscribed / circumscribed 4,096-gons)."""
    from geogrid._reference_coverage import reference_views

    grids = np.array(grids, dtype=object)
    x, y, h, f, r = (np.asarray(c, dtype=float) for c in cams.T)
    views, arcs = geom.exact_sectors(x, y, h, f, r)
    cov, gi, _, redo = geom._covered_area_per_grid(grids, views, arcs=arcs)
    xy = np.column_stack([x, y])
    low = shapely.area(shapely.intersection(grids, shapely.union_all(reference_views(xy, h, f, r))))
    high = shapely.area(shapely.intersection(grids, shapely.union_all(reference_views(xy, h, f, r, outer=True))))
    eps = 1e-9 * np.maximum(shapely.area(grids), 1.0)
    assert (cov >= low - eps).all() and (cov <= high + eps).all(), (cov, low, high)
    assert (np.diff(gi) >= 0).all()
    assert len(redo) <= fallbacks, redo
    return cov


def test_exact_sectors_lie_in_the_reference_bracket_over_voronoi_grids():
    rng = np.random.default_rng(3)
    n = 40
    cams = np.column_stack(
        [
            rng.uniform(0, 400, n),
            rng.uniform(0, 400, n),
            rng.uniform(0, 360, n),
            np.where(rng.random(n) < 0.3, 360.0, rng.uniform(5, 300, n)),
            rng.uniform(10, 120, n),
        ]
    )
    exact_vs_reference(voronoi(30, 400, 4), cams, fallbacks=1)


def test_exact_quarter_and_half_discs_with_sides_along_grid_edges():
    # Apex on the grid's corner, sides along its edges: a quarter disc; two sectors sharing a
    # side from the middle of an edge: a half disc; the same again duplicated; a dome around.
    grid = [shapely.box(0, 0, 100, 100)]
    quarter = exact_vs_reference(grid, np.array([[0, 0, 45, 90, 50]]))
    assert quarter[0] == pytest.approx(np.pi * 2500 / 4, rel=1e-12)
    half = exact_vs_reference(grid, np.array([[50, 0, 45, 90, 40], [50, 0, 315, 90, 40], [50, 0, 45, 90, 40]]))
    assert half[0] == pytest.approx(np.pi * 1600 / 2, rel=1e-12)


def test_identical_and_concentric_exact_domes_count_once():
    grid = [shapely.box(-100, -100, 100, 100), shapely.box(0, 0, 15, 15)]
    cams = np.array([[0, 0, 0, 360, 20], [0, 0, 0, 360, 20], [0, 0, 90, 360, 10], [0, 0, 30, 200, 20]])
    cov = exact_vs_reference(grid, cams)
    assert cov[0] == pytest.approx(np.pi * 400, rel=1e-12)


def test_exact_arcs_survive_either_ring_orientation_and_multipolygon_grids():
    rng = np.random.default_rng(8)
    cells = voronoi(12, 200, 9)
    cams = np.column_stack(
        [
            rng.uniform(0, 200, 10),
            rng.uniform(0, 200, 10),
            rng.uniform(0, 360, 10),
            np.full(10, 120.0),
            np.full(10, 60.0),
        ]
    )
    plain = exact_vs_reference(cells, cams)
    cw = exact_vs_reference(shapely.orient_polygons(cells, exterior_cw=True), cams)
    multi = exact_vs_reference(np.array([shapely.MultiPolygon([c]) for c in cells], dtype=object), cams)
    np.testing.assert_allclose(cw, plain, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(multi, plain, rtol=1e-12, atol=1e-9)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 20),
            st.integers(0, 20),
            st.sampled_from([0.0, 45.0, 90.0, 135.0, 180.0, 270.0, 33.0]),
            st.sampled_from([90.0, 180.0, 360.0, 60.0, 300.0]),
            st.sampled_from([10.0, 25.0, 50.0]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_property_lattice_exact_sectors_lie_in_the_reference_bracket(cams):
    c = np.array(cams, dtype=float)
    c[:, :2] *= 5
    grids = [shapely.box(i, j, i + 25, j + 25) for i in range(0, 100, 25) for j in range(0, 100, 25)]
    exact_vs_reference(grids, c, fallbacks=1)


def test_shadows_of_a_multipolygon_building_equal_those_of_its_parts():
    # get_rings gives nothing for a MultiPolygon: a two-part building cast no shadow at all.
    halves = [shapely.box(20, -10, 30, 0), shapely.box(20, 0, 30, 10)]
    views = geom.sectors(np.array([0.0]), np.array([0.0]), np.array([0.0]), np.array([360.0]), np.array([100.0]))
    cam, rng = np.array([[0.0, 0.0]]), np.array([100.0])
    multi = geom.shadows(cam, views, rng, np.array([shapely.MultiPolygon(halves)], dtype=object))[0]
    parts = geom.shadows(cam, views, rng, np.array(halves, dtype=object))[0]
    assert multi is not None
    assert shapely.symmetric_difference(multi, parts).area <= 1e-9 * parts.area


# Twelve shadow quads of one camera from the coverage lane (seed 1003960, UTM 50N). On GEOS 3.14.1
# ``shapely.union_all`` of these valid polygons returns an invalid MultiPolygon ("Nested shells",
# 4,964.7 m² where the union is 4,749.7 m²), and cutting the view by it raised "Ring edge missing".
SHADOW_QUADS = [
    "POLYGON ((443026.11998966156 4426823.72005451, 443021.64308542875 4426809.871958187, 443016.6363440983 4426797.999290751, 443014.81112683594 4426798.798083504, 443026.11998966156 4426823.72005451))",
    "POLYGON ((443032.9548497591 4426806.215016147, 443037.4317539921 4426820.063112471, 443032.80127275834 4426793.258393297, 443030.36264958244 4426793.721887908, 443032.9548497591 4426806.215016147))",
    "POLYGON ((443109.28010869893 4426860.686405334, 443078.6934980609 4426857.862125432, 443117.43491312786 4426848.134760204, 443119.3935560113 4426859.810216307, 443109.28010869893 4426860.686405334))",
    "POLYGON ((443078.6934980609 4426857.862125432, 443081.9885397544 4426822.177221374, 443095.1366868441 4426806.347976538, 443120.8946526856 4426847.266073549, 443078.6934980609 4426857.862125432))",
    "POLYGON ((443100.74664613453 4426886.13699802, 443113.05501372425 4426887.740552513, 443115.96620425355 4426888.666642249, 443115.0758950282 4426891.293939585, 443100.74664613453 4426886.13699802))",
    "POLYGON ((443100.2752428097 4426889.755338054, 443100.74664613453 4426886.13699802, 443115.094495332 4426891.300633633, 443113.47296913224 4426895.416173827, 443100.2752428097 4426889.755338054))",
    "POLYGON ((443020.9938445899 4426836.848833284, 443034.49852206325 4426832.48295177, 443022.21883374086 4426794.499046407, 442997.2261718419 4426808.252042732, 443020.9938445899 4426836.848833284))",
    "POLYGON ((443021.64308542875 4426809.871958187, 443026.66393965465 4426808.248783202, 443022.61121481005 4426795.712771463, 443016.612416553 4426797.942550495, 443021.64308542875 4426809.871958187))",
    "POLYGON ((443071.05500286596 4426870.198829233, 443064.1172527614 4426856.643396662, 443114.63798569224 4426830.786588456, 443122.2597065526 4426878.141287443, 443071.05500286596 4426870.198829233))",
    "POLYGON ((443034.49852206325 4426832.48295177, 443049.27325541567 4426827.706478185, 443052.96137525054 4426790.9829342095, 443022.14508021105 4426794.270909745, 443034.49852206325 4426832.48295177))",
    "POLYGON ((443026.66393965465 4426808.248783202, 443032.9548497591 4426806.215016147, 443030.3430373342 4426793.62736653, 443022.59933899273 4426795.676036824, 443026.66393965465 4426808.248783202))",
    "POLYGON ((443064.1172527614 4426856.643396662, 443058.6122931363 4426845.887444388, 443087.12481411087 4426801.990868193, 443113.58395482966 4426831.326047649, 443064.1172527614 4426856.643396662))",
]


def test_shadow_union_is_valid_where_geos_unary_union_is_not():
    quads = shapely.from_wkt(np.array(SHADOW_QUADS, dtype=object))
    assert shapely.is_valid(quads).all()
    (shadow,) = geom._group_union(quads, np.zeros(len(quads), dtype=int), 1)
    assert shadow.is_valid
    pairwise = quads[0]
    for q in quads[1:]:
        pairwise = shapely.union(pairwise, q)
    assert shadow.area == pytest.approx(pairwise.area, rel=1e-9)
    assert shapely.symmetric_difference(shadow, pairwise).area < 1e-6
