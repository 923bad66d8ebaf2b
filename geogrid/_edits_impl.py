"""Private core of :mod:`geogrid.edits`: an edit re-assigns the faces of a local arrangement.

Every edit works the same way:

1. *Zone*: the basic grids (finest level) within the snapping tolerance of the edit.
   In an exactly nested hierarchy every edge of every level is an edge of the basic
   grids, so their boundaries carry all the linework of all levels in the zone.
2. *Arrangement*: those boundaries and the (snapped) edit lines are noded together
   (``union_all``) and polygonized into *faces*. Each face lies inside exactly one grid
   of every level, so its owners form a vector (district, street, ..., basic grid).
3. *Decision*: the operation changes the owner on its level (a region to a grid, one
   side of a line to a neighbour, pieces of a split to new ids...). Ancestors follow
   (``cascade``) or the edit is refused; descendants are re-grouped under their new
   parents, split where they straddle a new boundary.
4. *Rebuild*: basic grids are the coverage union of their faces; every coarser grid
   touched is the coverage union of its children. Shared edges therefore carry the
   same vertices on every level (no T-junction), and children tile parents exactly.

Topology is computed in the grids' own coordinates, which are an affine image of the
local metric frame of :mod:`geogrid._hierarchy_impl` (nothing is reprojected, so no
edge bends); tolerances are metres in that frame; reported areas are measured in the
explicit metric CRS.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from geogrid import _hierarchy_impl as _h
from layers.crs import ensure_crs, metric_crs
from layers.errors import NotFoundError, TopologyError, format_ids
from layers.schema import STORAGE_CRS, WORKLOAD_COLUMNS

__all__: list[str] = []

Decide = Callable[["Arrangement"], np.ndarray]


# -- the network as plain dicts --------------------------------------------------------
class Network:
    """A grid layer indexed for editing (ids, parents, levels, geometries in the input CRS)."""

    def __init__(self, grids: gpd.GeoDataFrame) -> None:
        self.crs = ensure_crs(grids.crs, what="grids")
        self.grids = grids
        ids = grids["grid_id"].astype(str).to_numpy(dtype=object)
        dup = pd.Index(ids)[pd.Index(ids).duplicated()].unique().tolist()
        if dup:
            msg = f"grids has duplicate grid_id {format_ids(dup)}: ids must be unique before editing"
            raise TopologyError(msg)
        self.ids = ids
        parents = grids["parent_id"].astype("string").str.strip()
        self.parent: dict[str, str | None] = {
            i: (None if pd.isna(p) or p == "" else str(p)) for i, p in zip(ids, parents, strict=True)
        }
        self.level: dict[str, int] = {
            i: int(v) for i, v in zip(ids, pd.to_numeric(grids["level"]).to_numpy(), strict=True)
        }
        self.geom: dict[str, shapely.Geometry] = dict(zip(ids, grids.geometry.values, strict=True))
        self.row: dict[str, int] = {i: k for k, i in enumerate(ids)}
        self.finest = max(self.level.values()) if self.level else 0
        self.children: dict[str, list[str]] = {}
        for i in ids:
            p = self.parent[i]
            if p is not None:
                self.children.setdefault(p, []).append(i)
        bounds = shapely.total_bounds(grids.geometry.values)
        self.frame = _h.Frame.build(self.crs, bounds, None, metric_crs)
        self.fin_ids = np.array([i for i in ids if self.level[i] == self.finest], dtype=object)
        self.fin_geoms = np.array([self.geom[i] for i in self.fin_ids], dtype=object)
        self.fin_tree = shapely.STRtree(self.fin_geoms)

    def require(self, gid: str) -> str:
        """Return ``gid`` as str, or raise NotFoundError naming similar ids."""
        gid = str(gid)
        if gid not in self.row:
            msg = f"grid {gid!r} does not exist in this layer ({len(self.ids):,} grids)"
            raise NotFoundError(msg)
        return gid

    def chain(self, gid: str) -> list[str]:
        """Ids of ``gid`` and its ancestors, top level first."""
        out = [gid]
        while (p := self.parent.get(out[-1])) is not None:
            out.append(p)
        return out[::-1]

    def native_tol(self, metres: float) -> float:
        """Return a distance in input-CRS units at least as long as ``metres`` everywhere."""
        return float(metres) / min(self.frame.scale)

    def descendants_fin(self, gid: str) -> list[str]:
        """Return the basic grids under ``gid`` (itself when it is one)."""
        out, todo = [], [gid]
        while todo:
            g = todo.pop()
            if self.level[g] == self.finest:
                out.append(g)
            else:
                todo.extend(self.children.get(g, []))
        return out

    def as_geometry(self, value: object, what: str) -> shapely.Geometry:
        """Return an argument (shapely geometry in the grids' CRS, GeoSeries/GeoDataFrame with a CRS) as one geometry."""
        if isinstance(value, gpd.GeoDataFrame):
            value = value.geometry
        if isinstance(value, gpd.GeoSeries):
            if value.crs is None:
                msg = f"{what} has no CRS: set it with .set_crs(...) (the grids are in {self.crs.to_string()})"
                from layers.errors import CRSError

                raise CRSError(msg)
            value = shapely.union_all(value.to_crs(self.crs).to_numpy())
        if not isinstance(value, shapely.Geometry):
            msg = f"{what} must be a shapely geometry, a GeoSeries or a GeoDataFrame, got {type(value).__name__}"
            raise TypeError(msg)
        if shapely.is_empty(value) or not np.isfinite(shapely.get_coordinates(value)).all():
            msg = f"{what} is empty or has NaN/inf coordinates"
            raise TopologyError(msg)
        return value


# -- snapping ----------------------------------------------------------------------------
def snap_lines(
    net: Network, lines: shapely.Geometry, tol_m: float, *, zone_pad: shapely.Geometry | None = None
) -> tuple[shapely.Geometry, list[shapely.Point]]:
    """Snap edit linework to existing vertices (and onto existing edges) within ``tol_m`` metres.

    Returns the snapped linework in the input CRS, and the points that were projected
    onto existing edges (they must be inserted into those edges before noding).
    Vertices that snapped to an existing vertex take its exact input coordinates.
    """
    pad = net.native_tol(tol_m)
    near = net.fin_tree.query(shapely.buffer(lines if zone_pad is None else zone_pad, pad), predicate="intersects")
    if near.size == 0:
        return lines, []
    cells = net.fin_geoms[near]
    ref = np.unique(shapely.get_coordinates(cells), axis=0)
    frame = net.frame
    ref_local = (ref - np.array(frame.origin)) * np.array(frame.scale)
    lines_local = frame.local(np.array([lines], dtype=object))[0]
    snapped_local = shapely.snap(lines_local, shapely.multipoints(ref_local), tol_m)
    xy_local = shapely.get_coordinates(snapped_local)
    lookup = {tuple(v): k for k, v in enumerate(ref_local)}
    edges_local = frame.local(shapely.boundary(cells))
    edges_native = shapely.union_all(shapely.boundary(cells))
    edges_local_u = shapely.union_all(edges_local)
    out = np.empty_like(xy_local)
    projected: list[shapely.Point] = []
    for k, v in enumerate(xy_local):
        hit = lookup.get(tuple(v))
        if hit is not None:
            out[k] = ref[hit]
            continue
        native = np.asarray(v) / np.array(frame.scale) + np.array(frame.origin)
        p_local = shapely.Point(v)
        if shapely.distance(p_local, edges_local_u) <= tol_m:
            pn = shapely.Point(native)
            parts = shapely.get_parts(edges_native)
            best = parts[int(np.argmin(shapely.distance(parts, pn)))]
            onto = shapely.line_interpolate_point(best, shapely.line_locate_point(best, pn))
            out[k] = shapely.get_coordinates(onto)[0]
            projected.append(shapely.Point(out[k]))
        else:
            out[k] = native
    snapped = shapely.set_coordinates(shapely.transform(snapped_local, lambda xy: xy), out)
    return snapped, projected


# -- the arrangement -----------------------------------------------------------------------
@dataclass
class Arrangement:
    """Faces of the zone with their owners on every level (columns: level 0..finest)."""

    net: Network
    faces: np.ndarray  # polygons, input CRS
    reps: np.ndarray  # a point inside each face
    old: np.ndarray  # (n_faces, n_levels) object: owner ids
    zone_cells: list[str]
    area_local: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def inside(self, geom: shapely.Geometry) -> np.ndarray:
        """Faces whose interior point lies in ``geom``."""
        shapely.prepare(geom)
        return shapely.contains(geom, self.reps)


def build_arrangement(
    net: Network,
    zone: shapely.Geometry,
    lines: shapely.Geometry | None,
    nodes: Sequence[shapely.Point],
    tol_m: float,
) -> Arrangement:
    """Node the basic grids near ``zone`` with ``lines`` and polygonize them into faces.

    Every basic grid the lines reach is in the zone: a grid left out would not get the
    vertex the line puts on the edge it shares with a grid in the zone.
    """
    pad = net.native_tol(tol_m)
    if lines is not None and not shapely.is_empty(lines):
        zone = shapely.union(zone, lines)
    near = net.fin_tree.query(shapely.buffer(zone, pad), predicate="intersects")
    near = np.sort(near)
    cells = net.fin_geoms[near]
    linework = shapely.union_all(shapely.boundary(cells))
    if nodes:
        linework = shapely.snap(linework, shapely.multipoints(nodes), net.native_tol(1e-6))
    if lines is not None and not shapely.is_empty(lines):
        linework = shapely.union_all(np.array([linework, lines], dtype=object))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(linework)))
    faces = faces[shapely.area(faces) > 0]
    reps = shapely.point_on_surface(faces)
    tree = shapely.STRtree(cells)
    fi, ci = tree.query(reps, predicate="within")
    count = np.bincount(fi, minlength=len(faces))
    if (count > 1).any():
        bad = sorted({str(net.fin_ids[near[c]]) for f, c in zip(fi, ci, strict=True) if count[f] > 1})
        msg = f"basic grids {format_ids(bad)} overlap: fix the layer (geogrid check) before editing it"
        raise TopologyError(msg)
    cell_of = np.full(len(faces), -1, dtype=np.int64)
    cell_of[fi] = ci
    keep = cell_of >= 0  # faces outside the jurisdiction (or in enclaves) belong to no grid
    faces, reps, cell_of = faces[keep], reps[keep], cell_of[keep]
    n_lv = net.finest + 1
    old = np.empty((len(faces), n_lv), dtype=object)
    chains = {int(c): net.chain(str(net.fin_ids[near[c]])) for c in np.unique(cell_of)}
    for f, c in enumerate(cell_of):
        ch = chains[int(c)]
        if len(ch) != n_lv:
            msg = f"basic grid {ch[-1]!r} has {len(ch) - 1} ancestors, not {n_lv - 1}: fix its parent_id chain"
            raise TopologyError(msg)
        old[f, :] = ch
    area_local = shapely.area(net.frame.local(faces)) if len(faces) else np.zeros(0)
    return Arrangement(net, faces, reps, old, [str(net.fin_ids[i]) for i in near], area_local)


