"""Hot spots: agreement with esda / pymannkendall / pointpats, FDR, bins, emerging categories, Knox, KDE."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import scipy.stats

import geopandas as gpd
import shapely

from geogrid import _hotspots_stats as _st
from geogrid.hotspots import (
    adjust_fdr,
    closing_time_hotspots,
    emerging_hotspots,
    gi_star,
    incident_clusters,
    incident_hotspots,
    kernel_density,
    knox_test,
    local_moran,
    mann_kendall,
)
from layers.errors import NotFoundError, SchemaError

CELL = 200.0  # metres


def lattice(n: int, *, level: int = 3) -> gpd.GeoDataFrame:
    """An n x n square lattice of 200 m cells in EPSG:3857, on a non-default index."""
    xs, ys = np.meshgrid(np.arange(n), np.arange(n))
    x, y = xs.ravel() * CELL, ys.ravel() * CELL
    return gpd.GeoDataFrame(
        {"grid_id": [f"g{i:04d}" for i in range(n * n)], "level": level},
        geometry=shapely.box(x, y, x + CELL, y + CELL),
        index=pd.RangeIndex(100, 100 + n * n),
        crs="EPSG:3857",
    )


def esda_weights(grids, kind):
    from libpysal import graph, weights

    if kind == "distance":
        g = graph.Graph.build_distance_band(grids.centroid.reset_index(drop=True), 450.0, binary=True)
        return weights.W.from_sparse(g.sparse), 450.0
    w = weights.Rook if kind == "rook" else weights.Queen
    return w.from_dataframe(grids.reset_index(drop=True), use_index=False), kind


def _plain_python(modules):
    """Swap every numba dispatcher in ``modules`` for the Python function it compiles; return the undo list."""
    import numba.core.registry

    swapped = []
    for mod in modules:
        for name, obj in list(vars(mod).items()):
            if isinstance(obj, numba.core.registry.CPUDispatcher):
                swapped.append((mod, name, obj))
                setattr(mod, name, obj.py_func)
            elif obj is numba.boolean:  # a dtype inside the kernels
                swapped.append((mod, name, obj))
                setattr(mod, name, np.bool_)
    return swapped


def esda_call(cls, *args, **kwargs):
    """Run esda as its plain-Python path: exact IEEE arithmetic, the reference our engine reproduces.

    With numba installed esda compiles its permutation kernels with ``fastmath=True``: the
    permuted local sums are reassociated, so exact ties with the observed statistic (frequent
    with counts) fall either way and a few p_sim counts move by one or two (seen with esda 2.9
    and numba 0.68 on the Poisson counts below).
    """
    import esda.crand
    import esda.getisord
    import esda.moran

    # esda's conditional randomisation warns that its default alternative will change
    # (DeprecationWarning); G_Local cannot pass `alternative`, so the warning is silenced here only.
    swapped = _plain_python([esda.crand, esda.getisord, esda.moran])
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The alternative hypothesis", category=DeprecationWarning)
            return cls(*args, **kwargs)
    finally:
        for mod, name, obj in swapped:
            setattr(mod, name, obj)


def values(kind: str, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = rng.poisson(3, n).astype(float) if kind == "counts" else rng.lognormal(size=n)
    y[:5] += 20  # a hot corner
    return y


# -- agreement with esda --------------------------------------------------------------------------------
@pytest.mark.parametrize("wkind", ["queen", "rook", "distance"])
@pytest.mark.parametrize("ykind", ["counts", "continuous"])
def test_gi_star_agrees_with_esda(wkind, ykind):
    import esda

    grids = lattice(18)
    w, ours_w = esda_weights(grids, wkind)
    y = values(ykind, len(grids))
    ref = esda_call(esda.G_Local, y, w, transform="B", star=True, permutations=999, seed=7, n_jobs=1)
    got = gi_star(y, grids, weights=ours_w, permutations=999, seed=7)
    np.testing.assert_allclose(got["z"].to_numpy(), ref.Zs, rtol=0, atol=1e-9)
    # esda keeps p_sim as float32: compare the permutation counts behind it.
    np.testing.assert_array_equal(np.rint(got["p_sim"].to_numpy() * 1000), np.rint(ref.p_sim.astype(float) * 1000))
    normal = gi_star(y, grids, weights=ours_w)
    np.testing.assert_allclose(normal["z"].to_numpy(), ref.Zs, rtol=0, atol=1e-9)
    # the default p is the two-sided normal p of the same z (esda's p_norm is one-tailed)
    np.testing.assert_allclose(normal["p"].to_numpy(), 2 * ref.p_norm, rtol=1e-12, atol=1e-15)
    assert "p_sim" not in normal.columns


def test_gi_star_p_depends_on_seed_and_repeats_with_it():
    grids = lattice(12)
    y = values("continuous", len(grids))
    a = gi_star(y, grids, permutations=999, seed=3)["p"]
    b = gi_star(y, grids, permutations=999, seed=3)["p"]
    c = gi_star(y, grids, permutations=999, seed=4)["p"]
    pd.testing.assert_series_equal(a, b)
    assert (a != c).any()


@pytest.mark.parametrize("ykind", ["counts", "continuous"])
def test_local_moran_agrees_with_esda(ykind):
    import esda

    grids = lattice(16)
    w, _ = esda_weights(grids, "queen")
    y = values(ykind, len(grids), seed=5)
    ref = esda_call(esda.Moran_Local, y, w, transformation="r", permutations=999, seed=11, n_jobs=1)
    got = local_moran(y, grids, permutations=999, seed=11)
    np.testing.assert_allclose(got["i"].to_numpy(), ref.Is, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(got["p_sim"].to_numpy(), ref.p_sim)
    # the analytic z: Anselin's I (n/(n-1) of esda's) against esda's conditional moments
    z_ref = (ref.Is * len(y) / (len(y) - 1) - ref.EIc) / np.sqrt(ref.VIc)
    np.testing.assert_allclose(got["z"].to_numpy(), z_ref, rtol=1e-9, atol=1e-12)
    normal = local_moran(y, grids)
    np.testing.assert_allclose(normal["p"].to_numpy(), 2 * scipy.stats.norm.sf(np.abs(z_ref)), rtol=1e-9)
    quads = np.array(["HH", "LH", "LL", "HL"])[ref.q - 1]
    np.testing.assert_array_equal(got["quadrant"].to_numpy(), quads)


def test_local_moran_finds_the_planted_cluster_and_outlier():
    grids = lattice(15)
    y = np.full(len(grids), 5.0) + np.random.default_rng(0).normal(0, 0.5, len(grids))
    block = [r * 15 + c for r in range(2, 5) for c in range(2, 5)]
    y[block] = 40.0
    y[7 * 15 + 10] = 60.0  # a lone high among lows
    got = local_moran(y, grids, seed=0, fdr=None)
    assert (got["cluster"].to_numpy()[block] == "HH").all()
    # the lone high is an outlier by quadrant; among mostly low values it is no surprise
    assert got["quadrant"].to_numpy()[7 * 15 + 10] == "HL"


# -- FDR and bins ---------------------------------------------------------------------------------------
def test_fdr_on_known_p_values():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.060, 0.074, 0.205, 0.212, 0.216])
    q = adjust_fdr(p)
    # by hand: p_(i) * m / i, then a running minimum from the top
    expected = np.minimum.accumulate((p * 10 / np.arange(1, 11))[::-1])[::-1]
    np.testing.assert_allclose(q, expected)
    np.testing.assert_allclose(q, scipy.stats.false_discovery_control(p, method="bh"))
    assert (q <= 0.05).sum() == 2
    shuffled = np.array([5, 0, 9, 3, 1, 8, 2, 7, 4, 6])
    np.testing.assert_allclose(adjust_fdr(p[shuffled]), q[shuffled])
    with_nan = adjust_fdr([0.01, np.nan, 0.02])
    assert np.isnan(with_nan[1])
    np.testing.assert_allclose(with_nan[[0, 2]], [0.02, 0.02])


@pytest.mark.parametrize(
    ("z", "p", "expected"),
    [
        (3.0, 0.005, 3),
        (3.0, 0.01, 2),
        (2.0, 0.049, 2),
        (1.7, 0.05, 1),
        (1.7, 0.099, 1),
        (1.0, 0.1, 0),
        (-2.9, 0.003, -3),
        (-2.0, 0.04, -2),
        (-1.7, 0.09, -1),
    ],
    ids=lambda v: str(v),
)
def test_gi_bin_thresholds(z, p, expected):
    assert _st._gi_bin(np.array([z]), np.array([p]))[0] == expected


def test_gi_star_finds_a_planted_hot_spot_keeps_index_and_crs():
    grids = lattice(20)
    rng = np.random.default_rng(2)
    y = rng.poisson(4, len(grids)).astype(float)
    block = [r * 20 + c for r in range(12, 15) for c in range(5, 8)]
    y[block] += 25
    got = gi_star(pd.Series(y, index=grids.index, name="count"), grids)
    assert got.index.equals(grids.index)
    assert got.crs == grids.crs
    assert list(got.columns[:3]) == ["grid_id", "level", "count"]
    centre = grids.index[13 * 20 + 6]
    assert got.loc[centre, "bin"] == 3  # the normal p reaches the 99 % bin after the FDR
    # permutations: 9999 give a smallest two-sided mid-p of 1/10000, enough for the FDR over 400 grids
    perm = gi_star(pd.Series(y, index=grids.index, name="count"), grids, permutations=9999, seed=0)
    assert perm.loc[centre, "p"] == pytest.approx(1 / 10000)  # no permutation beats it
    assert perm.loc[centre, "bin"] >= 2
    assert perm.attrs["permutations_needed"] == {"90%": 3999, "95%": 7999, "99%": 39999}
    assert got["bin"].to_numpy()[block].min() >= 1
    far = got.drop(index=grids.index[block])
    assert (far["bin"] > 0).sum() <= 12  # only the neighbours of the block light up


def test_gi_star_leaves_nan_grids_out():
    grids = lattice(10)
    y = values("continuous", len(grids))
    y[[3, 50]] = np.nan
    got = gi_star(pd.Series(y, index=grids["grid_id"]), grids, permutations=99)
    assert got["z"].isna().sum() == 2
    assert np.isnan(got["z"].to_numpy()[[3, 50]]).all()
    sub = grids.drop(index=grids.index[[3, 50]])
    alone = gi_star(np.delete(y, [3, 50]), sub, permutations=99)
    np.testing.assert_allclose(got["z"].dropna().to_numpy(), alone["z"].to_numpy())


def test_gi_star_rejects_bad_input():
    grids = lattice(4)
    with pytest.raises(ValueError, match="16 grids"):
        gi_star([1.0, 2.0], grids)
    with pytest.raises(ValueError, match="not understood"):
        gi_star(np.ones(16), grids, weights="bishop")
    mixed = pd.concat([grids, lattice(2, level=2)])
    with pytest.raises(ValueError, match="levels \\[2, 3\\]"):
        gi_star(np.ones(20), mixed)
    with pytest.raises(SchemaError, match="grid_id"):
        gi_star(np.ones(16), grids.drop(columns="grid_id"))


# -- Mann–Kendall -----------------------------------------------------------------------------------------
def test_mann_kendall_agrees_with_pymannkendall():
    import pymannkendall as pmk

    rng = np.random.default_rng(4)
    series = [
        np.arange(12.0),
        np.arange(12.0)[::-1],
        rng.normal(size=30),
        rng.normal(size=20) + np.linspace(0, 2, 20),
        rng.poisson(2, 25).astype(float),  # many ties
        np.array([1, 1, 2, 2, 2, 3, 1, 4, 4, 5.0]),
    ]
    for x in series:
        ref = pmk.original_test(x)
        got = mann_kendall(x).iloc[0]
        assert got["s"] == ref.s
        assert got["var_s"] == pytest.approx(ref.var_s, rel=1e-12)
        assert got["z"] == pytest.approx(ref.z, rel=1e-12, abs=1e-12)
        assert got["p"] == pytest.approx(ref.p, rel=1e-10, abs=1e-12)
        assert got["tau"] == pytest.approx(ref.Tau, rel=1e-12)
        assert got["trend"] == ref.trend
    rows = mann_kendall(np.vstack([series[0], series[1]]))
    assert rows["trend"].tolist() == ["increasing", "decreasing"]


# -- emerging hot spots -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("history", "trend", "expected"),
    [
        ("...........H", 0, "new hot spot"),
        ("........HHHH", 1, "consecutive hot spot"),
        ("H.......HHHH", 1, "sporadic hot spot"),
        ("HHHHHHHHHHHH", 1, "intensifying hot spot"),
        ("HHHHHHHHHHHH", 0, "persistent hot spot"),
        (".HHHHHHHHHHH", -1, "diminishing hot spot"),
        ("HHHHHHHHHHH.", 0, "historical hot spot"),
        ("HH.HH..H..HH", 0, "sporadic hot spot"),
        ("HH.CC..H..HH", 0, "oscillating hot spot"),
        ("HHHHH.......", -1, "historical hot spot"),  # geogrid's addition for ended hot spots
        ("HHHHH.......", 0, "no pattern"),
        ("H.H.........", -1, "no pattern"),
        ("............", 0, "no pattern"),
        ("...........C", 0, "new cold spot"),
        ("CCCCCCCCCCCC", -1, "intensifying cold spot"),
        ("CC.HH..C..CC", 0, "oscillating cold spot"),
    ],
)
def test_emerging_rules(history, trend, expected):
    hot = np.array([[c == "H" for c in history]])
    cold = np.array([[c == "C" for c in history]])
    got = _st._classify_ehsa(
        hot, cold, np.array([3.0 * trend]), np.array([0.001 if trend else 0.5]), min_share=0.9, alpha=0.05
    )
    assert got[0] == expected


def test_emerging_strict_is_arcgis_only():
    hot = np.array([[True] * 5 + [False] * 7])
    got = _st._classify_ehsa(
        hot, ~hot & False, np.array([-3.0]), np.array([0.001]), min_share=0.9, alpha=0.05, strict=True
    )
    assert got[0] == "no pattern"


def synthetic_incidents(grids: gpd.GeoDataFrame, rates: np.ndarray, seed: int) -> gpd.GeoDataFrame:
    """Points uniform in each cell; rates[g, month] incidents expected in 2025."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rates)
    b = grids.bounds.to_numpy()
    g_idx, m_idx = np.nonzero(counts)
    reps = counts[g_idx, m_idx]
    g_all, m_all = np.repeat(g_idx, reps), np.repeat(m_idx, reps)
    x = rng.uniform(b[g_all, 0] + 1, b[g_all, 2] - 1)
    y = rng.uniform(b[g_all, 1] + 1, b[g_all, 3] - 1)
    start = pd.to_datetime([f"2025-{m + 1:02d}-01" for m in m_all]).tz_localize("Asia/Shanghai")
    t = start + pd.to_timedelta(rng.uniform(0, 27, g_all.size), unit="D")
    closed = t + pd.to_timedelta(rng.lognormal(np.log(24), 0.5, g_all.size), unit="h")
    return gpd.GeoDataFrame(
        {
            "incident_id": [f"e{i}" for i in range(g_all.size)],
            "reported_at": t.tz_convert("UTC"),
            "closed_at": closed.tz_convert("UTC"),
            "category": "环境卫生",
        },
        geometry=gpd.points_from_xy(x, y),
        crs=grids.crs,
    )


