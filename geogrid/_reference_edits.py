"""Reference post-conditions of a topology-safe edit (:mod:`geogrid.edits`), from plain GEOS calls.

Short, slow and obviously correct: every condition an accepted edit must satisfy, checked
pairwise and by brute-force unions, with no shortcut shared with the engine. Topology (unions,
intersections, differences) is computed in the layer's own coordinates, where an exact edit is
exact; the resulting pieces are measured by their planar area times the area scale of a metric
CRS at the layer's centre (m² per square unit; no vertex is reprojected), so a vertex inserted on a
straight lon/lat edge does not become a reprojection sliver. Over a district the scale varies by
less than 1e-3, which matters for a tolerance, not for a verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely
from pyproj import CRS, Transformer

from layers.crs import metric_crs

__all__ = ["verify_edit"]

TOL_M2 = 1e-6
"""Area (m²) below which a difference is rounding: the post-conditions are exact up to this."""


def _area_scale(tr: Transformer, x: float, y: float) -> float:
    """m² per square unit of the layer's CRS at (x, y): the Jacobian determinant of ``tr`` there."""
    h = 1e-6 * max(1.0, abs(x), abs(y))
    x0, y0 = tr.transform(x, y)
    x1, y1 = tr.transform(x + h, y)
    x2, y2 = tr.transform(x, y + h)
    return abs((x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)) / (h * h)


def _metric_of(grids: gpd.GeoDataFrame) -> CRS:
    crs = CRS.from_user_input(grids.crs)
    if crs.is_projected:
        return crs
    x0, y0, x1, y1 = shapely.total_bounds(grids.geometry.to_numpy())
    return metric_crs((x0 + x1) / 2, (y0 + y1) / 2)


def _n_parts(geom: shapely.Geometry) -> int:
    """Count connected polygonal parts (parts of a MultiPolygon that share an edge count as one)."""
    parts = shapely.get_parts(shapely.make_valid(geom))
    parts = parts[np.isin(shapely.get_type_id(parts), [3, 6])]
    if parts.size == 0:
        return 0
    return len(shapely.get_parts(shapely.union_all(parts)))


def _by_id(grids: gpd.GeoDataFrame) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for gid, parent, level, geom in zip(
        grids["grid_id"].astype(str),
        grids["parent_id"],
        pd.to_numeric(grids["level"]),
        grids.geometry.to_numpy(),
        strict=True,
    ):
        p = None if pd.isna(parent) or str(parent).strip() == "" else str(parent)
        out[str(gid)] = {"parent": p, "level": int(level), "geom": geom}
    return out


