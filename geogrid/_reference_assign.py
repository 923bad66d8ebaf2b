"""The assignment rule, written plainly: the reference :func:`geogrid.assignment.assign_points` must equal.

For each level on its own: the grids whose **closed** polygon holds the point (GEOS
``intersects``, through ``shapely.STRtree.query``), and among them the lowest ``grid_id`` in
string order; missing where no grid holds it. No owner raster, no ``parent_id``, no shortcut.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

__all__ = ["assign_points_reference"]


def assign_points_reference(
    points: gpd.GeoDataFrame | gpd.GeoSeries,
    grids: gpd.GeoDataFrame,
    *,
    levels: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Assign each point by the documented boundary rule, level by level, with plain GEOS calls.

    Slow (one STRtree query per level, a Point object per point) and obviously correct: use it to
    double-check :func:`geogrid.assignment.assign_points` on your data.

    Parameters
    ----------
    points
        Point geometries; missing or empty ones are outside. Same CRS as ``grids`` (not checked
        here).
    grids
        ``grid_id``, ``level`` and polygon geometry (Polygon or MultiPolygon).
    levels
        Levels to assign (default: every level present).

    Returns
    -------
    pandas.DataFrame
        Indexed like ``points``: ``grid_id_<level>`` (object dtype: the lowest ``grid_id``, as
        a string, among the level's grids whose closure contains the point; NaN where none)
        per level, and ``outside`` (True when no requested level holds the point).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> grids = gpd.GeoDataFrame(
    ...     {"grid_id": ["B", "A"], "level": [0, 0]},
    ...     geometry=[shapely.box(1, 0, 2, 1), shapely.box(0, 0, 1, 1)])
    >>> pts = gpd.GeoSeries.from_xy([1.0, 1.5, 5.0], [0.5, 0.5, 5.0])
    >>> assign_points_reference(pts, grids)["grid_id_0"].tolist()
    ['A', 'B', nan]
    """
    geoms = np.asarray(points.geometry.array if isinstance(points, gpd.GeoDataFrame) else points.array)
    have = sorted(int(v) for v in pd.unique(grids["level"].dropna()))
    wanted = have if levels is None else sorted({int(v) for v in levels})
    out: dict[str, object] = {}
    outside = np.ones(geoms.size, dtype=bool)
    for lv in wanted:
        g = grids[grids["level"] == lv]
        ids = g["grid_id"].astype(str).to_numpy(dtype=object)
        polys = np.asarray(g.geometry.array)
        best = np.full(geoms.size, None, dtype=object)
        if len(g) and geoms.size:
            pt_idx, grid_idx = shapely.STRtree(polys).query(geoms, predicate="intersects")
            hits = pd.DataFrame({"point": pt_idx, "grid_id": ids[grid_idx]})
            lowest = hits.groupby("point")["grid_id"].min()
            best[lowest.index.to_numpy()] = lowest.to_numpy()
        out[f"grid_id_{lv}"] = best
        outside &= pd.isna(best)
    out["outside"] = outside
    return pd.DataFrame(out, index=points.index)
