"""Camera placement: the maximal covering problem, greedy against the ILP optimum, re-aiming."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import geopandas as gpd
import shapely

from geogrid.placement import (
    GREEDY_BOUND,
    candidate_sites,
    demand_points,
    place_cameras,
    solve_max_cover,
    suggest_reaim,
)

M = "EPSG:3857"


def brute_force(cand, dem, w, n_cand, k):
    best = 0.0
    for combo in itertools.combinations(range(n_cand), min(k, n_cand)):
        seen = np.unique(dem[np.isin(cand, combo)])
        best = max(best, float(w[seen].sum()))
    return best


@st.composite
def instances(draw):
    n_cand = draw(st.integers(2, 7))
    n_dem = draw(st.integers(1, 12))
    w = np.array(draw(st.lists(st.integers(1, 9), min_size=n_dem, max_size=n_dem)), dtype=float)
    mask = np.array(
        draw(st.lists(st.booleans(), min_size=n_cand * n_dem, max_size=n_cand * n_dem)), dtype=bool
    ).reshape(n_cand, n_dem)
    cand, dem = np.nonzero(mask)
    k = draw(st.integers(1, n_cand))
    return cand, dem, w, n_cand, k


@settings(max_examples=60, deadline=None)
@given(instances())
def test_ilp_is_optimal_and_greedy_within_the_bound(inst):
    cand, dem, w, n_cand, k = inst
    opt = brute_force(cand, dem, w, n_cand, k)
    picks, gains, value, method, _bound = solve_max_cover((cand, dem), w, n_cand, k, method="ilp")
    assert method == "ilp"
    assert value == pytest.approx(opt)
    assert len(picks) <= k
    _, _, g_value, g_method, g_bound = solve_max_cover((cand, dem), w, n_cand, k, method="greedy")
    assert g_method == "greedy"
    assert g_value >= GREEDY_BOUND * opt - 1e-9
    assert g_bound >= opt - 1e-9  # the stated upper bound really bounds the optimum
    assert sum(gains) == pytest.approx(value)


def test_greedy_is_usually_close_to_the_optimum():
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(30):
        n_cand, n_dem = 30, 200
        mask = rng.random((n_cand, n_dem)) < 0.06
        cand, dem = np.nonzero(mask)
        w = rng.integers(1, 10, n_dem).astype(float)
        opt = solve_max_cover((cand, dem), w, n_cand, 5, method="ilp")[2]
        greedy = solve_max_cover((cand, dem), w, n_cand, 5, method="greedy")[2]
        ratios.append(greedy / opt)
    assert min(ratios) >= GREEDY_BOUND
    assert np.median(ratios) > 0.95


def test_greedy_can_be_worse_than_the_ilp():
    # The classic trap: one big set first, then two halves are better.
    cand = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    dem = np.array([1, 2, 4, 5, 0, 1, 2, 3, 4, 5])
    w = np.ones(6)
    assert solve_max_cover((cand, dem), w, 3, 2, method="greedy")[2] == 5.0
    assert solve_max_cover((cand, dem), w, 3, 2, method="ilp")[2] == 6.0


def cams(rows):
    x, y, h, f, r = (list(c) for c in zip(*rows, strict=True))
    return gpd.GeoDataFrame(
        {"heading_deg": h, "fov_deg": f, "range_m": r, "status": ["online"] * len(rows)},
        geometry=gpd.points_from_xy(x, y),
        crs=M,
    )


def test_existing_cameras_stay_and_are_not_counted_again():
    dem = gpd.GeoDataFrame({"weight": [1.0, 1.0, 5.0]}, geometry=gpd.points_from_xy([10, 0, -30], [0, 10, 0]), crs=M)
    cand = cams([(0, 0, 90, 90, 20), (0, 0, 270, 90, 40)])
    existing = cams([(0, 0, 0, 360, 15)])
    r = place_cameras(cand, dem, k=1, existing=existing)
    assert r.total == 5.0
    assert r.sites.index.tolist() == [1]
    assert r.seen == 5.0


@pytest.mark.parametrize("method", ["ilp", "greedy"])
def test_place_cameras_on_the_demo(demo_district, method):
    d = demo_district
    sub = d.grids[d.grids["grid_id"].str.startswith("D01-S01-C01")]
    streets = d.streets.clip(sub.union_all().buffer(0.001))
    cand = candidate_sites(streets, spacing_m=60)
    dem = demand_points(sub, weight="incidents", incidents=d.incidents)
    r = place_cameras(cand, dem, k=5, existing=d.cameras, method=method)
    assert r.method == method
    assert len(r.sites) <= 5
    assert 0 < r.seen <= r.total
    assert r.seen <= r.upper_bound + 1e-9
    assert r.sites["gain"].is_monotonic_decreasing


def test_demand_points_weights():
    g = gpd.GeoDataFrame(
        {"grid_id": ["a", "b"]}, geometry=[shapely.box(0, 0, 40, 40), shapely.box(40, 0, 80, 40)], crs=M
    )
    area = demand_points(g, weight="area", cell_m=10)
    assert area["weight"].sum() == pytest.approx(3200)
    import pandas as pd

    hot = demand_points(g, weight="hotspots", hotspot_weight=pd.Series({"b": 2.0}), cell_m=10)
    assert set(hot["grid_id"]) == {"b"}
    assert hot["weight"].sum() == pytest.approx(3200)
    with pytest.raises(ValueError, match="needs incidents"):
        demand_points(g, weight="incidents")


def test_suggest_reaim_turns_a_camera_towards_unseen_weight():
    c = cams([(0, 0, 0, 60, 50), (0, 0, 180, 60, 50)])
    dem = gpd.GeoDataFrame({"weight": [1.0, 1.0, 3.0]}, geometry=gpd.points_from_xy([0, 0, 30], [20, -20, 0]), crs=M)
    out = suggest_reaim(c, dem, step_deg=10)
    top = out.iloc[0]
    assert top["best_heading_deg"] in (70.0, 80.0, 90.0, 100.0, 110.0)
    assert top["gain_now"] == 1.0
    assert top["gain_best"] == 3.0
