"""Camera placement: where K new cameras would see the most, and how to re-aim old ones.

Demand is discretised into weighted points: incident locations, or the centres of square
cells inside the grids (weighted by area, or by a per-grid hot-spot weight times area).
What existing cameras already see is removed first. Choosing K of the candidate views
to maximise the newly seen weight is the maximal covering location problem (Church &
ReVelle 1974): solved exactly as an integer programme with HiGHS (``highspy``) when it is
small enough, otherwise greedily. Greedy is within (1 − 1/e) ≈ 63.2 % of the optimum
(Nemhauser, Wolsey & Fisher 1978), and the result also reports a data-dependent upper
bound on the optimum, usually much tighter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from geogrid.coverage import (
    DEFAULT_RESOLUTION,
    _active,
    _building_parts,
    _metric_geoms,
    _views_metric,
    resolve_metric_crs,
)

__all__ = [
    "GREEDY_BOUND",
    "PlacementResult",
    "candidate_sites",
    "demand_points",
    "place_cameras",
    "solve_max_cover",
    "suggest_reaim",
]

GREEDY_BOUND = 1.0 - 1.0 / math.e
"""Greedy maximal covering is never below this share of the optimum."""

Weight = Literal["incidents", "area", "hotspots"]


@dataclass(frozen=True)
class PlacementResult:
    """The chosen sites and how good they are.

    Attributes
    ----------
    sites
        The chosen candidates in order of choice, with ``gain`` (weight newly seen by
        this site given the earlier ones; for the ILP: in greedy order over the chosen set).
    seen
        Newly seen weight of all chosen sites together.
    total
        The demand weight no existing camera sees (what could be gained at most).
    method
        ``"ilp"`` (optimal up to ``mip_gap``) or ``"greedy"``.
    upper_bound
        An upper bound on the optimum (the ILP's dual bound; for greedy the best of the
        bounds ``f(S_i) + sum of the k largest marginal gains at S_i``).
    info
        Sizes and solver details.
    """

    sites: gpd.GeoDataFrame
    seen: float
    total: float
    method: str
    upper_bound: float
    info: dict[str, Any] = field(default_factory=dict)


# -- demand and candidates ------------------------------------------------------------------
def demand_points(
    grids: gpd.GeoDataFrame,
    *,
    weight: Weight = "area",
    incidents: gpd.GeoDataFrame | None = None,
    hotspot_weight: pd.Series | None = None,
    cell_m: float = 20.0,
    metric_crs: object = None,
) -> gpd.GeoDataFrame:
    """Discretise what should be seen into weighted points.

    Parameters
    ----------
    grids
        The grids of one level (cells are laid inside them; the finest level is used
        when there is a ``level`` column).
    weight
        ``"incidents"``: one point per incident, weight 1; ``"area"``: cell centres,
        weight = cell area in m²; ``"hotspots"``: cell centres weighted by area × the
        grid's ``hotspot_weight``.
    incidents
        Needed for ``weight="incidents"``.
    hotspot_weight
        Per-grid weight indexed by ``grid_id``, needed for ``"hotspots"``.
    cell_m
        Cell size in metres.
    metric_crs
        The metric CRS (default: chosen as in :func:`geogrid.coverage.camera_views`).

    Returns
    -------
    geopandas.GeoDataFrame
        Points with ``weight`` and ``grid_id``, in the grids' CRS.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame({"grid_id": ["a"]}, geometry=[shapely.box(0, 0, 40, 20)], crs="EPSG:3857")
    >>> d = demand_points(g, cell_m=10)
    >>> len(d), float(d.weight.sum())
    (8, 800.0)
    """
    crs = resolve_metric_crs([grids, None, None, incidents], metric_crs)
    if "level" in grids.columns and len(grids):
        grids = grids[pd.to_numeric(grids["level"]) == pd.to_numeric(grids["level"]).max()]
    geoms = _metric_geoms(grids, crs)
    ids = grids["grid_id"].astype(str).to_numpy() if "grid_id" in grids.columns else grids.index.astype(str).to_numpy()
    if weight == "incidents":
        if incidents is None:
            msg = "weight='incidents' needs incidents=..."
            raise ValueError(msg)
        pts = _metric_geoms(incidents, crs)
        p, g = shapely.STRtree(geoms).query(pts, predicate="intersects")
        first = np.unique(p, return_index=True)[1]
        p, g = p[first], g[first]
        out = gpd.GeoDataFrame({"weight": np.ones(p.size), "grid_id": ids[g]}, geometry=pts[p], crs=crs)
        return out.to_crs(grids.crs)
    if weight not in ("area", "hotspots"):
        msg = f"weight must be 'incidents', 'area' or 'hotspots', got {weight!r}"
        raise ValueError(msg)
    if weight == "hotspots" and hotspot_weight is None:
        msg = "weight='hotspots' needs hotspot_weight=... (a Series indexed by grid_id)"
        raise ValueError(msg)
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
    xs = np.arange(xmin + cell_m / 2, xmax, cell_m)
    ys = np.arange(ymin + cell_m / 2, ymax, cell_m)
    xx, yy = (a.ravel() for a in np.meshgrid(xs, ys))
    pts = shapely.points(xx, yy)
    p, g = shapely.STRtree(geoms).query(pts, predicate="intersects")
    first = np.unique(p, return_index=True)[1]
    p, g = p[first], g[first]
    w = np.full(p.size, cell_m * cell_m)
    if weight == "hotspots":
        hw = pd.Series(hotspot_weight, dtype=float).groupby(level=0).sum()
        w = w * hw.reindex(ids[g]).fillna(0.0).clip(lower=0).to_numpy()
    keep = w > 0
    out = gpd.GeoDataFrame({"weight": w[keep], "grid_id": ids[g][keep]}, geometry=pts[p][keep], crs=crs)
    return out.to_crs(grids.crs)


def candidate_sites(
    streets: gpd.GeoDataFrame,
    *,
    spacing_m: float = 50.0,
    offset_m: float = 6.0,
    fov_deg: float = 90.0,
    range_m: float = 80.0,
    dome_range_m: float = 60.0,
    metric_crs: object = None,
) -> gpd.GeoDataFrame:
    """Generate candidate camera views along streets and at intersections.

    Every ``spacing_m`` along each street, a pole ``offset_m`` beside the centre line
    holding a camera looking each way along the street; at each street end that meets
    another street (an intersection), a dome.

    Returns
    -------
    geopandas.GeoDataFrame
        ``candidate_id``, ``heading_deg``, ``fov_deg``, ``range_m``, ``kind``
        (``street`` / ``intersection``), points in the streets' CRS.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> lines = [shapely.LineString([(0, 0), (100, 0)]), shapely.LineString([(100, 0), (100, 100)])]
    >>> s = gpd.GeoDataFrame(geometry=lines, crs="EPSG:3857")
    >>> candidate_sites(s).kind.value_counts().to_dict()  # 2 poles x 2 directions per street; 1 corner
    {'street': 8, 'intersection': 1}
    """
    crs = resolve_metric_crs([None, None, None, None, streets], metric_crs)
    lines = shapely.get_parts(_metric_geoms(streets, crs))
    lines = lines[shapely.get_type_id(lines) == 1]
    length = shapely.length(lines)
    n_on = np.maximum(np.floor(length / spacing_m).astype(np.int64), 1)
    li = np.repeat(np.arange(lines.size), n_on)
    k = np.arange(li.size) - np.repeat(np.cumsum(n_on) - n_on, n_on)
    d = (k + 0.5) * (length[li] / n_on[li])
    a = shapely.get_coordinates(shapely.line_interpolate_point(lines[li], d))
    b = shapely.get_coordinates(shapely.line_interpolate_point(lines[li], np.minimum(d + 1.0, length[li])))
    t = b - a
    t /= np.maximum(np.hypot(t[:, 0], t[:, 1]), 1e-9)[:, None]
    side = np.where(k % 2 == 0, 1.0, -1.0)
    xy = a + np.column_stack([t[:, 1], -t[:, 0]]) * (side * offset_m)[:, None]
    az = np.mod(np.degrees(np.arctan2(t[:, 0], t[:, 1])), 360.0)
    street_xy = np.repeat(xy, 2, axis=0)
    street_h = np.column_stack([az, np.mod(az + 180.0, 360.0)]).ravel()
    # Intersections: street ends shared by two or more streets (rounded to 1 cm).
    ends = np.vstack(
        [shapely.get_coordinates(shapely.get_point(lines, 0)), shapely.get_coordinates(shapely.get_point(lines, -1))]
    )
    key, counts = np.unique(np.round(ends, 2), axis=0, return_counts=True)
    nodes = key[counts >= 2]
    xy_all = np.vstack([street_xy, nodes])
    n_s, n_n = len(street_xy), len(nodes)
    out = gpd.GeoDataFrame(
        {
            "candidate_id": [f"C{i + 1:06d}" for i in range(n_s + n_n)],
            "heading_deg": np.concatenate([np.round(street_h, 1), np.zeros(n_n)]),
            "fov_deg": np.concatenate([np.full(n_s, float(fov_deg)), np.full(n_n, 360.0)]),
            "range_m": np.concatenate([np.full(n_s, float(range_m)), np.full(n_n, float(dome_range_m))]),
            "kind": np.array(["street"] * n_s + ["intersection"] * n_n, dtype=object),
        },
        geometry=shapely.points(xy_all),
        crs=crs,
    )
    return out.to_crs(streets.crs)


# -- the covering problem -------------------------------------------------------------------
def _cover_pairs(views: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(view, point) pairs where the view holds the point."""
    if len(views) == 0 or len(pts) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    p, v = shapely.STRtree(views).query(pts, predicate="intersects")
    return v, p