def block(n: int, r0: int, c0: int, size: int = 2) -> list[int]:
    return [r * n + c for r in range(r0, r0 + size) for c in range(c0, c0 + size)]


def test_emerging_hotspots_on_planted_patterns():
    n = 16
    grids = lattice(n)
    month = np.arange(12)
    rates = np.full((n * n, 12), 3.0)
    emerging, fading, persistent = block(n, 2, 2), block(n, 10, 10), block(n, 2, 11)
    rates[emerging] += np.where(month >= 8, 6.0 * (month - 6), 0.0)
    rates[fading] += np.where(month <= 4, 25.0 - 5 * month, 0.0)
    rates[persistent] += 15.0
    inc = synthetic_incidents(grids, rates, seed=3)
    got = emerging_hotspots(inc, grids, period="M", since="2025-01-01", until="2025-12-31")
    assert got.attrs["periods"][0] == "2025-01"
    assert len(got.attrs["periods"]) == 12
    pat = got["pattern"].to_numpy()
    assert set(pat[emerging]) <= {"new hot spot", "consecutive hot spot", "intensifying hot spot"}
    assert set(pat[fading]) <= {"diminishing hot spot", "historical hot spot"}
    assert set(pat[persistent]) <= {"persistent hot spot", "intensifying hot spot", "diminishing hot spot"}
    others = np.setdiff1d(np.arange(n * n), emerging + fading + persistent)
    assert (pat[others] != "no pattern").mean() < 0.15  # neighbours of the blocks at most
    strict = emerging_hotspots(inc, grids, period="M", since="2025-01-01", until="2025-12-31", strict=True)
    assert set(strict["pattern"].to_numpy()[fading]) == {"no pattern"}


