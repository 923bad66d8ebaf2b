"""The array kernels behind repair and the edge-twin pass, each against the plain call it stands for.

Every one is a speed-up of a one-line reference (an STRtree query, ``np.isin``, ``np.unique``, a
sort): on generated points and segments with the cases that break hashing and bucketing -- exact
duplicates, -0.0 beside 0.0, NaN, points exactly the distance apart, points on bucket edges,
coordinates too far apart for the bucket key -- the answers must be equal.
"""

from __future__ import annotations

import numpy as np
import pytest

import shapely

from geogrid import _hierarchy_impl as himpl
from geogrid import _repair_impl as impl


def _pairs_reference(xy: np.ndarray, distance: float) -> set[tuple[int, int]]:
    pts = shapely.points(xy)
    a, b = shapely.STRtree(pts).query(pts, predicate="dwithin", distance=distance)
    return {(int(i), int(j)) for i, j in zip(a, b, strict=True) if i < j}


def _points(kind: str, seed: int) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(seed)
    d = float(rng.choice([0.5, 1.0, 0.3]))
    if kind == "uniform":
        xy = rng.uniform(-200, 200, (3000, 2))
    elif kind == "lattice":  # neighbours exactly d apart (d exact in binary), on bucket edges
        d = 0.5
        g = np.arange(-20, 21) * d
        xy = np.column_stack([np.repeat(g, g.size), np.tile(g, g.size)])
    elif kind == "clusters":  # near-coincident vertices, as a jittered coverage has
        centre = rng.uniform(0, 100, (300, 2))
        xy = np.repeat(centre, 4, axis=0) + rng.normal(0, d / 2, (1200, 2))
    elif kind == "diagonal":  # pairs at exactly d along a diagonal, where rounding decides
        t = rng.uniform(0, 1000, 500)
        xy = np.concatenate([np.column_stack([t, t]), np.column_stack([t + d / np.sqrt(2), t + d / np.sqrt(2)])])
    else:  # "far": two clusters too far apart for the int64 bucket key: the STRtree fallback
        xy = np.concatenate([rng.uniform(0, 2, (50, 2)), rng.uniform(0, 2, (50, 2)) + 1e300])
    return np.unique(xy, axis=0), d  # near_pairs takes distinct points


