"""Camera coverage: what the cameras see, what they miss, which hot spots are blind.

A camera's view is a sector (position, heading 0 = north clockwise, field of view, range;
360° for domes; optionally a minimum distance), built in an explicit metric CRS. With a
buildings layer each view is cut by the buildings in front of the camera (2-D visibility:
a camera beside a street does not see through a block). Offline cameras count as blind
unless ``include_offline=True``.

Per-grid coverage is the union of the views clipped to each grid. Its area comes from a
compiled kernel (Green's theorem over the boundary pieces of that union, no polygon
built) that integrates the views' circular arcs exactly (occluded views keep exact arcs
too; see :func:`geogrid._coverage_geom.occlude_exact`); where the blind part's geometry is
wanted (drawn with ``resolution`` segments per 90° of arc), an STRtree gives the (grid, view)
pairs, one intersection per pair, one grouped union per grid. No global union of the
views is ever built. When a level's grids are tiled exactly by their
children (as in a valid hierarchy), the coarser level is summed from the finer one.

Placement of new cameras lives in :mod:`geogrid.placement`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely
from pyproj import CRS

from geogrid import _coverage_geom as _geom
from layers.crs import ensure_crs, to_crs_object
from layers.crs import metric_crs as _choose_metric
from layers.errors import CRSError

__all__ = [
    "blind_spots",
    "camera_views",
    "grid_coverage",
    "rank_blind_hotspots",
    "unseen_incidents",
]

DEFAULT_RESOLUTION = 8
"""Arc segments per 90° of a drawn view (as ``quad_segs`` in shapely's buffer); areas use exact arcs."""


# -- CRS at the door ------------------------------------------------------------------------
def resolve_metric_crs(frames: Sequence[gpd.GeoDataFrame | None], metric_crs: object = None) -> CRS:
    """Check the inputs share one CRS and return the metric CRS to measure in.

    Raises
    ------
    CRSError
        If an input has no CRS, if the inputs' CRSs differ, or if ``metric_crs`` is not
        a projected CRS in metres.
    """
    names = ["grids", "cameras", "buildings", "incidents", "streets", "candidates"]
    crss: list[tuple[str, CRS]] = []
    for i, f in enumerate(frames):
        if f is None:
            continue
        what = names[i] if i < len(names) else f"layer {i}"
        crss.append((what, ensure_crs(f.crs, what=what)))
    if not crss:
        msg = "no input layer given"
        raise CRSError(msg)
    first_name, first = crss[0]
    mixed = [f"{w} in {c.to_string()}" for w, c in crss[1:] if not c.equals(first, ignore_axis_order=True)]
    if mixed:
        msg = (
            f"mixed CRSs: {first_name} in {first.to_string()}, " + ", ".join(mixed) + "; bring them to one CRS "
            "first with .to_crs(...) (geogrid does not reproject silently)"
        )
        raise CRSError(msg)
    if metric_crs is not None:
        crs = to_crs_object(metric_crs, what="metric_crs")
        unit = crs.axis_info[0].unit_name if crs.axis_info else ""
        if not crs.is_projected or unit not in ("metre", "meter"):
            msg = f"metric_crs {crs.to_string()} is not a projected CRS in metres: pass e.g. 'EPSG:4548'"
            raise CRSError(msg)
        return crs
    if first.is_projected and first.axis_info and first.axis_info[0].unit_name in ("metre", "meter"):
        return first
    bounds = np.array([f.total_bounds for f in frames if f is not None and len(f)])
    if bounds.size == 0 or not np.isfinite(bounds).all():
        msg = "cannot choose a metric CRS for empty layers: pass metric_crs=..."
        raise CRSError(msg)
    lon = float((bounds[:, 0].min() + bounds[:, 2].max()) / 2)
    lat = float((bounds[:, 1].min() + bounds[:, 3].max()) / 2)
    return _choose_metric(lon, lat)


def _metric_geoms(gdf: gpd.GeoDataFrame, crs: CRS) -> np.ndarray:
    return np.asarray(gdf.geometry.to_crs(crs).array, dtype=object)


def _active(cameras: gpd.GeoDataFrame, include_offline: bool) -> gpd.GeoDataFrame:
    if include_offline or "status" not in cameras.columns:
        return cameras
    return cameras[cameras["status"].astype("string").fillna("online").str.lower() != "offline"]


def _building_parts(buildings: gpd.GeoDataFrame | None, crs: CRS) -> np.ndarray:
    if buildings is None or len(buildings) == 0:
        return np.empty(0, dtype=object)
    geoms = _metric_geoms(buildings, crs)
    parts = shapely.get_parts(geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))])
    return parts[shapely.get_type_id(parts) == 3]