def test_emerging_hotspots_rejects_short_cubes_and_unknown_periods():
    grids = lattice(6)
    inc = synthetic_incidents(grids, np.full((36, 12), 2.0), seed=1)
    with pytest.raises(ValueError, match="at least 3"):
        emerging_hotspots(inc, grids, since="2025-03-01", until="2025-04-30")
    with pytest.raises(ValueError, match="period="):
        emerging_hotspots(inc, grids, period="Y")
    with pytest.raises(NotFoundError, match="level 5"):
        emerging_hotspots(inc, grids, level=5)


def test_demo_emerging_and_fading_hot_spots_are_found(demo_district):
    grids = demo_district.grids
    basic = grids[grids["level"] == 3]
    got = emerging_hotspots(demo_district.incidents, grids, level=3, period="M")
    truth = pd.DataFrame(demo_district.metadata["demo_hotspots"])
    pts = gpd.GeoSeries(gpd.points_from_xy(truth["lon"], truth["lat"]), crs=4326)
    xy = shapely.get_coordinates(pts.to_crs(4548).values)
    dist = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    other_kind = truth["kind"].to_numpy()[:, None] != truth["kind"].to_numpy()[None, :]
    # a spot overlapping a planted spot of another kind carries both profiles
    alone = ~((dist < 300) & other_kind).any(axis=1)
    pos = shapely.STRtree(basic.geometry.values).query(pts.values, predicate="within")
    where = dict(zip(pos[0], pos[1], strict=True))
    found = {}
    for k, row in truth.iterrows():
        if alone[k] and row["kind"] in ("emerging", "fading"):
            found.setdefault(row["kind"], []).append(got["pattern"].iloc[where[k]])
    assert len(found["emerging"]) >= 2 and len(found["fading"]) >= 2
    assert set(found["emerging"]) <= {"new hot spot", "consecutive hot spot", "intensifying hot spot"}
    assert set(found["fading"]) <= {"diminishing hot spot", "historical hot spot"}