# -- the change set ------------------------------------------------------------------------
@dataclass
class Outcome:
    """What the engine returns: the new layer and the facts for the change set."""

    grids: gpd.GeoDataFrame
    added: list[str]
    removed: list[str]
    changed: list[str]
    renoded: list[str]
    reparented: dict[str, tuple[str | None, str | None]]
    moves: pd.DataFrame
    sources: dict[str, str] = field(default_factory=dict)  # new id -> the grid it was made from


def _fresh(base: str, taken: set[str]) -> str:
    k = 1
    while f"{base}.{k}" in taken:
        k += 1
    gid = f"{base}.{k}"
    taken.add(gid)
    return gid


def _largest_remainder(total: int, parts: np.ndarray) -> np.ndarray:
    """Integers summing to ``total``, proportional to ``parts`` (which sum to ~``total``)."""
    parts = np.maximum(np.asarray(parts, dtype=float), 0.0)
    s = parts.sum()
    if s <= 0:
        out = np.zeros(len(parts), dtype=np.int64)
        out[0] = total
        return out
    exact = parts * (total / s)
    base = np.floor(exact).astype(np.int64)
    short = int(total - base.sum())
    if short > 0:
        order = np.argsort(-(exact - base), kind="stable")
        base[order[:short]] += 1
    return base