def verify_edit(
    before: gpd.GeoDataFrame,
    after: gpd.GeoDataFrame,
    operation: str,
    *,
    tol_m2: float = TOL_M2,
    **params: Any,
) -> list[str]:
    """List every post-condition of an accepted edit that ``after`` breaks.

    The conditions: every geometry valid and non-empty; on every level no two grids overlap
    and the union equals the district outline (the union of level 0 before the edit: nothing
    gained, nothing lost); every grid lies inside its parent and the children of a parent add up
    to its area; the parents exist one level up; every grid the edit changed or created is one
    connected polygon unless the grid it came from was already multi-part; workload totals
    (``households``, ``population``, ``shops``) per level are unchanged, and on a level where every
    grid's workload was the sum of its children's it still is. Operation-specific:
    ``transfer_area`` puts the region's part in the jurisdiction into ``to_grid`` (unless
    ``clip``), ``merge_grids`` makes one grid of exactly the merged area, ``split_grid``
    pieces add up to the grid that was split.

    Parameters
    ----------
    before, after
        The layer before and after the edit (same CRS).
    operation
        The edit's name (a key of :data:`geogrid.edits.EDIT_OPERATIONS`).
    tol_m2
        Areas below this (m²) are rounding.
    **params
        The edit's parameters as passed to it (``region``, ``to_grid``, ``ids``, ``grid_id``...).

    Returns
    -------
    list of str
        One message per broken condition (empty when the edit is sound).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> b = gpd.GeoDataFrame({"grid_id": ["D", "a", "b"], "parent_id": [None, "D", "D"], "level": [0, 1, 1]},
    ...     geometry=[shapely.box(0, 0, 20, 10), shapely.box(0, 0, 10, 10), shapely.box(10, 0, 20, 10)],
    ...     crs="EPSG:32650")
    >>> a = b.copy()
    >>> a.loc[1, "geometry"] = shapely.box(0, 0, 9, 10)  # a 10 m² gap
    >>> verify_edit(b, a, "reshape_boundary")  # doctest: +NORMALIZE_WHITESPACE
    ['level 1: gap of 10 m² against the outline', "grid 'D': children 190.000000 m², the grid 200.000000 m²"]
    """
    problems: list[str] = []
    if after.crs is None or before.crs is None or not CRS.from_user_input(after.crs).equals(before.crs):
        return [f"CRS changed: {before.crs} -> {after.crs}"]
    crs = CRS.from_user_input(before.crs)
    metric = _metric_of(before)
    x0, y0, x1, y1 = shapely.total_bounds(before.geometry.to_numpy())
    scale = _area_scale(Transformer.from_crs(crs, metric, always_xy=True), (x0 + x1) / 2, (y0 + y1) / 2)

    def area(geoms: list[shapely.Geometry] | np.ndarray) -> np.ndarray:
        arr = np.asarray(geoms, dtype=object)
        return np.asarray(shapely.area(arr), dtype=float) * scale if arr.size else np.zeros(0)

    old, new = _by_id(before), _by_id(after)
    if not after["grid_id"].astype(str).is_unique:
        dup = after["grid_id"].astype(str)
        problems.append(f"duplicate grid_id {sorted(set(dup[dup.duplicated()]))}")
    bad = [g for g, r in new.items() if r["geom"] is None or shapely.is_empty(r["geom"])]
    bad += [g for g, r in new.items() if g not in bad and not shapely.is_valid(r["geom"])]
    for g in bad:
        reason = "empty" if new[g]["geom"] is None else shapely.is_valid_reason(new[g]["geom"])
        problems.append(f"grid {g!r} is not a valid polygon: {reason}")
    if bad:
        return problems
    types = {new[g]["geom"].geom_type for g in new}
    if not types <= {"Polygon", "MultiPolygon"}:
        problems.append(f"non-polygon geometries: {sorted(types)}")
        return problems

    outline = shapely.union_all([r["geom"] for r in old.values() if r["level"] == 0])
    outline_after = shapely.union_all([r["geom"] for r in new.values() if r["level"] == 0])
    sym = area([shapely.symmetric_difference(outline, outline_after)])[0]
    if sym >= tol_m2:
        problems.append(f"district outline changed by {sym:.3g} m²")

    levels = sorted({r["level"] for r in new.values()})
    for lv in levels:
        ids = [g for g, r in new.items() if r["level"] == lv]
        geoms = np.array([new[g]["geom"] for g in ids], dtype=object)
        for i in range(len(ids)):
            for j in range(i + 1, len(ids)):
                if not shapely.intersects(geoms[i], geoms[j]):
                    continue
                a = area([shapely.intersection(geoms[i], geoms[j])])[0]
                if a >= tol_m2:
                    problems.append(f"level {lv}: {ids[i]!r} and {ids[j]!r} overlap by {a:.3g} m²")
        union = shapely.union_all(geoms)
        gap = area([shapely.difference(outline, union)])[0]
        extra = area([shapely.difference(union, outline)])[0]
        if gap >= tol_m2:
            problems.append(f"level {lv}: gap of {gap:.3g} m² against the outline")
        if extra >= tol_m2:
            problems.append(f"level {lv}: {extra:.3g} m² outside the outline")

    kids: dict[str, list[str]] = {}
    for g, r in new.items():
        p = r["parent"]
        if r["level"] == 0:
            if p is not None:
                problems.append(f"top-level grid {g!r} has parent {p!r}")
            continue
        if p is None or p not in new:
            problems.append(f"grid {g!r} (level {r['level']}) has parent {p!r}, which does not exist")
            continue
        if new[p]["level"] != r["level"] - 1:
            problems.append(f"grid {g!r} (level {r['level']}) has parent {p!r} on level {new[p]['level']}")
        kids.setdefault(p, []).append(g)
        out = area([shapely.difference(r["geom"], new[p]["geom"])])[0]
        if out >= tol_m2:
            problems.append(f"grid {g!r}: {out:.3g} m² outside its parent {p!r}")
    finest = max(levels)
    for p, r in new.items():
        if r["level"] == finest:
            continue
        ks = kids.get(p, [])
        total = float(area([new[k]["geom"] for k in ks]).sum()) if ks else 0.0
        own = float(area([r["geom"]])[0])
        if abs(total - own) >= max(tol_m2, 1e-9 * own):
            problems.append(f"grid {p!r}: children {total:.6f} m², the grid {own:.6f} m²")

    # Connectivity of every grid the edit touched.
    for g, r in new.items():
        o = old.get(g)
        if o is not None and shapely.equals_exact(o["geom"], r["geom"], 0.0):
            continue
        n = _n_parts(r["geom"])
        if n <= 1:
            continue
        merged = [str(i) for i in params.get("ids", ())] if operation == "merge_grids" else []
        if merged and g == str(params.get("new_id") or merged[0]):
            # each merged grid must join the others: n one-part neighbours give one part
            was = sum(_n_parts(old[i]["geom"]) for i in merged if i in old) - (len(merged) - 1)
        elif o is not None:
            was = _n_parts(o["geom"])
        else:  # a new grid: the grids of its level it overlapped before
            same = [q["geom"] for q in old.values() if q["level"] == r["level"]]
            hit = [s for s in same if shapely.intersects(s, r["geom"])]
            was = max((_n_parts(s) for s in hit), default=1)
        if n > max(was, 1):
            problems.append(f"grid {g!r} (level {r['level']}) has {n} separate parts (had {was})")

    for col in ("households", "population", "shops"):
        if col in before.columns and col in after.columns:
            t0 = pd.to_numeric(before[col]).groupby(pd.to_numeric(before["level"]).to_numpy()).sum()
            t1 = pd.to_numeric(after[col]).groupby(pd.to_numeric(after["level"]).to_numpy()).sum()
            if not t0.equals(t1):
                problems.append(f"{col} totals per level changed: {t0.tolist()} -> {t1.tolist()}")

    problems += _parent_sums(before, after)
    problems += _specific(old, new, operation, params, area, tol_m2)
    return problems