def test_closing_time_hotspots_find_slow_grids():
    n = 14
    grids = lattice(n)
    inc = synthetic_incidents(grids, np.full((n * n, 12), 1.0), seed=6)
    pos = shapely.STRtree(grids.geometry.values).query(inc.geometry.values, predicate="within")[1]
    slow = np.isin(pos, block(n, 4, 4, 3))
    inc.loc[slow, "closed_at"] = inc.loc[slow, "reported_at"] + pd.Timedelta(hours=200)
    got = closing_time_hotspots(inc, grids, permutations=999, seed=0)
    assert got["median_hours_to_close"].notna().all()
    assert (got["bin"].to_numpy()[block(n, 4, 4, 3)] > 0).all()
    assert got.loc[got["bin"] > 0, "grid_id"].isin(grids["grid_id"].to_numpy()[block(n, 3, 3, 5)]).all()


def test_incident_hotspots_filters_by_category_and_window():
    grids = lattice(8)
    inc = synthetic_incidents(grids, np.full((64, 12), 2.0), seed=2)
    inc.loc[inc.index[:40], "category"] = "占道经营"
    got = incident_hotspots(inc, grids, category="占道经营", permutations=0)
    assert got["count"].sum() == 40
    jan = incident_hotspots(inc, grids, since="2025-01-01", until="2025-01-31", permutations=0)
    local = inc["reported_at"].dt.tz_convert("Asia/Shanghai")
    assert jan["count"].sum() == (local.dt.month == 1).sum()
    with pytest.raises(NotFoundError, match="does not occur"):
        incident_hotspots(inc, grids, category="违法建设")


# -- Knox ------------------------------------------------------------------------------------------------
def knox_points(clustered: bool, seed: int) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    n = 400
    xy = rng.uniform(0, 5000, (n, 2))
    days = rng.uniform(0, 365, n)
    if clustered:  # near repeats: each of 80 events gets a follower 0–40 m and 0–5 days later
        lead = rng.choice(n, 80, replace=False)
        follow = rng.choice(np.setdiff1d(np.arange(n), lead), 80, replace=False)
        xy[follow] = xy[lead] + rng.uniform(-40, 40, (80, 2))
        days[follow] = np.clip(days[lead] + rng.uniform(0, 5, 80), 0, 365)
    t = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(days, unit="D")
    return gpd.GeoDataFrame({"reported_at": t}, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=3857)


def test_knox_separates_near_repeats_from_random():
    near = knox_test(knox_points(True, 0), distance_m=100, days=7, permutations=499, seed=0)
    rand = knox_test(knox_points(False, 0), distance_m=100, days=7, permutations=499, seed=0)
    assert near.p <= 0.01 and near.ratio > 3
    assert rand.p > 0.05
    assert near.metric_crs == "EPSG:3857"


def test_knox_agrees_with_pointpats():
    from pointpats.spacetime import Knox

    inc = knox_points(True, 1)
    got = knox_test(inc, distance_m=100, days=7, permutations=99, seed=0)
    xy = shapely.get_coordinates(inc.geometry.values)
    t = ((inc["reported_at"] - pd.Timestamp("2000-01-01", tz="UTC")).dt.total_seconds() / 86400).to_numpy()
    ref = Knox(xy, t[:, None], delta=100, tau=7, permutations=0)
    assert got.space_time_pairs == ref.nst
    assert got.space_pairs == ref.observed[0].sum()
    assert got.time_pairs == ref.observed[:, 0].sum()
    assert got.expected == pytest.approx(ref.expected[0, 0])
    assert got.p_poisson == pytest.approx(ref.p_poisson)
    again = knox_test(inc, distance_m=100, days=7, permutations=99, seed=0)
    assert again.p == got.p


