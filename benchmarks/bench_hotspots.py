"""Hot spots: Gi* against esda.G_Local in the same run, and the calibration of the default inference.

Cases: Gi* with 999 conditional permutations on a lattice; the default Gi* (analytic z,
normal p, FDR) on the demo's 990 basic grids against ``esda.G_Local(permutations=0)``; and
the calibration and power figures of BENCHMARKS.md (homogeneous and population-proportional
Poisson nulls on the demo's basic grids, 2,000 seeded replicates per mean; the binomial test of
counts against the normal p; the planted spots redrawn 200 times), printed
and kept in the row's JSON (``--json``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

import geopandas as gpd
import shapely

from benchmarks._runner import Case


def _lattice(n_side: int, seed: int) -> tuple[gpd.GeoDataFrame, np.ndarray, Any]:
    from libpysal import weights

    xs, ys = np.meshgrid(np.arange(n_side), np.arange(n_side))
    x, y = xs.ravel() * 150.0, ys.ravel() * 150.0
    n = n_side * n_side
    grids = gpd.GeoDataFrame(
        {"grid_id": [f"g{i}" for i in range(n)], "level": 3},
        geometry=shapely.box(x, y, x + 150, y + 150),
        crs="EPSG:4548",
    )
    rng = np.random.default_rng(seed)
    counts = rng.poisson(5, n).astype(float)
    w = weights.Queen.from_dataframe(grids, use_index=False)
    return grids, counts, w


def _esda_gi(counts: np.ndarray, w: Any) -> Any:
    import esda

    with warnings.catch_warnings():
        # G_Local cannot pass `alternative`; esda warns that its default will change.
        warnings.filterwarnings("ignore", message="The alternative hypothesis", category=DeprecationWarning)
        return esda.G_Local(counts, w, transform="B", star=True, permutations=999, seed=0, n_jobs=1)


def _setup(n_side: int) -> tuple[gpd.GeoDataFrame, np.ndarray, Any]:
    data = _lattice(n_side, seed=0)
    small = _lattice(3, seed=0)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():  # 3x3: some variances are 0
        warnings.simplefilter("ignore", RuntimeWarning)
        _esda_gi(small[1], small[2])  # esda's numba kernels compile (~30 s) before anything is timed
    return data


def cases(scale: str) -> list[Case]:
    n_side = 100 if scale == "full" else 30

    def ours(data: tuple[gpd.GeoDataFrame, np.ndarray, Any]) -> Any:
        from geogrid.hotspots import gi_star

        grids, counts, w = data
        return gi_star(counts, grids, weights=w, permutations=999, seed=0)

    def baseline(data: tuple[gpd.GeoDataFrame, np.ndarray, Any]) -> Any:
        _, counts, w = data
        return _esda_gi(counts, w)

    def check(o: Any, b: Any) -> None:
        np.testing.assert_allclose(o["z"].to_numpy(), b.Zs, rtol=0, atol=1e-9)
        # esda's numba kernels use fastmath: exact ties with the observed sum (Poisson counts have
        # many) fall either way, so a few pseudo p-values move by a permutation or two. Ours are
        # esda's plain-Python ones exactly (tests/geogrid/test_hotspots.py).
        diff = np.abs(np.rint(o["p_sim"].to_numpy() * 1000) - np.rint(b.p_sim.astype(float) * 1000))
        out[0].extra["p_sim_differs_sites"] = int((diff > 0).sum())
        assert diff.max() <= 3, diff.max()

    out = [
        Case(
            name=f"gi_star_999_perm_{n_side * n_side}_grids",
            setup=lambda: _setup(n_side),
            ours=ours,
            baseline=baseline,
            baseline_name="esda.G_Local(star=True, n_jobs=1) with numba, compiled before timing",
            check=check,
            notes=f"{n_side}x{n_side} queen lattice, Poisson(5) counts, seed 0; ours adds FDR and Gi_Bin",
        )
    ]
    out += _demo_cases(replicates=2000 if scale == "full" else 100)
    return out


def _demo() -> Any:
    from geogrid.demo import build_demo

    return build_demo(seed=0)


def _queen(grids: gpd.GeoDataFrame) -> Any:
    import scipy.sparse as sp

    from libpysal import graph

    return sp.csr_array(graph.Graph.build_contiguity(grids.geometry.reset_index(drop=True), rook=False).sparse)


def _demo_cases(replicates: int) -> list[Case]:
    state: dict[str, Any] = {}

    def setup() -> tuple[Any, gpd.GeoDataFrame, Any, np.ndarray]:
        from geogrid.hotspots import incident_hotspots

        if "demo" not in state:
            state["demo"] = _demo()
        demo = state["demo"]
        basic = demo.grids[demo.grids["level"] == 3]
        w = _queen(basic)
        counts = incident_hotspots(demo.incidents, demo.grids, level=3, category="占道经营")["count"].to_numpy(float)
        return demo, basic, w, counts

    def ours(data: Any) -> Any:
        from geogrid.hotspots import gi_star

        _, basic, w, counts = data
        return gi_star(counts, basic, weights=w)

    def baseline(data: Any) -> Any:
        import esda
        from libpysal import weights

        _, _, w, counts = data
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The alternative hypothesis", category=DeprecationWarning)
            return esda.G_Local(counts, weights.W.from_sparse(w), transform="B", star=True, permutations=0)

    def check(o: Any, b: Any) -> None:
        dz = float(np.abs(o["z"].to_numpy() - b.Zs).max())
        dp = float(np.abs(o["p"].to_numpy() - 2 * b.p_norm).max())
        demo_case.extra.update(
            max_abs_z_diff=dz,
            max_abs_p_diff=dp,
            bins={int(k): int(v) for k, v in o["bin"].value_counts().sort_index().items()},
        )
        print(f"  z vs esda: max |dz| {dz:.2e}, max |dp| {dp:.2e}; bins {demo_case.extra['bins']}")
        assert dz < 1e-9 and dp < 1e-9

    demo_case = Case(
        name="gi_star_normal_990_demo_readme",
        setup=setup,
        ours=ours,
        baseline=baseline,
        baseline_name="esda.G_Local(star=True, permutations=0)",
        check=check,
        notes="demo seed 0, basic grids, 占道经营 counts (the README example), queen weights given to both",
    )

    def calibrate(data: Any) -> dict[str, Any]:
        figures = calibration_figures(data[0], data[2], replicates=replicates)
        calib_case.extra.update(figures)
        return figures

    calib_case = Case(
        name=f"gi_star_calibration_{replicates}_replicates",
        setup=setup,
        ours=calibrate,
        repeat=1,
        notes=f"homogeneous and population Poisson nulls on the demo's 990 basic grids, {replicates} replicates "
        "per mean, seeds = 1000 x mean (+1 population); binomial test vs normal p; power: planted persistent/emerging spots, counts redrawn 200 times",
    )

    def calibrate_moran_emerging(data: Any) -> dict[str, Any]:
        figures = moran_emerging_figures(data[0], data[2], replicates=replicates)
        moran_case.extra.update(figures)
        return figures

    moran_case = Case(
        name=f"moran_emerging_calibration_{replicates}_replicates",
        setup=setup,
        ours=calibrate_moran_emerging,
        repeat=1,
        notes=f"Local Moran (990 grids) and emerging-hot-spot bins (990 grids x 12 months, time lag 1) under homogeneous "
        f"Poisson nulls, {replicates} replicates per rate, seeds 2000 + rate / 3000 + rate; binomial vs normal p; "
        "power: planted persistent/emerging spots; cube z against esda.G_Local",
    )

    def cube(data: Any) -> Any:
        from geogrid import _hotspots_data as hd
        from geogrid import _hotspots_stats as st

        demo, _, w, _ = data
        inc = demo.incidents
        g = hd._level_grids(demo.grids, 3)
        span = hd._whole_periods(inc["reported_at"], "W", "Asia/Shanghai", None, None)
        counts, _ = hd._cube(hd._assign(inc, g), hd._periods(inc["reported_at"], "W", "Asia/Shanghai"), len(g), span)
        return demo, counts, st._space_time_adjacency(w, counts.shape[1], 1)

    def emerging(period: str) -> Any:
        def run(data: Any) -> Any:
            from geogrid.hotspots import emerging_hotspots

            demo = data[0]
            return emerging_hotspots(demo.incidents, demo.grids, level=3, period=period)

        return run

    def esda_cube(data: Any) -> Any:
        import esda
        from libpysal import weights

        _, counts, adj = data
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The alternative hypothesis", category=DeprecationWarning)
            return esda.G_Local(counts.ravel(), weights.W.from_sparse(adj), transform="B", star=True, permutations=0)

    weekly = Case(
        name="emerging_weekly_990_x_51_demo",
        setup=lambda: cube(setup()),
        ours=emerging("W"),
        baseline=esda_cube,
        baseline_name="libpysal W.from_sparse(space-time neighbours) + esda.G_Local(star=True, permutations=0): the Gi* alone",
        notes="demo seed 0, 990 basic grids x 51 whole weeks of 2025 (50,490 bins), time lag 1; ours is the whole "
        "analysis (cube, Gi*, binomial test, FDR, Mann-Kendall, categories)",
    )
    daily = Case(
        name="emerging_daily_990_x_365_demo",
        setup=setup,
        ours=emerging("D"),
        repeat=1,
        notes="demo seed 0, 990 basic grids x 365 days of 2025 (361,350 bins, 5.2 M space-time neighbour pairs), "
        "time lag 1: the time and peak memory of a daily cube",
    )
    return [demo_case, calib_case, moran_case, weekly, daily]


def moran_emerging_figures(demo: Any, w: Any, *, replicates: int) -> dict[str, Any]:
    """Null and power figures of Local Moran and of the emerging-hot-spot bins (FDR 0.05) on the demo's basic grids."""
    import warnings

    import pandas as pd
    import scipy.sparse as sp
    import scipy.stats

    import esda
    from libpysal import weights as lw

    from geogrid import _hotspots_data as _data
    from geogrid import _hotspots_stats as _st
    from geogrid.hotspots import (
        MIN_EXPECTED,
        MIN_INCIDENTS,
        MIN_NEIGHBOURHOOD,
        _emerging,
        incident_clusters,
        local_moran,
    )

    minima = (MIN_INCIDENTS, MIN_EXPECTED, MIN_NEIGHBOURHOOD)
    basic = demo.grids[demo.grids["level"] == 3]
    n, months = len(basic), 12
    adj = _st._binary_offdiag(w)
    rows: dict[str, Any] = {"null": {}, "power": {}}

    def held_of(y: np.ndarray, star: Any) -> np.ndarray:
        hood, total = star @ y, y.sum(axis=0)
        card = np.asarray(star.sum(axis=1)).ravel()
        held = (hood < MIN_NEIGHBOURHOOD) | (card[:, None] <= 1)
        return held | ((total < MIN_INCIDENTS) | (card.mean() * total / y.shape[0] < MIN_EXPECTED))[None, :]

    def record(key: str, p: np.ndarray, held: np.ndarray) -> None:
        p = np.where(held, np.nan, p)
        binned = float(np.mean(np.where(np.isnan(p), False, p < 0.05)))
        any_fdr = float(np.mean([(_st._fdr_bh(c) < 0.05).any() for c in p.T]))
        rows["null"][key] = {"binned_95": binned, "any_after_fdr": any_fdr, "withheld": float(held.mean())}
        print(
            f"  null {key}: binned at 95 % {binned:.4f}, any FDR hit {any_fdr:.4f}, withheld {held.mean():.3f}",
            flush=True,
        )

    star = sp.csr_array(adj + sp.eye_array(n, format="csr"))
    cube_adj = _st._space_time_adjacency(w, months, 1)
    cube_star = sp.csr_array(cube_adj + sp.eye_array(n * months, format="csr"))
    for rate in (1, 3, 10):
        y = np.random.default_rng(2000 + rate).poisson(rate, size=(n, replicates)).astype(float)
        held = held_of(y, star)
        record(f"moran {rate} binomial", _st._neighbour_count_test(y, star)[0], held)
        p_norm = np.column_stack([_st._local_moran(c, adj, permutations=0, seed=0).p_norm for c in y.T])
        record(f"moran {rate} normal", p_norm, held)
        y = np.random.default_rng(3000 + rate).poisson(rate, size=(n * months, replicates)).astype(float)
        held = held_of(y, cube_star)
        record(f"emerging {rate} binomial", _st._count_test(y, cube_star)[0], held)
        _, z = _st._gi_star_z(y, cube_star)
        record(f"emerging {rate} normal", 2 * scipy.stats.norm.sf(np.abs(z)), held)
        if rate == 1:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="The alternative hypothesis", category=DeprecationWarning)
                ref = esda.G_Local(y[:, 0], lw.W.from_sparse(cube_adj), transform="B", star=True, permutations=0)
            rows["emerging_z_vs_esda"] = float(np.abs(z[:, 0] - ref.Zs).max())
            print(f"  emerging cube z vs esda.G_Local: max |dz| {rows['emerging_z_vs_esda']:.2e}", flush=True)
    truth = pd.DataFrame(demo.metadata["demo_hotspots"])
    pts = gpd.GeoSeries(gpd.points_from_xy(truth["lon"], truth["lat"]), crs=4326).to_crs(basic.crs)
    hit = basic.reset_index(drop=True).sindex.query(pts.values, predicate="within")
    where = dict(zip(hit[0], hit[1], strict=True))
    families = {
        "emerging": {"new hot spot", "consecutive hot spot", "intensifying hot spot"},
        "persistent": {"persistent hot spot", "intensifying hot spot", "diminishing hot spot"},
    }
    rng = np.random.default_rng(2027)
    for k, row in truth.iterrows():
        if row["kind"] not in families:
            continue
        whole = None if row["kind"] == "persistent" else "2025-10-01"
        for label, since in (("whole", whole), ("Dec", "2025-12-01")):
            lam = incident_clusters(demo.incidents, demo.grids, level=3, category=row["category"], since=since)
            lam_c = lam["count"].to_numpy(float)
            for pm in ("binomial", "normal"):
                hits = [
                    local_moran(
                        rng.poisson(lam_c).astype(float),
                        basic,
                        weights=w,
                        p_method=pm,
                        min_total=MIN_INCIDENTS,
                        min_expected=MIN_EXPECTED,
                        min_neighbourhood=MIN_NEIGHBOURHOOD,
                    )["cluster"].iloc[where[k]]
                    == "HH"
                    for _ in range(200)
                ]
                key = f"moran {pm} {row['kind']} {row['category']} {label} ({int(lam_c.sum()):,} incidents)"
                rows["power"][key] = float(np.mean(hits))
                print(f"  power {key}: {np.mean(hits):.3f}", flush=True)
        inc = _data._filter_incidents(
            demo.incidents, category=row["category"], since=None, until=None, tz="Asia/Shanghai"
        )
        per = _data._periods(inc["reported_at"], "M", "Asia/Shanghai")
        cube, _ = _data._cube(_data._assign(inc, basic), per, n, None)
        for pm in ("binomial", "normal"):
            hits = []
            for _ in range(50):
                r = _emerging(
                    rng.poisson(cube).astype(float),
                    w,
                    time_lag=1,
                    alpha=0.05,
                    fdr=True,
                    min_share=0.9,
                    strict=False,
                    p_method=pm,
                    exposure=None,
                    ids=basic["grid_id"].to_numpy(),
                    permutations=0,
                    seed=0,
                    minima=minima,
                )
                hits.append(r["pattern"][where[k]] in families[row["kind"]])
            key = f"emerging {pm} {row['kind']} {row['category']} year ({int(cube.sum()):,} incidents)"
            rows["power"][key] = float(np.mean(hits))
            print(f"  power {key}: {np.mean(hits):.3f}", flush=True)
    return rows