def _greedy(
    cand: np.ndarray, dem: np.ndarray, w: np.ndarray, n_cand: int, k: int
) -> tuple[list[int], list[float], float]:
    """Greedy max cover on (candidate, demand) pairs; returns picks, gains and an upper bound."""
    order = np.argsort(cand, kind="stable")
    c_ptr = np.searchsorted(cand[order], np.arange(n_cand + 1))
    c_dem = dem[order]
    order_d = np.argsort(dem, kind="stable")
    d_ptr = np.searchsorted(dem[order_d], np.arange(len(w) + 1))
    d_cand = cand[order_d]
    gain = np.bincount(cand, w[dem], minlength=n_cand).astype(float)
    covered = np.zeros(len(w), dtype=bool)
    picks: list[int] = []
    gains: list[float] = []
    value = 0.0
    bound = float(np.sort(gain)[::-1][:k].sum())
    for _ in range(min(k, n_cand)):
        j = int(np.argmax(gain))
        if gain[j] <= 0:
            break
        picks.append(j)
        gains.append(float(gain[j]))
        value += float(gain[j])
        new = c_dem[c_ptr[j] : c_ptr[j + 1]]
        new = new[~covered[new]]
        covered[new] = True
        # Every candidate that also covered these points loses their weight.
        idx = np.concatenate([np.arange(d_ptr[i], d_ptr[i + 1]) for i in new]) if new.size else np.empty(0, np.int64)
        if idx.size:
            gain -= np.bincount(d_cand[idx], np.repeat(w[new], np.diff(d_ptr)[new]), minlength=n_cand)
        gain[j] = 0.0
        gain = np.maximum(gain, 0.0)
        bound = min(bound, value + float(np.sort(gain)[::-1][:k].sum()))
    return picks, gains, bound