def run(
    net: Network,
    arr: Arrangement,
    level: int,
    new_owner: np.ndarray,
    *,
    cascade: bool,
    clip: bool,
    new_parent: Mapping[str, str | None],
    like: Mapping[str, str],
    operation: str,
    points: gpd.GeoDataFrame | None,
    weight_column: str | None,
    extra_removed: Sequence[str] = (),
) -> Outcome:
    """Apply the owners chosen on ``level`` to the arrangement and rebuild the layer.

    ``new_parent`` gives the parent of new ids created by the operation (split pieces, a
    merged grid with a new id); ``like`` the existing grid each new id copies its
    attributes from.
    """
    n_f, n_lv = arr.old.shape
    new = arr.old.copy()
    new[:, level] = new_owner
    parent_of: dict[str, str | None] = dict(net.parent)
    parent_of.update(new_parent)
    level_of: dict[str, int] = dict(net.level)
    for gid in new_parent:
        level_of[gid] = level

    def chain_of(gid: str) -> list[str]:
        out = [gid]
        while (p := parent_of.get(out[-1])) is not None:
            out.append(p)
        return out[::-1]

    # Ancestors follow the new owner, or the edit crosses a parent boundary.
    moved = new[:, level] != arr.old[:, level]
    if level > 0 and moved.any():
        need = np.empty((n_f, level), dtype=object)
        for fm in np.flatnonzero(moved):
            ch = chain_of(str(new[fm, level]))
            need[fm, :] = ch[:level]
        crossing = moved & (need[:, level - 1] != arr.old[:, level - 1])
        crossing_any = np.zeros(n_f, dtype=bool)
        for k in range(level):
            crossing_any |= moved & (need[:, k] != arr.old[:, k])
        if crossing_any.any():
            if cascade:
                for k in range(level):
                    new[moved, k] = need[moved, k]
            elif clip:
                new[crossing_any, level] = arr.old[crossing_any, level]
            else:
                raise _crossing_error(net, arr, level, new, crossing | crossing_any, operation, parent_of)
    # Descendants: regroup by (old grid, new parent); straddlers split. A one-part grid whose
    # faces under one new parent fall into several pieces (a line crossing it twice) gives
    # each piece its own grid, so no grid comes out in detached parts.
    taken = set(net.ids) | set(new_parent)
    fin_in_zone = set(arr.zone_cells)
    created: dict[str, str] = {}  # new id -> grid it was split from
    for k in range(level + 1, n_lv):
        faces_of: dict[str, dict[str, list[int]]] = {}
        for f in range(n_f):
            faces_of.setdefault(str(arr.old[f, k]), {}).setdefault(str(new[f, k - 1]), []).append(f)
        rename: dict[int, str] = {}
        for g, by_parent in faces_of.items():
            old_p = net.parent.get(g)
            whole = all(c in fin_in_zone for c in net.descendants_fin(g))
            split_pieces = whole and len(by_parent) > 1 and n_parts(net.geom[g]) <= 1
            groups: list[tuple[str, list[int], float]] = []  # (new parent, faces, area)
            for p, fs in by_parent.items():
                for piece in _components(arr, fs) if split_pieces else [fs]:
                    groups.append((p, piece, float(arr.area_local[piece].sum())))
            if not whole:
                groups = [(p, fs, a + (math.inf if p == str(old_p) else 0.0)) for p, fs, a in groups]
            keeper = max(range(len(groups)), key=lambda i: (groups[i][0] == str(old_p), groups[i][2], groups[i][0]))
            for i, (p, fs, _a) in enumerate(groups):
                if i == keeper:
                    gid = g
                    if p != str(old_p):
                        parent_of[g] = p
                else:
                    gid = _fresh(g, taken)
                    parent_of[gid] = p
                    level_of[gid] = k
                    created[gid] = g
                for f in fs:
                    rename[f] = gid
        for f in range(n_f):
            new[f, k] = rename[f]
    for nid in new_parent:
        created.setdefault(nid, like.get(nid, nid))
    return _rebuild(net, arr, new, parent_of, level_of, created, level, points, weight_column, extra_removed)


