"""Hot spots that hold up: Gi*, local Moran, kernel density, emerging hot spots, Knox.

Each analysis has a pure core on arrays (``geogrid._hotspots_stats``) and an adapter on
grid and incident layers here. Results are GeoDataFrames keyed by ``grid_id`` that keep
the grids' index and CRS.

Inference. Local statistics use esda's conditional permutation scheme, reproduced draw
for draw in exact IEEE arithmetic: with the same ``seed`` the pseudo p-values equal
``esda.G_Local(star=True)`` / ``esda.Moran_Local``'s ``p_sim`` (esda's default
"directed" alternative: the tail the observed value lies in, ``(M + 1) / (R + 1)``) as
esda computes them in plain Python. With numba installed esda compiles its kernels with
``fastmath=True``, which reassociates the permuted sums: exact ties with the observed
statistic (common with counts) then fall either way and a few of esda's counts move by
one or two. We keep the exact arithmetic.
Maps need a two-sided statement, so ``p_fdr`` is the Benjamini–Hochberg adjustment of
the two-sided ``min(1, 2 p)`` over all grids, and ``bin`` is ArcGIS's Gi_Bin on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

import geopandas as gpd
import shapely
from pyproj import CRS

from geogrid import _hotspots_data as _data
from geogrid import _hotspots_stats as _st
from geogrid._hotspots_data import Weights
from layers.errors import format_ids
from layers.times import DEFAULT_TZ

__all__ = [
    "EHSA_CATEGORIES",
    "MIN_EXPECTED",
    "MIN_INCIDENTS",
    "MIN_NEIGHBOURHOOD",
    "WITHHELD_REASONS",
    "KernelDensity",
    "KnoxResult",
    "adjust_fdr",
    "closing_time_hotspots",
    "emerging_hotspots",
    "gi_star",
    "incident_clusters",
    "incident_hotspots",
    "kernel_density",
    "knox_test",
    "local_moran",
    "mann_kendall",
    "parse_weights",
]

EHSA_CATEGORIES: tuple[str, ...] = _st.EHSA_CATEGORIES
"""The emerging-hot-spot categories, hot then cold, then ``"no pattern"``."""

WITHHELD_REASONS: dict[str, str] = _st.WITHHELD_REASONS
"""Why a grid got no bin: the codes of the ``withheld`` column and what they mean."""

_QUADRANTS = {1: "HH", 2: "LH", 3: "LL", 4: "HL"}


# -- helpers ----------------------------------------------------------------------------------------
def parse_weights(text: str, *, name: str = "weights") -> str | float:
    """Read neighbours written as text (a command line, a query string): queen, rook or a distance in metres.

    Returns ``"queen"``, ``"rook"`` or the distance band as a float, as the ``weights``
    parameter of the analyses takes them; anything else raises ``ValueError`` naming
    ``name`` and what to write.

    >>> parse_weights("rook"), parse_weights("300")
    ('rook', 300.0)
    """
    if text in ("queen", "rook"):
        return text
    try:
        band = float(text)
    except ValueError:
        band = math.nan
    if not (math.isfinite(band) and band > 0):
        msg = f"{name} {text!r} is not understood: use queen, rook or a distance in metres (> 0)"
        raise ValueError(msg)
    return band


def adjust_fdr(p: Any) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values) controlling the false-discovery rate.

    Parameters
    ----------
    p
        p-values; NaN entries stay NaN and are not counted as tests.

    Returns
    -------
    numpy.ndarray
        ``q_(i) = min_{j >= i} p_(j) m / j`` in the original order, capped at 1. Reject
        where ``q <= alpha`` to control the FDR at ``alpha``.

    Examples
    --------
    >>> adjust_fdr([0.01, 0.04, 0.03, 0.5]).round(3).tolist()
    [0.04, 0.053, 0.053, 0.5]
    """
    return _st._fdr_bh(np.asarray(p, dtype=np.float64))


def mann_kendall(x: Any) -> pd.DataFrame:
    """Mann–Kendall trend test of each series (rows of ``x``; time along columns).

    ``S = Σ_{i<j} sign(x_j − x_i)``; ``Var S`` corrected for ties; ``z = (S − sign S) / √Var S``;
    two-sided ``p``; ``tau = S / (n(n−1)/2)``. Agrees with ``pymannkendall.original_test``.

    Parameters
    ----------
    x
        One series (1-D) or one per row (2-D), oldest first.

    Returns
    -------
    pandas.DataFrame
        One row per series: ``s``, ``var_s``, ``z``, ``p``, ``tau``, ``trend``
        (``"increasing"`` / ``"decreasing"`` at p < 0.05, else ``"no trend"``).

    Examples
    --------
    >>> mann_kendall([1, 2, 3, 4, 5, 7, 6, 8])[["s", "trend"]].values.tolist()
    [[26.0, 'increasing']]
    """
    r = _st._mann_kendall(np.asarray(x, dtype=np.float64))
    trend = np.where(r.p < 0.05, np.where(r.z > 0, "increasing", "decreasing"), "no trend")
    return pd.DataFrame({"s": r.s, "var_s": r.var_s, "z": r.z, "p": r.p, "tau": r.tau, "trend": trend})


def _frame(grids: gpd.GeoDataFrame, columns: dict[str, Any]) -> gpd.GeoDataFrame:
    base = {"grid_id": grids["grid_id"].to_numpy(), "level": grids["level"].to_numpy()}
    return gpd.GeoDataFrame({**base, **columns}, geometry=grids.geometry.values, index=grids.index, crs=grids.crs)


def _inputs(
    values: Any, grids: gpd.GeoDataFrame, weights: Weights, metric_crs: object
) -> tuple[gpd.GeoDataFrame, np.ndarray, str, Any, np.ndarray]:
    """Return the grids of the one level, the values and their column name, the weights and the non-NaN mask."""
    grids = _data._one_level(grids)
    y, name = _data._values_for(values, grids)
    adj = _data._weights_matrix(grids, weights, metric_crs)
    return grids, y, name, adj, ~np.isnan(y)


def _neighbourhoods(adj: Any, ok: np.ndarray) -> tuple[Any, sp.csr_array]:
    """Return the adjacency among the ``ok`` grids and its Gi* neighbourhoods (binary, each grid with itself)."""
    sub = _subset(adj, ok)
    return sub, sp.csr_array(_st._binary_offdiag(sub) + sp.eye_array(int(ok.sum()), format="csr"))


def _subset(adj: Any, ok: np.ndarray) -> Any:
    return adj[ok][:, ok] if not ok.all() else adj


# -- Gi* -------------------------------------------------------------------------------------------
MIN_INCIDENTS = 30
"""Fewer incidents than this in the window: :func:`incident_hotspots` bins no grid (``withheld="too_few"``)."""

