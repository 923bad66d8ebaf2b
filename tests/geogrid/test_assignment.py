"""Assignment of points to grids: identity with sjoin, the boundary rule, outside points, versions,
chunked and dask paths equal to the in-memory one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import geopandas as gpd
import shapely

from geogrid.assignment import GridLocator, assign_points, assign_points_chunked, assign_points_dask, assign_xy
from layers.errors import CRSError

X0, Y0, D = 117.20, 39.10, 0.01


def _sjoin_ids(points: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, level: int) -> pd.Series:
    g = grids[grids["level"] == level][["grid_id", "geometry"]]
    j = gpd.sjoin(points[["geometry"]], g, predicate="within")
    assert not j.index.duplicated().any()
    return j["grid_id"].reindex(points.index).astype(object)


def _same(ours: pd.Series, theirs: pd.Series) -> None:
    a = ours.astype(object).where(ours.notna(), None).tolist()
    b = theirs.where(theirs.notna(), None).tolist()
    assert a == b


def _voronoi(n: int, seed: int) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    pts = shapely.multipoints(np.column_stack([rng.uniform(0, 1, n), rng.uniform(0, 1, n)]))
    box = shapely.box(0, 0, 1, 1)
    cells = shapely.intersection(shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=box)), box)
    return gpd.GeoDataFrame(
        {"grid_id": [f"v{i:03d}" for i in range(n)], "parent_id": ["top"] * n, "level": [1] * n},
        geometry=cells,
        crs="EPSG:3857",
    )


def _with_top(cells: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    top = gpd.GeoDataFrame(
        {"grid_id": ["top"], "parent_id": [None], "level": [0]}, geometry=[shapely.box(0, 0, 1, 1)], crs=cells.crs
    )
    return pd.concat([top, cells], ignore_index=True)


# -- identity with sjoin -----------------------------------------------------------------------
def test_identical_to_sjoin_on_the_demo_district(demo_district):
    inc = demo_district.incidents.iloc[:50_000]
    rng = np.random.default_rng(3)
    minx, miny, maxx, maxy = demo_district.grids.total_bounds
    extra = gpd.GeoDataFrame(
        geometry=gpd.points_from_xy(rng.uniform(minx, maxx, 20_000), rng.uniform(miny, maxy, 20_000)), crs=inc.crs
    )
    pts = pd.concat([inc[["geometry"]], extra], ignore_index=True)
    out = assign_points(pts, demo_district.grids)
    assert list(out.columns) == ["grid_id_0", "grid_id_1", "grid_id_2", "grid_id_3", "outside"]
    assert out["outside"].sum() > 1000  # the bounding box holds points outside the district
    for level in range(4):
        col = out[f"grid_id_{level}"]
        assert isinstance(col.dtype, pd.CategoricalDtype)
        # every grid of the level is a category, points or not
        assert set(col.cat.categories) == set(demo_district.grids.loc[demo_district.grids["level"] == level, "grid_id"])
        _same(out[f"grid_id_{level}"], _sjoin_ids(pts, demo_district.grids, level))
    assert (out["outside"] == out["grid_id_3"].isna()).all()


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n_cells=st.integers(1, 60), n_pts=st.integers(1, 400))
def test_identical_to_sjoin_on_random_voronoi_coverages(seed, n_cells, n_pts):
    grids = _with_top(_voronoi(n_cells, seed))
    rng = np.random.default_rng(seed + 1)
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(rng.uniform(-0.2, 1.2, n_pts), rng.uniform(-0.2, 1.2, n_pts)))
    pts = pts.set_crs(grids.crs)
    out = assign_points(pts, grids)
    for level in (0, 1):
        _same(out[f"grid_id_{level}"], _sjoin_ids(pts, grids, level))


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1))
def test_core_agrees_with_brute_force_on_overlapping_polygons_with_holes(seed):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 10, (8, 2))
    polys = shapely.buffer(shapely.points(centres), rng.uniform(0.5, 3, 8), quad_segs=rng.integers(1, 6))
    polys[0] = shapely.difference(polys[0], shapely.buffer(shapely.points(centres[0]), 0.3))  # a hole
    polys[1] = shapely.union(polys[1], shapely.box(11, 11, 12, 12))  # a multipolygon
    x, y = rng.uniform(-1, 13, 3000), rng.uniform(-1, 13, 3000)
    hits = shapely.intersects_xy(polys[:, None], x[None, :], y[None, :])
    expected = np.where(hits.any(axis=0), hits.argmax(axis=0), -1)
    np.testing.assert_array_equal(assign_xy(x, y, polys), expected)


# -- the boundary rule -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("xy", "expected"),
    [
        ((X0 + D, Y0 + D / 4), ("S1", "G1")),  # edge G1|G3 and S1|S2
        ((X0 + D / 2, Y0 + D / 2), ("S1", "G1")),  # edge G1|G2
        ((X0 + D, Y0 + D / 2), ("S1", "G1")),  # corner of four grids
        ((X0 + 1.5 * D, Y0 + D / 2), ("S2", "G3")),  # edge G3|G4
        ((X0, Y0 + D / 4), ("S1", "G1")),  # outer boundary: still inside (closed grids)
        ((X0 + 2 * D, Y0 + D), ("S2", "G4")),  # outer corner
    ],
    ids=["street-edge", "grid-edge", "four-corner", "edge-in-S2", "outer-edge", "outer-corner"],
)
def test_boundary_points_go_to_the_lowest_grid_id(tiny_grids, xy, expected):
    pts = gpd.GeoSeries.from_xy([xy[0]], [xy[1]], crs=tiny_grids.crs)
    shuffled = tiny_grids.sample(frac=1, random_state=7)  # the answer must not depend on row order
    for grids in (tiny_grids, shuffled):
        out = assign_points(pts, grids, nested=False)
        assert (out.loc[0, "grid_id_1"], out.loc[0, "grid_id_2"]) == expected
        assert out.loc[0, "grid_id_0"] == "D"
        assert not out.loc[0, "outside"]


def test_boundary_rule_on_a_diagonal_edge():
    # two triangles share the diagonal; (0.5, 0.5) lies exactly on it
    tri = [shapely.Polygon([(0, 0), (1, 0), (1, 1)]), shapely.Polygon([(0, 0), (1, 1), (0, 1)])]
    for order in ([0, 1], [1, 0]):
        grids = gpd.GeoDataFrame(
            {"grid_id": ["b", "a"], "parent_id": [None, None], "level": [0, 0]},
            geometry=[tri[i] for i in order],
        )
        out = assign_points(gpd.GeoSeries.from_xy([0.5, 0.6, 0.3], [0.5, 0.2, 0.9]), grids)
        expected_lower = "b" if order == [0, 1] else "a"  # the lower-right triangle's id
        assert out["grid_id_0"].tolist() == ["a", expected_lower, {"a": "b", "b": "a"}[expected_lower]]


# -- outside, index, CRS -------------------------------------------------------------------------
def test_outside_points_are_flagged_not_dropped_and_the_index_is_kept(tiny_grids):
    geoms = [
        shapely.Point(X0 + D / 2, Y0 + D / 4),
        shapely.Point(X0 - 1, Y0),
        None,
        shapely.Point(),
        shapely.Point(np.nan, np.nan),
    ]
    pts = gpd.GeoDataFrame({"v": range(5)}, geometry=geoms, index=[10, 3, 7, 99, 5], crs=tiny_grids.crs)
    out = assign_points(pts, tiny_grids, levels=[2])
    assert list(out.index) == [10, 3, 7, 99, 5]
    assert list(out.columns) == ["grid_id_2", "outside"]
    assert out["outside"].tolist() == [False, True, True, True, True]
    assert out["grid_id_2"].isna().tolist() == [False, True, True, True, True]


def test_mixed_crs_is_an_error(tiny_grids):
    pts = gpd.GeoSeries.from_xy([X0], [Y0], crs="EPSG:3857")
    with pytest.raises(CRSError, match=r"EPSG:3857.*EPSG:4326.*to_crs"):
        assign_points(pts, tiny_grids)
    with pytest.raises(CRSError, match="not set"):
        assign_points(gpd.GeoSeries.from_xy([X0], [Y0]), tiny_grids)


def test_unknown_level_and_non_points_are_refused(tiny_grids):
    pts = gpd.GeoSeries.from_xy([X0], [Y0], crs=tiny_grids.crs)
    with pytest.raises(ValueError, match=r"no level 5.*\[0, 1, 2\]"):
        assign_points(pts, tiny_grids, levels=[5])
    with pytest.raises(ValueError, match="must be Points"):
        assign_points(gpd.GeoSeries([shapely.box(0, 0, 1, 1)], crs=tiny_grids.crs), tiny_grids)


# -- hierarchy shortcut and its fallback ----------------------------------------------------------
def test_levels_follow_parent_ids_only_when_they_nest(tiny_grids):
    rng = np.random.default_rng(5)
    pts = gpd.GeoSeries.from_xy(rng.uniform(X0, X0 + 2 * D, 500), rng.uniform(Y0, Y0 + D, 500), crs=tiny_grids.crs)
    exact = assign_points(pts, tiny_grids, nested=False)
    pd.testing.assert_frame_equal(assign_points(pts, tiny_grids), exact)
    wrong = tiny_grids.copy()
    wrong.loc[wrong["grid_id"] == "G1", "parent_id"] = "S2"  # a parent link that contradicts geometry
    pd.testing.assert_frame_equal(assign_points(pts, wrong), exact)  # "auto" notices and falls back
    trusted = assign_points(pts, wrong, nested=True)  # told to trust parent_id, it does
    in_g1 = exact["grid_id_2"] == "G1"
    assert in_g1.any()
    assert (trusted.loc[in_g1, "grid_id_1"] == "S2").all()


# -- grid versions ---------------------------------------------------------------------------------
def _split_on_june_first(crs: str | None = None) -> gpd.GeoDataFrame:
    """Grid A until 2025-06-01, then its halves A1 and A2."""
    t_split = pd.Timestamp("2025-06-01", tz="UTC")
    return gpd.GeoDataFrame(
        {
            "grid_id": ["A", "A1", "A2"],
            "parent_id": [None, None, None],
            "level": [0, 0, 0],
            "valid_from": [pd.NaT, t_split, t_split],
            "valid_to": [t_split, pd.NaT, pd.NaT],
        },
        geometry=[shapely.box(0, 0, 2, 1), shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)],
        crs=crs,
    )


def test_points_use_the_grid_version_valid_when_reported():
    grids = _split_on_june_first()
    pts = gpd.GeoDataFrame(
        {"reported_at": pd.to_datetime(["2025-01-01", "2025-07-01", "2025-07-01", None], utc=True)},
        geometry=gpd.points_from_xy([1.5, 1.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]),
        index=[4, 3, 2, 1],
    )
    out = assign_points(pts, grids, time="reported_at")
    assert out["grid_id_0"].tolist() == ["A", "A2", "A1", "A1"]  # no time: the current version
    assert list(out.index) == [4, 3, 2, 1]
    assert assign_points(pts, grids)["grid_id_0"].tolist() == ["A2", "A2", "A1", "A1"]
    # one categorical over every version's grids, so the versions' rows concatenate as one column
    assert list(out["grid_id_0"].cat.categories) == ["A", "A1", "A2"]


def test_grid_positions_reads_categorical_and_plain_columns():
    from geogrid.assignment import grid_positions

    ids = ["c", "a", "b"]
    cat = pd.Series(pd.Categorical(["a", None, "b", "z"], categories=["a", "b", "z"]))
    assert grid_positions(cat, ids).tolist() == [1, -1, 2, -1]  # z: a category that is not a grid here
    plain = pd.Series(["a", None, "b", "z"], dtype="string")
    assert grid_positions(plain, ids).tolist() == [1, -1, 2, -1]
    assert grid_positions(cat.astype(object), np.array(ids, dtype=object)).tolist() == [1, -1, 2, -1]


def test_ring_orientation_does_not_matter():
    """Shells clockwise and holes counter-clockwise (the shapefile convention) locate the same."""
    from geogrid._assign_impl import build_owner_raster

    rng = np.random.default_rng(5)
    polys = np.array(
        [
            shapely.Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], [[(1, 1), (3, 1), (3, 3), (1, 3)]]),
            shapely.box(1, 1, 3, 3),
            shapely.MultiPolygon([shapely.box(4, 0, 6, 2), shapely.box(7, 0, 8, 1)]),
        ],
        dtype=object,
    )
    x, y = _awkward_points(polys, rng, 5000)
    ccw = build_owner_raster(shapely.orient_polygons(polys), max_cells=50_000).locate(x, y)
    cw = build_owner_raster(shapely.orient_polygons(polys, exterior_cw=True), max_cells=50_000).locate(x, y)
    np.testing.assert_array_equal(ccw, cw)
    np.testing.assert_array_equal(cw, _lowest_holding(polys, x, y))


# -- larger than memory ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def many_points(demo_district):
    rng = np.random.default_rng(11)
    minx, miny, maxx, maxy = demo_district.grids.total_bounds
    n = 12_345
    return gpd.GeoDataFrame(
        {"k": np.arange(n)},
        geometry=gpd.points_from_xy(rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)),
        crs=demo_district.grids.crs,
    )


@pytest.mark.parametrize("suffix", [".gpkg", ".parquet"], ids=["geopackage", "geoparquet"])
def test_chunked_file_equals_in_memory(demo_district, many_points, tmp_path, suffix):
    path = tmp_path / f"points{suffix}"
    if suffix == ".gpkg":
        many_points.to_file(path, layer="points")
    else:
        many_points.to_parquet(path)
    expected = assign_points(many_points, demo_district.grids)
    chunks = list(assign_points_chunked(path, demo_district.grids, chunksize=4_000))
    assert len(chunks) == 4
    pd.testing.assert_frame_equal(pd.concat(chunks), expected)


def test_chunked_iterable_equals_in_memory(demo_district, many_points):
    parts = [many_points.iloc[i : i + 5000] for i in range(0, len(many_points), 5000)]
    got = pd.concat(assign_points_chunked(iter(parts), demo_district.grids, levels=[1, 3]))
    pd.testing.assert_frame_equal(got, assign_points(many_points, demo_district.grids, levels=[1, 3]))


def test_dask_equals_in_memory(demo_district, many_points):
    import dask_geopandas  # a dev dependency (the dask extra): missing is a failure, not a skip

    ddf = dask_geopandas.from_geopandas(many_points, npartitions=3)
    got = assign_points_dask(ddf, demo_district.grids).compute()
    pd.testing.assert_frame_equal(got, assign_points(many_points, demo_district.grids))


def test_locator_reports_its_size_and_reuses():
    loc = GridLocator([shapely.box(0, 0, 1, 1), None, shapely.Polygon()])
    assert loc.nbytes > 0
    assert loc.locate([0.5, 0.5], [0.5, 2.0]).tolist() == [0, -1]
    assert assign_xy([0.5], [0.5], []).tolist() == [-1]


# -- exactness of the owner raster's special cells ------------------------------------------------
def _lowest_holding(polys: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    hits = shapely.intersects_xy(polys[:, None], x[None, :], y[None, :])
    return np.where(hits.any(axis=0), hits.argmax(axis=0), -1)


def _awkward_points(polys: np.ndarray, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Random points plus every vertex, edge midpoints, points a few ulps off vertices, and far outside ones."""
    xy = shapely.get_coordinates(polys)
    mid = (xy[:-1] + xy[1:]) / 2
    near = np.nextafter(xy, xy + rng.choice([-1.0, 1.0], xy.shape))
    near2 = xy + rng.normal(0, 1e-9, xy.shape)
    lo, hi = xy.min(axis=0) - 1, xy.max(axis=0) + 1
    rand = rng.uniform(lo, hi, (n, 2))
    far = np.array([[lo[0] - 1e6, lo[1]], [hi[0] + 1e6, hi[1] + 1e6], [np.nan, 0.0], [np.inf, 0.0]])
    pts = np.concatenate([rand, xy, mid, near, near2, far])
    return pts[:, 0], pts[:, 1]