def _components(arr: Arrangement, fs: list[int]) -> list[list[int]]:
    """Split the faces ``fs`` into groups that form connected areas (largest first)."""
    if len(fs) < 2:
        return [fs]
    parts = shapely.get_parts(shapely.union_all(arr.faces[fs]))
    if len(parts) < 2:
        return [fs]
    shapely.prepare(parts)
    out: list[list[int]] = [[] for _ in parts]
    for f in fs:
        hit = np.flatnonzero(shapely.contains(parts, arr.reps[f]))
        out[int(hit[0]) if hit.size else 0].append(f)
    out = [o for o in out if o]
    return sorted(out, key=lambda o: -float(arr.area_local[o].sum()))


def _crossing_error(
    net: Network,
    arr: Arrangement,
    level: int,
    new: np.ndarray,
    crossing: np.ndarray,
    operation: str,
    parent_of: Mapping[str, str | None],
) -> TopologyError:
    frame = net.frame
    rows = []
    pairs: dict[tuple[str, str, str], list[int]] = {}
    for f in np.flatnonzero(crossing):
        tgt = str(new[f, level])
        src_parent = str(arr.old[f, level - 1])
        pairs.setdefault((tgt, src_parent, str(arr.old[f, level])), []).append(int(f))
    for (tgt, src_parent, src), fs in pairs.items():
        geom = shapely.union_all(arr.faces[fs])
        area, _ = frame.measure(frame.local(np.array([geom], dtype=object)))
        rows.append(
            {
                "kind": "outside_parent",
                "level": level,
                "grid_ids": (tgt, src, src_parent),
                "area_m2": float(area[0]),
                "message": (
                    f"{_h.area_text(float(area[0]))} would move from {src!r} into {tgt!r}, but lie in "
                    f"{src_parent!r}, not in {tgt!r}'s parent {parent_of.get(tgt)!r}"
                ),
                "geometry": frame.to_wgs84(np.array([geom], dtype=object))[0],
            }
        )
    findings = gpd.GeoDataFrame(rows, geometry="geometry", crs=STORAGE_CRS)
    total = findings["area_m2"].sum()
    first = findings["message"].iloc[0]
    msg = (
        f"{operation} crosses a parent boundary on level {level - 1}: {first}"
        f"{f' (+{len(findings) - 1} more)' if len(findings) > 1 else ''}; {_h.area_text(total)} in all. "
        "Pass cascade=True to move the parents' boundary too"
        + (", or clip=True to move only the part inside the parent" if operation == "transfer_area" else "")
        + " (see .findings)"
    )
    return TopologyError(msg, findings)


def _rebuild(
    net: Network,
    arr: Arrangement,
    new: np.ndarray,
    parent_of: dict[str, str | None],
    level_of: dict[str, int],
    created: dict[str, str],
    level: int,
    points: gpd.GeoDataFrame | None,
    weight_column: str | None,
    extra_removed: Sequence[str],
) -> Outcome:
    n_f, n_lv = new.shape
    fin = n_lv - 1
    geom: dict[str, shapely.Geometry | None] = {}
    # basic grids from faces
    touched_fin = set(arr.zone_cells) | {str(v) for v in new[:, fin]}
    by_cell: dict[str, list[int]] = {}
    for f in range(n_f):
        by_cell.setdefault(str(new[f, fin]), []).append(f)
    in_zone = set(arr.zone_cells)
    for c in touched_fin:
        fs = by_cell.get(c, [])
        # A basic grid outside the zone keeps its own area and gains the faces given to it.
        kept = [net.geom[c]] if c not in in_zone and c in net.geom else []
        parts = np.array([*kept, *arr.faces[fs]], dtype=object)
        geom[c] = _cover(parts) if len(parts) else None
    # coarser levels from children
    children: dict[str, list[str]] = {}
    for g, p in parent_of.items():
        if p is not None:
            children.setdefault(p, []).append(g)
    # noding the zone may put a vertex on an edge shared with a basic grid outside it
    renoded_fin = _renode_neighbours(net, fin, touched_fin, geom)
    touched = set(touched_fin) | renoded_fin
    more_parents: set[str] = {p for n in renoded_fin if (p := parent_of.get(n)) is not None}
    for k in range(fin - 1, -1, -1):
        tk = {str(v) for v in arr.old[:, k]} | {str(v) for v in new[:, k]} | more_parents
        for g in sorted(tk):
            kids = [c for c in children.get(g, []) if level_of.get(c) == k + 1]
            kid_geoms: list[shapely.Geometry] = []
            for c in kids:
                cg = geom[c] if c in geom else net.geom.get(c)
                if cg is not None:
                    kid_geoms.append(cg)
            geom[g] = _cover(np.array(kid_geoms, dtype=object)) if kid_geoms else None
        renoded_k = _renode_neighbours(net, k, tk, geom)
        more_parents = {p for n in renoded_k if (p := parent_of.get(n)) is not None}
        touched |= tk | renoded_k
    touched |= set(extra_removed)
    for g in extra_removed:
        geom.setdefault(g, None)
    _drop_needless_vertices(net, arr, geom)
    _weld_vertices(net, geom)
    # classify
    added, removed, changed, renoded = [], [], [], []
    reparented: dict[str, tuple[str | None, str | None]] = {}
    for g in sorted(touched):
        if g not in net.row:
            if geom.get(g) is not None:
                added.append(g)
            continue
        ng = geom.get(g)
        if ng is None:
            removed.append(g)
            continue
        og = net.geom[g]
        if net.parent.get(g) != parent_of.get(g):
            reparented[g] = (net.parent.get(g), parent_of.get(g))
        same_vertices = shapely.equals_exact(shapely.normalize(og), shapely.normalize(ng), tolerance=0.0)
        if same_vertices:
            geom[g] = og
        elif _same_shape(net, og, ng):
            renoded.append(g)
        else:
            changed.append(g)
    moves, workload = _apportion(net, arr, new, added, removed, points, weight_column, parent_of)
    out = _assemble(net, geom, parent_of, level_of, created, added, removed, touched, workload)
    for g in reparented:
        if g not in changed:
            changed.append(g)
    return Outcome(out, added, removed, sorted(changed), renoded, reparented, moves, dict(created))