@pytest.mark.parametrize("kind", ["uniform", "lattice", "clusters", "diagonal", "far"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_near_pairs_equal_the_strtree_dwithin_pairs(kind, seed):
    xy, d = _points(kind, seed)
    a, b = impl.near_pairs(xy, d)
    got = list(zip(a.tolist(), b.tolist(), strict=True))
    assert len(got) == len(set(got))  # each pair once
    assert set(got) == _pairs_reference(xy, d)
    if kind == "lattice":
        assert len(got) >= 2 * 40 * 41  # the pairs exactly d apart are in


def test_near_pairs_of_fewer_than_two_points():
    for xy in (np.zeros((0, 2)), np.array([[1.0, 2.0]])):
        a, b = impl.near_pairs(xy, 0.5)
        assert a.size == b.size == 0


@pytest.mark.parametrize("seed", range(4))
def test_isin_float_equals_np_isin(seed):
    rng = np.random.default_rng(seed)
    pool = np.round(rng.uniform(-5, 5, 400), 1)
    values = np.concatenate([np.round(rng.uniform(-6, 6, 1000), 1), [0.0, -0.0, np.nan, np.inf, -np.inf]])
    pool = np.concatenate([pool, [-0.0, np.nan, np.inf]])
    np.testing.assert_array_equal(impl.isin_float(values, pool), np.isin(values, pool))


@pytest.mark.parametrize("seed", range(4))
def test_rows_in_equals_a_bytewise_isin(seed):
    rng = np.random.default_rng(seed)
    pool = np.round(rng.uniform(-3, 3, (500, 4)), 0) + 0.0  # keys as _segment_keys gives them: -0.0 as 0.0
    key = np.concatenate([pool[rng.choice(500, 300)], np.round(rng.uniform(-3, 3, (300, 4)), 0) + 0.0])
    void = np.dtype((np.void, 32))
    expected = np.isin(
        np.ascontiguousarray(key + 0.0).view(void).ravel(), np.ascontiguousarray(pool + 0.0).view(void).ravel()
    )
    np.testing.assert_array_equal(impl._rows_in(key, pool), expected)


def test_rows_in_survives_a_hash_collision(monkeypatch):
    pool = np.array([[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0]])
    key = np.array([[1.0, 0.0, 1.0, 1.0], [2.0, 0.0, 2.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    monkeypatch.setattr(himpl, "_HASH_MUL", np.uint64(0))  # every row hashes alike: the sort takes over
    np.testing.assert_array_equal(impl._rows_in(key, pool), [True, False, True])


@pytest.mark.parametrize("seed", range(4))
def test_unique_xy_grouped_equals_np_unique(seed):
    rng = np.random.default_rng(seed)
    xy = np.round(rng.uniform(-10, 10, (2000, 2)), 0)
    xy[1000:] = xy[:1000]  # every point twice
    uniq, inverse, order = impl.unique_xy_grouped(xy)
    u_ref, inv_ref = np.unique(xy, axis=0, return_inverse=True)
    np.testing.assert_array_equal(uniq, u_ref)
    np.testing.assert_array_equal(inverse, inv_ref.ravel())
    np.testing.assert_array_equal(order, np.argsort(inv_ref.ravel(), kind="stable"))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("grouped", [False, True])
def test_twinned_by_hash_table_equals_the_exact_sort(seed, grouped):
    """Shared exactly twice in its group, once each way: the hash-table path against the lexicographic sort."""
    rng = np.random.default_rng(seed)
    key = np.round(rng.uniform(0, 4, (600, 4)), 0)
    key = np.concatenate([key, key[:300], key[:40]])  # twins, and triples that are no twins
    key[::9, 0] = -0.0 * key[::9, 0]  # -0.0 where 0.0 was: the same segment
    forward = rng.random(len(key)) < 0.5
    group = rng.integers(0, 3, len(key)) if grouped else None
    order = np.lexsort(
        (key[:, 3] + 0.0, key[:, 2] + 0.0, key[:, 1] + 0.0, key[:, 0] + 0.0) + (() if group is None else (group,))
    )
    k = key[order] + 0.0
    start = np.ones(len(k), dtype=bool)
    start[1:] = (k[1:] != k[:-1]).any(axis=1)
    if group is not None:
        start[1:] |= group[order][1:] != group[order][:-1]
    run = np.cumsum(start) - 1
    good = (np.bincount(run) == 2) & (np.bincount(run, weights=forward[order]) == 1)
    expected = np.empty(len(key), dtype=bool)
    expected[order] = good[run]
    np.testing.assert_array_equal(himpl.twinned(key, forward, group), expected)


def test_ranges_equal_the_concatenated_aranges():
    rng = np.random.default_rng(0)
    start = rng.integers(0, 50, 200)
    count = rng.integers(0, 5, 200)  # empty ranges too
    expected = np.concatenate([np.arange(s, s + c) for s, c in zip(start, count, strict=True)])
    np.testing.assert_array_equal(impl.ranges(start, count), expected)
    assert impl.ranges(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)).size == 0


def _short_edge_beside_a_ulp_anchor() -> tuple[np.ndarray, np.ndarray, himpl.Frame, tuple[float, float], float]:
    """A child square with a 0.48 m edge on its bottom side, and its parent's ring whose vertex at the
    edge's right end lies one ULP off (what re-noding the parent level leaves, seed 11001577)."""
    from pyproj import CRS

    from layers.crs import metric_crs

    x0, y0 = 500000.0, 4000000.0
    a, b = (x0 + 50.0, y0), (x0 + 50.48, y0)
    p = (float(np.nextafter(b[0], np.inf)), y0)
    child = shapely.Polygon([(x0, y0), a, b, (x0 + 100, y0), (x0 + 100, y0 + 100), (x0, y0 + 100)])
    parent = shapely.LinearRing([(x0, y0), p, (x0 + 100, y0), (x0 + 100, y0 + 100), (x0, y0 + 100)])
    frame = himpl.Frame.build(CRS.from_epsg(32650), np.array(child.bounds), None, metric_crs)
    return np.array([child], dtype=object), np.array([parent], dtype=object), frame, a, p[0]


def test_a_settled_place_is_one_up_to_rounding():
    """Both ends of the short edge are settled; the parent's vertex a ULP from one end joins that end and
    keeps the other (0.48 m away, within snap_m) where it is."""
    geoms, anchors, frame, a, px = _short_edge_beside_a_ulp_anchor()
    xy = shapely.get_coordinates(geoms)
    settled = xy[:, 0] + 1j * xy[:, 1]
    out, moved_n, moved_d, _ = impl.snap_vertices(geoms, anchors, frame, 1.0, settled=settled)
    got = shapely.get_coordinates(out)
    assert tuple(got[1]) == a  # the settled end away from the anchor stays
    assert got[2, 0] == px  # the end a ULP from the anchor joins it
    assert moved_n.tolist() == [1] and moved_d[0] < 1e-9


def test_without_settled_ends_the_short_edge_snaps_shut():
    """The control: nothing settled, so the 0.48 m edge is a near miss and both ends go to the anchor."""
    geoms, anchors, frame, _, px = _short_edge_beside_a_ulp_anchor()
    out, moved_n, _, _ = impl.snap_vertices(geoms, anchors, frame, 1.0)
    got = shapely.get_coordinates(out)
    assert got[1, 0] == got[2, 0] == px
    assert moved_n.tolist() == [2]