def _forced(raster, mode: str):
    from geogrid._assign_impl import _FALLBACK, _GENERAL, _SINGLE

    kind = raster.slot_info["kind"]
    if mode == "general":  # every special cell by the crossing-parity path
        kind[kind == _SINGLE] = _GENERAL
    elif mode == "shapely":  # every special cell by prepared shapely
        kind[:] = _FALLBACK
    return raster


@pytest.mark.parametrize("mode", ["default", "general", "shapely"])
@pytest.mark.parametrize("max_cells", [4096, 50_000, 1 << 20], ids=["coarse", "mid", "fine"])
def test_special_cells_are_exact_on_edges_vertices_holes_and_multipolygons(mode, max_cells):
    from geogrid._assign_impl import build_owner_raster

    rng = np.random.default_rng(42)
    polys = np.array(
        [
            shapely.Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], [[(1, 1), (3, 1), (3, 3), (1, 3)]]),  # a hole
            shapely.box(1, 1, 3, 3),  # fills the hole exactly
            shapely.MultiPolygon([shapely.box(4, 0, 6, 2), shapely.box(7, 0, 8, 1)]),
            shapely.Polygon([(4, 2), (6, 2), (5, 4)]),  # a triangle sharing vertices
            shapely.Polygon([(2, 2), (5, 2.5), (2, 3)]),  # overlaps three others
            None,
            shapely.Polygon(),
        ],
        dtype=object,
    )
    x, y = _awkward_points(polys, rng, 4000)
    raster = _forced(build_owner_raster(polys, max_cells=max_cells), mode)
    np.testing.assert_array_equal(raster.locate(x, y), _lowest_holding(polys, x, y))