def n_parts(geom: shapely.Geometry) -> int:
    """Count the connected polygonal parts of ``geom`` (parts touching only at a point are separate)."""
    if geom is None or shapely.is_empty(geom):
        return 0
    parts = shapely.get_parts(geom)
    if len(parts) == 1:
        return 1
    return len(shapely.get_parts(shapely.union_all(parts)))


def pieces_findings(
    net: Network, outcome: Outcome, allowed: Mapping[str, int] | None = None
) -> gpd.GeoDataFrame | None:
    """Grids the edit would break into more parts than they had (``None`` when there are none).

    A grid changed or created by the edit may have as many connected parts as the grid it
    came from (``allowed`` overrides that per id, e.g. for a merge); more means a detached
    piece: a region that does not touch the grid it is given to, a merge of grids that are
    not neighbours, a grid cut in two.
    """
    new = outcome.grids
    look = [*outcome.changed, *outcome.added]
    ids = new["grid_id"].astype(str)
    hit = ids.isin(look).to_numpy()
    geom = dict(zip(ids[hit], new.geometry.values[hit], strict=True))
    level = dict(zip(ids[hit], new["level"].to_numpy()[hit], strict=True))
    rows = []
    for g in look:
        if g not in geom:
            continue
        have = n_parts(geom[g])
        if have <= 1:
            continue
        src = g if g in net.row else outcome.sources.get(g, g)
        had = (allowed or {}).get(g, n_parts(net.geom[src]) if src in net.geom else 1)
        if have <= max(had, 1):
            continue
        parts = shapely.get_parts(shapely.union_all(shapely.get_parts(geom[g])))
        area, _ = net.frame.measure(net.frame.local(parts))
        lv = int(level[g])
        rows.append(
            {
                "kind": "detached_part",
                "level": lv,
                "grid_ids": (g,),
                "area_m2": float(np.sort(area)[:-1].sum()),
                "message": f"grid {g!r} (level {lv}) would fall into {have} separate parts (it had {max(had, 1)})",
                "geometry": net.frame.to_wgs84(np.array([geom[g]], dtype=object))[0],
            }
        )
    if not rows:
        return None
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=STORAGE_CRS)


def _cover(parts: np.ndarray) -> shapely.Geometry:
    if len(parts) == 1:
        return parts[0]
    try:
        return shapely.coverage_union_all(parts)
    except shapely.errors.GEOSException:  # not exactly noded: the overlay union (the guard checks the result)
        return shapely.union_all(parts)


def _renode_neighbours(
    net: Network, level: int, rebuilt: set[str], geom: dict[str, shapely.Geometry | None]
) -> set[str]:
    """Insert the new vertices of rebuilt grids into their untouched neighbours on ``level``.

    A parent rebuilt from its children carries every child vertex on its ring; a
    neighbour whose ring lacked one would meet it in a T-junction. Neighbours are those
    within rounding distance (a vertex may sit 1e-15 degrees off an edge), and a vertex
    inserted into one neighbour is passed on to the next (two untouched grids sharing the
    edge it lies on both get it).
    """
    frontier = [g for g in sorted(rebuilt) if geom.get(g) is not None]
    others = np.array([g for g, lv in net.level.items() if lv == level and g not in rebuilt], dtype=object)
    if not frontier or others.size == 0:
        return set()
    tree = shapely.STRtree(np.array([net.geom[g] for g in others], dtype=object))
    tiny = net.native_tol(1e-6)
    out: set[str] = set()
    while frontier:
        new_g = np.array([geom[g] for g in frontier], dtype=object)
        src, hit = tree.query(new_g, predicate="dwithin", distance=tiny)
        nxt: list[str] = []
        for h in np.unique(hit):
            gid = str(others[h])
            nb = geom[gid] if gid in out else net.geom[gid]
            have = {tuple(v) for v in shapely.get_coordinates(nb)}
            pts = np.unique(shapely.get_coordinates(new_g[src[hit == h]]), axis=0)
            pts = np.array([v for v in pts if tuple(v) not in have])
            if pts.size == 0:
                continue
            near = shapely.dwithin(shapely.points(pts), shapely.boundary(nb), tiny)
            if not near.any():
                continue
            geom[gid] = shapely.snap(nb, shapely.multipoints(pts[near]), tiny)
            out.add(gid)
            nxt.append(gid)
        frontier = nxt
    return out


def _same_shape(net: Network, a: shapely.Geometry, b: shapely.Geometry) -> bool:
    """Equal as point sets up to rounding (only vertices were inserted)."""
    sym = shapely.symmetric_difference(a, b)
    if shapely.is_empty(sym):
        return True
    # Local (affine) area: reprojecting a 1e-9 m sliver bends it into square millimetres.
    return bool(shapely.area(net.frame.local(np.array([sym], dtype=object)))[0] < 1e-6)