def _ilp(
    cand: np.ndarray, dem: np.ndarray, w: np.ndarray, n_cand: int, k: int, time_limit_s: float, mip_gap: float
) -> tuple[list[int], float, float, str]:
    """Solve max cover exactly with HiGHS: x_j binary sites, y_i ∈ [0, 1] demand seen."""
    import highspy

    used = np.unique(dem)
    remap = np.full(len(w), -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    m = used.size
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit_s))
    h.setOptionValue("mip_rel_gap", float(mip_gap))
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("threads", 1)
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_ = n_cand + m
    lp.num_row_ = m + 1
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = np.concatenate([np.zeros(n_cand), w[used]])
    lp.col_lower_ = np.zeros(n_cand + m)
    lp.col_upper_ = np.ones(n_cand + m)
    lp.row_lower_ = np.concatenate([np.full(m, -inf), [-inf]])
    lp.row_upper_ = np.concatenate([np.zeros(m), [float(k)]])
    # Row i (< m): y_i - sum_{j covers i} x_j <= 0; row m: sum_j x_j <= k. Column-wise (CSC).
    order = np.argsort(cand, kind="stable")
    start_x = np.searchsorted(cand[order], np.arange(n_cand + 1))
    idx_x = np.empty(len(cand) + n_cand, dtype=np.int32)
    val_x = np.empty(len(cand) + n_cand)
    starts = np.empty(n_cand + m + 1, dtype=np.int32)
    pos = 0
    r_of = remap[dem[order]]
    for j in range(n_cand):
        seg = r_of[start_x[j] : start_x[j + 1]]
        starts[j] = pos
        idx_x[pos : pos + seg.size] = np.sort(seg)
        val_x[pos : pos + seg.size] = -1.0
        pos += seg.size
        idx_x[pos] = m
        val_x[pos] = 1.0
        pos += 1
    idx_y = np.arange(m, dtype=np.int32)
    starts[n_cand : n_cand + m] = pos + np.arange(m)
    starts[-1] = pos + m
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = starts
    lp.a_matrix_.index_ = np.concatenate([idx_x[:pos], idx_y])
    lp.a_matrix_.value_ = np.concatenate([val_x[:pos], np.ones(m)])
    lp.integrality_ = [highspy.HighsVarType.kInteger] * n_cand + [highspy.HighsVarType.kContinuous] * m
    h.passModel(lp)
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    x = np.asarray(h.getSolution().col_value[:n_cand])
    picks = [int(j) for j in np.flatnonzero(x > 0.5)]
    info = h.getInfo()
    bound = float(info.mip_dual_bound) if np.isfinite(info.mip_dual_bound) else float(w[used].sum())
    return picks, float(info.objective_function_value), bound, status


