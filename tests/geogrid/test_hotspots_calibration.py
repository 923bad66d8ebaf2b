"""Calibration and power of the default Gi* (normal p, FDR) on the demo's 990 basic grids, fixed seeds.

Null: homogeneous Poisson counts (the same mean in every basic grid), 200 seeded replicates
per total, queen weights computed once; the z-scores of all replicates in one vectorised step
(the same arithmetic as :func:`geogrid.hotspots.gi_star`, checked on one replicate). Power:
the demo's planted persistent and emerging hot spots, each window's counts redrawn as Poisson
around what the demo holds. BENCHMARKS.md records the same figures at 2,000 replicates.
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


@pytest.fixture(scope="module")
def basic(demo_grids):
    from libpysal import graph

    g = demo_grids[demo_grids["level"] == 3]
    w = sp.csr_array(graph.Graph.build_contiguity(g.geometry.reset_index(drop=True), rook=False).sparse)
    return g, w


def null_replicates(basic, total: int, seed: int) -> dict[str, float]:
    g, w = basic
    n = len(g)
    y = np.random.default_rng(seed).poisson(total / n, size=(n, REPLICATES)).astype(float)
    w_star = sp.csr_array(_st._binary_offdiag(w) + sp.eye_array(n, format="csr"))
    _, z = _st._gi_star_z(y, w_star)
    p = 2 * scipy.stats.norm.sf(np.abs(z))
    # the vectorised core is gi_star's arithmetic: one replicate through the public function
    one = gi_star(y[:, 0], g, weights=w, min_total=MIN_INCIDENTS, min_expected=MIN_EXPECTED)
    assert one["withheld"].isna().all()
    np.testing.assert_allclose(one["p"].to_numpy(), p[:, 0], rtol=1e-12)
    binned = np.abs(_st._gi_bin(z, p)) >= 2  # hot or cold at 95 %, no FDR
    fdr_any = [(adjust_fdr(p[:, r]) <= 0.05).any() for r in range(REPLICATES)]
    return {"binned_95": float(binned.mean()), "any_after_fdr": float(np.mean(fdr_any))}


@pytest.mark.parametrize("total", [3_000, 20_939, 200_000], ids=["3k", "readme-20939", "200k"])
def test_null_share_binned_at_95_percent_stays_at_5_percent(basic, total):
    got = null_replicates(basic, total, seed=total)
    # nominal 5 %; 0.5 points allow the Monte-Carlo error of 200 replicates of 990 correlated grids
    assert 0.04 <= got["binned_95"] <= 0.055, got


def test_null_with_fdr_any_significant_grid_at_large_counts(basic):
    assert null_replicates(basic, 200_000, seed=5)["any_after_fdr"] <= 0.05


@pytest.mark.xfail(
    strict=True,
    reason="open: the normal p of Poisson neighbourhood sums is too small far in the upper tail "
    "(skew), so with the FDR over 990 grids a replicate holds a false hot spot more often than 5 %: "
    "10.4 % at 3 incidents per grid, 6.8 % at 10, 5.0 % at 21 (BENCHMARKS.md, 2,000 replicates; "
    "these 200 replicates: above 5 % at both)",
)
@pytest.mark.parametrize("total", [3_000, 20_939], ids=["3k", "readme-20939"])
def test_null_with_fdr_any_significant_grid_at_district_counts(basic, total):
    assert null_replicates(basic, total, seed=total)["any_after_fdr"] <= 0.05


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


def test_planted_persistent_and_emerging_hot_spots_are_found(demo_district, basic):
    g, w = basic
    cases = planted_cases(demo_district)
    assert len(cases) == 14  # 4 persistent and 3 emerging spots, each in two windows
    rng = np.random.default_rng(2026)
    found = []
    for _kind, category, since, pos in cases:
        counts = incident_hotspots(
            demo_district.incidents, demo_district.grids, level=3, category=category, since=since
        )
        lam = counts["count"].to_numpy(dtype=float)
        for _ in range(50):
            out = gi_star(
                rng.poisson(lam).astype(float),
                g,
                weights=w,
                min_total=MIN_INCIDENTS,
                min_expected=MIN_EXPECTED,
                min_neighbourhood=MIN_NEIGHBOURHOOD,
            )
            found.append(out["bin"].iloc[pos] >= 2)
    assert np.mean(found) >= 0.9


def test_z_agrees_with_esda_on_the_demo(demo_district, basic):
    import esda
    from libpysal import weights

    _, w = basic
    counts = incident_hotspots(demo_district.incidents, demo_district.grids, level=3, category="占道经营")
    ref = esda.G_Local(
        counts["count"].to_numpy(dtype=float), weights.W.from_sparse(w), transform="B", star=True, permutations=0
    )
    np.testing.assert_allclose(counts["z"].to_numpy(), ref.Zs, rtol=0, atol=1e-9)
    np.testing.assert_allclose(counts["p"].to_numpy(), 2 * ref.p_norm, rtol=1e-9)