def _drop_needless_vertices(net: Network, arr: Arrangement, geom: dict[str, shapely.Geometry | None]) -> None:
    """Remove new vertices that only sit, collinear, inside an original edge in every ring.

    The edit's line is noded into every edge it crosses; where the owners on both sides
    of that edge did not change, the vertex is not needed. It is removed from every ring
    or kept in every ring, so shared edges stay identical. A vertex is new when neither the
    basic grids of the zone nor the rebuilt grid had it, and it lies on the original edge
    between its two ring neighbours (a vertex of a grid outside the zone, e.g. the apex of a
    triangle whose base is a zone edge, is not); original vertices, repeated ones included,
    always stay.
    """
    cells = np.array([net.geom[c] for c in arr.zone_cells], dtype=object)
    rebuilt = np.array([net.geom[g] for g in geom if g in net.geom], dtype=object)
    orig_xy = {tuple(v) for v in shapely.get_coordinates(np.concatenate([cells, rebuilt]))}
    # get_rings needs Polygons: a MultiPolygon has no rings of its own
    xy, ring_of = shapely.get_coordinates(shapely.get_rings(shapely.get_parts(cells)), return_index=True)
    same = (ring_of[1:] == ring_of[:-1]) & (xy[1:] != xy[:-1]).any(axis=1)
    a, b = xy[:-1][same], xy[1:][same]
    orig_seg = {(tuple(p), tuple(q)) for p, q in zip(a, b, strict=True)}
    orig_seg |= {(q, p) for p, q in orig_seg}
    tiny = net.native_tol(1e-6)
    rings_of: dict[str, list[list[np.ndarray]]] = {}
    verdict: dict[tuple[float, float], bool] = {}
    for g, geo in geom.items():
        if geo is None:
            continue
        polys = shapely.get_parts(geo)
        rings = [[shapely.get_coordinates(r)[:-1] for r in shapely.get_rings(p)] for p in polys]
        rings_of[g] = rings
        for poly in rings:
            for ring in poly:
                n = len(ring)
                for i, v in enumerate(map(tuple, ring)):
                    if v in orig_xy:
                        continue
                    seg = (tuple(ring[i - 1]), tuple(ring[(i + 1) % n]))
                    ok = seg in orig_seg and n > 3
                    if ok:
                        on = shapely.distance(shapely.Point(v), shapely.LineString(seg))
                        ok = bool(on <= tiny)
                    verdict[v] = verdict.get(v, True) and ok
    drop = {v for v, ok in verdict.items() if ok}
    if not drop:
        return
    for g, rings in rings_of.items():
        changed = False
        polys = []
        for poly in rings:
            kept = []
            for ring in poly:
                mask = np.array([tuple(v) not in drop for v in ring], dtype=bool)
                changed |= not mask.all()
                r = ring[mask]
                kept.append(np.vstack([r, r[:1]]))
            polys.append(shapely.Polygon(kept[0], kept[1:]))
        if changed:
            geom[g] = polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def _weld_vertices(net: Network, geom: dict[str, shapely.Geometry | None]) -> None:
    """Make vertices of the rebuilt grids closer than rounding distance one and the same vertex.

    Noding a line into several grids can give one crossing point two floating-point forms a few
    ULP apart (fuzz seed 8000065: 500376.19299295975 in one grid, ...0.1929929597 beside it in its
    neighbour). Their edges then differ and the result is not a coverage (the guard reports an
    ``edge_mismatch``). Every cluster of vertices within 1e-6 m becomes one: a vertex of the
    original layer where the cluster has one, else the lowest coordinate, the same in every grid
    and on every level; repeated vertices are then dropped. If welding would make any grid invalid
    (a ring of rounding size collapsing), no grid is welded (the guard then judges the result).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    gids = [g for g, v in geom.items() if v is not None]
    if not gids:
        return
    geoms = np.array([geom[g] for g in gids], dtype=object)
    xy, owner = shapely.get_coordinates(geoms, return_index=True)
    uniq, inv = np.unique(xy, axis=0, return_inverse=True)
    inv = inv.ravel()
    pairs = cKDTree(uniq).query_pairs(net.native_tol(1e-6), output_type="ndarray")
    if len(pairs) == 0:
        return
    n = len(uniq)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    before = np.array([net.geom[g] for g in gids if g in net.geom], dtype=object)
    orig = {tuple(v) for v in shapely.get_coordinates(before)} if len(before) else set()
    idx = np.arange(n)
    key = np.where(np.array([tuple(v) in orig for v in uniq], dtype=bool), idx, idx + n)
    best = np.full(label.max() + 1, 2 * n)
    np.minimum.at(best, label, key)
    rep = best[label] % n
    moved = rep[inv] != inv
    welded: dict[str, shapely.Geometry] = {}
    for k in np.unique(owner[moved]):
        g = geoms[k]
        coords = shapely.get_coordinates(g, include_z=bool(shapely.has_z(g)))
        coords[:, :2] = uniq[rep[inv[owner == k]]]
        w = _with_coordinates(g, coords)
        if w is None or not shapely.is_valid(w):
            return
        welded[gids[k]] = w
    geom.update(welded)  # all or none: a grid welded beside one left as it was would not match it


def _with_coordinates(g: shapely.Geometry, coords: np.ndarray) -> shapely.Geometry | None:
    """Polygonal ``g`` with its vertices replaced by ``coords`` (as from ``get_coordinates``), repeats dropped.

    A ring that collapses to fewer than three distinct vertices had rounding size: a hole of it is
    dropped (fuzz seed 9206665: two streets one ULP apart left their district a hole of zero
    area), a part of it too. None when nothing is left.
    """
    polys: list[shapely.Polygon] = []
    i = 0
    for part in shapely.get_parts(g):
        rings: list[np.ndarray] = []
        for j, ring in enumerate([part.exterior, *part.interiors]):
            n = len(ring.coords)
            c, i = coords[i : i + n], i + n
            c = c[np.r_[True, np.any(np.diff(c[:, :2], axis=0) != 0, axis=1)]]
            if len(c) >= 4:
                rings.append(c)
            elif j == 0:  # the part itself collapsed
                rings = []
                i += sum(len(r.coords) for r in part.interiors)
                break
        if rings:
            polys.append(shapely.Polygon(rings[0], rings[1:]))
    if not polys:
        return None
    if isinstance(g, shapely.MultiPolygon):
        return shapely.MultiPolygon(polys)
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def _apportion(
    net: Network,
    arr: Arrangement,
    new: np.ndarray,
    added: list[str],
    removed: list[str],
    points: gpd.GeoDataFrame | None,
    weight_column: str | None,
    parent_of: Mapping[str, str | None],
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Area moved between grids (m²) and the workloads that move with it.

    Levels are done bottom-up. On the basic level a grid's workload moves with its area (in
    proportion to area, or to ``points``). A coarser grid whose figure in a column was the sum of
    its children's before the edit passes on exactly what its children take along (a child that
    changes parent takes its whole figure, a piece of a split child its share), so it stays the
    sum of its children. A grid whose figure was not its children's sum (figures entered per level
    by the user, a missing value) keeps the area (or points) share. Totals per level are conserved
    either way.
    """
    n_f, n_lv = new.shape
    frame = net.frame
    area_m2, _ = frame.measure(frame.local(arr.faces)) if n_f else (np.zeros(0), None)
    cols = [c for c in WORKLOAD_COLUMNS if c in net.grids.columns]
    pts_xy = None
    pts_w = None
    if points is not None and len(points):
        pts = points.to_crs(net.crs) if points.crs is not None and not points.crs.equals(net.crs) else points
        pts_geom = np.asarray(pts.geometry.array, dtype=object)
        pts_w = (
            np.ones(len(pts)) if weight_column is None else pd.to_numeric(pts[weight_column]).fillna(0).to_numpy(float)
        )
        pts_xy = pts_geom
        pts_tree = shapely.STRtree(pts_geom)
        face_hits = pts_tree.query(arr.faces, predicate="contains")
        face_w = np.bincount(face_hits[0], weights=pts_w[face_hits[1]], minlength=n_f)
    rows: list[dict[str, Any]] = []
    workload: dict[str, dict[str, Any]] = {}
    # what each piece (old grid, new grid) of the level below carries, stays included
    below: dict[tuple[str, str], dict[str, Any]] = {}
    for k in range(n_lv - 1, -1, -1):
        mv = np.flatnonzero(new[:, k] != arr.old[:, k])
        agg: dict[tuple[str, str], list[int]] = {}
        for f in mv:
            agg.setdefault((str(arr.old[f, k]), str(new[f, k])), []).append(int(f))
        derived: dict[tuple[str, str], dict[str, Any]] = {}
        for (c, d), w in below.items():
            a, b = net.parent.get(c), parent_of.get(d)
            if a is not None and b is not None and a != b:
                got = derived.setdefault((a, b), {})
                for col in cols:
                    got[col] = pd.NA if pd.isna(w[col]) or got.get(col, 0) is pd.NA else got.get(col, 0) + int(w[col])
        for key, got in derived.items():
            if key not in agg and any(pd.isna(v) or v != 0 for v in got.values()):
                agg[key] = []  # whole children change parent: no face changes owner on this level
        sources = sorted({a for a, _ in agg})
        src_area = {a: float(shapely.area(frame.local(np.array([net.geom[a]], dtype=object)))[0]) for a in sources}
        src_w: dict[str, float] = {}
        if pts_xy is not None:
            for a in sources:
                hit = pts_tree.query(net.geom[a], predicate="contains")
                src_w[a] = float(pts_w[hit].sum()) if pts_w is not None else 0.0
        share: dict[tuple[str, str], float] = {}
        for (a, b), fs in agg.items():
            if pts_xy is not None and src_w.get(a, 0.0) > 0:
                share[(a, b)] = float(face_w[fs].sum()) / src_w[a]
            else:
                share[(a, b)] = float(arr.area_local[fs].sum()) / src_area[a] if src_area[a] > 0 else 0.0
        moved_w: dict[tuple[str, str], dict[str, Any]] = {key: {} for key in agg}
        for col in cols:
            for a in sources:
                val = net.grids[col].iloc[net.row[a]]
                outs = [(b, share[(a, b)]) for (aa, b) in agg if aa == a]
                if pd.isna(val):
                    for b, _s in outs:
                        moved_w[(a, b)][col] = pd.NA
                    continue
                if k < n_lv - 1 and _sums_children(net, a, col, k):
                    # the parent's figure was its children's sum: what leaves it is what its children take along
                    for b, _s in outs:
                        moved_w[(a, b)][col] = derived.get((a, b), {}).get(col, 0)
                    if not any(pd.isna(moved_w[(a, b)][col]) for b, _s in outs):
                        continue
                total = int(val)
                stay = 0.0 if a in removed else max(0.0, 1.0 - sum(s for _, s in outs))
                alloc = _largest_remainder(total, np.array([stay, *[s for _, s in outs]]))
                for (b, _s), n in zip(outs, alloc[1:], strict=True):
                    moved_w[(a, b)][col] = int(n)
        area_of = {key: float(area_m2[fs].sum()) for key, fs in agg.items()}
        for a, b in agg:
            rows.append(
                {
                    "level": k,
                    "from_id": a,
                    "to_id": b,
                    "area_m2": area_of[(a, b)],
                    **{c: moved_w[(a, b)].get(c, pd.NA) for c in cols},
                }
            )
        below = _pieces(net, arr, k, agg, moved_w, cols, removed)
    moves = pd.DataFrame(rows, columns=["level", "from_id", "to_id", "area_m2", *cols])
    if len(moves):
        moves = moves.sort_values(["level", "from_id", "to_id"], kind="stable").reset_index(drop=True)
    for col in cols:
        delta: dict[str, Any] = {}
        for r in rows:
            n = r[col]
            for g, sign in ((r["from_id"], -1), (r["to_id"], 1)):
                cur = delta.get(g, 0)
                delta[g] = pd.NA if pd.isna(n) or cur is pd.NA else cur + sign * int(n)
        for g, d in delta.items():
            base = 0 if g not in net.row else net.grids[col].iloc[net.row[g]]
            if g in added:
                base = 0
            workload.setdefault(g, {})[col] = pd.NA if pd.isna(base) or d is pd.NA else int(base) + int(d)
    return moves, workload