@pytest.mark.parametrize("mode", ["default", "general", "shapely"])
def test_special_cells_are_exact_on_a_voronoi_coverage(mode):
    from geogrid._assign_impl import build_owner_raster

    cells = np.asarray(_voronoi(300, 9).geometry.array)
    rng = np.random.default_rng(9)
    x, y = _awkward_points(cells, rng, 20_000)
    raster = _forced(build_owner_raster(cells), mode)
    assert raster.stats["special_cells"] > 0
    np.testing.assert_array_equal(raster.locate(x, y), _lowest_holding(cells, x, y))


@settings(max_examples=30, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), max_cells=st.sampled_from([4096, 30_000, 300_000]))
def test_owner_raster_agrees_with_shapely_on_random_polygons_and_awkward_points(seed, max_cells):
    from geogrid._assign_impl import build_owner_raster

    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 10, (6, 2))
    polys = shapely.buffer(shapely.points(centres), rng.uniform(0.3, 3, 6), quad_segs=int(rng.integers(1, 5)))
    polys[0] = shapely.difference(polys[0], shapely.buffer(shapely.points(centres[0]), 0.2))
    polys[1] = shapely.union(polys[1], shapely.box(11, 11, 12, 12))
    polys[2] = shapely.box(*np.round(rng.uniform(0, 5, 2), 1), *np.round(rng.uniform(5, 10, 2), 1))
    x, y = _awkward_points(polys, rng, 1000)
    got = build_owner_raster(polys, max_cells=max_cells).locate(x, y)
    np.testing.assert_array_equal(got, _lowest_holding(polys, x, y))


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n_cells=st.integers(50, 400))
def test_identical_to_sjoin_on_many_random_points(seed, n_cells):
    grids = _voronoi(n_cells, seed)
    rng = np.random.default_rng(seed + 7)
    n = 30_000
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(rng.uniform(-0.1, 1.1, n), rng.uniform(-0.1, 1.1, n)))
    pts = pts.set_crs(grids.crs)
    _same(assign_points(pts, grids)["grid_id_1"], _sjoin_ids(pts, grids, 1))


