"""Topology-safe edits of a grid layer: every level stays a valid coverage, children tile parents.

Each edit is a pure function ``(grids, ...) -> (new_grids, ChangeSet)``; the input is
never modified. Supported operations:

==================  ===================================================================
transfer_area       a region moves to one grid from whichever siblings held it
reshape_boundary    a new shared boundary between two neighbours, drawn as a line from
                    one point of their common boundary to another
split_grid          a grid cut by a line into new grids with new ids
merge_grids         several grids of one level become one
reparent            a grid (with its children) moves to another parent
update_attributes   names and workloads, never ids, levels or geometry
==================  ===================================================================

How exactness is kept: the basic grids near the edit and the edit's line are noded
together and polygonized into faces; each face is owned by one grid on every level.
The edit changes owners; basic grids are rebuilt as the coverage union of their faces
and every coarser grid as the coverage union of its children, so shared edges carry the
same vertices on every level (new vertices are inserted into the neighbours too) and
children tile their parents exactly. New vertices within ``snap_m`` metres of an
existing vertex (or edge) are snapped onto it, and faces thinner than ``snap_m`` along
the edit follow their larger neighbour, so no sliver or T-junction appears.

An edit below the top level that would move area across its parent's boundary is
refused with a :class:`~layers.errors.TopologyError` (its ``findings`` show where)
unless ``cascade=True``: then the parents and every ancestor change with it. An edit
that would leave a grid in more separate parts than it had (a region that does not share
an edge with the grid it is given to, a merge of grids that are not neighbours, a parent
cut in two) is refused too, whatever ``validate`` says; a child that a split line crosses
twice becomes one grid per piece instead. After every edit the whole layer is checked
with :func:`geogrid.hierarchy.check_grids`; if anything is found the edit raises and
returns nothing. A refused edit never changes its input.

Workload columns (``households``, ``population``, ``shops``) move with the area, in
proportion to area, or to a points layer (``points``, optionally weighted) when given;
totals are conserved exactly (largest-remainder rounding). That share applies to basic
grids; a coarser grid whose figure was the sum of its children's before the edit moves what
its children take along (a grid moved to another parent takes its own figure), so it stays
the sum of its children. A coarser grid whose figure was not that sum (figures entered per
level) keeps the area (or points) share.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from geogrid import _edits_impl as _e
from geogrid._hierarchy_impl import area_text as _h_area
from geogrid._hierarchy_impl import polygonal
from geogrid.hierarchy import check_grids
from layers.errors import GeogridWarning, NotFoundError, Problem, TopologyError, ValidationError, format_ids
from layers.schema import GRIDS

__all__ = [
    "EDIT_OPERATIONS",
    "ChangeSet",
    "apply_edit",
    "merge_grids",
    "reparent",
    "reshape_boundary",
    "split_grid",
    "transfer_area",
    "update_attributes",
]

_MOVE_COLUMNS = ["level", "from_id", "to_id", "area_m2"]


@dataclass(frozen=True)
class ChangeSet:
    """What one edit changed.

    Attributes
    ----------
    operation
        The operation's name, e.g. ``"transfer_area"``.
    parameters
        Its parameters, JSON-ready (geometries as WKT in the grids' CRS).
    added, removed
        Ids of grids created / deleted.
    changed
        Ids of existing grids whose area, parent or attributes changed.
    renoded
        Ids of grids that only gained vertices (a neighbour's new vertex on a shared edge).
    reparented
        ``{grid_id: (old parent, new parent)}``.
    moves
        Area moved between grids: ``level``, ``from_id``, ``to_id``, ``area_m2`` and the
        workload that moved with it (``households``, ``population``, ``shops`` where present).
    """

    operation: str
    parameters: dict[str, Any]
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    renoded: tuple[str, ...] = ()
    reparented: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    moves: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=_MOVE_COLUMNS))

    @property
    def empty(self) -> bool:
        """True when the edit changed nothing."""
        return not (self.added or self.removed or self.changed or self.renoded)

    def summary(self) -> str:
        """One line: operation, counts and area moved.

        Examples
        --------
        >>> ChangeSet("merge_grids", {}, removed=("b",), changed=("a",)).summary()
        'merge_grids: 0 added, 1 removed, 1 changed, 0 m² moved'
        """
        moved = float(self.moves["area_m2"].sum()) if len(self.moves) else 0.0
        return (
            f"{self.operation}: {len(self.added)} added, {len(self.removed)} removed, "
            f"{len(self.changed)} changed, {moved:,.0f} m² moved"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (moves as a list of records)."""
        moves = self.moves.astype(object).where(self.moves.notna(), None)
        return {
            "operation": self.operation,
            "parameters": self.parameters,
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
            "renoded": list(self.renoded),
            "reparented": {k: list(v) for k, v in self.reparented.items()},
            "moves": moves.to_dict(orient="records"),
        }


# -- helpers -----------------------------------------------------------------------------
def _wkt(value: object) -> object:
    if isinstance(value, gpd.GeoDataFrame | gpd.GeoSeries):
        geo = value.geometry if isinstance(value, gpd.GeoDataFrame) else value
        return {"wkt": shapely.to_wkt(shapely.union_all(geo.to_numpy())), "crs": str(geo.crs)}
    if isinstance(value, shapely.Geometry):
        return shapely.to_wkt(value, rounding_precision=-1)
    return value


def _finish(
    grids: gpd.GeoDataFrame,
    net: _e.Network,
    arr: _e.Arrangement,
    level: int,
    owner: np.ndarray,
    operation: str,
    params: Mapping[str, Any],
    *,
    cascade: bool = False,
    clip: bool = False,
    new_parent: Mapping[str, str | None] | None = None,
    like: Mapping[str, str] | None = None,
    allowed_parts: Mapping[str, int] | None = None,
    points: gpd.GeoDataFrame | None = None,
    weight_column: str | None = None,
    validate: bool,
    gap_width_m: float,
) -> tuple[gpd.GeoDataFrame, ChangeSet]:
    """Give the faces of ``arr`` the owners chosen on ``level``, rebuild, guard and describe the edit."""
    outcome = _e.run(
        net,
        arr,
        level,
        owner,
        cascade=cascade,
        clip=clip,
        new_parent=new_parent or {},
        like=like or {},
        operation=operation,
        points=points,
        weight_column=weight_column,
    )
    new = outcome.grids
    detached = _e.pieces_findings(net, outcome, allowed_parts)
    if detached is not None:
        first = detached["message"].iloc[0]
        more = f" (+{len(detached) - 1} more)" if len(detached) > 1 else ""
        broken = {str(i) for ids in detached["grid_ids"] for i in ids}
        own = {str(v) for k, v in params.items() if k in _OWN_IDS} | {str(i) for i in params.get("ids", ())}
        fix = _PIECES_FIX[operation] if broken & own or operation == "split_grid" else _PIECES_FIX_PARENT
        msg = f"{operation} refused: {first}{more}. Nothing was changed; {fix} (see .findings)"
        raise TopologyError(msg, detached)
    if validate:
        _guard(grids, new, operation, gap_width_m)
    _warn_unmapped_counts(grids, operation, outcome)
    cs = ChangeSet(
        operation=operation,
        parameters={k: _wkt(v) for k, v in params.items() if k not in ("points",)},
        added=tuple(outcome.added),
        removed=tuple(outcome.removed),
        changed=tuple(outcome.changed),
        renoded=tuple(outcome.renoded),
        reparented=dict(outcome.reparented),
        moves=outcome.moves,
    )
    return new, cs


def _warn_unmapped_counts(grids: gpd.GeoDataFrame, operation: str, outcome: _e.Outcome) -> None:
    """Warn when the edit redrew grids of a layer with integer columns geogrid does not apportion.

    Such a column (``户数`` kept under its own name) may be a count: a split copies it to every
    piece, a merge keeps one grid's value, area moves without it. Its meaning is unknown (a code,
    a year), so it is left as it is, and the warning names it and how to make it a workload.
    """
    if not (outcome.added or outcome.removed or outcome.changed):
        return
    known = {c.name for c in GRIDS.columns} | {grids.geometry.name}
    cols = [
        str(c)
        for c in grids.columns
        if c not in known and pd.api.types.is_integer_dtype(grids[c]) and not pd.api.types.is_bool_dtype(grids[c])
    ]
    if not cols:
        return
    what = []
    if outcome.added:
        what.append(f"copied unchanged to the new grids {format_ids(outcome.added)}")
    if outcome.removed:
        what.append(f"dropped with the removed grids {format_ids(outcome.removed)}")
    if outcome.changed:
        what.append(f"left unchanged in the redrawn grids {format_ids(outcome.changed)}")
    name = cols[0]
    msg = (
        f"{operation}: grids column(s) {format_ids(cols)} hold whole numbers that geogrid does not apportion: "
        f"their values were {'; '.join(what)}, so a count in them no longer adds up. If they are counts, "
        f"import them as workloads so that edits apportion them: geogrid import --households-col {name} "
        f"(or --population-col, --shops-col); Python: read_layer(..., columns={{'households': {name!r}}}) "
        f"or grids.rename(columns={{{name!r}: 'households'}}). If they are not counts (codes, years), ignore this."
    )
    warnings.warn(msg, GeogridWarning, stacklevel=4)


_PIECES_FIX = {
    "transfer_area": (
        "draw the region so that it shares an edge with the grid that receives it and does not cut another grid in two"
    ),
    "reshape_boundary": "draw the line so that both grids (and their parents) stay in one piece",
    "split_grid": "draw the line so that it crosses each child grid only once",
    "merge_grids": "merge only grids that share a boundary",
    "reparent": "choose a new parent that shares a boundary with the grid, and keep the old parent in one piece",
}
"""How to fix an edit that would leave a grid in separate pieces."""

_PIECES_FIX_PARENT = (
    "the edit moves area across parent boundaries (cascade) and would cut a parent in two: "
    "edit within one parent, or move whole grids first (reparent)"
)
_OWN_IDS = ("to_grid", "grid_a", "grid_b", "grid_id", "new_parent", "new_id")


def _guard(before: gpd.GeoDataFrame, after: gpd.GeoDataFrame, operation: str, gap_width_m: float) -> None:
    """Post-condition: every level a valid coverage, exactly nested. Raise otherwise."""
    result = check_grids(after, gap_width_m=gap_width_m)
    if result.sound:
        return
    f = result.findings
    first = f["message"].iloc[0]
    prior = check_grids(before, gap_width_m=gap_width_m)
    if not prior.sound:
        msg = (
            f"{operation} refused: the input layer already has {len(prior.findings)} finding(s) "
            f"(first: {prior.findings['message'].iloc[0]}); fix them first (geogrid check)"
        )
    else:
        msg = (
            f"{operation} refused: the result would have {len(f)} finding(s), first: {first}. "
            "Nothing was changed; try a line that follows existing vertices, or a larger snap_m"
        )
    raise TopologyError(msg, f)


def _level_of(net: _e.Network, gid: str) -> int:
    return net.level[net.require(gid)]


def _repair_slivers(arr: _e.Arrangement, owner: np.ndarray, lines: shapely.Geometry | None, snap_m: float) -> None:
    """Faces along the edit line thinner than ``snap_m`` take the owner of their widest neighbour."""
    if lines is None or len(arr.faces) < 2:
        return
    local = arr.net.frame.local(arr.faces)
    width = 2 * shapely.area(local) / np.maximum(shapely.length(local), 1e-12)
    thin = (width < snap_m) & shapely.intersects(arr.faces, lines)
    if not thin.any():
        return
    tree = shapely.STRtree(arr.faces)
    bounds = shapely.boundary(arr.faces)
    for f in np.flatnonzero(thin):
        nb = tree.query(arr.faces[f], predicate="intersects")
        nb = nb[(nb != f) & ~thin[nb]]
        if nb.size == 0:
            continue
        shared = shapely.length(shapely.intersection(bounds[f], bounds[nb]))
        if shared.max() > 0:
            owner[f] = owner[nb[int(np.argmax(shared))]]


def _lines_of(geom: shapely.Geometry) -> shapely.Geometry:
    parts = shapely.get_parts(geom)
    lines = parts[np.isin(shapely.get_type_id(parts), [1, 2, 5])]
    if lines.size == 0:
        return shapely.MultiLineString()
    return shapely.line_merge(shapely.union_all(lines))


def _refuse_empty_transfer(net: _e.Network, region: shapely.Geometry, target: str, snap_m: float) -> None:
    """Refuse a transfer that moves nothing although most of the region lies outside ``target``.

    Snapping gives back every piece thinner than ``snap_m``: a region that is all such pieces
    would leave the layer as it was, silently ignoring the edit (and a region far from the
    grid could never join it). A region mostly inside ``target`` asks for nothing: accepted.
    """
    lv = net.level[target]
    same = np.array([net.geom[g] for g in net.ids if net.level[g] == lv], dtype=object)
    same = same[shapely.intersects(same, region)]
    inside, _ = net.frame.measure_input(np.array([shapely.intersection(region, net.geom[target])], dtype=object))
    total, _ = net.frame.measure_input(shapely.intersection(region, same))
    outside = float(total.sum() - inside.sum())
    if outside > 0 and outside >= float(inside.sum()):
        msg = (
            f"transfer_area refused: the region gives {target!r} nothing: its {outside:.3g} m² outside "
            f"{target!r} is thinner than snap_m={snap_m:g} m. Nothing was changed; draw a region wider "
            f"than snap_m that shares an edge with {target!r}"
        )
        raise TopologyError(msg)


# -- operations ----------------------------------------------------------------------------
def transfer_area(
    grids: gpd.GeoDataFrame,
    region: object,
    to_grid: str,
    *,
    cascade: bool = False,
    clip: bool = False,
    snap_m: float = 1.0,
    points: gpd.GeoDataFrame | None = None,
    weight_column: str | None = None,
    validate: bool = True,
    gap_width_m: float = 1.0,
) -> tuple[gpd.GeoDataFrame, ChangeSet]:
    """Move the area of ``region`` to ``to_grid`` from whichever grids of its level held it.

    Parameters
    ----------
    grids
        The grid layer (all levels), exactly nested and sound (``check_grids``).
    region
        A polygon (shapely, in the grids' CRS; or a GeoSeries/GeoDataFrame with a CRS).
        Its part outside the jurisdiction is ignored.
    to_grid
        The grid that receives the area.
    cascade
        Also move the parents' (and ancestors') boundaries when the region reaches into
        another parent.
    clip
        Move only the part of the region inside ``to_grid``'s parent.
    snap_m
        Vertices of the region within this many metres of an existing vertex or edge
        are snapped onto it.
    points, weight_column
        Re-apportion workloads by these points (count, or sum of ``weight_column``)
        instead of by area.
    validate
        Check the whole result with :func:`~geogrid.hierarchy.check_grids` (the guard).
    gap_width_m
        Gap width of that check.

    Returns
    -------
    (GeoDataFrame, ChangeSet)
        The new layer (same columns, index and CRS; new grids appended) and what changed.

    Raises
    ------
    TopologyError
        If the region crosses ``to_grid``'s parent (without ``cascade``/``clip``), if a
        grid would fall into separate parts (the region does not share an edge with
        ``to_grid``, or cuts another grid in two), if the region would move nothing
        although most of it lies outside ``to_grid`` (all of it thinner than ``snap_m``),
        or the result would not be sound; ``findings`` shows where. The input is never changed.
    NotFoundError
        If ``to_grid`` does not exist.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame({"grid_id": ["D", "a", "b"], "parent_id": [None, "D", "D"], "level": [0, 1, 1]},
    ...     geometry=[shapely.box(117.2, 39.1, 117.22, 39.11), shapely.box(117.2, 39.1, 117.21, 39.11),
    ...               shapely.box(117.21, 39.1, 117.22, 39.11)], crs="EPSG:4326")
    >>> new, cs = transfer_area(g, shapely.box(117.205, 39.1, 117.21, 39.11), "b")
    >>> cs.changed, round(cs.moves.area_m2.sum() / 1e4)  # ~430 m x 1.1 km
    (('a', 'b'), 48)
    """
    net = _e.Network(grids)
    target = net.require(to_grid)
    lv = net.level[target]
    geom = net.as_geometry(region, "region")
    poly = polygonal(np.array([shapely.make_valid(geom)], dtype=object))[0]
    if shapely.is_empty(poly):
        msg = f"region must be a polygon, got a {geom.geom_type}"
        raise TopologyError(msg)
    snapped, nodes = _e.snap_lines(net, poly, snap_m)
    snapped = polygonal(np.array([shapely.make_valid(snapped)], dtype=object))[0]
    lines = shapely.boundary(snapped)
    arr = _e.build_arrangement(net, snapped, lines, nodes, snap_m)
    owner = arr.old[:, lv].copy()
    owner[arr.inside(snapped)] = target
    _repair_slivers(arr, owner, lines, snap_m)
    if not ((owner == target) & (arr.old[:, lv] != target)).any():
        _refuse_empty_transfer(net, poly, target, snap_m)
    params = {"region": geom, "to_grid": target, "cascade": cascade, "clip": clip, "snap_m": snap_m}
    return _finish(
        grids,
        net,
        arr,
        lv,
        owner,
        "transfer_area",
        params,
        cascade=cascade,
        clip=clip,
        points=points,
        weight_column=weight_column,
        validate=validate,
        gap_width_m=gap_width_m,
    )


def reshape_boundary(
    grids: gpd.GeoDataFrame,
    grid_a: str,
    grid_b: str,
    line: object,
    *,
    cascade: bool = False,
    snap_m: float = 1.0,
    points: gpd.GeoDataFrame | None = None,
    weight_column: str | None = None,
    validate: bool = True,
    gap_width_m: float = 1.0,
) -> tuple[gpd.GeoDataFrame, ChangeSet]:
    """Redraw the shared boundary of two neighbours between two points of it.

    ``line`` runs from one point of the common boundary of ``grid_a`` and ``grid_b`` to
    another (each end within ``snap_m`` of it); the stretch of the old boundary between
    those points is replaced by the line, and the area between them changes hands.
    Other parameters as in :func:`transfer_area`.

    Raises
    ------
    TopologyError
        If the grids are not neighbours on one level, an end of the line is off their
        common boundary, the line leaves the two grids, it crosses a parent boundary
        (without ``cascade``), a grid would fall into separate parts, or the result
        would not be sound.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame({"grid_id": ["D", "a", "b"], "parent_id": [None, "D", "D"], "level": [0, 1, 1]},
    ...     geometry=[shapely.box(117.2, 39.1, 117.22, 39.11), shapely.box(117.2, 39.1, 117.21, 39.11),
    ...               shapely.box(117.21, 39.1, 117.22, 39.11)], crs="EPSG:4326")
    >>> bend = shapely.LineString([(117.21, 39.1), (117.215, 39.105), (117.21, 39.11)])
    >>> new, cs = reshape_boundary(g, "a", "b", bend)
    >>> cs.moves[["from_id", "to_id"]].values.tolist()
    [['b', 'a']]
    """
    net = _e.Network(grids)
    a, b = net.require(grid_a), net.require(grid_b)
    if a == b or net.level[a] != net.level[b]:
        msg = f"reshape_boundary needs two different grids on one level, got {a!r} (level {net.level[a]}) and {b!r} (level {net.level[b]})"
        raise TopologyError(msg)
    lv = net.level[a]
    shared = _lines_of(shapely.intersection(shapely.boundary(net.geom[a]), shapely.boundary(net.geom[b])))
    if shapely.is_empty(shared):
        msg = (
            f"grids {a!r} and {b!r} share no boundary: use transfer_area to give area to a grid that is not a neighbour"
        )
        raise TopologyError(msg)
    geom = net.as_geometry(line, "line")
    if geom.geom_type != "LineString":
        msg = f"line must be one LineString, got a {geom.geom_type}"
        raise TopologyError(msg)
    snapped, nodes = _e.snap_lines(net, geom, snap_m)
    xy = shapely.get_coordinates(snapped)
    frame = net.frame
    parts = shapely.get_parts(shared)
    shared_xy = shapely.get_coordinates(shared)
    for end in (0, -1):
        pt = shapely.Point(xy[end])
        d_local = shapely.distance(
            frame.local(np.array([pt], dtype=object))[0], frame.local(np.array([shared], dtype=object))[0]
        )
        if d_local > snap_m:
            which = "start" if end == 0 else "end"
            msg = (
                f"the line's {which} is {d_local:,.1f} m from the common boundary of {a!r} and {b!r}: "
                f"start and end the line on it (within snap_m={snap_m:g} m)"
            )
            raise TopologyError(msg)
        hit = np.flatnonzero((shared_xy == xy[end]).all(axis=1))
        if hit.size:
            continue
        local_sv = (shared_xy - np.array(frame.origin)) * np.array(frame.scale)
        local_pt = (xy[end] - np.array(frame.origin)) * np.array(frame.scale)
        dist = np.hypot(*(local_sv - local_pt).T)
        if dist.min() <= snap_m:
            xy[end] = shared_xy[int(np.argmin(dist))]
        else:
            best = parts[int(np.argmin(shapely.distance(parts, pt)))]
            xy[end] = shapely.get_coordinates(
                shapely.line_interpolate_point(best, shapely.line_locate_point(best, pt))
            )[0]
            nodes.append(shapely.Point(xy[end]))
    snapped = shapely.LineString(xy)
    p, q = shapely.Point(xy[0]), shapely.Point(xy[-1])
    piece = None
    tiny = net.native_tol(1e-6)
    for s in parts:
        if shapely.distance(s, p) <= tiny and shapely.distance(s, q) <= tiny:
            piece = s
            break
    if piece is None:
        msg = f"the line's ends lie on different stretches of the boundary between {a!r} and {b!r}: draw one line per stretch"
        raise TopologyError(msg)
    from shapely.ops import substring

    dp, dq = shapely.line_locate_point(piece, p), shapely.line_locate_point(piece, q)
    back = substring(piece, dq, dp)
    ring = np.concatenate([xy, shapely.get_coordinates(back), xy[:1]])
    lens = polygonal(np.array([shapely.make_valid(shapely.Polygon(ring))], dtype=object))[0]
    _refuse_leaving_line(net, a, b, snapped, lens, snap_m)
    zone = shapely.union_all(np.array([lens, shapely.buffer(snapped, net.native_tol(snap_m))], dtype=object))
    arr = _e.build_arrangement(net, zone, snapped, nodes, snap_m)
    owner = arr.old[:, lv].copy()
    inside = arr.inside(lens) if not shapely.is_empty(lens) else np.zeros(len(owner), dtype=bool)
    others = sorted({str(o) for o in owner[inside] if o not in (a, b)})
    if others:
        msg = f"the line leaves {a!r} and {b!r}: the area it encloses reaches into {format_ids(others)}"
        raise TopologyError(msg)
    was_a = owner == a
    owner[inside & was_a] = b
    owner[inside & ~was_a] = a
    _repair_slivers(arr, owner, snapped, snap_m)
    params = {"grid_a": a, "grid_b": b, "line": geom, "cascade": cascade, "snap_m": snap_m}
    return _finish(
        grids,
        net,
        arr,
        lv,
        owner,
        "reshape_boundary",
        params,
        cascade=cascade,
        points=points,
        weight_column=weight_column,
        validate=validate,
        gap_width_m=gap_width_m,
    )


def _refuse_leaving_line(
    net: _e.Network, a: str, b: str, line: shapely.Geometry, lens: shapely.Geometry, snap_m: float
) -> None:
    """Raise if the reshape line, or the area it encloses, leaves the two grids (beyond ``snap_m``)."""
    both = shapely.union(net.geom[a], net.geom[b])
    pad = shapely.buffer(both, net.native_tol(snap_m))
    off = shapely.difference(line, pad)
    off_lens = shapely.difference(lens, pad) if not shapely.is_empty(lens) else shapely.Polygon()
    if shapely.is_empty(off) and shapely.is_empty(off_lens):
        return
    frame = net.frame
    length = float(shapely.length(frame.local(np.array([off], dtype=object)))[0])
    area = float(shapely.area(frame.local(np.array([off_lens], dtype=object)))[0])
    if length <= 0 and area <= 1e-6:
        return
    lv = net.level[a]
    stray = shapely.union(off, off_lens)
    hit = [g for g, v in net.level.items() if v == lv and g not in (a, b) and shapely.intersects(net.geom[g], stray)]
    where = f"in {format_ids(sorted(hit))}" if hit else "outside the district outline"
    msg = (
        f"the line leaves {a!r} and {b!r}: {length:,.1f} m of it ({_h_area(area)} enclosed) lies {where}; "
        f"draw it inside the two grids, from one point of their common boundary to another"
    )
    raise TopologyError(msg)


def split_grid(
    grids: gpd.GeoDataFrame,
    grid_id: str,
    line: object,
    *,
    new_ids: Sequence[str] | None = None,
    snap_m: float = 1.0,
    points: gpd.GeoDataFrame | None = None,
    weight_column: str | None = None,
    validate: bool = True,
    gap_width_m: float = 1.0,
) -> tuple[gpd.GeoDataFrame, ChangeSet]:
    """Cut a grid along a line into new grids with new ids (children follow; straddlers split).

    Parameters
    ----------
    grids, line
        The layer and a line crossing the grid from boundary to boundary (it may overshoot).
    grid_id
        The grid to split; it is removed.
    new_ids
        Ids of the pieces, largest first; default ``"<grid_id>.1"``, ``"<grid_id>.2"``...
    snap_m, points, weight_column, validate, gap_width_m
        As in :func:`transfer_area`.

    Returns
    -------
    (GeoDataFrame, ChangeSet)
        The new layer and the change set.

    Raises
    ------
    TopologyError
        If the line does not cut the grid in two (for a multi-part grid: does not cut
        one of its parts), or ``new_ids`` has the wrong length or ids in use. A child
        grid the line crosses twice becomes one grid per piece.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame({"grid_id": ["D", "a"], "parent_id": [None, "D"], "level": [0, 1]},
    ...     geometry=[shapely.box(117.2, 39.1, 117.22, 39.11)] * 2, crs="EPSG:4326")
    >>> new, cs = split_grid(g, "a", shapely.LineString([(117.205, 39.09), (117.205, 39.12)]), new_ids=["w", "e"])
    >>> cs.added, cs.removed
    (('e', 'w'), ('a',))
    """
    net = _e.Network(grids)
    gid = net.require(grid_id)
    lv = net.level[gid]
    geom = net.as_geometry(line, "line")
    snapped, nodes = _e.snap_lines(net, _lines_of(geom), snap_m)
    cut = shapely.intersection(snapped, shapely.buffer(net.geom[gid], 2 * net.native_tol(snap_m)))
    outline = shapely.boundary(net.geom[gid])
    if nodes:
        outline = shapely.snap(outline, shapely.multipoints(nodes), net.native_tol(1e-6))
    pieces = shapely.get_parts(shapely.polygonize(shapely.get_parts(shapely.union_all([outline, cut]))))
    shapely.prepare(net.geom[gid])
    pieces = pieces[shapely.contains(net.geom[gid], shapely.point_on_surface(pieces))]
    if len(pieces) <= _e.n_parts(net.geom[gid]):  # the parts of a multi-part grid are not a cut
        msg = f"the line does not cut grid {gid!r} in two: draw it across the grid from boundary to boundary"
        raise TopologyError(msg)
    pieces = pieces[np.argsort(-shapely.area(pieces), kind="stable")]
    if new_ids is None:
        taken = set(net.ids)
        ids = [_e._fresh(gid, taken) for _ in pieces]
    else:
        ids = [str(i) for i in new_ids]
        if len(ids) != len(pieces):
            msg = f"the line cuts grid {gid!r} into {len(pieces)} pieces but {len(ids)} new_ids were given"
            raise TopologyError(msg)
        used = [i for i in ids if i in net.row]
        if used or len(set(ids)) != len(ids):
            msg = f"new_ids must be new and distinct; already in use or repeated: {format_ids(used or ids)}"
            raise TopologyError(msg)
    arr = _e.build_arrangement(net, net.geom[gid], cut, nodes, snap_m)
    owner = arr.old[:, lv].copy()
    mine = owner == gid
    for pid, piece in zip(ids, pieces, strict=True):
        owner[mine & arr.inside(piece)] = pid
    assigned = owner.copy()
    _repair_slivers(arr, owner, cut, snap_m)
    # a split trades no area with its neighbours: the cut overshoots into them, and a sliver
    # of the grid stays with a piece
    owner[~mine] = arr.old[~mine, lv]
    stray = mine & ~np.isin(owner, ids)
    owner[stray] = assigned[stray]
    left = mine & (owner == gid)
    if left.any():  # a face no piece claimed (rounding at the outline): give it to the largest piece
        owner[left] = ids[0]
    params = {"grid_id": gid, "line": geom, "new_ids": ids, "snap_m": snap_m}
    return _finish(
        grids,
        net,
        arr,
        lv,
        owner,
        "split_grid",
        params,
        new_parent=dict.fromkeys(ids, net.parent[gid]),
        like=dict.fromkeys(ids, gid),
        points=points,
        weight_column=weight_column,
        validate=validate,
        gap_width_m=gap_width_m,
    )


def merge_grids(
    grids: gpd.GeoDataFrame,
    ids: Sequence[str],
    *,
    new_id: str | None = None,
    cascade: bool = False,
    validate: bool = True,
    gap_width_m: float = 1.0,
) -> tuple[gpd.GeoDataFrame, ChangeSet]:
    """Merge grids of one level into one (their children become its children).

    Parameters
    ----------
    grids
        The layer.
    ids
        Two or more grids on one level.
    new_id
        Id of the merged grid; default the first of ``ids`` (which keeps its attributes).
    cascade
        Allow grids of different parents: their area moves into the parent of the first.
    validate, gap_width_m
        As in :func:`transfer_area`.

    Returns
    -------
    (GeoDataFrame, ChangeSet)
        The new layer and the change set (workloads add up).

    Raises
    ------
    TopologyError
        If the grids are on different levels, under different parents without
        ``cascade``, or do not share boundaries (the merged grid would have separate
        parts; a two-part grid may merge with a neighbour of one part), or a parent
        would be cut in two.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame({"grid_id": ["D", "a", "b"], "parent_id": [None, "D", "D"], "level": [0, 1, 1],
    ...     "households": [30, 10, 20]},
    ...     geometry=[shapely.box(117.2, 39.1, 117.22, 39.11), shapely.box(117.2, 39.1, 117.21, 39.11),
    ...               shapely.box(117.21, 39.1, 117.22, 39.11)], crs="EPSG:4326")
    >>> new, cs = merge_grids(g, ["a", "b"])
    >>> new.set_index("grid_id").loc["a", "households"], cs.removed
    (np.int64(30), ('b',))
    """
    net = _e.Network(grids)
    gids = [net.require(i) for i in ids]
    if len(set(gids)) < 2:
        msg = f"merge_grids needs at least two different grids, got {format_ids(gids)}"
        raise TopologyError(msg)
    levels = {net.level[g] for g in gids}
    if len(levels) != 1:
        msg = f"grids {format_ids(gids)} lie on levels {sorted(levels)}: merge grids of one level"
        raise TopologyError(msg)
    lv = levels.pop()
    target = str(new_id) if new_id is not None else gids[0]
    if target not in gids and target in net.row:
        msg = f"new_id {target!r} is already the id of another grid"
        raise TopologyError(msg)
    zone = shapely.union_all(np.array([net.geom[g] for g in gids], dtype=object))
    arr = _e.build_arrangement(net, zone, None, [], 0.0)
    owner = arr.old[:, lv].copy()
    owner[np.isin(owner, gids)] = target
    new_parent = {} if target in net.row else {target: net.parent[gids[0]]}
    params = {"ids": gids, "new_id": target, "cascade": cascade}
    return _finish(
        grids,
        net,
        arr,
        lv,
        owner,
        "merge_grids",
        params,
        cascade=cascade,
        new_parent=new_parent,
        like={target: gids[0]},
        # each merged grid must join the others: n one-part neighbours give one part
        allowed_parts={target: sum(_e.n_parts(net.geom[g]) for g in gids) - (len(gids) - 1)},
        validate=validate,
        gap_width_m=gap_width_m,
    )


def reparent(
    grids: gpd.GeoDataFrame,
    grid_id: str,
    new_parent: str,
    *,
    cascade: bool = False,
    validate: bool = True,
    gap_width_m: float = 1.0,
) -> tuple[gpd.GeoDataFrame, ChangeSet]:
    """Move a grid, with its children, to another parent (the parents' boundaries follow).

    Raises
    ------
    TopologyError
        If ``new_parent`` is not on the level above, (without ``cascade``) the old and
        new parents have different parents themselves, or a parent would fall into
        separate parts (the new parent does not share a boundary with the grid, or the
        old one is cut in two).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> x = [117.2, 117.205, 117.21, 117.215, 117.22]
    >>> b = [shapely.box(x[i], 39.1, x[i + 1], 39.11) for i in range(4)]
    >>> g = gpd.GeoDataFrame({"grid_id": ["D", "S1", "S2", "g1", "g2", "g3", "g4"],
    ...     "parent_id": [None, "D", "D", "S1", "S1", "S2", "S2"], "level": [0, 1, 1, 2, 2, 2, 2]},
    ...     geometry=[shapely.box(117.2, 39.1, 117.22, 39.11), shapely.box(117.2, 39.1, 117.21, 39.11),
    ...               shapely.box(117.21, 39.1, 117.22, 39.11), *b], crs="EPSG:4326")
    >>> new, cs = reparent(g, "g2", "S2")
    >>> cs.reparented
    {'g2': ('S1', 'S2')}
    """
    net = _e.Network(grids)
    gid, pid = net.require(grid_id), net.require(new_parent)
    lv = net.level[gid]
    if lv == 0 or net.level[pid] != lv - 1:
        msg = f"grid {gid!r} is on level {lv}; its new parent must be on level {lv - 1}, but {pid!r} is on level {net.level[pid]}"
        raise TopologyError(msg)
    arr = _e.build_arrangement(net, net.geom[gid], None, [], 0.0)
    owner = arr.old[:, lv - 1].copy()
    owner[arr.old[:, lv] == gid] = pid
    params = {"grid_id": gid, "new_parent": pid, "cascade": cascade}
    return _finish(
        grids, net, arr, lv - 1, owner, "reparent", params, cascade=cascade, validate=validate, gap_width_m=gap_width_m
    )


_FROZEN = ("grid_id", "parent_id", "level")
_MAX_COUNT = 2**53  # beyond it a JSON number is no exact integer


def _attribute_problems(grids: gpd.GeoDataFrame, values: Mapping[str, object]) -> list[Problem]:
    """Return what is wrong with ``values`` for :func:`update_attributes` (every column at once)."""
    problems: list[Problem] = []
    known = set(grids.columns) | set(GRIDS.names)
    for k, v in values.items():
        if k in _FROZEN or k == grids.geometry.name:
            msg = (
                f"{k!r} cannot be set here: ids, parents, levels and geometry change through the edits "
                "(split_grid, merge_grids, reparent, ...)"
            )
            problems.append(Problem("protected_column", msg))
        elif k not in known:
            msg = f"{k!r} is no column of the grids; the columns are {', '.join(sorted(map(str, known - {grids.geometry.name})))}"
            problems.append(Problem("unknown_column", msg))
        elif v is None:
            continue
        elif k in GRIDS.names and GRIDS.column(k).dtype == "int":
            ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and float(v).is_integer()
            if not ok or not 0 <= v <= _MAX_COUNT:  # type: ignore[operator]
                msg = f"{k!r} is a count: give a whole number from 0 to {_MAX_COUNT:,} (or null), not {v!r}"
                problems.append(Problem("bad_value", msg))
        elif k in GRIDS.names and GRIDS.column(k).dtype == "str":
            if not isinstance(v, str):
                msg = f"{k!r} is text: give a string (or null), not {v!r}"
                problems.append(Problem("bad_value", msg))
        elif isinstance(v, float) and not math.isfinite(v):
            problems.append(Problem("bad_value", f"{k!r}: {v!r} is not a finite number"))
        elif not isinstance(v, str | int | float):
            problems.append(Problem("bad_value", f"{k!r}: give text or a number, not {type(v).__name__}"))
    return problems


def update_attributes(
    grids: gpd.GeoDataFrame, grid_id: str, values: Mapping[str, object]
) -> tuple[gpd.GeoDataFrame, ChangeSet]:
    """Set attribute values (name, level_name, workloads...) of one grid.

    Ids, parents, levels and geometry change only through the other edits.

    Raises
    ------
    ValidationError
        (a ``ValueError``) listing every problem: ``values`` names ``grid_id``, ``parent_id``,
        ``level``, the geometry or an unknown column; a workload is not a whole number from 0
        to 2**53; a name is not text; a number is NaN or infinite.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame({"grid_id": ["D"], "parent_id": [None], "level": [0], "name": ["old"]},
    ...     geometry=[shapely.box(117.2, 39.1, 117.22, 39.11)], crs="EPSG:4326")
    >>> new, cs = update_attributes(g, "D", {"name": "河北区"})
    >>> new.name.tolist(), cs.changed
    (['河北区'], ('D',))
    """
    ids = grids["grid_id"].astype(str)
    hit = np.flatnonzero(ids.to_numpy() == str(grid_id))
    if hit.size == 0:
        msg = f"grid {grid_id!r} does not exist in this layer ({len(grids):,} grids)"
        raise NotFoundError(msg)
    problems = _attribute_problems(grids, values)
    if problems:
        source = f"update_attributes of grid {grid_id!r}"
        raise ValidationError(source, problems)
    out = grids.copy()
    idx = out.index[hit[0]]
    before = {k: (out.at[idx, k] if k in out.columns else None) for k in values}
    for k, v in values.items():
        out.loc[idx, k] = v
    params = {"grid_id": str(grid_id), "values": json.loads(json.dumps(dict(values), default=str))}
    cs = ChangeSet(
        "update_attributes",
        {**params, "before": json.loads(json.dumps(before, default=str))},
        changed=(str(grid_id),),
    )
    return out, cs


EDIT_OPERATIONS: dict[str, Callable[..., tuple[gpd.GeoDataFrame, ChangeSet]]] = {
    "transfer_area": transfer_area,
    "reshape_boundary": reshape_boundary,
    "split_grid": split_grid,
    "merge_grids": merge_grids,
    "reparent": reparent,
    "update_attributes": update_attributes,
}
"""The edits by name (plans, the edit log and the CLI use these names)."""


def apply_edit(grids: gpd.GeoDataFrame, operation: str, **params: Any) -> tuple[gpd.GeoDataFrame, ChangeSet]:
    """Apply the edit called ``operation`` (a key of :data:`EDIT_OPERATIONS`) with ``params``.

    Geometry parameters (``region``, ``line``) may be WKT strings in the grids' CRS.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame({"grid_id": ["D"], "parent_id": [None], "level": [0]},
    ...     geometry=[shapely.box(117.2, 39.1, 117.22, 39.11)], crs="EPSG:4326")
    >>> apply_edit(g, "update_attributes", grid_id="D", values={"name": "x"})[1].operation
    'update_attributes'
    """
    if operation not in EDIT_OPERATIONS:
        msg = f"unknown edit operation {operation!r}; choose one of {', '.join(EDIT_OPERATIONS)}"
        raise ValueError(msg)
    for key in ("region", "line"):
        if isinstance(params.get(key), str):
            params[key] = shapely.from_wkt(params[key])
    return EDIT_OPERATIONS[operation](grids, **params)