def solve_max_cover(
    cover: tuple[np.ndarray, np.ndarray],
    weight: np.ndarray,
    n_candidates: int,
    k: int,
    *,
    method: Literal["auto", "ilp", "greedy"] = "auto",
    max_ilp_pairs: int = 100_000,
    max_ilp_candidates: int = 2_000,
    time_limit_s: float = 60.0,
    mip_gap: float = 1e-6,
) -> tuple[list[int], list[float], float, str, float]:
    """Solve the maximal covering problem on plain arrays.

    Parameters
    ----------
    cover
        ``(candidate, demand)`` index pairs: candidate ``j`` sees demand point ``i``.
    weight
        Weight of each demand point.
    n_candidates, k
        How many candidates there are; how many to choose.
    method
        ``"ilp"`` (HiGHS), ``"greedy"``, or ``"auto"``: the ILP when there are at most
        ``max_ilp_pairs`` pairs and ``max_ilp_candidates`` candidates that see anything,
        and ``highspy`` is installed; else greedy.
    time_limit_s, mip_gap
        HiGHS limits; if the time runs out below the greedy value, greedy is returned.

    Returns
    -------
    tuple
        ``(picks, gains, value, method, upper_bound)``.

    Examples
    --------
    >>> import numpy as np
    >>> cand, dem = np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2])
    >>> solve_max_cover((cand, dem), np.array([1.0, 1.0, 1.0]), 3, 1, method="greedy")[:3]
    ([0], [2.0], 2.0)
    """
    cand, dem = (np.asarray(a, dtype=np.int64) for a in cover)
    w = np.asarray(weight, dtype=float)
    if method == "auto":
        try:
            import highspy  # noqa: F401

            small = len(cand) <= max_ilp_pairs and np.unique(cand).size <= max_ilp_candidates
            method = "ilp" if small else "greedy"
        except ImportError:  # pragma: no cover - highspy is optional
            method = "greedy"
    g_picks, g_gains, g_bound = _greedy(cand, dem, w, n_candidates, k)
    g_value = float(sum(g_gains))
    if method == "greedy":
        return g_picks, g_gains, g_value, "greedy", g_bound
    # Only candidates that see something enter the ILP.
    live, cand_c = np.unique(cand, return_inverse=True)
    picks_c, _, bound, _status = _ilp(cand_c.ravel(), dem, w, live.size, k, time_limit_s, mip_gap)
    picks = [int(live[j]) for j in picks_c]
    # Order the ILP's sites greedily so each carries its marginal gain.
    sub = np.isin(cand, picks)
    remap = {j: i for i, j in enumerate(picks)}
    sc = np.array([remap[int(j)] for j in cand[sub]], dtype=np.int64)
    o_picks, o_gains, _ = _greedy(sc, dem[sub], w, len(picks), len(picks))
    value = float(sum(o_gains))
    if value < g_value:  # a time limit hit before the ILP caught up with greedy
        return g_picks, g_gains, g_value, "greedy", max(bound, g_value)
    return [picks[i] for i in o_picks], o_gains, value, "ilp", max(bound, value)


