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

Pieces are measured in a metric CRS; pieces smaller than ``min_area_m2`` are dropped. The
pieces are :func:`geogrid.reference.check_grids`'s (one definition of each defect); this
adds the repair's view: one gap row per level and the layer's own CRS for measuring.
"""

from __future__ import annotations

import pandas as pd

import geopandas as gpd
import shapely
from pyproj import CRS

from geogrid._reference_check import check_grids_reference

__all__ = ["reference_defects"]

_COLUMNS = ["kind", "level", "grid_ids", "area_m2", "geometry"]


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
    ref = check_grids_reference(
        grids,
        gap_width_m=gap_width_m,
        min_area_m2=0.0,
        outline=outline,
        metric_crs_=_metric_of(grids, metric_crs),
    )
    gap = ref["kind"] == "gap"
    whole = [  # one gap row per level: its pieces together
        ("gap", int(lv), (), float(grp["area_m2"].sum()), shapely.union_all(grp.geometry.to_numpy()))
        for lv, grp in ref[gap].groupby("level", sort=True)
    ]
    out = pd.concat([ref[~gap], pd.DataFrame(whole, columns=_COLUMNS)], ignore_index=True)
    out = out[(out["kind"] == "invalid") | (out["area_m2"] >= min_area_m2)]
    order = {k: n for n, k in enumerate(("invalid", "overlap", "gap", "outside_parent", "parent_not_tiled"))}
    out = out.assign(rank=out["kind"].map(order)).sort_values(["rank", "level"], kind="stable")
    return pd.DataFrame(out[_COLUMNS]).reset_index(drop=True)