def _views_metric(
    cameras: gpd.GeoDataFrame,
    crs: CRS,
    *,
    resolution: int,
    min_distance_m: float,
    buildings: np.ndarray,
) -> np.ndarray:
    """Build the (occluded) views of ``cameras`` as an array of polygons in ``crs``."""
    pts = _metric_geoms(cameras, crs)
    xy = shapely.get_coordinates(pts)
    if len(xy) != len(cameras):
        msg = "cameras must be single points (no empty or multi-point geometries)"
        raise ValueError(msg)
    rng = cameras["range_m"].to_numpy(dtype=float)
    views = _geom.sectors(
        xy[:, 0],
        xy[:, 1],
        cameras["heading_deg"].to_numpy(dtype=float),
        cameras["fov_deg"].to_numpy(dtype=float),
        rng,
        resolution=resolution,
        min_distance_m=min_distance_m,
    )
    if len(buildings):
        views = _geom.cut_views(views, _geom.shadows(xy, views, rng, buildings))
    return views


def _exact_views_metric(
    cameras: gpd.GeoDataFrame, crs: CRS, *, buildings: np.ndarray
) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Return the (occluded) views of ``cameras`` with exact arcs, for the area kernel.

    Returns ``(views, arcs, fine)`` as :func:`geogrid._coverage_geom.covered_area_per_grid`
    takes them: the views' corner polygons, their arc rows, and a function giving views as
    fine polygons (4,096 sides per circle, cut by the same shadows) for the grids GEOS measures.
    """
    pts = _metric_geoms(cameras, crs)
    xy = shapely.get_coordinates(pts)
    if len(xy) != len(cameras):
        msg = "cameras must be single points (no empty or multi-point geometries)"
        raise ValueError(msg)
    h = cameras["heading_deg"].to_numpy(dtype=float)
    f = cameras["fov_deg"].to_numpy(dtype=float)
    rng = cameras["range_m"].to_numpy(dtype=float)
    views, arcs = _geom.exact_sectors(xy[:, 0], xy[:, 1], h, f, rng)
    shade = np.full(len(views), None, dtype=object)
    if len(buildings):
        views, arcs, shade = _geom.occlude_exact(xy, h, f, rng, buildings, views, arcs)

    def fine(idx: np.ndarray) -> np.ndarray:
        out = _geom.fine_sectors(xy[idx, 0], xy[idx, 1], h[idx], f[idx], rng[idx], segments=4096)[0]
        return _geom.cut_views(out, shade[idx])

    return views, arcs, fine


# -- public ---------------------------------------------------------------------------------
def camera_views(
    cameras: gpd.GeoDataFrame,
    *,
    metric_crs: object = None,
    resolution: int = DEFAULT_RESOLUTION,
    min_distance_m: float = 0.0,
    include_offline: bool = False,
    buildings: gpd.GeoDataFrame | None = None,
) -> gpd.GeoDataFrame:
    """Return the view of each camera as a polygon (a sector; a disc for domes).

    Parameters
    ----------
    cameras
        A camera layer: points with ``heading_deg`` (0 = north, clockwise), ``fov_deg``
        (360 = dome), ``range_m`` and optionally ``status``.
    metric_crs
        The CRS the views are built in; default: the cameras' CRS if it is metric, else
        the Gauss–Krüger / UTM zone of their centre.
    resolution
        Arc segments per 90° of view.
    min_distance_m
        Ground nearer than this to the camera is not seen (the apex is cut away).
    include_offline
        Count offline cameras as seeing (default: they are blind and left out).
    buildings
        Footprints that block the view (2-D occlusion); same CRS as ``cameras``.

    Returns
    -------
    geopandas.GeoDataFrame
        The cameras' rows (offline ones dropped unless ``include_offline``) and index,
        with ``area_m2``; geometry: the views, in the cameras' CRS.

    Raises
    ------
    CRSError
        If a layer has no CRS, the layers' CRSs differ, or ``metric_crs`` is not metric.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> cams = gpd.GeoDataFrame({"heading_deg": [90.0], "fov_deg": [90.0], "range_m": [10.0]},
    ...                         geometry=[shapely.Point(0, 0)], crs="EPSG:3857")
    >>> round(float(camera_views(cams, resolution=64).area_m2.iloc[0]), 1)  # pi * 10**2 / 4
    78.5
    """
    crs = resolve_metric_crs([None, cameras, buildings], metric_crs)
    active = _active(cameras, include_offline)
    views = _views_metric(
        active, crs, resolution=resolution, min_distance_m=min_distance_m, buildings=_building_parts(buildings, crs)
    )
    out = gpd.GeoDataFrame(
        active.drop(columns=active.geometry.name), geometry=gpd.GeoSeries(views, index=active.index, crs=crs)
    )
    out["area_m2"] = shapely.area(views)
    return out.to_crs(cameras.crs)


def _levels_of(grids: gpd.GeoDataFrame, level: int | Sequence[int] | None) -> gpd.GeoDataFrame:
    if level is None or "level" not in grids.columns:
        return grids
    wanted = [level] if isinstance(level, int | np.integer) else list(level)
    return grids[pd.to_numeric(grids["level"]).isin(wanted)]


def _coverage_core(
    grids: gpd.GeoDataFrame,
    cameras: gpd.GeoDataFrame,
    *,
    level: int | Sequence[int] | None,
    buildings: gpd.GeoDataFrame | None,
    include_offline: bool,
    metric_crs: object,
    resolution: int,
    need_geometry: bool = False,
) -> tuple[gpd.GeoDataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[np.ndarray], CRS]:
    """Measure the selected grids: geometry, area, seen area and part, seeing cameras."""
    crs = resolve_metric_crs([grids, cameras, buildings], metric_crs)
    sel = _levels_of(grids, level)
    geoms = _metric_geoms(sel, crs)
    active = _active(cameras, include_offline)
    blds = _building_parts(buildings, crs)
    if need_geometry:
        views = _views_metric(active, crs, resolution=resolution, min_distance_m=0.0, buildings=blds)
    else:  # areas only: exact arcs
        views, arcs, fine = _exact_views_metric(active, crs, buildings=blds)
    n = len(sel)
    covered = np.full(n, shapely.Polygon(), dtype=object)
    seers: list[np.ndarray] = [np.empty(0, np.int64)] * n
    lv = pd.to_numeric(sel["level"]).to_numpy() if "level" in sel.columns else np.zeros(n, dtype=np.int64)
    ids = sel["grid_id"].astype(str).to_numpy() if "grid_id" in sel.columns else np.arange(n).astype(str)
    parent = (
        sel["parent_id"].astype("string").to_numpy(dtype=object, na_value=None)
        if "parent_id" in sel.columns
        else np.full(n, None, dtype=object)
    )
    area = shapely.area(geoms)
    cov_m2 = np.zeros(n)
    done = np.zeros(n, dtype=bool)
    pos_of = {g: i for i, g in enumerate(ids)}
    for lvl in sorted(set(lv.tolist()), reverse=True):
        rows = [int(r) for r in np.flatnonzero(lv == lvl)]
        # Sum a level from the finer one when its children tile it exactly (by area).
        kids: dict[int, list[int]] = {}
        for j in np.flatnonzero((lv == lvl + 1) & done):
            p = pos_of.get(parent[j]) if parent[j] is not None else None
            if p is not None:
                kids.setdefault(p, []).append(int(j))
        tiled = [r for r in rows if r in kids and abs(area[kids[r]].sum() - area[r]) <= 1e-9 * area[r]]
        if tiled and len(tiled) == len(rows):
            ok = True
            child_union = shapely.coverage_union_all
            for r in tiled:
                if abs(shapely.area(child_union(geoms[kids[r]])) - area[r]) > 1e-7 * area[r]:
                    ok = False
                    break
            if ok:
                for r in rows:
                    k = kids[r]
                    cov_m2[r] = cov_m2[k].sum()
                    if need_geometry:  # the children's seen parts are not noded alike: plain union
                        parts = covered[k]
                        covered[r] = shapely.union_all(parts[~shapely.is_empty(parts)])
                    seers[r] = np.unique(np.concatenate([seers[c] for c in k]))
                done[rows] = True
                continue
        if need_geometry:
            cov, gi, vi = _geom.covered_per_grid(geoms[rows], views)
            covered[rows] = cov
            cov_m2[rows] = shapely.area(cov)
        else:  # areas only: the compiled kernel, no polygon built
            cov_m2[rows], gi, vi = _geom.covered_area_per_grid(geoms[rows], views, arcs=arcs, fine=fine)
        order = np.argsort(gi, kind="stable")
        split = np.split(vi[order], np.cumsum(np.bincount(gi, minlength=len(rows)))[:-1])
        for r, s in zip(rows, split, strict=True):
            seers[r] = np.unique(s)
        done[rows] = True
    return sel, geoms, area, np.minimum(cov_m2, area), covered, seers, crs


def grid_coverage(
    grids: gpd.GeoDataFrame,
    cameras: gpd.GeoDataFrame,
    *,
    level: int | Sequence[int] | None = None,
    buildings: gpd.GeoDataFrame | None = None,
    include_offline: bool = False,
    metric_crs: object = None,
    resolution: int = DEFAULT_RESOLUTION,
    method: str = "kernel",
) -> gpd.GeoDataFrame:
    """Return the share of each grid that some camera sees.

    Parameters
    ----------
    grids
        A grid layer (``grid_id``; ``level`` and ``parent_id`` if there are levels).
    cameras
        A camera layer (see :func:`camera_views`), in the grids' CRS.
    level
        Only this level (or these levels); default: every level.
    buildings
        Footprints that block the views (2-D occlusion), in the grids' CRS.
    include_offline
        Count offline cameras as seeing.
    metric_crs
        The CRS areas are measured in; default as in :func:`camera_views`.
    resolution
        Unused for areas (the arcs are exact); kept for symmetry with :func:`blind_spots`.
    method
        ``"kernel"``: the compiled kernel, exact arcs. ``"reference"``: ``covered_m2`` from
        the slow, obviously correct GEOS reference (4,096-gon arcs; the mean of its bracket,
        see :func:`geogrid._reference_coverage.reference_covered_area`), to double-check.

    Returns
    -------
    geopandas.GeoDataFrame
        The grids' index, ``grid_id`` and ``level`` (when present), ``area_m2``,
        ``covered_m2``, ``ratio`` (covered / area), ``cameras`` (how many cameras see
        part of the grid), ``cameras_per_km2`` (cameras standing in the grid per km²),
        and the grid geometry in the grids' CRS.

    Raises
    ------
    CRSError
        If a layer has no CRS, the layers' CRSs differ, or ``metric_crs`` is not metric.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> grids = gpd.GeoDataFrame({"grid_id": ["a"]}, geometry=[shapely.box(0, 0, 10, 10)], crs="EPSG:3857")
    >>> cams = gpd.GeoDataFrame({"heading_deg": [45.0], "fov_deg": [90.0], "range_m": [20.0]},
    ...                         geometry=[shapely.Point(0, 0)], crs="EPSG:3857")
    >>> grid_coverage(grids, cams)[["area_m2", "covered_m2", "ratio"]].values.tolist()
    [[100.0, 100.0, 1.0]]
    """
    if method not in ("kernel", "reference"):
        msg = f"method must be 'kernel' or 'reference', not {method!r}"
        raise ValueError(msg)
    sel, geoms, area, cov_m2, _covered, seers, crs = _coverage_core(
        grids,
        cameras,
        level=level,
        buildings=buildings,
        include_offline=include_offline,
        metric_crs=metric_crs,
        resolution=resolution,
    )
    cam_pts = _metric_geoms(cameras, crs) if len(cameras) else np.empty(0, dtype=object)
    standing = np.zeros(len(sel), dtype=np.int64)
    if len(cam_pts) and len(sel):
        g_idx, _ = shapely.STRtree(cam_pts).query(geoms, predicate="contains")
        standing = np.bincount(g_idx, minlength=len(sel))
    out = pd.DataFrame(index=sel.index)
    for col in ("grid_id", "level"):
        if col in sel.columns:
            out[col] = sel[col]
    out["area_m2"] = area
    out["covered_m2"] = cov_m2
    if method == "reference":
        from geogrid._reference_coverage import reference_covered_area

        ref = reference_covered_area(sel, cameras, buildings=buildings, include_offline=include_offline, metric_crs=crs)
        out["covered_m2"] = np.minimum(ref["covered_m2"].to_numpy(), area)
    out["ratio"] = np.divide(out["covered_m2"], area, out=np.zeros(len(sel)), where=area > 0)
    out["cameras"] = np.array([len(s) for s in seers], dtype=np.int64)
    out["cameras_per_km2"] = np.divide(standing * 1e6, area, out=np.zeros(len(sel)), where=area > 0)
    return gpd.GeoDataFrame(out, geometry=sel.geometry.values, crs=grids.crs)


def blind_spots(
    grids: gpd.GeoDataFrame,
    cameras: gpd.GeoDataFrame,
    *,
    streets: gpd.GeoDataFrame | None = None,
    level: int | Sequence[int] | None = None,
    buildings: gpd.GeoDataFrame | None = None,
    include_offline: bool = False,
    metric_crs: object = None,
    resolution: int = DEFAULT_RESOLUTION,
) -> gpd.GeoDataFrame:
    """Return the part of each grid that no camera sees.

    Parameters
    ----------
    grids, cameras, level, buildings, include_offline, metric_crs, resolution
        As in :func:`grid_coverage`.
    streets
        Street centre lines (same CRS): adds the street length per grid and the part of
        it no camera sees.

    Returns
    -------
    geopandas.GeoDataFrame
        The grids' index, ``grid_id`` / ``level`` when present, ``area_m2``,
        ``covered_m2`` (as :func:`grid_coverage`: exact arcs), ``blind_m2`` (covered +
        blind = area), ``blind_ratio``, and with streets ``street_m`` and
        ``blind_street_m``; geometry: the blind part of each grid (possibly empty) in the
        grids' CRS, drawn with ``resolution`` segments per 90° of arc (so its area exceeds
        ``blind_m2`` by the arcs' chord error; so may ``blind_street_m``).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> grids = gpd.GeoDataFrame({"grid_id": ["a"]}, geometry=[shapely.box(0, 0, 20, 10)], crs="EPSG:3857")
    >>> cams = gpd.GeoDataFrame({"heading_deg": [45.0], "fov_deg": [90.0], "range_m": [10.0]},
    ...                         geometry=[shapely.Point(0, 0)], crs="EPSG:3857")
    >>> streets = gpd.GeoDataFrame(geometry=[shapely.LineString([(0, 5), (20, 5)])], crs="EPSG:3857")
    >>> b = blind_spots(grids, cams, streets=streets, resolution=256)
    >>> b[["blind_m2", "street_m", "blind_street_m"]].round(1).values.tolist()  # 200 - 25 pi; 20 - sqrt(75)
    [[121.5, 20.0, 11.3]]
    """
    sel, geoms, area, _cov_m2, covered, _seers, crs = _coverage_core(
        grids,
        cameras,
        level=level,
        buildings=buildings,
        include_offline=include_offline,
        metric_crs=metric_crs,
        resolution=resolution,
        need_geometry=True,
    )
    blind = shapely.difference(geoms, covered)
    # The areas with exact arcs (the drawn geometry has chords: its blind part is a little larger).
    exact_m2 = _coverage_core(
        grids,
        cameras,
        level=level,
        buildings=buildings,
        include_offline=include_offline,
        metric_crs=metric_crs,
        resolution=resolution,
    )[3]
    out = pd.DataFrame(index=sel.index)
    for col in ("grid_id", "level"):
        if col in sel.columns:
            out[col] = sel[col]
    out["area_m2"] = area
    out["covered_m2"] = exact_m2
    out["blind_m2"] = np.maximum(area - exact_m2, 0.0)
    out["blind_ratio"] = np.divide(out["blind_m2"], area, out=np.zeros(len(sel)), where=area > 0)
    if streets is not None:
        resolve_metric_crs([grids, None, None, None, streets], crs)
        lines = _metric_geoms(streets, crs)
        tree = shapely.STRtree(lines)
        gi, li = tree.query(geoms, predicate="intersects")
        on = shapely.intersection(lines[li], geoms[gi])
        seen = shapely.intersection(on, covered[gi])
        on_m = shapely.length(on)
        # A street along the edge of two grids counts in both.
        out["street_m"] = np.bincount(gi, on_m, minlength=len(sel))
        out["blind_street_m"] = np.bincount(gi, np.maximum(on_m - shapely.length(seen), 0.0), minlength=len(sel))
    back = gpd.GeoSeries(blind, index=sel.index, crs=crs).to_crs(grids.crs)
    return gpd.GeoDataFrame(out, geometry=back.values, crs=grids.crs)


def unseen_incidents(
    grids: gpd.GeoDataFrame,
    cameras: gpd.GeoDataFrame,
    incidents: gpd.GeoDataFrame,
    *,
    level: int | None = None,
    by: str | None = "category",
    buildings: gpd.GeoDataFrame | None = None,
    include_offline: bool = False,
    metric_crs: object = None,
    resolution: int = DEFAULT_RESOLUTION,
) -> pd.DataFrame:
    """Count, per grid (and category), the incidents no camera sees.

    Parameters
    ----------
    grids, cameras, buildings, include_offline, metric_crs, resolution
        As in :func:`grid_coverage`.
    incidents
        Incident points (same CRS).
    level
        The grid level to count in; default: the finest level.
    by
        A column of ``incidents`` to split the counts by (``None``: per grid only).

    Returns
    -------
    pandas.DataFrame
        One row per grid (and ``by`` value): ``grid_id``, [``by``], ``incidents``,
        ``unseen``, ``unseen_share``. Incidents outside every grid are left out.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> grids = gpd.GeoDataFrame({"grid_id": ["a"]}, geometry=[shapely.box(0, 0, 10, 10)], crs="EPSG:3857")
    >>> cams = gpd.GeoDataFrame({"heading_deg": [45.0], "fov_deg": [90.0], "range_m": [5.0]},
    ...                         geometry=[shapely.Point(0, 0)], crs="EPSG:3857")
    >>> inc = gpd.GeoDataFrame({"category": ["x", "x"]}, geometry=[shapely.Point(1, 1), shapely.Point(9, 9)],
    ...                        crs="EPSG:3857")
    >>> unseen_incidents(grids, cams, inc).values.tolist()
    [['a', 'x', 2, 1, 0.5]]
    """
    crs = resolve_metric_crs([grids, cameras, buildings, incidents], metric_crs)
    if level is None and "level" in grids.columns and len(grids):
        level = int(pd.to_numeric(grids["level"]).max())
    sel = _levels_of(grids, level)
    geoms = _metric_geoms(sel, crs)
    pts = _metric_geoms(incidents, crs)
    active = _active(cameras, include_offline)
    views = _views_metric(
        active, crs, resolution=resolution, min_distance_m=0.0, buildings=_building_parts(buildings, crs)
    )
    seen = np.zeros(len(pts), dtype=bool)
    if len(views) and len(pts):
        p_idx, _ = shapely.STRtree(views).query(pts, predicate="intersects")
        seen[p_idx] = True
    g_of = np.full(len(pts), -1, dtype=np.int64)
    if len(geoms) and len(pts):
        p_idx, g_idx = shapely.STRtree(geoms).query(pts, predicate="intersects")
        first = np.unique(p_idx, return_index=True)[1]
        g_of[p_idx[first]] = g_idx[first]
    ids = sel["grid_id"].astype(str).to_numpy() if "grid_id" in sel.columns else sel.index.astype(str).to_numpy()
    inside = g_of >= 0
    df = pd.DataFrame({"grid_id": ids[g_of[inside]], "unseen": ~seen[inside]})
    keys = ["grid_id"]
    if by is not None:
        df[by] = incidents[by].to_numpy()[inside]
        keys.append(by)
    agg = df.groupby(keys, sort=True, observed=True)["unseen"].agg(["size", "sum"]).reset_index()
    agg = agg.rename(columns={"size": "incidents", "sum": "unseen"})
    agg["incidents"] = agg["incidents"].astype(np.int64)
    agg["unseen"] = agg["unseen"].astype(np.int64)
    agg["unseen_share"] = agg["unseen"] / agg["incidents"]
    return agg


def rank_blind_hotspots(coverage: pd.DataFrame, weight: pd.Series) -> pd.DataFrame:
    """Rank grids by how much hot-spot weight lies in their blind part.

    Parameters
    ----------
    coverage
        The result of :func:`grid_coverage` (``grid_id``, ``ratio``).
    weight
        Hot-spot weight per grid, indexed by ``grid_id`` (e.g. a Gi* z-score clipped at
        0, or incident counts). Grids missing from it weigh 0.

    Returns
    -------
    pandas.DataFrame
        ``grid_id``, ``weight``, ``ratio``, ``blind_weight`` = weight × (1 − ratio) and
        ``rank`` (1 = the blindest hot spot), sorted by rank; grids with zero weight last.

    Examples
    --------
    >>> import pandas as pd
    >>> cov = pd.DataFrame({"grid_id": ["a", "b"], "ratio": [0.9, 0.2]})
    >>> rank_blind_hotspots(cov, pd.Series({"a": 10.0, "b": 5.0}))[["grid_id", "blind_weight", "rank"]].values.tolist()
    [['b', 4.0, 1], ['a', 1.0, 2]]
    """
    w = pd.Series(weight, dtype=float).groupby(level=0).sum()
    out = pd.DataFrame({"grid_id": coverage["grid_id"].astype(str).to_numpy()})
    out["weight"] = w.reindex(out["grid_id"]).fillna(0.0).to_numpy()
    out["ratio"] = coverage["ratio"].to_numpy(dtype=float)
    out["blind_weight"] = (out["weight"].clip(lower=0) * (1.0 - out["ratio"])).round(9)
    out = out.sort_values(["blind_weight", "grid_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1)
    return out