def place_cameras(
    candidates: gpd.GeoDataFrame,
    demand: gpd.GeoDataFrame,
    *,
    k: int,
    existing: gpd.GeoDataFrame | None = None,
    buildings: gpd.GeoDataFrame | None = None,
    include_offline: bool = False,
    method: Literal["auto", "ilp", "greedy"] = "auto",
    max_ilp_pairs: int = 100_000,
    time_limit_s: float = 60.0,
    metric_crs: object = None,
    resolution: int = DEFAULT_RESOLUTION,
) -> PlacementResult:
    """Choose ``k`` candidate views that newly see the most demand weight.

    Parameters
    ----------
    candidates
        Candidate cameras (points with ``heading_deg``, ``fov_deg``, ``range_m``), e.g.
        from :func:`candidate_sites`.
    demand
        Weighted points (``weight``), e.g. from :func:`demand_points`.
    k
        How many new cameras.
    existing
        The cameras already there (they stay): what they see is not counted again.
    buildings
        Footprints that block the views (2-D occlusion).
    include_offline
        Count offline existing cameras as seeing (default: their demand is up for grabs).
    method
        ``"ilp"``, ``"greedy"`` or ``"auto"`` (see :func:`solve_max_cover`).
    max_ilp_pairs, time_limit_s
        Size limit for ``"auto"`` to choose the ILP, and the solver's time limit.
    metric_crs, resolution
        As in :func:`geogrid.coverage.camera_views`.

    Returns
    -------
    PlacementResult

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> cand = gpd.GeoDataFrame({"heading_deg": [0.0, 90.0], "fov_deg": [360.0, 90.0], "range_m": [5.0, 50.0]},
    ...                         geometry=[shapely.Point(0, 0), shapely.Point(0, 0)], crs="EPSG:3857")
    >>> dem = gpd.GeoDataFrame({"weight": [1.0, 1.0, 1.0]},
    ...                        geometry=[shapely.Point(1, 2), shapely.Point(20, 0), shapely.Point(40, 1)], crs="EPSG:3857")
    >>> r = place_cameras(cand, dem, k=1)
    >>> r.sites.index.tolist(), r.seen, r.method
    ([1], 2.0, 'ilp')
    """
    if k < 0:
        msg = f"k must be >= 0, got {k}"
        raise ValueError(msg)
    crs = resolve_metric_crs([None, candidates, buildings, demand, None, existing], metric_crs)
    blds = _building_parts(buildings, crs)
    pts = _metric_geoms(demand, crs)
    w = demand["weight"].to_numpy(dtype=float)
    open_ = np.ones(len(pts), dtype=bool)
    if existing is not None and len(existing):
        ev = _views_metric(
            _active(existing, include_offline), crs, resolution=resolution, min_distance_m=0.0, buildings=blds
        )
        _, p = _cover_pairs(ev, pts)
        open_[p] = False
    total = float(w[open_].sum())
    views = _views_metric(candidates, crs, resolution=resolution, min_distance_m=0.0, buildings=blds)
    cand, dem = _cover_pairs(views, pts)
    keep = open_[dem]
    cand, dem = cand[keep], dem[keep]
    picks, gains, value, used, bound = solve_max_cover(
        (cand, dem), w, len(candidates), k, method=method, max_ilp_pairs=max_ilp_pairs, time_limit_s=time_limit_s
    )
    sites = candidates.iloc[picks].copy()
    sites["gain"] = gains
    return PlacementResult(
        sites=sites,
        seen=value,
        total=total,
        method=used,
        upper_bound=bound,
        info={"candidates": len(candidates), "demand_points": len(pts), "pairs": len(cand), "k": k},
    )


