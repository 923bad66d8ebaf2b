"""Calibration and power of Gi* hot spots of counts on the demo's 990 basic grids, fixed seeds.

Nulls: homogeneous Poisson counts (the same mean in every basic grid) and Poisson counts
proportional to the demo's populations, 200 seeded replicates at 1, 3, 10, 20 and 50
incidents per grid; queen weights computed once. The p-values of all replicates come in one
vectorised step (the binomial test's tails, or the normal p of z), with the
withholding rules applied as :func:`geogrid.hotspots.gi_star` applies them — checked
against the public function on two replicates of each case. Power: the demo's planted
persistent and emerging hot spots, each window's counts redrawn as Poisson around what the
demo holds. BENCHMARKS.md records the same figures at 2,000 replicates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.stats

import geopandas as gpd

from geogrid import _hotspots_stats as _st
from geogrid.hotspots import (
    MIN_EXPECTED,
    MIN_INCIDENTS,
    MIN_NEIGHBOURHOOD,
    adjust_fdr,
    emerging_hotspots,
    gi_star,
    incident_clusters,
    incident_hotspots,
    local_moran,
)

REPLICATES = 200
PER_GRID = [1, 3, 10, 20, 50]
MINIMA = {"min_total": MIN_INCIDENTS, "min_expected": MIN_EXPECTED, "min_neighbourhood": MIN_NEIGHBOURHOOD}


@pytest.fixture(scope="module")
def basic(demo_grids):
    from libpysal import graph

    g = demo_grids[demo_grids["level"] == 3]
    w = sp.csr_array(graph.Graph.build_contiguity(g.geometry.reset_index(drop=True), rook=False).sparse)
    return g, w


def null_replicates(
    basic, per_grid: float, seed: int, *, null: str = "homogeneous", p_method: str = "binomial", exposure: bool = False
) -> dict[str, float]:
    """Share of grids binned at 95 % without FDR, and of replicates with any grid significant after FDR."""
    g, w = basic
    n = len(g)
    pop = g["population"].to_numpy(dtype=float)
    lam = per_grid * (pop / pop.mean() if null == "population" else np.ones(n))
    y = np.random.default_rng(seed).poisson(lam[:, None], size=(n, REPLICATES)).astype(float)
    w_star = sp.csr_array(_st._binary_offdiag(w) + sp.eye_array(n, format="csr"))
    if p_method == "binomial":
        p, direction, _, _ = _st._count_test(y, w_star, pop if exposure else None)
    else:
        _, z = _st._gi_star_z(y, w_star)
        p, direction = 2 * scipy.stats.norm.sf(np.abs(z)), np.sign(z)
    # gi_star's withholding rules: those of the whole window depend on the total only
    hood = w_star @ y
    total = y.sum(axis=0)
    card = np.asarray(w_star.sum(axis=1)).ravel()
    held = (hood < MIN_NEIGHBOURHOOD) | (card[:, None] <= 1)
    held |= ((total < MIN_INCIDENTS) | (card.mean() * total / n < MIN_EXPECTED))[None, :]
    p = np.where(held, np.nan, p)
    bins = _st._gi_bin(direction, p)
    for r in (0, 1):  # the vectorised path is gi_star's: two replicates through the public function
        one = gi_star(y[:, r], g, weights=w, fdr=None, p_method=p_method, exposure=pop if exposure else None, **MINIMA)
        np.testing.assert_allclose(one["p"].to_numpy(), p[:, r], rtol=1e-12, equal_nan=True)
        np.testing.assert_array_equal(one["bin"].to_numpy(), bins[:, r])
    fdr_any = [(adjust_fdr(p[:, r]) <= 0.05).any() for r in range(REPLICATES)]
    return {"binned_95": float((np.abs(bins) >= 2).mean()), "any_after_fdr": float(np.mean(fdr_any))}


@pytest.mark.parametrize("per_grid", PER_GRID, ids=[f"{k}-per-grid" for k in PER_GRID])
def test_binomial_default_holds_5_percent_under_homogeneous_poisson(basic, per_grid):
    got = null_replicates(basic, per_grid, seed=per_grid)
    assert got["binned_95"] <= 0.05 and got["any_after_fdr"] <= 0.05, got


@pytest.mark.parametrize("per_grid", PER_GRID, ids=[f"{k}-per-grid" for k in PER_GRID])
def test_binomial_with_population_holds_5_percent_under_population_poisson(basic, per_grid):
    got = null_replicates(basic, per_grid, seed=100 + per_grid, null="population", exposure=True)
    assert got["binned_95"] <= 0.05 and got["any_after_fdr"] <= 0.05, got


def test_raw_counts_under_population_null_find_where_people_live(basic):
    """Why the population option exists: without it, the populated grids are "hot spots"."""
    got = null_replicates(basic, 20, seed=120, null="population")
    assert got["binned_95"] > 0.05 and got["any_after_fdr"] > 0.5, got


@pytest.mark.parametrize("per_grid", [3, 20, 200], ids=["3-per-grid", "20-per-grid", "200-per-grid"])
def test_normal_option_share_binned_at_95_percent_stays_at_5_percent(basic, per_grid):
    got = null_replicates(basic, per_grid, seed=per_grid, p_method="normal")
    # nominal 5 %; 0.5 points allow the Monte-Carlo error of 200 replicates of 990 correlated grids
    assert 0.04 <= got["binned_95"] <= 0.055, got


def test_normal_option_with_fdr_holds_only_at_large_counts(basic):
    """ArcGIS's normal p stays available; with the FDR it is calibrated at large counts, not small ones."""
    assert null_replicates(basic, 200, seed=5, p_method="normal")["any_after_fdr"] <= 0.05
    assert null_replicates(basic, 3, seed=3, p_method="normal")["any_after_fdr"] > 0.05