def test_points_are_read_in_chunks_with_rows_named_globally(tiny_grids):
    from geogrid._assign_impl import _CHUNK

    n = _CHUNK + 10
    geoms = np.array([shapely.Point(X0 + D / 2, Y0 + D / 4)] * n, dtype=object)
    geoms[_CHUNK + 3] = shapely.box(0, 0, 1, 1)
    with pytest.raises(ValueError, match=rf"must be Points; rows '?{_CHUNK + 3}\b"):
        assign_points(gpd.GeoSeries(geoms, crs=tiny_grids.crs), tiny_grids)
    geoms[_CHUNK + 3] = shapely.Point()  # an empty point in the second chunk: outside, not an error
    out = assign_points(gpd.GeoSeries(geoms, crs=tiny_grids.crs), tiny_grids, levels=[2])
    assert out["outside"].sum() == 1
    assert out["outside"].iloc[_CHUNK + 3]
    assert (out["grid_id_2"].iloc[:_CHUNK] == "G1").all()


def test_dask_with_grid_versions_equals_in_memory():
    """Partitions that meet different grid versions still share one categorical dtype."""
    import dask_geopandas

    grids = _split_on_june_first("EPSG:3857")
    rng = np.random.default_rng(4)
    n = 400
    pts = gpd.GeoDataFrame(
        {"reported_at": pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(np.sort(rng.uniform(0, 360, n)), "D")},
        geometry=gpd.points_from_xy(rng.uniform(-0.5, 2.5, n), rng.uniform(-0.2, 1.2, n)),
        crs="EPSG:3857",
    )
    expected = assign_points(pts, grids, time="reported_at")
    assert set(expected["grid_id_0"].dropna()) == {"A", "A1", "A2"}  # both versions are met
    ddf = dask_geopandas.from_geopandas(pts, npartitions=4)  # early partitions: only A; late: A1, A2
    pd.testing.assert_frame_equal(assign_points_dask(ddf, grids, time="reported_at").compute(), expected)