def suggest_reaim(
    cameras: gpd.GeoDataFrame,
    demand: gpd.GeoDataFrame,
    *,
    step_deg: float = 10.0,
    buildings: gpd.GeoDataFrame | None = None,
    include_offline: bool = False,
    metric_crs: object = None,
    resolution: int = DEFAULT_RESOLUTION,
) -> pd.DataFrame:
    """For each directional camera, the heading that would see the most weight nobody else sees.

    Each camera is turned alone while all others stay; the weight it alone sees is
    compared at its current heading and at every ``step_deg``. Domes are left out.

    Returns
    -------
    pandas.DataFrame
        The cameras' index: ``heading_deg`` (now), ``best_heading_deg``,
        ``gain_now``, ``gain_best``, ``improvement``; sorted by improvement.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> cams = gpd.GeoDataFrame({"heading_deg": [0.0], "fov_deg": [60.0], "range_m": [50.0]},
    ...                         geometry=[shapely.Point(0, 0)], crs="EPSG:3857")
    >>> dem = gpd.GeoDataFrame({"weight": [1.0, 1.0]}, geometry=[shapely.Point(20, 0), shapely.Point(30, 1)],
    ...                        crs="EPSG:3857")
    >>> suggest_reaim(cams, dem, step_deg=30)[["best_heading_deg", "gain_now", "gain_best"]].values.tolist()
    [[90.0, 0.0, 2.0]]
    """
    crs = resolve_metric_crs([None, cameras, buildings, demand], metric_crs)
    blds = _building_parts(buildings, crs)
    active = _active(cameras, include_offline)
    pts = _metric_geoms(demand, crs)
    w = demand["weight"].to_numpy(dtype=float)
    views = _views_metric(active, crs, resolution=resolution, min_distance_m=0.0, buildings=blds)
    v, p = _cover_pairs(views, pts)
    seen_by = np.bincount(p, minlength=len(pts))
    directional = np.flatnonzero(active["fov_deg"].to_numpy(dtype=float) < 360.0)
    headings = np.arange(0.0, 360.0, step_deg)
    n_d, n_h = directional.size, headings.size
    rows = np.repeat(directional, n_h)
    trial = active.iloc[rows].copy()
    trial["heading_deg"] = np.tile(headings, n_d)
    tv = _views_metric(trial, crs, resolution=resolution, min_distance_m=0.0, buildings=blds)
    tj, tp = _cover_pairs(tv, pts)
    cam_of = rows[tj]
    # A point is new for camera c if nobody sees it, or only c does (at its current heading).
    key_now = v.astype(np.int64) * len(pts) + p
    mine = np.isin(cam_of.astype(np.int64) * len(pts) + tp, key_now)
    alone = (seen_by[tp] - mine.astype(np.int64)) == 0
    gain = np.bincount(tj, w[tp] * alone, minlength=len(tv)).reshape(n_d, n_h)
    solo = np.bincount(v, w[p] * (seen_by[p] == 1), minlength=len(active))
    best = np.argmax(gain, axis=1) if n_d else np.empty(0, np.int64)
    out = pd.DataFrame(index=active.index[directional])
    out["heading_deg"] = active["heading_deg"].to_numpy(dtype=float)[directional]
    out["best_heading_deg"] = headings[best] if n_d else np.empty(0)
    out["gain_now"] = solo[directional]
    out["gain_best"] = gain[np.arange(n_d), best] if n_d else np.empty(0)
    better = out["gain_best"] > out["gain_now"]
    out.loc[~better, "best_heading_deg"] = out.loc[~better, "heading_deg"]
    out.loc[~better, "gain_best"] = out.loc[~better, "gain_now"]
    out["improvement"] = out["gain_best"] - out["gain_now"]
    return out.sort_values("improvement", ascending=False, kind="stable")