def test_null_quiet_windows_bin_nothing(basic):
    g, w = basic
    rng = np.random.default_rng(11)
    for _ in range(20):
        y = rng.poisson(150 / len(g), len(g)).astype(float)  # a quiet week of one category
        out = gi_star(
            y,
            g,
            weights=w,
            min_total=MIN_INCIDENTS,
            min_expected=MIN_EXPECTED,
            min_neighbourhood=MIN_NEIGHBOURHOOD,
        )
        assert (out["bin"] == 0).all() and (out["withheld"] == "sparse").all()


def planted_cases(demo) -> list[tuple[str, str, str | None, int]]:
    """(kind, category, since, position of the basic grid holding the spot's centre)."""
    truth = pd.DataFrame(demo.metadata["demo_hotspots"])
    basic = demo.grids[demo.grids["level"] == 3].reset_index(drop=True)
    pts = gpd.GeoSeries(gpd.points_from_xy(truth["lon"], truth["lat"]), crs=4326).to_crs(basic.crs)
    hit = basic.sindex.query(pts.values, predicate="within")
    where = dict(zip(hit[0], hit[1], strict=True))
    cases = []
    for k, row in truth.iterrows():
        if row["kind"] in ("persistent", "emerging"):
            whole = None if row["kind"] == "persistent" else "2025-10-01"  # emerging: the quarter it rises in
            cases += [
                (row["kind"], row["category"], whole, where[k]),
                (row["kind"], row["category"], "2025-12-01", where[k]),
            ]
    return cases


@pytest.mark.parametrize("population", [False, True], ids=["counts", "per-resident"])
def test_planted_persistent_and_emerging_hot_spots_are_found(demo_district, basic, population):
    g, w = basic
    cases = planted_cases(demo_district)
    assert len(cases) == 14  # 4 persistent and 3 emerging spots, each in two windows
    pop = g["population"].to_numpy(dtype=float) if population else None
    rng = np.random.default_rng(2026)
    found = []
    for _kind, category, since, pos in cases:
        counts = incident_hotspots(
            demo_district.incidents, demo_district.grids, level=3, category=category, since=since
        )
        lam = counts["count"].to_numpy(dtype=float)
        for _ in range(50):
            out = gi_star(rng.poisson(lam).astype(float), g, weights=w, p_method="binomial", exposure=pop, **MINIMA)
            found.append(out["bin"].iloc[pos] >= 2)
    assert np.mean(found) >= 0.9


