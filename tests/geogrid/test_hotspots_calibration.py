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

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.stats

import geopandas as gpd

from geogrid import _hotspots_stats as _st
from geogrid.hotspots import MIN_EXPECTED, MIN_INCIDENTS, MIN_NEIGHBOURHOOD, adjust_fdr, gi_star, incident_hotspots

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