# -- the boundary rule on every level (issue 11, item 6) -------------------------------------------
def _districts_a_b(b_child: str = "a") -> gpd.GeoDataFrame:
    """Districts A | B, each with one child of the same shape; B's child sorts before A's."""
    a, b = shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)
    return gpd.GeoDataFrame(
        {"grid_id": ["A", "B", "b", b_child], "parent_id": [None, None, "A", "B"], "level": [0, 0, 1, 1]},
        geometry=[a, b, a, b],
        crs="EPSG:3857",
    )


@pytest.mark.parametrize("nested", ["auto", True, False], ids=["auto", "trusted", "located"])
def test_a_point_on_a_coarse_boundary_goes_to_the_lowest_grid_id_of_that_level(nested):
    grids = _districts_a_b()
    pts = gpd.GeoSeries.from_xy([1.0, 1.0, 0.5, 1.5], [0.5, 0.0, 0.5, 0.5], crs=grids.crs)
    out = assign_points(pts, grids, nested=nested)
    # on the border: "a" (B's child) wins level 1, but level 0 is A, the lower of A and B
    assert out["grid_id_1"].astype(str).tolist() == ["a", "a", "b", "a"]
    assert out["grid_id_0"].astype(str).tolist() == ["A", "A", "A", "B"]