def test_z_agrees_with_esda_on_the_demo(demo_district, basic):
    import esda
    from libpysal import weights

    _, w = basic
    default = incident_hotspots(demo_district.incidents, demo_district.grids, level=3, category="占道经营")
    normal = incident_hotspots(
        demo_district.incidents, demo_district.grids, level=3, category="占道经营", p_method="normal"
    )
    ref = esda.G_Local(
        default["count"].to_numpy(dtype=float), weights.W.from_sparse(w), transform="B", star=True, permutations=0
    )
    np.testing.assert_allclose(default["z"].to_numpy(), ref.Zs, rtol=0, atol=1e-9)
    np.testing.assert_allclose(normal["z"].to_numpy(), ref.Zs, rtol=0, atol=1e-9)
    np.testing.assert_allclose(normal["p"].to_numpy(), 2 * ref.p_norm, rtol=1e-9)


# -- Local Moran: the binomial test of the neighbours' sum given the grid's count ----------------------------
# 500 replicates: the familywise rate is ~3 % (BENCHMARKS.md, 2,000 replicates), and 200 replicates have a
# Monte-Carlo error of 1.2 points (one seed of 200 gave 6.0 % where 1,000 replicates of two seeds gave 2.6-2.9 %).
MORAN_REPLICATES = 500


def moran_null(basic, per_grid: float, seed: int, *, p_method: str = "binomial") -> dict[str, float]:
    """Share of grids in a significant cluster (any quadrant) at 95 % without FDR, and of replicates with any after FDR."""
    g, w = basic
    n = len(g)
    y = np.random.default_rng(seed).poisson(per_grid, size=(n, MORAN_REPLICATES)).astype(float)
    adj = _st._binary_offdiag(w)
    w_star = sp.csr_array(adj + sp.eye_array(n, format="csr"))
    if p_method == "binomial":
        p, _, _, _ = _st._neighbour_count_test(y, w_star)
    else:
        p = np.column_stack([_st._local_moran(c, adj, permutations=0, seed=0).p_norm for c in y.T])
    hood = w_star @ y
    total = y.sum(axis=0)
    card = np.asarray(w_star.sum(axis=1)).ravel()
    held = (hood < MIN_NEIGHBOURHOOD) | (card[:, None] <= 1)
    held |= ((total < MIN_INCIDENTS) | (card.mean() * total / n < MIN_EXPECTED))[None, :]
    p = np.where(held, np.nan, p)
    for r in (0, 1):  # the vectorised path is local_moran's: two replicates through the public function
        one = local_moran(y[:, r], g, weights=w, fdr=None, p_method=p_method, **MINIMA)
        np.testing.assert_allclose(one["p"].to_numpy(), p[:, r], rtol=1e-9, equal_nan=True)
        np.testing.assert_array_equal(one["cluster"].isin(["HH", "LL", "HL", "LH"]).to_numpy(), p[:, r] <= 0.05)
    fdr_any = [(adjust_fdr(p[:, r]) <= 0.05).any() for r in range(REPLICATES)]
    return {
        "binned_95": float(np.nanmean(np.where(np.isnan(p), 0.0, p <= 0.05))),
        "any_after_fdr": float(np.mean(fdr_any)),
    }


@pytest.mark.parametrize("per_grid", [1, 3, 10], ids=["1-per-grid", "3-per-grid", "10-per-grid"])
def test_local_moran_binomial_holds_5_percent_under_homogeneous_poisson(basic, per_grid):
    got = moran_null(basic, per_grid, seed=200 + per_grid)
    assert got["binned_95"] <= 0.05 and got["any_after_fdr"] <= 0.05, got