def _sums_children(net: Network, gid: str, col: str, level: int) -> bool:
    """Whether ``gid``'s figure in ``col`` was the sum of its children's before the edit (no value missing)."""
    kids = [c for c in net.children.get(gid, []) if net.level[c] == level + 1]
    if not kids:
        return False
    vals = net.grids[col].iloc[[net.row[c] for c in kids]]
    own = net.grids[col].iloc[net.row[gid]]
    if pd.isna(own) or vals.isna().any():
        return False
    return int(own) == int(vals.astype("int64").sum())


def _pieces(
    net: Network,
    arr: Arrangement,
    k: int,
    agg: Mapping[tuple[str, str], list[int]],
    moved_w: Mapping[tuple[str, str], Mapping[str, Any]],
    cols: Sequence[str],
    removed: Sequence[str],
) -> dict[tuple[str, str], dict[str, Any]]:
    """Return what each piece (old grid, new grid) of level ``k`` carries: the moves and what stays.

    A grid that is not removed keeps its figure less what it gave away, under its new parent.
    """
    out: dict[tuple[str, str], dict[str, Any]] = {key: dict(w) for key, w in moved_w.items() if key in agg}
    for g in sorted({str(v) for v in arr.old[:, k]}):
        if g in removed or g not in net.row:
            continue
        stay: dict[str, Any] = {}
        for col in cols:
            val = net.grids[col].iloc[net.row[g]]
            gone = [w[col] for (a, _b), w in out.items() if a == g and _b != g]
            stay[col] = pd.NA if pd.isna(val) or any(pd.isna(x) for x in gone) else int(val) - sum(int(x) for x in gone)
        out[(g, g)] = stay
    return out


