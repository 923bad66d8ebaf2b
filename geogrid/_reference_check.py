"""Reference verdicts of :func:`geogrid.check_grids`: short, slow, obviously correct.

Every answer is built from plain GEOS calls with no shortcut: the pairwise ``intersection``
of ``make_valid`` geometries for overlaps, ``union_all`` and ``difference`` for gaps and
nesting. Topology is computed in the input's own coordinates (as the fast path does, so
exactly nested input stays exactly nested); each resulting piece is then measured in the
metric CRS. It is the specification the fast path must equal, and users can call it to
double-check a verdict (``geogrid.reference.check_grids``). Candidate pairs come from an STRtree
(pairs whose geometries do not intersect cannot share area); the rest is one GEOS call per pair.

The definitions it fixes (the fast path follows them):

- **jurisdiction**: the ``outline`` if given, else the union of level 0 with its holes
  filled, except holes at least ``gap_width_m`` wide, which are enclaves (land outside
  the jurisdiction, wherever they lie and however many top-level grids border them).
- **gap** of a level: jurisdiction - union of the level - exempt.
- **overlap**: the polygonal intersection of two grids of one level.
- **outside_parent**: child - parent; **parent_not_tiled**: parent - union of its own
  children - exempt.
- **invalid**: ``shapely.is_valid`` is false, or the grid has no geometry (None or empty);
  the other verdicts use ``make_valid`` (and leave an empty grid out).

Pieces smaller than ``min_area_m2`` are dropped, as in the fast path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely
from pyproj import CRS, Transformer

from layers.crs import ensure_crs, metric_crs, to_crs_object

__all__ = ["check_grids_reference", "jurisdiction_reference"]

_COLUMNS = ["kind", "level", "grid_ids", "area_m2", "geometry"]


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """Return the polygonal part of ``geom`` (lines and points of a collection dropped)."""
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def jurisdiction_reference(top: list[shapely.Geometry], gap_width_m: float, scale: float) -> shapely.Geometry:
    """Return the jurisdiction implied by the top level's geometries (see the module docstring).

    ``scale`` converts ``gap_width_m`` to input units (1 for metres).
    """
    union = shapely.union_all(top)
    shells: list[shapely.Geometry] = []
    holes: list[shapely.Geometry] = []
    for poly in shapely.get_parts(union):
        shells.append(shapely.Polygon(poly.exterior))
        holes.extend(shapely.Polygon(r) for r in poly.interiors)
    filled = shapely.union_all(shells) if shells else shapely.Polygon()
    half = gap_width_m / scale / 2
    enclaves = [h for h in holes if not shapely.buffer(h, -half).is_empty]
    return shapely.difference(filled, shapely.union_all(enclaves)) if enclaves else filled


def check_grids_reference(
    grids: gpd.GeoDataFrame,
    *,
    gap_width_m: float = 1.0,
    min_area_m2: float = 0.01,
    outline: shapely.Geometry | None = None,
    exempt: shapely.Geometry | None = None,
    metric_crs_: object = None,
) -> gpd.GeoDataFrame:
    """Every area defect of a grid layer, by brute force.

    Parameters
    ----------
    grids
        ``grid_id``, ``parent_id``, ``level`` and polygons in any CRS.
    gap_width_m
        Holes of the top level narrower than this are gaps, wider ones enclaves.
    min_area_m2
        Pieces smaller than this are dropped.
    outline, exempt
        Shapely geometries in the grids' CRS, as in :func:`geogrid.check_grids`.
    metric_crs_
        The CRS areas are measured in (default: the one :func:`geogrid.check_grids` picks).

    Returns
    -------
    GeoDataFrame
        ``kind`` (``invalid``, ``overlap``, ``gap``, ``outside_parent``,
        ``parent_not_tiled``), ``level``, ``grid_ids`` (tuple), ``area_m2`` (NaN for
        ``invalid``), ``geometry`` (input CRS); in no particular order.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame({"grid_id": ["D", "a", "b"], "parent_id": [None, "D", "D"], "level": [0, 1, 1]},
    ...     geometry=[shapely.box(0, 0, 200, 100), shapely.box(0, 0, 120, 100), shapely.box(100, 0, 200, 100)],
    ...     crs="EPSG:32650")
    >>> check_grids_reference(g)[["kind", "grid_ids"]].values.tolist()
    [['overlap', ('a', 'b')]]
    """
    crs = ensure_crs(grids.crs, what="grids")
    geoms = list(grids.geometry)
    ids = [str(v) for v in grids["grid_id"]]
    parents = [None if pd.isna(p) or str(p).strip() == "" else str(p).strip() for p in grids["parent_id"]]
    levels = [int(v) for v in grids["level"]]
    usable = [g is not None and not g.is_empty for g in geoms]
    rows: list[tuple[str, int, tuple[str, ...], float, shapely.Geometry | None]] = [
        ("invalid", levels[i], (ids[i],), float("nan"), geoms[i])  # no geometry: covers nothing, as in the fast path
        for i in range(len(geoms))
        if not usable[i]
    ]
    if not any(usable):  # nothing to place or measure
        return _as_frame(rows, crs)
    b = shapely.total_bounds([g for g, u in zip(geoms, usable, strict=True) if u])
    to_wgs = Transformer.from_crs(crs, CRS.from_epsg(4326), always_xy=True)
    lon, lat = to_wgs.transform((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    metric = metric_crs(lon, lat) if metric_crs_ is None else to_crs_object(metric_crs_)
    to_m = Transformer.from_crs(crs, metric, always_xy=True)

    def area(g: shapely.Geometry) -> float:
        return float(shapely.transform(g, lambda xy: np.column_stack(to_m.transform(xy[:, 0], xy[:, 1]))).area)

    def add(kind: str, level: int, gids: tuple[str, ...], piece: shapely.Geometry) -> None:
        piece = _polygonal(piece)
        a = area(piece) if not piece.is_empty else 0.0
        if a >= min_area_m2:
            rows.append((kind, level, gids, a, piece))

    fixed = {}
    for i, g in enumerate(geoms):
        if not usable[i]:
            continue
        if not shapely.is_valid(g):
            rows.append(("invalid", levels[i], (ids[i],), float("nan"), g))
            g = _polygonal(shapely.make_valid(g))
        fixed[i] = g
    by_level: dict[int, list[int]] = {}
    for i in fixed:
        by_level.setdefault(levels[i], []).append(i)
    unit = 1.0
    if crs.is_geographic:  # metres per degree at the centre, to turn the gap width into degrees
        x0, y0 = to_m.transform(lon, lat)
        x1, y1 = to_m.transform(lon, lat + 1e-3)
        unit = float(np.hypot(x1 - x0, y1 - y0)) / 1e-3
    top = min(by_level) if by_level else 0
    if outline is not None:
        jurisdiction = outline
    else:
        jurisdiction = jurisdiction_reference([fixed[i] for i in by_level.get(top, [])], gap_width_m, unit)
    row_of = {gid: i for i, gid in enumerate(ids)}
    for lv, members in sorted(by_level.items()):
        # every pair whose envelopes meet (pairs with disjoint envelopes cannot share area)
        env = np.array([fixed[i] for i in members], dtype=object)
        a, b = shapely.STRtree(env).query(env, predicate="intersects")
        for x, y in zip(a, b, strict=True):
            if x < y:
                i, j = members[x], members[y]
                add("overlap", lv, tuple(sorted((ids[i], ids[j]))), shapely.intersection(fixed[i], fixed[j]))
        rest = shapely.difference(jurisdiction, shapely.union_all([fixed[i] for i in members]))
        if exempt is not None:
            rest = shapely.difference(rest, exempt)
        for part in shapely.get_parts(_polygonal(rest)):
            add("gap", lv, (), part)
        for i in members:
            pid = parents[i]
            p = row_of.get(pid) if pid is not None else None
            if p is None or p not in fixed or levels[p] != lv - 1:
                continue
            add("outside_parent", lv, (ids[i], ids[p]), shapely.difference(fixed[i], fixed[p]))
    for p, pg in fixed.items():
        kids = [i for i in by_level.get(levels[p] + 1, []) if parents[i] == ids[p]]
        if levels[p] + 1 not in by_level:
            continue
        rest = shapely.difference(pg, shapely.union_all([fixed[i] for i in kids])) if kids else pg
        if exempt is not None:
            rest = shapely.difference(rest, exempt)
        add("parent_not_tiled", levels[p], (ids[p],), rest)
    return _as_frame(rows, crs)


def _as_frame(
    rows: list[tuple[str, int, tuple[str, ...], float, shapely.Geometry | None]], crs: CRS
) -> gpd.GeoDataFrame:
    df = pd.DataFrame(rows, columns=_COLUMNS)
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(df["geometry"], crs=crs), crs=crs)