def test_local_moran_normal_option_over_alarms_on_small_counts(basic):
    """Why the binomial test is the default for counts: I is a product of counts, far from normal."""
    assert moran_null(basic, 1, seed=201, p_method="normal")["any_after_fdr"] > 0.1


@pytest.mark.parametrize("population", [False, True], ids=["counts", "per-resident"])
def test_planted_persistent_and_emerging_hot_spots_are_high_high_clusters(demo_district, basic, population):
    """Found: the planted spot's grid in an HH cluster after FDR, its counts redrawn as Poisson 50 times.

    The issue's goal (>= 90 % over the 14 cases) is met by Gi* but not by Local Moran: 87.5 %
    (BENCHMARKS.md). Local Moran tests the neighbours given the grid's own count, so a spot
    concentrated in one grid weighs less: in December 小广告 (dispersion 22.6) its neighbours'
    p is 0.003, 0.13 after FDR (Gi*: 0.013); 养犬管理 in December is withheld as sparse, as for
    Gi*. The whole-window cases are all found.
    """
    g, w = basic
    cases = planted_cases(demo_district)
    pop = g["population"].to_numpy(dtype=float) if population else None
    rng = np.random.default_rng(2027)
    found: dict[bool, list[bool]] = {True: [], False: []}
    for _kind, category, since, pos in cases:
        counts = incident_clusters(
            demo_district.incidents, demo_district.grids, level=3, category=category, since=since
        )
        lam = counts["count"].to_numpy(dtype=float)
        for _ in range(50):
            out = local_moran(rng.poisson(lam).astype(float), g, weights=w, p_method="binomial", exposure=pop, **MINIMA)
            found[since != "2025-12-01"].append(out["cluster"].iloc[pos] == "HH")
    assert np.mean(found[True]) >= 0.95, np.mean(found[True])
    assert np.mean(found[True] + found[False]) >= 0.85, np.mean(found[True] + found[False])


# -- emerging hot spots: the binomial test of each space-time bin ------------------------------------------------
MONTHS = 12


def cube_null(basic, per_bin: float, seed: int, *, p_method: str = "binomial") -> dict[str, Any]:
    """Share of grid-months hot or cold at 95 % without FDR, of replicates with any after FDR (any pattern)."""
    g, w = basic
    n = len(g)
    star = sp.csr_array(_st._space_time_adjacency(w, MONTHS, 1) + sp.eye_array(n * MONTHS, format="csr"))
    y = np.random.default_rng(seed).poisson(per_bin, size=(n * MONTHS, REPLICATES)).astype(float)
    if p_method == "binomial":
        p, direction, _, _ = _st._count_test(y, star)
    else:
        _, z = _st._gi_star_z(y, star)
        p, direction = 2 * scipy.stats.norm.sf(np.abs(z)), np.sign(z)
    hood = star @ y
    total = y.sum(axis=0)
    card = np.asarray(star.sum(axis=1)).ravel()
    held = (hood < MIN_NEIGHBOURHOOD) | (card[:, None] <= 1)
    held |= ((total < MIN_INCIDENTS) | (card.mean() * total / (n * MONTHS) < MIN_EXPECTED))[None, :]
    p = np.where(held, np.nan, p)
    q = np.column_stack([adjust_fdr(p[:, r]) for r in range(REPLICATES)])
    return {
        "binned_95": float(np.mean(np.where(np.isnan(p), False, p < 0.05))),
        "any_after_fdr": float(np.mean((q < 0.05).any(axis=0))),
        "y": y,
        "hot": (q < 0.05) & (direction > 0),
        "cold": (q < 0.05) & (direction < 0),
    }