# -- kernel density ------------------------------------------------------------------------------------
def test_kernel_density_integrates_to_n_and_peaks_at_the_cluster():
    rng = np.random.default_rng(0)
    xy = np.vstack([rng.normal(1000, 30, (300, 2)), rng.uniform(0, 4000, (100, 2))])
    pts = gpd.GeoSeries(gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=3857)
    kd = kernel_density(pts, cell_m=25)
    assert kd.rule == "scott"
    sd = np.sqrt(0.5 * (xy[:, 0].var(ddof=1) + xy[:, 1].var(ddof=1)))
    assert kd.bandwidth_m == pytest.approx(sd * 400 ** (-1 / 6))
    assert kd.density.sum() * 25 * 25 / 1e6 == pytest.approx(400, rel=1e-6)
    row, col = np.unravel_index(kd.density.argmax(), kd.density.shape)
    a, _, c, _, e, f = kd.transform
    assert abs(c + (col + 0.5) * a - 1000) < 150 and abs(f + (row + 0.5) * e - 1000) < 150
    cells = kernel_density(pts, bandwidth=60, cell_m=50).to_gdf(min_density=1.0)
    assert cells.crs == "EPSG:3857" and (cells["density"] > 1.0).all()
    with pytest.raises(ValueError, match="bandwidth"):
        kernel_density(pts, bandwidth=0)


@pytest.mark.parametrize("value", [0.0, 3.0], ids=["no-incidents", "all-equal"])
def test_gi_star_of_constant_values_is_no_pattern_without_warnings(tiny_grids, value):
    # An empty time window (all zero) or identical counts: Gi* is 0/0, so nothing is significant.
    basic = tiny_grids[tiny_grids["level"] == 2]
    out = gi_star(pd.Series(value, index=basic.index), basic, permutations=99, seed=0)
    assert out["z"].isna().all()
    assert (out["bin"] == 0).all()
    assert (out["withheld"] == "constant").all()


# -- ties, sparse data, the permutations the FDR needs --------------------------------------------------
def test_a_zero_among_zeros_is_not_significant_under_permutations():
    # Old behaviour: esda's folded p counts every tie as extreme, so a zero surrounded by
    # zeros got p = 1/(R+1) and was painted a 99 % cold spot. The mid-p counts ties half.
    grids = lattice(10)
    y = np.zeros(len(grids))
    y[[0, 1, 10, 11]] = [30.0, 25.0, 28.0, 31.0]
    got = gi_star(y, grids, permutations=999, seed=0)
    far = got.iloc[99]  # the opposite corner: 0 with all-zero neighbours
    assert far["p_sim"] == pytest.approx(1 / 1000)  # esda's folded p, kept for comparison
    assert far["withheld"] == "empty_neighbourhood"
    assert np.isnan(far["p"]) and far["bin"] == 0
    # withheld or not, the mid-p of a value tying with every permutation is 1
    p = _st._mid_p_two_sided(np.array([0]), np.array([999]), 999)
    assert p[0] == 1.0


def test_withheld_reasons_and_the_fdr_counts_only_analysed_grids():
    grids = lattice(10)
    rng = np.random.default_rng(4)
    y = rng.poisson(0.05, len(grids)).astype(float)
    y[:3] = 1.0
    got = gi_star(y, grids, min_total=30, min_expected=10)
    assert (got["withheld"] == "too_few").all() and (got["bin"] == 0).all() and got["p"].isna().all()
    y = rng.poisson(20, len(grids)).astype(float)
    y[[5, 6, 15, 16]] = 0.0
    y[[88, 89, 98, 99, 78, 79]] = 0.0  # a corner with no incident at all
    got = gi_star(y, grids, min_total=30, min_expected=10)
    # 99 and 89 are 0 with all-zero queen neighbours; 88 touches 77 (not zero)
    assert got["withheld"].iloc[[89, 99]].tolist() == ["empty_neighbourhood"] * 2
    analysed = got["withheld"].isna()
    assert analysed.sum() == len(grids) - 2
    np.testing.assert_allclose(got.loc[analysed, "p_fdr"], adjust_fdr(got.loc[analysed, "p"].to_numpy()))
    nearby = gi_star(y, grids, min_neighbourhood=50)  # ~20 per grid: only the corner's neighbourhoods hold < 50
    assert set(nearby["withheld"].dropna()) == {"few_nearby", "empty_neighbourhood"}
    assert nearby["withheld"].iloc[98] == "few_nearby" and pd.isna(nearby["withheld"].iloc[0])  # 87 + 97 only
    sparse = gi_star(y / 10, grids, min_expected=20)  # ~2 per grid, 9 in a neighbourhood: ~18 expected
    assert (sparse["withheld"].isin(["sparse", "empty_neighbourhood"])).all()


def test_local_moran_withholds_and_states_its_inference():
    grids = lattice(10)
    y = np.zeros(len(grids))
    y[:30] = np.random.default_rng(1).poisson(20, 30)
    got = local_moran(y, grids)
    assert got.attrs["inference"] == "normal"
    assert (got.loc[got["withheld"].notna(), "cluster"] == "withheld").all()
    assert got["withheld"].iloc[99] == "empty_neighbourhood"
    perm = local_moran(y, grids, permutations=99, seed=0)
    assert perm.attrs["permutations_needed"]["95%"] == _st.permutations_needed(int(perm["withheld"].isna().sum()), 0.05)


