"""Hot spots: Gi* with 999 conditional permutations, ours against esda.G_Local in the same run."""

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
        diff = np.abs(np.rint(o["p"].to_numpy() * 1000) - np.rint(b.p_sim.astype(float) * 1000))
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
    return out