MIN_EXPECTED = 5.0
"""Fewer incidents expected in an average neighbourhood than this (mean neighbourhood size times
the mean count): :func:`incident_hotspots` bins no grid (``withheld="sparse"``); on 990 basic
grids with queen neighbours that is fewer than about 600 incidents. The normal approximation
of a neighbourhood sum needs a few expected events (the classic rule of 5)."""

MIN_NEIGHBOURHOOD = 5.0
"""Fewer incidents than this in a grid and its neighbours: :func:`incident_hotspots` bins it
not (``withheld="few_nearby"``; none at all: ``"empty_neighbourhood"``). Such a grid cannot be
a hot spot, and a cold spot on a handful of events is not evidence."""


def _test(
    z: np.ndarray,
    p_perm: np.ndarray,
    withheld: np.ndarray,
    *,
    permutations: int,
    fdr: float | None,
    p_exact: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Return p (two-sided: normal, binomial, or permutation mid-p), p_fdr over the analysed grids and the significance basis."""
    from scipy import stats

    analysed = np.array([w is None for w in withheld], dtype=bool)
    if permutations:
        p = p_perm.copy()
    elif p_exact is not None:
        p = p_exact.copy()
    else:
        p = 2 * stats.norm.sf(np.abs(z))
    p = np.where(analysed, p, np.nan)
    p_fdr = _st._fdr_bh(p)
    basis = p_fdr if fdr is not None else p
    return {"p": p, "p_fdr": p_fdr, "basis": basis, "analysed": analysed}


def _state_permutations(out: gpd.GeoDataFrame, permutations: int, analysed: int, inference: str = "normal") -> None:
    out.attrs["inference"] = f"permutation ({permutations}, mid-p)" if permutations else inference
    if permutations:
        out.attrs["permutations_needed"] = {
            lvl: _st.permutations_needed(analysed, a) for lvl, a in (("90%", 0.10), ("95%", 0.05), ("99%", 0.01))
        }


def gi_star(
    values: Any,
    grids: gpd.GeoDataFrame,
    *,
    weights: Weights = "queen",
    permutations: int = 0,
    seed: int = 0,
    fdr: float | None = 0.05,
    p_method: Literal["normal", "binomial"] = "normal",
    exposure: Any = None,
    min_total: float = 0.0,
    min_expected: float = 0.0,
    min_neighbourhood: float = 0.0,
    metric_crs: object = None,
) -> gpd.GeoDataFrame:
    """Getis–Ord Gi* hot and cold spots of a value per grid: z, normal or binomial p, FDR, ArcGIS's bins.

    Binary weights with the grid itself included (Gi*, as ArcGIS and
    ``esda.G_Local(y, w, transform="B", star=True)``). By default the inference is
    ArcGIS's: the two-sided normal p of the analytic z, Benjamini–Hochberg over the
    analysed grids, Gi_Bin on the adjusted p. With ``permutations`` the p is a two-sided
    conditional-permutation mid-p instead (ties count half: a value that ties with every
    permutation gets p = 1); ``attrs["permutations_needed"]`` says how many permutations
    the FDR needs before each bin can be reached at all.

    Counts. With ``p_method="binomial"`` (what :func:`incident_hotspots` uses) the values
    must be counts, and the p is a binomial test of the neighbourhood sum instead of the
    normal p of z: under homogeneous risk, given the total ``N``, the sum ``S`` of a grid
    and its neighbours is ``Binomial(N, share)``, ``share`` being the neighbourhood's share
    of ``exposure`` (default: its share of the grids, the null of Gi*), and
    ``p = min(1, 2 min(P(S >= s), P(S <= s)))``. Counts more variable than Poisson
    (overdispersion, the rule in real districts) are first divided by the dispersion
    ``phi = max(1, X² / (n - 1))`` (quasi-Poisson; ``attrs["dispersion"]``): with
    ``phi = 1`` the test is exact, with large ``phi`` it approaches the normal p of z. The
    normal p of counts is too small far in the upper tail (sums of Poisson counts are
    skewed), and the FDR over ~1,000 grids reaches that far: at 1–20 incidents per grid
    5–21 % of null windows held a false hot spot with the normal p, at most 5 % with the
    binomial one (BENCHMARKS.md). ``z`` is still Gi*'s (esda's); the bin's sign is the
    direction of the test, ``S`` above or below ``expected``. With ``exposure`` (e.g. the
    residents per grid) a hot spot is more incidents than the neighbourhood's exposure
    predicts, not merely where many people are.

    Grids are withheld (``withheld`` holds the reason, see
    :data:`geogrid.hotspots.WITHHELD_REASONS`; their ``p`` is NaN and their bin 0) when the
    value is NaN, all values are equal, the values sum to less than ``min_total``, an
    average neighbourhood expects less than ``min_expected``, the grid has no neighbour, or
    the grid and its neighbours sum to 0 or to less than ``min_neighbourhood``. Withheld
    grids are not counted as tests by the FDR.

    Parameters
    ----------
    values
        One number per grid: a Series on the grids' index or on ``grid_id`` (its name
        becomes the column name), or a sequence in the grids' order.
    grids
        Grids of one level (``grid_id``, ``level``, polygons).
    weights
        ``"queen"`` (shared vertex), ``"rook"`` (shared edge), a distance band in metres
        between centroids (measured in ``metric_crs``), or a libpysal ``W``/``Graph`` /
        sparse matrix in the grids' order.
    permutations
        0 (default): normal p. Otherwise the number of conditional permutations of the mid-p.
    seed
        Seed of the permutations (esda's draw: the same seed gives esda's ``p_sim``).
    p_method
        ``"normal"`` (default; ArcGIS): two-sided normal p of z. ``"binomial"``: the
        binomial test of the neighbourhood sum (counts only; see above). Ignored with
        ``permutations``.
    exposure
        With ``p_method="binomial"``: what the expected count of each grid is proportional to
        (e.g. its population), one non-negative number per grid like ``values``. Default:
        the same in every grid.
    fdr
        False-discovery rate: ``bin`` is computed on ``p_fdr`` and ``significant`` is
        ``p_fdr <= fdr``. None: ``bin`` on the unadjusted p, ``significant`` at 0.05.
    min_total, min_expected, min_neighbourhood
        Minimum sum of the values and minimum expected sum in an average neighbourhood
        (below either no grid gets a bin), and minimum sum in a grid's own neighbourhood
        (:func:`incident_hotspots` uses :data:`MIN_INCIDENTS`, :data:`MIN_EXPECTED`,
        :data:`MIN_NEIGHBOURHOOD`).
    metric_crs
        CRS for distance bands; default: the layer's own if projected, else the
        CGCS2000 Gauss–Krüger zone (China) or UTM zone of the grids' centre.

    Returns
    -------
    geopandas.GeoDataFrame
        On the grids' index and CRS: ``grid_id``, ``level``, the value column, ``z``
        (Gi* z-score), ``p`` (two-sided), ``p_fdr`` (BH-adjusted), ``bin`` (Gi_Bin:
        +3/+2/+1 hot at 99/95/90 %, −1…−3 cold, 0 not significant or withheld),
        ``significant``, ``withheld`` (None or the reason code), with ``p_method="binomial"``
        also ``expected`` (incidents expected in the grid's neighbourhood), with permutations also
        ``p_sim`` (esda's folded pseudo p, ties counted as extreme: for comparison only),
        and the geometry. ``attrs["inference"]`` names the inference; with the binomial test
        ``attrs["dispersion"]`` holds phi.

    Raises
    ------
    ValueError
        ``grids`` holds several levels, values do not match the grids, bad weights.
        ``p_method="binomial"`` on values that are not counts, a bad ``exposure``.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> cells = [shapely.box(x, y, x + 1, y + 1) for y in range(5) for x in range(5)]
    >>> g = gpd.GeoDataFrame({"grid_id": [f"g{i}" for i in range(25)], "level": 3}, geometry=cells, crs=3857)
    >>> counts = [9 if i in (0, 1, 5, 6) else 1 for i in range(25)]
    >>> r = gi_star(counts, g)
    >>> round(float(r.loc[0, "z"]), 1), int(r.loc[0, "bin"])
    (4.9, 3)
    """
    grids, y, name, adj, ok = _inputs(values, grids, weights, metric_crs)
    exact = _count_inputs(y, grids, ok, p_method=p_method, exposure=exposure, permutations=permutations)
    r = _infer(
        "gi",
        y,
        adj,
        ok,
        exact=exact,
        permutations=permutations,
        seed=seed,
        fdr=fdr,
        minima=(min_total, min_expected, min_neighbourhood),
    )
    z, t, withheld, expected, p_sim = r["z"], r["test"], r["withheld"], r["expected"], r["p_sim"]
    cols: dict[str, Any] = {
        name: y,
        "z": z,
        "p": t["p"],
        "p_fdr": t["p_fdr"],
        "bin": _st._gi_bin(r["sign"], t["basis"]),
        "significant": t["basis"] <= (0.05 if fdr is None else fdr),
        "withheld": withheld,
    }
    if exact is not None:
        cols["expected"] = expected
    if permutations:
        cols["p_sim"] = p_sim
    out = _frame(grids, cols)
    _state_permutations(out, permutations, int(t["analysed"].sum()), "normal" if exact is None else "binomial")
    if exact is not None:
        out.attrs["dispersion"] = r["dispersion"]
    return out


def _infer(
    statistic: Literal["gi", "moran"],
    y: np.ndarray,
    adj: Any,
    ok: np.ndarray,
    *,
    exact: np.ndarray | None,
    permutations: int,
    seed: int,
    fdr: float | None,
    minima: tuple[float, float, float],
) -> dict[str, Any]:
    """Run the inference Gi* and Local Moran share: withholding, z, the p (normal, binomial or permutation mid-p), FDR.

    ``exact``: None (normal p), an empty array (binomial test, equal exposure) or the
    exposure per grid. Gi* tests the neighbourhood sum with the grid (:func:`_st._count_test`),
    Local Moran the neighbours' sum given the grid's own count
    (:func:`_st._neighbour_count_test`): the same binomial tails and dispersion scaling.
    Returns the arrays on all grids (``ok`` False: NaN, withheld ``"no_value"``), the
    :func:`_test` dict under ``"test"`` and the sign of each bin under ``"sign"``.
    """
    n = y.size
    z, p_perm, p_sim, p_exact, direction, expected, local_i = (np.full(n, np.nan) for _ in range(7))
    quadrant = np.zeros(n, dtype=np.int64)
    dispersion = math.nan
    withheld = np.full(n, "no_value", dtype=object)
    if ok.any():
        sub, w_star = _neighbourhoods(adj, ok)
        min_total, min_expected, min_neighbourhood = minima
        withheld[ok] = _st._withhold(
            y[ok], w_star, min_total=min_total, min_expected=min_expected, min_neighbourhood=min_neighbourhood
        )
        if ok.sum() >= 3 and not np.all(y[ok] == y[ok][0]):
            if statistic == "gi":
                r: Any = _st._gi_star(y[ok], sub, permutations=permutations, seed=seed, w_star=w_star)
                count_test, on = _st._count_test, w_star
            else:
                r = _st._local_moran(y[ok], sub, permutations=permutations, seed=seed)
                local_i[ok], quadrant[ok] = r.i, r.q
                count_test, on = _st._neighbour_count_test, sub
            z[ok], p_perm[ok], p_sim[ok] = r.z, r.p_perm, r.p_sim
            if exact is not None:
                pe, d, ex, phi = count_test(y[ok][:, None], on, None if exact.size == 0 else exact[ok])
                p_exact[ok], direction[ok], expected[ok] = pe[:, 0], d[:, 0], ex[:, 0]
                dispersion = float(phi[0])
                no_exposure = ok & np.isnan(p_exact)
                withheld[no_exposure & np.array([w is None for w in withheld])] = "no_exposure"
    t = _test(z, p_perm, withheld, permutations=permutations, fdr=fdr, p_exact=p_exact if exact is not None else None)
    return {
        "z": z,
        "test": t,
        "withheld": withheld,
        "expected": expected,
        "p_sim": p_sim,
        "dispersion": dispersion,
        "sign": direction if exact is not None and not permutations else z,
        "i": local_i,
        "quadrant": quadrant,
    }


def _count_inputs(
    y: np.ndarray, grids: gpd.GeoDataFrame, ok: np.ndarray, *, p_method: str, exposure: Any, permutations: int
) -> np.ndarray | None:
    """Check the binomial test's inputs: None (normal p), an empty array (equal exposure) or the exposure per grid."""
    if p_method not in ("normal", "binomial"):
        msg = f"p_method must be 'normal' or 'binomial', got {p_method!r}"
        raise ValueError(msg)
    if exposure is not None and (p_method != "binomial" or permutations):
        msg = "exposure needs the binomial test: pass p_method='binomial' and permutations=0"
        raise ValueError(msg)
    if p_method != "binomial" or permutations:
        return None
    ids = grids["grid_id"].to_numpy()
    v = y[ok]
    bad = (v < 0) | (v != np.round(v))
    if bad.any():
        msg = (
            f"p_method='binomial' needs counts (non-negative integers); grids {format_ids(ids[ok][bad])} hold "
            f"{format_ids(v[bad])}: use p_method='normal' for rates and other values"
        )
        raise ValueError(msg)
    if exposure is None:
        return np.empty(0)
    e, _ = _data._values_for(exposure, grids)
    wrong = ok & ~(e >= 0)
    if wrong.any():
        msg = f"exposure must be a non-negative number for every grid; grids {format_ids(ids[wrong])} hold {format_ids(e[wrong])}"
        raise ValueError(msg)
    if not e[ok].sum() > 0:
        msg = "exposure sums to 0: no incidents could be expected anywhere"
        raise ValueError(msg)
    return e


def local_moran(
    values: Any,
    grids: gpd.GeoDataFrame,
    *,
    weights: Weights = "queen",
    permutations: int = 0,
    seed: int = 0,
    fdr: float | None = 0.05,
    p_method: Literal["normal", "binomial"] = "normal",
    exposure: Any = None,
    min_total: float = 0.0,
    min_expected: float = 0.0,
    min_neighbourhood: float = 0.0,
    metric_crs: object = None,
) -> gpd.GeoDataFrame:
    """Local Moran's I clusters (HH, LL) and outliers (HL, LH): analytic z, normal or binomial p, FDR.

    Row-standardised weights, as ``esda.Moran_Local(y, w, transformation="r")``. ``z`` is
    the analytic z-score of I under conditional randomisation (Sokal et al. 1998, esda's
    ``EIc``/``VIc``). By default ``p`` is its two-sided normal p; with ``permutations``
    the two-sided conditional-permutation mid-p (ties count half).

    Counts. With ``p_method="binomial"`` (what :func:`incident_clusters` uses) the values
    must be counts and ``p`` is the exact test behind conditional randomisation: given a
    grid's own count ``y_i`` its I is a monotone function of its neighbours' sum ``S``,
    and under homogeneous risk, given the total ``N``, ``S`` is ``Binomial(N - y_i,
    share)`` (``share``: the neighbours' share of ``exposure`` among all grids but this
    one); the same two-sided tails and quasi-Poisson dispersion scaling as
    :func:`gi_star`'s binomial test. The normal p of I is far off for counts (I is a
    product, skewed): BENCHMARKS.md has the figures. Grids are withheld as in
    :func:`gi_star`.

    Parameters
    ----------
    values, grids, weights, permutations, seed, p_method, exposure, min_total, min_expected, min_neighbourhood, metric_crs
        As in :func:`gi_star` (``exposure`` and the binomial test: counts only).
    fdr
        A grid is in a cluster when ``p_fdr <= fdr`` (BH over the analysed grids); None:
        when the unadjusted p <= 0.05.

    Returns
    -------
    geopandas.GeoDataFrame
        ``grid_id``, ``level``, the value, ``i`` (local I), ``z``, ``quadrant`` (HH high
        among high, LH low among high, LL, HL), ``p`` (two-sided), ``p_fdr``, ``cluster``
        (the quadrant where significant, else ``"not significant"``; ``"withheld"`` with a
        reason in ``withheld``), with the binomial test also ``expected`` (the neighbours'
        expected sum given the grid's count), with permutations also ``p_sim`` (esda's
        folded pseudo p). ``attrs["inference"]`` names the inference; with the binomial
        test ``attrs["dispersion"]`` holds phi.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> cells = [shapely.box(x, y, x + 1, y + 1) for y in range(5) for x in range(5)]
    >>> g = gpd.GeoDataFrame({"grid_id": [f"g{i}" for i in range(25)], "level": 3}, geometry=cells, crs=3857)
    >>> r = local_moran([9 if i in (0, 1, 5, 6) else 1 for i in range(25)], g)
    >>> r.loc[0, "quadrant"], r.loc[0, "cluster"]
    ('HH', 'HH')
    """
    grids, y, name, adj, ok = _inputs(values, grids, weights, metric_crs)
    exact = _count_inputs(y, grids, ok, p_method=p_method, exposure=exposure, permutations=permutations)
    r = _infer(
        "moran",
        y,
        adj,
        ok,
        exact=exact,
        permutations=permutations,
        seed=seed,
        fdr=fdr,
        minima=(min_total, min_expected, min_neighbourhood),
    )
    t = r["test"]
    quadrant = np.array([_QUADRANTS.get(int(q)) for q in r["quadrant"]], dtype=object)
    sig = t["basis"] <= (0.05 if fdr is None else fdr)
    cluster = np.where(sig, quadrant, "not significant")
    cluster = np.where(t["analysed"], cluster, "withheld")
    cols: dict[str, Any] = {
        name: y,
        "i": r["i"],
        "z": r["z"],
        "quadrant": quadrant,
        "p": t["p"],
        "p_fdr": t["p_fdr"],
        "cluster": cluster,
        "withheld": r["withheld"],
    }
    if exact is not None:
        cols["expected"] = r["expected"]
    if permutations:
        cols["p_sim"] = r["p_sim"]
    out = _frame(grids, cols)
    _state_permutations(out, permutations, int(t["analysed"].sum()), "normal" if exact is None else "binomial")
    if exact is not None:
        out.attrs["dispersion"] = r["dispersion"]
    return out


# -- incidents per grid ------------------------------------------------------------------------------
def incident_hotspots(
    incidents: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame,
    *,
    level: int | None = None,
    category: str | Sequence[str] | None = None,
    since: Any = None,
    until: Any = None,
    tz: str = DEFAULT_TZ,
    time_field: str = "reported_at",
    weights: Weights = "queen",
    permutations: int = 0,
    seed: int = 0,
    fdr: float | None = 0.05,
    p_method: Literal["normal", "binomial"] = "binomial",
    population: str | None = None,
    min_total: float = MIN_INCIDENTS,
    min_expected: float = MIN_EXPECTED,
    min_neighbourhood: float = MIN_NEIGHBOURHOOD,
) -> gpd.GeoDataFrame:
    """Gi* hot spots of incident counts per grid of one level.

    Incidents are counted in the grid that holds them (points outside every grid are
    not counted); grids with none count 0. Then :func:`gi_star` on the counts with the
    binomial test of the neighbourhood sums (``p_method="binomial"``: calibrated at any count;
    ``"normal"``: ArcGIS's normal p of z, too small in the upper tail of small counts), the
    expected counts proportional to the grids' ``population`` column when one is named
    (else the same in every grid), and the minimum counts :data:`MIN_INCIDENTS` (whole window), :data:`MIN_EXPECTED` (an average
    neighbourhood) and :data:`MIN_NEIGHBOURHOOD` (each grid's): on a quiet week the grids
    are withheld with the reason rather than painted cold.

    Parameters
    ----------
    incidents, grids
        Incident and grid layers in one CRS.
    level
        The grid level (default: the finest).
    category, since, until, tz
        Filters: categories; ``time_field`` from ``since`` to ``until``, both inclusive,
        dates and zone-less times in ``tz`` (the store's time zone; default
        Asia/Shanghai), as :func:`layers.times.time_window` reads them.
    time_field
        ``"reported_at"`` (default) or ``"closed_at"``: the time the window filters.
    weights, permutations, seed, fdr, p_method
        As in :func:`gi_star`.
    population
        A column of ``grids`` (e.g. ``"population"``) that the expected count of each grid
        is proportional to: a hot spot is then more incidents than the residents of the
        neighbourhood predict, not merely where many people live. Needs the binomial test.
    min_total, min_expected, min_neighbourhood
        The minimum counts (see :func:`gi_star`).

    Returns
    -------
    geopandas.GeoDataFrame
        :func:`gi_star`'s columns with the value column ``count`` (and ``expected`` with the
        binomial test); ``attrs["expected_from"]`` names the population column when one is used.

    Raises
    ------
    ValueError
        ``population`` names no column of ``grids``, or holds negative or missing values.
    """
    g, counts, exposure = _incident_counts(
        incidents,
        grids,
        level,
        category=category,
        since=since,
        until=until,
        tz=tz,
        time_field=time_field,
        population=population,
    )
    out = gi_star(
        counts,
        g,
        weights=weights,
        permutations=permutations,
        seed=seed,
        fdr=fdr,
        p_method=p_method,
        exposure=exposure,
        min_total=min_total,
        min_expected=min_expected,
        min_neighbourhood=min_neighbourhood,
    )
    if population is not None:
        out.attrs["expected_from"] = population
    return out


def _incident_counts(
    incidents: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame,
    level: int | None,
    *,
    category: str | Sequence[str] | None,
    since: Any,
    until: Any,
    tz: str,
    time_field: str,
    population: str | None,
) -> tuple[gpd.GeoDataFrame, pd.Series, pd.Series | None]:
    """Return the grids of the level, their incident counts in the window (``count``) and the population column."""
    g = _data._level_grids(grids, level)
    exposure = _population(g, population)
    inc = _data._filter_incidents(incidents, category=category, since=since, until=until, tz=tz, time_field=time_field)
    pos = _data._assign(inc, g)
    counts = np.bincount(pos[pos >= 0], minlength=len(g)).astype(np.float64)
    return g, pd.Series(counts, index=g.index, name="count"), exposure


def _population(g: gpd.GeoDataFrame, population: str | None) -> pd.Series | None:
    """Return the grids' ``population`` column as numbers (None: no population option)."""
    if population is None:
        return None
    if population not in g.columns:
        msg = f"population={population!r} is not a column of the grids; they have {format_ids(g.columns.drop(g.geometry.name))}"
        raise ValueError(msg)
    return pd.to_numeric(g[population], errors="coerce")


def incident_clusters(
    incidents: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame,
    *,
    level: int | None = None,
    category: str | Sequence[str] | None = None,
    since: Any = None,
    until: Any = None,
    tz: str = DEFAULT_TZ,
    time_field: str = "reported_at",
    weights: Weights = "queen",
    permutations: int = 0,
    seed: int = 0,
    fdr: float | None = 0.05,
    p_method: Literal["normal", "binomial"] = "binomial",
    population: str | None = None,
    min_total: float = MIN_INCIDENTS,
    min_expected: float = MIN_EXPECTED,
    min_neighbourhood: float = MIN_NEIGHBOURHOOD,
) -> gpd.GeoDataFrame:
    """Local Moran clusters (HH, LL) and outliers (HL, LH) of incident counts per grid of one level.

    Counts as :func:`incident_hotspots` does, then :func:`local_moran` with the binomial
    test of the neighbours' sum given each grid's count (``p_method="binomial"``:
    calibrated at any count, BENCHMARKS.md; ``"normal"``: the normal p of I's z, which
    over-alarms on counts), the same ``population`` option and minimum counts.

    Parameters
    ----------
    incidents, grids, level, category, since, until, tz, time_field, weights, permutations, seed, fdr, p_method, population, min_total, min_expected, min_neighbourhood
        As in :func:`incident_hotspots` and :func:`local_moran`.

    Returns
    -------
    geopandas.GeoDataFrame
        :func:`local_moran`'s columns with the value column ``count``.
    """
    g, counts, exposure = _incident_counts(
        incidents,
        grids,
        level,
        category=category,
        since=since,
        until=until,
        tz=tz,
        time_field=time_field,
        population=population,
    )
    out = local_moran(
        counts,
        g,
        weights=weights,
        permutations=permutations,
        seed=seed,
        fdr=fdr,
        p_method=p_method,
        exposure=exposure,
        min_total=min_total,
        min_expected=min_expected,
        min_neighbourhood=min_neighbourhood,
    )
    if population is not None:
        out.attrs["expected_from"] = population
    return out


def closing_time_hotspots(
    incidents: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame,
    *,
    level: int | None = None,
    min_closed: int = 5,
    category: str | Sequence[str] | None = None,
    since: Any = None,
    until: Any = None,
    tz: str = DEFAULT_TZ,
    weights: Weights = "queen",
    permutations: int = 0,
    seed: int = 0,
    fdr: float | None = 0.05,
) -> gpd.GeoDataFrame:
    """Gi* hot spots of the median hours to close per grid: where incidents stay open long.

    Parameters
    ----------
    incidents, grids, level, category, since, until, tz, weights, permutations, seed, fdr
        As in :func:`incident_hotspots`.
    min_closed
        Grids with fewer closed incidents get NaN (a median of a handful is noise) and
        are left out of the analysis.

    Returns
    -------
    geopandas.GeoDataFrame
        :func:`gi_star`'s columns with ``median_hours_to_close`` and ``closed`` (count).
        A hot spot (bin > 0) is a cluster of slow closing.
    """
    g = _data._level_grids(grids, level)
    inc = _data._filter_incidents(incidents, category=category, since=since, until=until, tz=tz)
    if "closed_at" not in inc.columns:
        msg = "lacks the column 'closed_at'"
        raise _data._schema_error(msg, source="incidents")
    closed = inc[inc["closed_at"].notna().to_numpy()]
    pos = _data._assign(closed, g)
    hours = ((closed["closed_at"] - closed["reported_at"]).dt.total_seconds() / 3600).to_numpy()
    df = pd.DataFrame({"pos": pos, "h": hours})[pos >= 0]
    agg = df.groupby("pos")["h"].agg(["median", "size"])
    n_closed = np.zeros(len(g))
    n_closed[agg.index.to_numpy()] = agg["size"].to_numpy()
    med = np.full(len(g), np.nan)
    med[agg.index.to_numpy()] = agg["median"].to_numpy()
    med[n_closed < min_closed] = np.nan
    out = gi_star(
        pd.Series(med, index=g.index, name="median_hours_to_close"),
        g,
        weights=weights,
        permutations=permutations,
        seed=seed,
        fdr=fdr,
    )
    out.insert(3, "closed", n_closed.astype(np.int64))
    return out


# -- emerging hot spots -----------------------------------------------------------------------------
def emerging_hotspots(
    incidents: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame,
    *,
    level: int | None = None,
    period: str = "M",
    time_lag: int = 1,
    weights: Weights = "queen",
    alpha: float = 0.05,
    fdr: bool = True,
    min_share: float = 0.9,
    strict: bool = False,
    category: str | Sequence[str] | None = None,
    since: Any = None,
    until: Any = None,
    tz: str = DEFAULT_TZ,
    p_method: Literal["normal", "binomial"] = "binomial",
    population: str | None = None,
    permutations: int = 0,
    seed: int = 0,
    min_total: float = MIN_INCIDENTS,
    min_expected: float = MIN_EXPECTED,
    min_neighbourhood: float = MIN_NEIGHBOURHOOD,
    max_bins: int | None = None,
    max_permuted_bins: int | None = None,
) -> gpd.GeoDataFrame:
    """Emerging hot-spot analysis on a space-time cube of incident counts (grid × period).

    The cube. Incidents are counted per grid and period (``"M"`` month, ``"W"`` week,
    ``"Q"``, ``"D"``, in local time ``tz``), every period from the first to the last
    included; periods the time window (``since``–``until``, default: the days from the
    first to the last report) covers only in part are left out, so that a half-empty
    last week does not read as a hot spot ending. Gi* is computed for every bin over the whole cube (its mean and variance),
    with binary space-time neighbours as ArcGIS does: the bin itself, the spatial
    neighbours (``weights``) in the same period, and the grid and its neighbours in the
    ``time_lag`` preceding periods. A bin is a hot (cold) spot when its two-sided p —
    Benjamini–Hochberg adjusted over all bins when ``fdr`` — is below ``alpha``, hot when
    its space-time neighbourhood holds more incidents than expected. The p is
    :func:`gi_star`'s binomial test of the neighbourhood sum (``p_method="binomial"``, the
    default: given the cube's total, under risk constant over grids and periods — or
    proportional to ``population`` — with the quasi-Poisson dispersion scaling), so that
    the bins, and the categories built on them, are calibrated at the small counts a
    grid-month holds; ``"normal"`` is ArcGIS's normal p of z (it over-alarms there: at one
    incident per grid and month 1 in 3 null cubes held a false hot bin after the FDR,
    BENCHMARKS.md); ``permutations`` gives the conditional-permutation mid-p over the
    cube's bins instead. Bins are withheld (neither hot nor cold, not counted by the FDR) as
    in :func:`gi_star`, with ``min_total`` incidents in the whole cube, ``min_expected`` in
    an average space-time neighbourhood and ``min_neighbourhood`` in each bin's. The trend of each grid is a Mann–Kendall test of its Gi* z-scores
    over time (significant at ``alpha``).

    The categories (ArcGIS's definitions; "90 %" is ``min_share``), for hot spots —
    cold spots mirror them:

    - **new**: hot in the final period, never hot before;
    - **consecutive**: an uninterrupted run of at least two hot periods ending in the final
      one, never hot before the run, hot in less than 90 % of the periods;
    - **intensifying**: hot in at least 90 % of the periods including the final one,
      z-scores rising (Mann–Kendall);
    - **persistent**: hot in at least 90 % including the final one, no significant trend;
    - **diminishing**: hot in at least 90 % including the final one, z-scores falling;
    - **sporadic**: hot in the final period, on and off before, hot in less than 90 %, never
      a cold spot;
    - **oscillating**: hot in the final period, a cold spot in some earlier period, hot in
      less than 90 %;
    - **historical**: not hot in the final period, hot in at least 90 % of the periods;
    - **no pattern**: none of these.

    One addition to ArcGIS (off with ``strict=True``): a grid that ArcGIS leaves as "no
    pattern" although it was hot in an uninterrupted run of at least two periods, is not
    hot in the final period and whose z-scores fall significantly (Mann–Kendall) is a
    **historical** hot spot too. ArcGIS calls a hot spot historical only if it was hot in
    90 % of the periods, so a hot spot that lived for the first half of the year and
    then ended — the case a planner asks about — would otherwise show no pattern.

    Parameters
    ----------
    incidents, grids, level, category, since, until, tz, weights
        As in :func:`incident_hotspots`.
    period
        Length of a time step: ``"M"``, ``"W"``, ``"Q"`` or ``"D"``.
    time_lag
        Preceding periods in a bin's neighbourhood (ArcGIS's neighbourhood time step; 0:
        each period on its own).
    alpha
        Significance level of the bins and of the trend.
    fdr
        Adjust the bins' p-values for the false-discovery rate (Benjamini–Hochberg).
    p_method, permutations, seed
        As in :func:`gi_star`.
    population
        As in :func:`incident_hotspots`: expected counts proportional to this column of the
        grids (the same in every period).
    min_share
        ArcGIS's 90 %: the share of hot periods that makes a hot spot persistent,
        intensifying, diminishing or historical.
    strict
        ArcGIS's rules only, without the addition for ended hot spots.
    min_total, min_expected, min_neighbourhood
        The minimum counts (see :func:`gi_star`; defaults :data:`MIN_INCIDENTS`,
        :data:`MIN_EXPECTED`, :data:`MIN_NEIGHBOURHOOD`) over the space-time cube.
    max_bins, max_permuted_bins
        Refuse (``ValueError``, before any work) a cube of more than ``max_bins`` bins (grids
        × periods; memory grows with them, ~0.6 kB a bin), or, with ``permutations``, more
        than ``max_permuted_bins`` bins × permutations (the time). None: no limit. A
        service sets them; the message says how to make the cube smaller.

    Returns
    -------
    geopandas.GeoDataFrame
        Per grid: ``grid_id``, ``level``, ``count`` (total), ``pattern`` (the category),
        ``hot_periods``, ``cold_periods``, ``history`` (one character per period, oldest
        first: ``H`` hot, ``C`` cold, ``-`` withheld, ``.`` neither), ``withheld_periods``,
        ``withheld`` (the reason when every period of the grid was withheld), ``trend_z``, ``trend_p``,
        ``trend_tau`` (Mann–Kendall on the Gi* z-scores), ``count_trend_tau`` and
        ``count_trend_p`` (Mann–Kendall on the counts). ``attrs["periods"]`` lists the
        periods.
    """
    g = _data._level_grids(grids, level)
    if time_lag < 0:
        msg = f"time_lag must be >= 0, got {time_lag}"
        raise ValueError(msg)
    if not 0 < min_share <= 1:
        msg = f"min_share must be in (0, 1], got {min_share}"
        raise ValueError(msg)
    inc = _data._filter_incidents(incidents, category=category, since=since, until=until, tz=tz)
    pos = _data._assign(inc, g)
    per = _data._periods(inc["reported_at"], period, tz)
    span = _data._whole_periods(inc["reported_at"], period, tz, since, until)
    if span is not None:  # None: no incident at all (the cube says so)
        t = span[1].ordinal - span[0].ordinal + 1
        _within_limits(len(g), t, period, permutations, max_bins, max_permuted_bins)
    counts, axis = _data._cube(pos, per, len(g), span)
    n, t = counts.shape
    if t < 3:
        msg = f"the cube has {t} period(s); emerging hot spots need at least 3: widen the window or use period='W'"
        raise ValueError(msg)
    exposure = _population(g, population)
    adj = _data._weights_matrix(g, weights, None)
    r = _emerging(
        counts,
        adj,
        time_lag=time_lag,
        alpha=alpha,
        fdr=fdr,
        min_share=min_share,
        strict=strict,
        p_method=p_method,
        exposure=None if exposure is None else exposure.to_numpy(dtype=np.float64),
        ids=g["grid_id"].to_numpy(),
        permutations=permutations,
        seed=seed,
        minima=(min_total, min_expected, min_neighbourhood),
    )
    hot, cold, held_bins, mk, mk_counts = r["hot"], r["cold"], r["held"], r["mk"], r["mk_counts"]
    history = np.where(hot, "H", np.where(cold, "C", np.where(held_bins, "-", ".")))
    withheld = np.full(n, None, dtype=object)
    all_held = held_bins.all(axis=1)
    withheld[all_held] = r["reasons"][all_held, -1]
    out = _frame(
        g,
        {
            "count": counts.sum(axis=1).astype(np.int64),
            "pattern": r["pattern"],
            "hot_periods": hot.sum(axis=1),
            "cold_periods": cold.sum(axis=1),
            "history": ["".join(row) for row in history],
            "withheld_periods": held_bins.sum(axis=1),
            "withheld": withheld,
            "trend_z": mk.z,
            "trend_p": mk.p,
            "trend_tau": mk.tau,
            "count_trend_tau": mk_counts.tau,
            "count_trend_p": mk_counts.p,
        },
    )
    out.attrs["periods"] = [str(p) for p in axis]
    _state_permutations(out, permutations, int((~held_bins).sum()), p_method)
    if p_method == "binomial" and not permutations:
        out.attrs["dispersion"] = r["dispersion"]
    if population is not None:
        out.attrs["expected_from"] = population
    return out


def _within_limits(
    n: int, t: int, period: str, permutations: int, max_bins: int | None, max_permuted_bins: int | None
) -> None:
    """Refuse a cube of ``n`` grids × ``t`` periods larger than the limits (ValueError saying how to shrink it)."""
    bins = n * t
    order = "DWMQ"
    longer = order[order.index(period.upper()) + 1 :] if period.upper() in order else ""
    step = f"a longer period ({', '.join(longer)}), " if longer else ""
    shrink = f"a shorter since..until window, {step}a coarser level or one category"
    if max_bins is not None and bins > max_bins:
        msg = (
            f"the cube would have {bins:,} bins ({n:,} grids x {t:,} periods of {period!r}), more than the "
            f"{max_bins:,} allowed: use {shrink}"
        )
        raise ValueError(msg)
    if max_permuted_bins is not None and permutations and bins * permutations > max_permuted_bins:
        most = max_permuted_bins // bins
        fewer = f"at most {most:,} permutations or " if most >= 99 else ""
        msg = (
            f"{permutations:,} permutations of {bins:,} bins ({n:,} grids x {t:,} periods of {period!r}) "
            f"exceed the {max_permuted_bins:,} bin-permutations allowed: use {fewer}permutations=0 (the "
            f"p_method test), or {shrink}"
        )
        raise ValueError(msg)


def _emerging(
    counts: np.ndarray,
    adj: Any,
    *,
    time_lag: int,
    alpha: float,
    fdr: bool,
    min_share: float,
    strict: bool,
    p_method: str,
    exposure: np.ndarray | None,
    ids: np.ndarray,
    permutations: int,
    seed: int,
    minima: tuple[float, float, float],
) -> dict[str, Any]:
    """Compute the array core of :func:`emerging_hotspots`: hot and cold bins of a grid × period cube, trends, categories."""
    n, t = counts.shape
    cube_adj = _st._space_time_adjacency(adj, t, time_lag)
    y = counts.ravel()
    ok = np.ones(y.size, dtype=bool)
    stacked = None if exposure is None else np.repeat(exposure, t)
    names = np.repeat(ids, t)
    holder = pd.DataFrame({"grid_id": names, "level": 0})
    exact = _count_inputs(y, holder, ok, p_method=p_method, exposure=stacked, permutations=permutations)
    r = _infer(
        "gi",
        y,
        cube_adj,
        ok,
        exact=exact,
        permutations=permutations,
        seed=seed,
        fdr=alpha if fdr else None,
        minima=minima,
    )
    z = r["z"].reshape(n, t)
    analysed = r["test"]["analysed"].reshape(n, t)
    sig = r["test"]["basis"].reshape(n, t) < alpha
    sign = r["sign"].reshape(n, t)
    hot, cold = sig & (sign > 0), sig & (sign < 0)
    mk = _st._mann_kendall(np.nan_to_num(z))
    return {
        "z": z,
        "hot": hot,
        "cold": cold,
        "held": ~analysed,
        "reasons": np.asarray(r["withheld"], dtype=object).reshape(n, t),
        "mk": mk,
        "mk_counts": _st._mann_kendall(counts),
        "pattern": _st._classify_ehsa(hot, cold, mk.z, mk.p, min_share=min_share, alpha=alpha, strict=strict),
        "dispersion": r["dispersion"],
    }


# -- Knox ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KnoxResult:
    """The Knox test of space-time interaction (near repeats).

    Attributes
    ----------
    n
        Events tested.
    space_pairs, time_pairs, space_time_pairs
        Pairs close in space, in time, and in both (the Knox statistic).
    expected
        Expected ``space_time_pairs`` if space and time were independent.
    ratio
        ``space_time_pairs / expected`` (> 1: near repeats).
    p
        Permutation pseudo-p (one-sided, ``(M + 1) / (R + 1)``, times shuffled).
    p_poisson
        One-sided Poisson approximation.
    distance_m, days, metric_crs
        The thresholds and the CRS the distances were measured in.
    """

    n: int
    space_pairs: int
    time_pairs: int
    space_time_pairs: int
    expected: float
    ratio: float
    p: float
    p_poisson: float
    distance_m: float
    days: float
    metric_crs: str


def knox_test(
    incidents: gpd.GeoDataFrame,
    *,
    distance_m: float,
    days: float,
    permutations: int = 999,
    seed: int = 0,
    category: str | Sequence[str] | None = None,
    since: Any = None,
    until: Any = None,
    tz: str = DEFAULT_TZ,
    metric_crs: object = None,
) -> KnoxResult:
    """Test for near repeats (Knox): do incidents close in space also come close in time.

    Counts the pairs within ``distance_m`` of each other (in ``metric_crs``) and reported
    within ``days`` of each other, and compares that count with the counts after
    shuffling the times among the events (seeded). The same statistic, table and Poisson
    p as ``pointpats.spacetime.Knox`` (distances and time gaps ``<=`` the thresholds).

    Parameters
    ----------
    incidents
        Incident layer (``reported_at``, points).
    distance_m, days
        The space and time thresholds.
    permutations, seed
        Time shuffles and their seed.
    category, since, until, tz
        Filters as in :func:`incident_hotspots` (near repeats are usually tested per category).
    metric_crs
        Default: the layer's own if projected, else the GK/UTM zone of its centre.

    Returns
    -------
    KnoxResult

    Examples
    --------
    >>> import geopandas as gpd, pandas as pd
    >>> t = pd.to_datetime(["2025-01-01", "2025-01-02", "2025-06-01", "2025-09-01"]).tz_localize("UTC")
    >>> inc = gpd.GeoDataFrame({"reported_at": t}, geometry=gpd.points_from_xy([0, 10, 5000, 9000], [0, 0, 0, 0]),
    ...                        crs=3857)
    >>> knox_test(inc, distance_m=100, days=7, permutations=9).space_time_pairs
    1
    """
    if not distance_m > 0 or not days > 0:
        msg = f"distance_m and days must be > 0, got {distance_m} and {days}"
        raise ValueError(msg)
    inc = _data._filter_incidents(incidents, category=category, since=since, until=until, tz=tz)
    crs = _data._metric(inc, metric_crs)
    pts = inc.geometry.to_crs(crs) if not CRS.from_user_input(inc.crs).equals(crs) else inc.geometry
    xy = shapely.get_coordinates(pts.values)
    t_days = (inc["reported_at"] - pd.Timestamp("2000-01-01", tz="UTC")).dt.total_seconds().to_numpy() / 86400
    r = _st._knox(xy, t_days, distance=distance_m, interval=days, permutations=permutations, seed=seed)
    ratio = r.nst / r.expected if r.expected else math.nan
    return KnoxResult(
        n=r.n,
        space_pairs=r.ns,
        time_pairs=r.nt,
        space_time_pairs=r.nst,
        expected=r.expected,
        ratio=ratio,
        p=r.p_sim,
        p_poisson=r.p_poisson,
        distance_m=float(distance_m),
        days=float(days),
        metric_crs=crs.to_string(),
    )


# -- kernel density -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelDensity:
    """A kernel density surface on square cells in a metric CRS.

    Attributes
    ----------
    density
        Points per km², rows from north to south.
    transform
        Affine ``(a, b, c, d, e, f)``: ``x = a·col + b·row + c``, ``y = d·col + e·row + f``
        (the cell's upper-left corner; GDAL/rasterio order).
    crs
        The metric CRS of the cells.
    bandwidth_m, cell_m
        Gaussian kernel standard deviation and cell size, metres.
    rule
        How the bandwidth was chosen.
    """

    density: np.ndarray
    transform: tuple[float, float, float, float, float, float]
    crs: CRS
    bandwidth_m: float
    cell_m: float
    rule: str

    def to_gdf(self, *, min_density: float = 0.0) -> gpd.GeoDataFrame:
        """Cells with a density above ``min_density`` as square polygons (in :attr:`crs`).

        Returns
        -------
        geopandas.GeoDataFrame
            ``density`` (points per km²) and the cell squares; ``.to_crs(4326)`` for web maps.
        """
        a, _, c, _, e, f = self.transform
        rows, cols = np.nonzero(self.density > min_density)
        x0 = c + cols * a
        y1 = f + rows * e
        cells = shapely.box(x0, y1 + e, x0 + a, y1)
        return gpd.GeoDataFrame({"density": self.density[rows, cols]}, geometry=cells, crs=self.crs)


def kernel_density(
    points: gpd.GeoDataFrame | gpd.GeoSeries,
    *,
    bandwidth: float | None = None,
    cell_m: float = 50.0,
    metric_crs: object = None,
    bounds: tuple[float, float, float, float] | None = None,
) -> KernelDensity:
    """Gaussian kernel density of points, for maps.

    Parameters
    ----------
    points
        Point layer (any CRS; measured in ``metric_crs``).
    bandwidth
        Kernel standard deviation in metres. Default (``rule="scott"``): Scott's rule on
        the projected coordinates, ``h = n^(-1/6) · √((σx² + σy²)/2)`` (in two dimensions
        Silverman's rule for a Gaussian kernel gives the same factor). For a district with
        several hot spots it oversmooths; pass 100–300 m to see them apart.
    cell_m
        Cell size in metres.
    metric_crs
        Default: the layer's own if projected, else the GK/UTM zone of its centre.
    bounds
        ``(minx, miny, maxx, maxy)`` of the surface in ``metric_crs``; default: the
        points' extent padded by three bandwidths.

    Returns
    -------
    KernelDensity
        The surface in points per km² (it integrates to the number of points inside).

    Examples
    --------
    >>> import geopandas as gpd
    >>> pts = gpd.GeoSeries(gpd.points_from_xy([0, 10, 20, 400], [0, 5, 0, 400]), crs=3857)
    >>> kd = kernel_density(pts, bandwidth=50, cell_m=10)
    >>> round(float(kd.density.sum()) * 10 * 10 / 1e6, 3)
    4.0
    """
    gs = points.geometry if isinstance(points, gpd.GeoDataFrame) else points
    if len(gs) == 0:
        msg = "no points: nothing to estimate"
        raise ValueError(msg)
    if not cell_m > 0:
        msg = f"cell_m must be > 0, got {cell_m}"
        raise ValueError(msg)
    crs = _data._metric(gs, metric_crs)
    proj = gs.to_crs(crs) if not CRS.from_user_input(gs.crs).equals(crs) else gs
    xy = shapely.get_coordinates(proj.values)
    if bandwidth is None:
        if len(xy) < 2:
            msg = "Scott's rule needs at least two points: pass bandwidth=..."
            raise ValueError(msg)
        h, rule = _st._scott_bandwidth(xy), "scott"
    else:
        if not bandwidth > 0:
            msg = f"bandwidth must be > 0 metres, got {bandwidth}"
            raise ValueError(msg)
        h, rule = float(bandwidth), "given"
    dens, transform = _st._kde_grid(xy, h, float(cell_m), bounds)
    return KernelDensity(density=dens, transform=transform, crs=crs, bandwidth_m=h, cell_m=float(cell_m), rule=rule)