def calibration_figures(demo: Any, w: Any, *, replicates: int) -> dict[str, Any]:
    """Null and power figures of Gi* of counts (FDR 0.05) on the demo's basic grids.

    Nulls: Poisson counts with the same mean in every grid ("homogeneous") or proportional to
    the grids' populations ("population"); the binomial test (the default of
    ``incident_hotspots``; with the population option under the population null) against
    ArcGIS's normal p of z (the "before"). Withholding as ``gi_star`` does it, vectorised.
    """
    import pandas as pd
    import scipy.sparse as sp
    import scipy.stats

    from geogrid import _hotspots_stats as _st
    from geogrid.hotspots import MIN_EXPECTED, MIN_INCIDENTS, MIN_NEIGHBOURHOOD, gi_star, incident_hotspots

    basic = demo.grids[demo.grids["level"] == 3]
    n = len(basic)
    pop = basic["population"].to_numpy(dtype=float)
    w_star = sp.csr_array(_st._binary_offdiag(w) + sp.eye_array(n, format="csr"))
    card = np.asarray(w_star.sum(axis=1)).ravel()
    rows: dict[str, Any] = {"null": {}, "power": {}}
    methods = {
        "homogeneous": (("binomial", None), ("normal", None)),
        "population": (("binomial+population", pop), ("binomial", None), ("normal", None)),
    }
    for null, offset in (("homogeneous", 0), ("population", 1)):
        lam_shape = pop / pop.mean() if null == "population" else np.ones(n)
        for per_grid in (0.6, 1, 3, 10, 20, 50, 200):
            seed = round(per_grid * 1000) + offset
            y = np.random.default_rng(seed).poisson(per_grid * lam_shape[:, None], size=(n, replicates))
            y = y.astype(float)
            hood = w_star @ y
            total = y.sum(axis=0)
            held = (hood < MIN_NEIGHBOURHOOD) | (card[:, None] <= 1)
            held |= ((total < MIN_INCIDENTS) | (card.mean() * total / n < MIN_EXPECTED))[None, :]
            for method, exposure in methods[null]:
                if method == "normal":
                    _, z = _st._gi_star_z(y, w_star)
                    p, direction = 2 * scipy.stats.norm.sf(np.abs(z)), np.sign(z)
                else:
                    p, direction, _, _ = _st._count_test(y, w_star, exposure)
                p = np.where(held, np.nan, p)
                binned = float((np.abs(_st._gi_bin(direction, p)) >= 2).mean())
                any_fdr = float(np.mean([(_st._fdr_bh(p[:, r]) <= 0.05).any() for r in range(replicates)]))
                rows["null"][f"{null} {per_grid} {method}"] = {
                    "binned_95": binned,
                    "any_after_fdr": any_fdr,
                    "withheld": float(held.mean()),
                }
                print(
                    f"  null {null} {per_grid:>5} per grid, {method:>16}: binned at 95 % {binned:.4f}, "
                    f"replicates with any FDR hit {any_fdr:.4f}, withheld {held.mean():.3f}",
                    flush=True,
                )
    truth = pd.DataFrame(demo.metadata["demo_hotspots"])
    pts = gpd.GeoSeries(gpd.points_from_xy(truth["lon"], truth["lat"]), crs=4326).to_crs(basic.crs)
    hit = basic.reset_index(drop=True).sindex.query(pts.values, predicate="within")
    where = dict(zip(hit[0], hit[1], strict=True))
    for option, exposure in (("counts", None), ("per-resident", pop)):
        rng = np.random.default_rng(2026)
        for k, row in truth.iterrows():
            if row["kind"] not in ("persistent", "emerging"):
                continue
            whole = None if row["kind"] == "persistent" else "2025-10-01"
            for label, since in (("whole", whole), ("Dec", "2025-12-01")):
                lam = incident_hotspots(demo.incidents, demo.grids, level=3, category=row["category"], since=since)
                lam_c = lam["count"].to_numpy(float)
                hits = [
                    gi_star(
                        rng.poisson(lam_c).astype(float),
                        basic,
                        weights=w,
                        p_method="binomial",
                        exposure=exposure,
                        min_total=MIN_INCIDENTS,
                        min_expected=MIN_EXPECTED,
                        min_neighbourhood=MIN_NEIGHBOURHOOD,
                    )["bin"].iloc[where[k]]
                    >= 2
                    for _ in range(200)
                ]
                key = f"{option} {row['kind']} {row['category']} {label} ({int(lam_c.sum()):,} incidents)"
                rows["power"][key] = float(np.mean(hits))
                print(f"  power {key}: {np.mean(hits):.3f}", flush=True)
    return rows