def test_emerging_hotspots_refuses_a_cube_beyond_its_limits_before_any_work(monkeypatch):
    """36 grids x 12 months = 432 bins: the limits hold at 432 and refuse at 431, naming the way out."""
    from geogrid import _hotspots_data

    grids = lattice(6)
    inc = synthetic_incidents(grids, np.full((36, 12), 2.0), seed=1)
    window = {"period": "M", "since": "2025-01-01", "until": "2025-12-31"}
    full = emerging_hotspots(inc, grids, max_bins=432, **window)
    assert len(full.attrs["periods"]) == 12
    permuted = emerging_hotspots(inc, grids, permutations=99, max_permuted_bins=432 * 99, **window)
    assert permuted.attrs["inference"].startswith("permutation (99")
    built = []
    monkeypatch.setattr(_hotspots_data, "_cube", lambda *a: built.append(a))  # refused before the cube is built
    with pytest.raises(ValueError, match=r"432 bins \(36 grids x 12 periods of 'M'\), more than the 431 allowed"):
        emerging_hotspots(inc, grids, max_bins=431, **window)
    with pytest.raises(ValueError, match=r"a longer period \(Q\), a coarser level or one category"):
        emerging_hotspots(inc, grids, max_bins=431, **window)
    with pytest.raises(
        ValueError, match=r"999 permutations of 432 bins .* use at most 229 permutations or permutations=0"
    ):
        emerging_hotspots(inc, grids, permutations=999, max_permuted_bins=99_000, **window)
    with pytest.raises(ValueError, match=r"use permutations=0 \(the p_method test\)"):
        emerging_hotspots(inc, grids, permutations=99, max_permuted_bins=432 * 99 - 1, **window)
    days = {**window, "period": "D"}
    with pytest.raises(
        ValueError, match=r"13,140 bins \(36 grids x 365 periods of 'D'\).* a longer period \(W, M, Q\)"
    ):
        emerging_hotspots(inc, grids, max_bins=10_000, **days)
    assert built == []
    assert emerging_hotspots.__kwdefaults__["max_bins"] is None  # no limit unless asked (the service sets one)


def test_emerging_bins_withheld_on_a_sparse_cube():
    n = 8
    grids = lattice(n)
    rates = np.full((n * n, 12), 0.05)
    rates[block(n, 2, 2, 2)] = 6.0
    inc = synthetic_incidents(grids, rates, seed=3)
    got = emerging_hotspots(inc, grids, period="M")
    quiet = got.drop(index=grids.index[block(n, 0, 0, 5)])
    assert (quiet["pattern"] == "no pattern").all()
    assert (quiet["withheld"].notna()).any()
    assert all(set(h) <= {"-", "."} for h in quiet["history"])
    assert not got["pattern"].str.contains("cold").any()


# -- the exact test of counts -----------------------------------------------------------------------
def _queen_hood(n_side: int) -> list[np.ndarray]:
    """Positions of each lattice cell's queen neighbourhood, itself included."""
    rows, cols = np.divmod(np.arange(n_side * n_side), n_side)
    return [np.flatnonzero((np.abs(rows - r) <= 1) & (np.abs(cols - c) <= 1)) for r, c in zip(rows, cols, strict=True)]


@pytest.mark.parametrize("with_exposure", [False, True], ids=["equal-shares", "exposure"])
@pytest.mark.parametrize("spread", ["poisson-or-less", "overdispersed"])
def test_binomial_p_is_the_two_sided_binomial_test_of_each_neighbourhood(with_exposure, spread):
    grids = lattice(8)
    rng = np.random.default_rng(5)
    e = rng.uniform(50, 500, len(grids)) if with_exposure else np.ones(len(grids))
    if spread == "poisson-or-less":  # X² below n - 1: phi = 1, the exact binomial test
        y = np.round(e / e.mean() * 6).astype(float)
        y[:3] += 4
    else:
        y = rng.negative_binomial(1, 0.1, len(grids)).astype(float)
    got = gi_star(y, grids, p_method="binomial", exposure=e if with_exposure else None, fdr=None)
    n_total = int(y.sum())
    mu = e / e.sum() * n_total
    phi = max(1.0, float(((y - mu) ** 2 / mu).sum()) / (len(y) - 1))
    assert got.attrs["dispersion"] == pytest.approx(phi)
    assert (phi == 1.0) == (spread == "poisson-or-less")
    for i, hood in enumerate(_queen_hood(8)):
        s, share = int(y[hood].sum()), e[hood].sum() / e.sum()
        if phi == 1.0:
            up = scipy.stats.binomtest(s, n_total, share, alternative="greater").pvalue
            low = scipy.stats.binomtest(s, n_total, share, alternative="less").pvalue
        else:  # the binomial tails of the scaled counts, as beta distributions (real s / phi, N / phi)
            k, big_n = s / phi, n_total / phi
            up = scipy.stats.beta.cdf(share, k, big_n - k + 1) if k > 0 else 1.0
            low = scipy.stats.beta.sf(share, k + 1, big_n - k)
        assert got["p"].iloc[i] == pytest.approx(min(1.0, 2 * min(up, low)), rel=1e-9, abs=1e-15)
        assert got["expected"].iloc[i] == pytest.approx(n_total * share)
        assert np.sign(got["bin"].iloc[i]) in (0, np.sign(s - n_total * share))
    assert got.attrs["inference"] == "binomial"
    # the z is Gi*'s, whatever the test
    np.testing.assert_allclose(got["z"], gi_star(y, grids)["z"], rtol=0, atol=1e-12)