def test_levels_are_derived_only_when_the_children_tile_the_parent_exactly():
    # c1's edge with c2 leans 1e-10 into P2 at the bottom: the areas still add up within 1e-9, and
    # a point just inside c1 there lies in P2, not in c1's parent P1
    d = 1e-10
    c1 = shapely.Polygon([(0, 0), (1 + d, 0), (1, 1), (0, 1)])
    c2 = shapely.Polygon([(1 + d, 0), (2, 0), (2, 1), (1, 1)])
    grids = gpd.GeoDataFrame(
        {"grid_id": ["P1", "P2", "c1", "c2"], "parent_id": [None, None, "P1", "P2"], "level": [0, 0, 1, 1]},
        geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), c1, c2],
        crs="EPSG:3857",
    )
    pts = gpd.GeoSeries.from_xy([1 + 0.4 * d, 0.5], [0.01, 0.5], crs=grids.crs)
    out = assign_points(pts, grids)
    assert out["grid_id_1"].astype(str).tolist() == ["c1", "c1"]
    assert out["grid_id_0"].astype(str).tolist() == ["P2", "P1"]


def test_derived_levels_equal_the_reference_on_every_vertex_and_edge_midpoint():
    from geogrid._assign_impl import boundaries_add_up
    from geogrid._reference_assign import assign_points_reference

    cells = _voronoi(60, 4)
    groups = (shapely.get_coordinates(shapely.centroid(cells.geometry.values))[:, 0] * 4).astype(int)
    parents = [shapely.coverage_union_all(cells.geometry.values[groups == g]) for g in range(groups.max() + 1)]
    # parent ids sort against the children's parents' order: "z0" holds the leftmost children
    pid = [f"z{9 - g}" for g in range(groups.max() + 1)]
    top = gpd.GeoDataFrame({"grid_id": pid, "parent_id": None, "level": 0}, geometry=parents, crs=cells.crs)
    cells["parent_id"] = [pid[g] for g in groups]
    grids = pd.concat([top, cells], ignore_index=True)
    assert boundaries_add_up(cells.geometry.values, np.asarray(parents), groups.astype(np.int64))
    xy = shapely.get_coordinates(cells.geometry.values)
    pts = gpd.GeoSeries.from_xy(
        np.r_[xy[:, 0], (xy[:-1, 0] + xy[1:, 0]) / 2], np.r_[xy[:, 1], (xy[:-1, 1] + xy[1:, 1]) / 2], crs=cells.crs
    )
    ref = assign_points_reference(pts, grids)
    for method in ("fast", "reference"):
        out = assign_points(pts, grids, method=method)
        for col in ("grid_id_0", "grid_id_1"):
            got = out[col].astype(object).where(out[col].notna(), None).tolist()
            assert got == ref[col].astype(object).where(ref[col].notna(), None).tolist(), (method, col)


def test_method_reference_gives_the_fast_columns_and_dtypes(tiny_grids):
    rng = np.random.default_rng(8)
    pts = gpd.GeoSeries.from_xy(rng.uniform(X0, X0 + 2 * D, 300), rng.uniform(Y0, Y0 + D, 300), crs=tiny_grids.crs)
    pd.testing.assert_frame_equal(assign_points(pts, tiny_grids, method="reference"), assign_points(pts, tiny_grids))
    with pytest.raises(ValueError, match="method must be"):
        assign_points(pts, tiny_grids, method="sjoin")  # type: ignore[arg-type]