def incidents_of_cube(g: gpd.GeoDataFrame, cube: np.ndarray) -> gpd.GeoDataFrame:
    """One incident per count, at its grid's representative point, on the 15th of its month of 2025 (local noon)."""
    grid, month = np.nonzero(cube)
    k = cube[grid, month].astype(np.int64)
    grid, month = np.repeat(grid, k), np.repeat(month, k)
    xy = g.geometry.representative_point().to_numpy()[grid]
    when = pd.to_datetime([f"2025-{m + 1:02d}-15 12:00" for m in month]).tz_localize("Asia/Shanghai").tz_convert("UTC")
    return gpd.GeoDataFrame({"reported_at": when, "category": "x"}, geometry=xy, crs=g.crs)


@pytest.mark.parametrize("per_bin", [1, 3, 10], ids=["1-per-grid-month", "3-per-grid-month", "10-per-grid-month"])
def test_emerging_bins_hold_5_percent_under_homogeneous_poisson(basic, per_bin):
    g, w = basic
    got = cube_null(basic, per_bin, seed=300 + per_bin)
    assert got["binned_95"] <= 0.05 and got["any_after_fdr"] <= 0.05, {
        k: got[k] for k in ("binned_95", "any_after_fdr")
    }
    # the vectorised path is emerging_hotspots': one replicate through the public function, from incidents
    cube = got["y"][:, 0].reshape(len(g), MONTHS)
    one = emerging_hotspots(incidents_of_cube(g, cube), g, weights=w, since="2025-01-01", until="2025-12-31")
    hot, cold = got["hot"][:, 0].reshape(-1, MONTHS), got["cold"][:, 0].reshape(-1, MONTHS)
    history = np.where(hot, "H", np.where(cold, "C", "."))
    assert [h.replace("-", ".") for h in one["history"]] == ["".join(r) for r in history]
    assert (one["pattern"] != "no pattern").sum() == (hot | cold).any(axis=1).sum()


def test_emerging_normal_option_over_alarms_on_small_counts(basic):
    assert cube_null(basic, 1, seed=301, p_method="normal")["any_after_fdr"] > 0.1


EMERGING = {"new hot spot", "consecutive hot spot", "intensifying hot spot"}
PERSISTENT = {"persistent hot spot", "intensifying hot spot", "diminishing hot spot"}


def test_planted_persistent_and_emerging_hot_spots_get_their_category(demo_district, basic):
    """Each planted spot's monthly counts redrawn as Poisson around the demo's 30 times; its grid's category counted."""
    from geogrid import _hotspots_data as _data
    from geogrid.hotspots import _emerging

    g, w = basic
    truth = pd.DataFrame(demo_district.metadata["demo_hotspots"])
    cases = [
        (kind, cat, pos)
        for kind, cat, since, pos in planted_cases(demo_district)
        if since is None or kind == "emerging"
    ]
    cases = list(dict.fromkeys((k, c, p) for k, c, p in cases))
    assert len(cases) == 7 and len(truth) > 7
    rng = np.random.default_rng(2028)
    found = []
    for kind, category, pos in cases:
        inc = _data._filter_incidents(
            demo_district.incidents, category=category, since=None, until=None, tz="Asia/Shanghai"
        )
        per = _data._periods(inc["reported_at"], "M", "Asia/Shanghai")
        lam, _ = _data._cube(_data._assign(inc, g), per, len(g), None)
        assert lam.shape[1] == MONTHS
        for _ in range(30):
            r = _emerging(
                rng.poisson(lam).astype(float),
                w,
                time_lag=1,
                alpha=0.05,
                fdr=True,
                min_share=0.9,
                strict=False,
                p_method="binomial",
                exposure=None,
                ids=g["grid_id"].to_numpy(),
                permutations=0,
                seed=0,
                minima=(MIN_INCIDENTS, MIN_EXPECTED, MIN_NEIGHBOURHOOD),
            )
            found.append(r["pattern"][pos] in (EMERGING if kind == "emerging" else PERSISTENT))
    assert np.mean(found) >= 0.9, np.mean(found)
