"""Reference verdict on a repaired grid layer: short, slow, plain GEOS calls, no shortcuts.

:func:`reference_defects` is the specification :func:`geogrid.repair.repair_grids` must
meet: after a repair, every defect it lists is either gone or named among the refusals.
Each defect is computed from its definition:

- ``invalid``: a grid that is empty or not a valid polygon / multipolygon;
- ``overlap``: the ``intersection`` of two grids of one level (``make_valid`` first);
- ``gap``: ``difference(jurisdiction, union_all(level))``, the jurisdiction being the
  level-0 union with its holes filled except enclaves (holes at least ``gap_width_m``
  wide: land outside it, however many grids border them), unless an outline is given
  (the rule of :mod:`geogrid._reference_check`);
- ``outside_parent``: ``difference(child, parent)``;
- ``parent_not_tiled``: ``difference(parent, union_all(children))``.

Pieces are measured in a metric CRS; pieces smaller than ``min_area_m2`` are dropped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely
from pyproj import CRS

__all__ = ["reference_defects"]

_COLUMNS = ["kind", "level", "grid_ids", "area_m2", "geometry"]


def _polygonal(g: shapely.Geometry) -> shapely.Geometry:
    """Return the polygonal part of ``g`` (a MultiPolygon, possibly empty)."""
    parts = [p for p in shapely.get_parts(g) if isinstance(p, shapely.Polygon | shapely.MultiPolygon)]
    return shapely.union_all(parts) if parts else shapely.MultiPolygon()


def _metric_of(grids: gpd.GeoDataFrame, metric_crs: object) -> CRS:
    if metric_crs is not None:
        return CRS.from_user_input(metric_crs)
    if grids.crs.is_projected:
        return CRS.from_user_input(grids.crs)
    return CRS.from_user_input(grids.estimate_utm_crs())


def reference_defects(
    grids: gpd.GeoDataFrame,
    *,
    min_area_m2: float = 1.0,
    gap_width_m: float = 1.0,
    metric_crs: object = None,
    outline: shapely.Geometry | None = None,
) -> pd.DataFrame:
    """List every defect of a grid hierarchy, from plain GEOS calls.

    Parameters
    ----------
    grids
        A grid layer: ``grid_id``, ``parent_id``, ``level`` and polygons, with a CRS.
    min_area_m2
        Pieces smaller than this (m²) are not reported.
    gap_width_m
        A hole of the level-0 union narrower than this (m) everywhere is a gap between
        grids; a wider one is an enclave, land outside the jurisdiction.
    metric_crs
        CRS the pieces are measured in (default: the layer's CRS when projected, else
        its UTM zone).
    outline
        The jurisdiction, in the layer's CRS (default: the union of level 0 with its holes
        filled, except enclaves).

    Returns
    -------
    pandas.DataFrame
        One row per defect piece: ``kind``, ``level``, ``grid_ids`` (tuple: the grids
        overlapping, the child and its parent, the parent not tiled; empty for gaps),
        ``area_m2`` and ``geometry`` (in the layer's CRS).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame(
    ...     {"grid_id": ["D", "a", "b"], "parent_id": [None, "D", "D"], "level": [0, 1, 1]},
    ...     geometry=[shapely.box(0, 0, 200, 100), shapely.box(0, 0, 110, 100), shapely.box(100, 0, 190, 100)],
    ...     crs="EPSG:32650")
    >>> reference_defects(g)[["kind", "level", "grid_ids", "area_m2"]].values.tolist()
    [['overlap', 1, ('a', 'b'), 1000.0], ['gap', 1, (), 1000.0], ['parent_not_tiled', 0, ('D',), 1000.0]]
    """
    metric = _metric_of(grids, metric_crs)
    ids = grids["grid_id"].astype(str).tolist()
    parents = [None if pd.isna(p) or str(p).strip() == "" else str(p).strip() for p in grids["parent_id"]]
    level = pd.to_numeric(grids["level"]).astype(int).tolist()
    raw = list(grids.geometry.array)
    rows: list[tuple[str, int, tuple[str, ...], shapely.Geometry]] = []

    geom: dict[int, shapely.Geometry] = {}
    for i, g in enumerate(raw):
        if g is None or g.is_empty or not isinstance(g, shapely.Polygon | shapely.MultiPolygon) or not g.is_valid:
            rows.append(("invalid", level[i], (ids[i],), shapely.Polygon()))
        if g is not None and not g.is_empty:
            geom[i] = _polygonal(shapely.make_valid(g))

    by_level: dict[int, list[int]] = {}
    for i in geom:
        by_level.setdefault(level[i], []).append(i)
    top = by_level.get(min(by_level), []) if by_level else []
    jurisdiction = outline
    if jurisdiction is None:
        # the level-0 union, its holes filled except enclaves: holes at least gap_width_m wide
        union = shapely.union_all([geom[i] for i in top])
        polys = shapely.get_parts(union)
        filled = shapely.union_all([shapely.Polygon(p.exterior) for p in polys])
        holes = [shapely.Polygon(r) for p in polys for r in p.interiors]
        local = gpd.GeoSeries(holes, crs=grids.crs).to_crs(metric)
        enclaves = [h for h, m in zip(holes, local, strict=True) if not m.buffer(-gap_width_m / 2).is_empty]
        jurisdiction = shapely.difference(filled, shapely.union_all(enclaves)) if enclaves else filled

    for lv, members in sorted(by_level.items()):
        level_geoms = np.array([geom[i] for i in members], dtype=object)
        a, b = shapely.STRtree(level_geoms).query(level_geoms, predicate="intersects")  # envelope pruning only
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            if x < y:
                i, j = members[x], members[y]
                piece = _polygonal(shapely.intersection(geom[i], geom[j]))
                rows.append(("overlap", lv, tuple(sorted((ids[i], ids[j]))), piece))
        union = shapely.union_all([geom[i] for i in members])
        rows.append(("gap", lv, (), _polygonal(shapely.difference(jurisdiction, union))))

    row_of = {gid: i for i, gid in enumerate(ids)}
    children: dict[int, list[int]] = {}
    for i in geom:
        p = row_of.get(parents[i]) if parents[i] is not None else None
        if p is None or p not in geom:
            continue
        children.setdefault(p, []).append(i)
        rows.append(("outside_parent", level[i], (ids[i], ids[p]), _polygonal(shapely.difference(geom[i], geom[p]))))
    for p, kids in children.items():
        union = shapely.union_all([geom[k] for k in kids])
        rows.append(("parent_not_tiled", level[p], (ids[p],), _polygonal(shapely.difference(geom[p], union))))

    pieces = gpd.GeoSeries([r[3] for r in rows], crs=grids.crs)
    area = pieces.to_crs(metric).area.to_numpy(dtype=float)
    keep = np.array([r[0] == "invalid" for r in rows], dtype=bool) | (area >= min_area_m2)
    order = {k: n for n, k in enumerate(("invalid", "overlap", "gap", "outside_parent", "parent_not_tiled"))}
    out = pd.DataFrame(
        {
            "kind": [r[0] for r in rows],
            "level": [r[1] for r in rows],
            "grid_ids": [r[2] for r in rows],
            "area_m2": area,
            "geometry": pieces.to_numpy(),
        }
    )[keep]
    out["rank"] = out["kind"].map(order)
    out = out.sort_values(["rank", "level"], kind="stable").drop(columns="rank").reset_index(drop=True)
    return out[_COLUMNS]