def _assemble(
    net: Network,
    geom: Mapping[str, shapely.Geometry | None],
    parent_of: Mapping[str, str | None],
    level_of: Mapping[str, int],
    created: Mapping[str, str],
    added: list[str],
    removed: list[str],
    touched: set[str],
    workload: Mapping[str, Mapping[str, Any]],
) -> gpd.GeoDataFrame:
    src = net.grids
    out = src.copy()
    pos = {g: net.row[g] for g in touched if g in net.row and g not in removed}
    if pos:
        idx = [out.index[p] for p in pos.values()]
        gid = list(pos)
        out.loc[idx, out.geometry.name] = gpd.GeoSeries([geom[g] for g in gid], index=idx, crs=out.crs)
        out.loc[idx, "parent_id"] = [parent_of.get(g) for g in gid]
        for g, i in zip(gid, idx, strict=True):
            for col, v in workload.get(g, {}).items():
                out.loc[i, col] = v
    if removed:
        out = out.drop(index=[src.index[net.row[g]] for g in removed])
    if added:
        new_rows = []
        for g in added:
            base = created.get(g, g)
            row = src.iloc[net.row[base]].copy() if base in net.row else src.iloc[0].copy()
            row["grid_id"] = g
            row["parent_id"] = parent_of.get(g)
            row["level"] = level_of[g]
            for col in WORKLOAD_COLUMNS:
                if col in src.columns:
                    row[col] = workload.get(g, {}).get(col, pd.NA)
            row[src.geometry.name] = geom[g]
            new_rows.append(row)
        extra = gpd.GeoDataFrame(new_rows, columns=src.columns, crs=src.crs, geometry=src.geometry.name)
        if isinstance(src.index, pd.RangeIndex) or pd.api.types.is_integer_dtype(src.index):
            start = int(src.index.max()) + 1 if len(src) else 0
            extra.index = pd.RangeIndex(start, start + len(extra))
        else:
            extra.index = pd.Index(added)
        out = pd.concat([out, extra])
        out = gpd.GeoDataFrame(out, geometry=src.geometry.name, crs=src.crs)
        for col in src.columns:
            if col != src.geometry.name and out[col].dtype != src[col].dtype:
                out[col] = out[col].astype(src[col].dtype)
    return out