def _child_sums(grids: gpd.GeoDataFrame, col: str) -> dict[str, tuple[Any, Any]]:
    """Per parent id: (its own figure in ``col``, the sum of its children's; NA when one is missing)."""
    ids = grids["grid_id"].astype(str).to_numpy()
    vals = pd.to_numeric(grids[col]).to_numpy(dtype=object)
    own = dict(zip(ids, vals, strict=True))
    total: dict[str, Any] = {}
    for v, p in zip(vals, grids["parent_id"], strict=True):
        if pd.isna(p) or str(p).strip() == "":
            continue
        cur = total.get(str(p), 0)
        total[str(p)] = pd.NA if pd.isna(v) or pd.isna(cur) else cur + int(v)
    return {p: (own.get(p, pd.NA), t) for p, t in total.items()}


def _parent_sums(before: gpd.GeoDataFrame, after: gpd.GeoDataFrame) -> list[str]:
    """Workloads: a level whose every parent equalled the sum of its children before still does after."""
    out: list[str] = []
    lv_before = pd.to_numeric(before["level"]).to_numpy()
    lv_after = dict(zip(after["grid_id"].astype(str), pd.to_numeric(after["level"]), strict=True))
    for col in ("households", "population", "shops"):
        if col not in before.columns or col not in after.columns:
            continue
        was = _child_sums(before, col)
        now = _child_sums(after, col)
        levels = sorted(set(lv_before.tolist()))
        for lv in levels[:-1]:
            parents = before["grid_id"].astype(str)[lv_before == lv]
            sound = all(
                p in was and not pd.isna(was[p][0]) and not pd.isna(was[p][1]) and int(was[p][0]) == int(was[p][1])
                for p in parents
            )
            if not sound:
                continue
            for p, (own, kids) in sorted(now.items()):
                if lv_after.get(p) != lv:
                    continue
                if pd.isna(own) or pd.isna(kids) or int(own) != int(kids):
                    out.append(f"grid {p!r}: {col} {own} but its children sum to {kids} (they did before the edit)")
    return out


def _specific(
    old: Mapping[str, Mapping[str, Any]],
    new: Mapping[str, Mapping[str, Any]],
    operation: str,
    params: Mapping[str, Any],
    area: Any,
    tol_m2: float,
) -> list[str]:
    out: list[str] = []
    if operation == "transfer_area" and not params.get("clip"):
        tgt = str(params["to_grid"])
        region = params["region"]
        if isinstance(region, str):
            region = shapely.from_wkt(region)
        outline = shapely.union_all([r["geom"] for r in old.values() if r["level"] == 0])
        want = shapely.intersection(region, outline)
        if tgt in new:
            miss = area([shapely.difference(want, new[tgt]["geom"])])[0]
            # snapping may move the region's edge by up to snap_m: allow that strip
            allow = float(params.get("snap_m", 1.0)) * float(area([want])[0]) ** 0.5 * 4 + tol_m2
            if miss >= allow:
                out.append(f"transfer_area: {miss:.3g} m² of the region did not reach {tgt!r}")
    if operation == "merge_grids":
        ids = [str(i) for i in params["ids"]]
        tgt = str(params.get("new_id") or ids[0])
        if tgt not in new:
            out.append(f"merge_grids: merged grid {tgt!r} is missing")
        elif not params.get("cascade"):
            was = shapely.union_all([old[i]["geom"] for i in ids])
            d = area([shapely.symmetric_difference(was, new[tgt]["geom"])])[0]
            if d >= tol_m2:
                out.append(f"merge_grids: {tgt!r} differs from the union of {ids} by {d:.3g} m²")
        gone = [i for i in ids if i != tgt and i in new]
        if gone:
            out.append(f"merge_grids: {gone} still exist")
    if operation == "split_grid":
        gid = str(params["grid_id"])
        if gid in new:
            out.append(f"split_grid: {gid!r} still exists")
        pieces = [str(i) for i in params.get("new_ids") or []]
        if pieces and gid in old:
            got = [new[i]["geom"] for i in pieces if i in new]
            d = area([shapely.symmetric_difference(old[gid]["geom"], shapely.union_all(got))])[0]
            if d >= tol_m2:
                out.append(f"split_grid: the pieces differ from {gid!r} by {d:.3g} m²")
    if operation == "reparent":
        gid, pid = str(params["grid_id"]), str(params["new_parent"])
        if gid in new and new[gid]["parent"] != pid:
            out.append(f"reparent: {gid!r} has parent {new[gid]['parent']!r}, not {pid!r}")
    return out