def test_exposure_turns_where_people_live_into_no_hot_spot_and_a_deficit_into_a_cold_one():
    grids = lattice(10)
    rng = np.random.default_rng(7)
    pop = np.full(len(grids), 100.0)
    corner = np.array([0, 1, 2, 10, 11, 12, 20, 21, 22])
    pop[corner] = 2000.0
    lam = 0.05 * pop
    lam[corner] *= 0.5  # the populous corner has half the risk
    y = rng.poisson(lam).astype(float)
    raw = gi_star(y, grids, p_method="binomial")
    per_resident = gi_star(y, grids, p_method="binomial", exposure=pop)
    assert raw["bin"].iloc[11] == 3 and raw["z"].iloc[11] > 0  # many incidents where many people live
    assert per_resident["bin"].iloc[11] == -3  # fewer than its residents predict: a cold spot, z still > 0
    assert per_resident["z"].iloc[11] == raw["z"].iloc[11]


def test_exact_test_refuses_what_is_not_a_count_and_exposure_without_it():
    grids = lattice(4)
    with pytest.raises(ValueError, match=r"needs counts .* 'g0001' hold '1.5'"):
        gi_star([0, 1.5] + [1] * 14, grids, p_method="binomial")
    with pytest.raises(ValueError, match="needs counts"):
        gi_star([-1] + [1] * 15, grids, p_method="binomial")
    with pytest.raises(ValueError, match="exposure needs the binomial test"):
        gi_star([1] * 16, grids, exposure=[1] * 16)
    with pytest.raises(ValueError, match=r"exposure must be a non-negative number .* 'g0003'"):
        gi_star([1, 2] * 8, grids, p_method="binomial", exposure=[1, 1, 1, -1] + [1] * 12)
    with pytest.raises(ValueError, match="p_method must be 'normal' or 'binomial'"):
        gi_star([1, 2] * 8, grids, p_method="poisson")  # type: ignore[arg-type]


def test_a_neighbourhood_without_exposure_is_withheld_not_infinitely_hot():
    grids = lattice(6)
    pop = np.full(len(grids), 100.0)
    pop[[0, 1, 6, 7]] = 0.0  # grid 0's whole neighbourhood is empty of residents
    y = np.full(len(grids), 6.0)
    y[0] = 3.0
    got = gi_star(y, grids, p_method="binomial", exposure=pop)
    assert got["withheld"].iloc[0] == "no_exposure" and got["bin"].iloc[0] == 0 and np.isnan(got["p"].iloc[0])
    assert pd.isna(got["withheld"].iloc[1])  # its neighbourhood has residents


def test_incident_hotspots_takes_the_population_column(small_demo):
    demo, _ = small_demo
    raw = incident_hotspots(demo.incidents, demo.grids, level=3)
    per = incident_hotspots(demo.incidents, demo.grids, level=3, population="population")
    assert raw.attrs["inference"] == "binomial" and per.attrs["expected_from"] == "population"
    assert "expected_from" not in raw.attrs
    assert not np.allclose(raw["expected"], per["expected"])
    np.testing.assert_allclose(raw["z"], per["z"], equal_nan=True)
    normal = incident_hotspots(demo.incidents, demo.grids, level=3, p_method="normal")
    assert normal.attrs["inference"] == "normal" and "expected" not in normal.columns
    with pytest.raises(ValueError, match="population='people' is not a column of the grids"):
        incident_hotspots(demo.incidents, demo.grids, level=3, population="people")


# -- Local Moran and emerging hot spots on the calibrated count test -------------------------------------------
def test_emerging_default_is_the_binomial_test_and_permutations_are_an_option():
    n = 10
    grids = lattice(n)
    rates = np.full((n * n, 12), 2.0)
    rates[block(n, 5, 5, 5)] = 0.0  # a quarter with no incident at all: zeros among zeros
    rates[block(n, 1, 1)] += np.where(np.arange(12) >= 8, 20.0, 0.0)
    inc = synthetic_incidents(grids, rates, seed=4)
    window = {"since": "2025-01-01", "until": "2025-12-31"}
    default = emerging_hotspots(inc, grids, **window)
    assert default.attrs["inference"] == "binomial" and default.attrs["dispersion"] >= 1
    assert set(default["pattern"].to_numpy()[block(n, 1, 1)]) <= {"new hot spot", "consecutive hot spot"}
    normal = emerging_hotspots(inc, grids, p_method="normal", **window)
    assert normal.attrs["inference"] == "normal" and not (normal["history"] == default["history"]).all()
    perm = emerging_hotspots(inc, grids, permutations=999, seed=1, fdr=False, min_neighbourhood=0, **window)
    assert perm.attrs["inference"] == "permutation (999, mid-p)"
    analysed = n * n * 12 - int(perm["withheld_periods"].sum())
    assert perm.attrs["permutations_needed"]["95%"] == _st.permutations_needed(analysed, 0.05)
    # zeros among zeros are withheld, not painted cold (the edge of the empty quarter is a real cold spot)
    inner = perm["history"].to_numpy()[[r * n + c for r in range(6, 10) for c in range(6, 10)]]
    assert set("".join(inner)) == {"-"}
    assert "C" in "".join(perm["history"].to_numpy()[block(n, 5, 5, 5)])
    assert all(h.endswith("HHHH") for h in perm["history"].to_numpy()[block(n, 1, 1)])
    with pytest.raises(ValueError, match="exposure needs the binomial test"):
        emerging_hotspots(inc, grids.assign(population=1.0), permutations=9, population="population", **window)


def test_incident_clusters_finds_a_planted_cluster_with_the_count_test():
    n = 15
    grids = lattice(n)
    grids["population"] = 100.0
    rates = np.full((n * n, 12), 1.0)
    rates[block(n, 2, 2, 3)] = 8.0
    inc = synthetic_incidents(grids, rates, seed=8)
    got = incident_clusters(inc, grids)
    assert got.attrs["inference"] == "binomial" and "expected" in got.columns
    assert (got["cluster"].to_numpy()[block(n, 2, 2, 3)] == "HH").sum() >= 7
    assert (got["cluster"].isin(["HH", "LL", "HL", "LH"])).sum() <= 20
    per_resident = incident_clusters(inc, grids, population="population")
    np.testing.assert_allclose(per_resident["p"], got["p"], rtol=1e-9, equal_nan=True)  # equal populations
    assert per_resident.attrs["expected_from"] == "population"
    with pytest.raises(ValueError, match="needs counts"):
        local_moran(got["count"] + 0.5, grids, p_method="binomial")


def test_emerging_z_agrees_with_esda_on_the_space_time_weights():
    """The cube's Gi* z (whose Mann–Kendall trend is ``trend_z``) is esda's on the same space-time neighbours."""
    import scipy.sparse as sp

    import esda
    from libpysal import weights

    from geogrid.hotspots import _emerging

    n = 8
    grids = lattice(n)
    w, _ = esda_weights(grids, "queen")
    counts = np.random.default_rng(12).poisson(3.0, (n * n, 6)).astype(float)
    adj = sp.csr_array(w.sparse)
    r = _emerging(
        counts,
        adj,
        time_lag=1,
        alpha=0.05,
        fdr=True,
        min_share=0.9,
        strict=False,
        p_method="binomial",
        exposure=None,
        ids=grids["grid_id"].to_numpy(),
        permutations=0,
        seed=0,
        minima=(0.0, 0.0, 0.0),
    )
    cube = weights.W.from_sparse(_st._space_time_adjacency(adj, 6, 1))
    ref = esda_call(esda.G_Local, counts.ravel(), cube, transform="B", star=True, permutations=0)
    np.testing.assert_allclose(r["z"].ravel(), ref.Zs, rtol=0, atol=1e-9)
    np.testing.assert_allclose(r["mk"].z, mann_kendall(ref.Zs.reshape(n * n, 6))["z"], rtol=0, atol=1e-12)


@pytest.mark.parametrize(("n_periods", "time_lag"), [(1, 0), (3, 1), (12, 0), (12, 1), (52, 3), (5, 10), (400, 2)])
def test_space_time_neighbours_equal_the_dense_definition(n_periods, time_lag):
    """Grid g in period t neighbours grid h (itself or a spatial neighbour) in s when 0 <= t - s <= time_lag.

    Built sparse: the dense T x T mask it replaced took 900 MB for 26 years of days. The reference is
    that definition written out with numpy, and the matrices must be equal entry for entry.
    """
    rng = np.random.default_rng(n_periods * 31 + time_lag)
    n = 15
    a = (rng.random((n, n)) < 0.25).astype(float)
    adj = scipy.sparse.csr_array(np.triu(a, 1) + np.triu(a, 1).T)
    got = _st._space_time_adjacency(adj, n_periods, time_lag).toarray()
    spatial = adj.toarray() + np.eye(n)
    t = np.arange(n_periods)
    lag = ((t[:, None] - t[None, :] >= 0) & (t[:, None] - t[None, :] <= time_lag)).astype(float)
    expected = np.kron(spatial > 0, lag).astype(float)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("index", [np.int32, np.int64])
def test_binary_offdiag_equals_its_definition_with_32_bit_indices(seed, index):
    """Binary, no diagonal, explicit zeros dropped, each row's neighbour order kept (the lag's summation
    order); indices 32-bit whatever the input's, and a matrix already in that form comes back as is
    (a daily space-time cube's neighbours are millions: no second copy)."""
    rng = np.random.default_rng(seed)
    n = 40
    dense = np.where(rng.random((n, n)) < 0.2, rng.choice([0.0, 0.5, 2.0, 1.0], (n, n)), 0.0)
    a = scipy.sparse.csr_array(dense)
    order = [rng.permutation(np.arange(a.indptr[i], a.indptr[i + 1])) for i in range(n)]
    perm = np.concatenate(order).astype(np.int64)  # rows' neighbours in a scrambled order, explicit zeros kept
    a = scipy.sparse.csr_array((a.data[perm], a.indices[perm].astype(index), a.indptr.astype(index)), shape=(n, n))
    got = _st._binary_offdiag(a)
    expected = (dense != 0).astype(float)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_array_equal(got.toarray(), expected)
    assert got.indices.dtype == got.indptr.dtype == np.int32
    assert set(got.data) <= {1.0}
    for i in range(n):  # the order within a row
        row = a.indices[a.indptr[i] : a.indptr[i + 1]][(a.data[a.indptr[i] : a.indptr[i + 1]] != 0)]
        np.testing.assert_array_equal(got.indices[got.indptr[i] : got.indptr[i + 1]], row[row != i])
    again = _st._binary_offdiag(got)
    assert np.shares_memory(again.indices, got.indices) and np.shares_memory(again.data, got.data)
    np.testing.assert_array_equal(again.toarray(), expected)


def test_binary_offdiag_counts_a_repeated_entry_once():
    """A weights matrix given with a repeated (i, j) (a non-canonical CSR, as a hand-built COO sums to) names one
    neighbour: weight 1, not 2 (review finding; Gi*'s neighbourhood sums would count that neighbour twice)."""
    a = scipy.sparse.csr_array(
        (np.ones(4), np.array([1, 1, 0, 1], dtype=np.int32), np.array([0, 2, 3, 4], dtype=np.int32)), shape=(3, 3)
    )
    assert not a.has_canonical_format
    got = _st._binary_offdiag(a).toarray()
    np.testing.assert_array_equal(got, [[0, 1, 0], [1, 0, 0], [0, 1, 0]])
