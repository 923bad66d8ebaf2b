"""Parent-aware repair of a grid layer: fix what is safe, log every change, refuse the rest.

:func:`repair_grids` works level by level, parents first:

- snaps vertices closer than ``snap_m`` (a child's vertex onto its parent's outline
  first, else onto the vertex its neighbours share);
- gives each gap piece and each overlap piece to a sibling under the same parent --
  the one sharing the longest edge with it -- never to a grid of another parent;
- clips each child to its parent;
- keeps ids, attributes, index and CRS; repairs invalid polygons (``make_valid``).

It refuses, with the reason and the fix, what it cannot fix safely: a gap larger than
``max_gap_m2``, a grid with no usable parent (missing, unknown, on the wrong level, in a
cycle), a grid with no geometry, a grid that would lose most of its area to clipping
(its ``parent_id`` is probably wrong), a parent with no children to give its area to.
By default a refusal raises :class:`~layers.errors.TopologyError` listing all of them
and nothing is changed; with ``errors="skip"`` the rest is repaired and the refusals
are returned. Both modes decide alike: a refused grid is left as it is and its level
repaired again without it, so the error lists exactly what ``errors="skip"`` returns.

A hole of the top level at least 1 m wide is an enclave (land outside the jurisdiction,
however many grids border it, as :func:`~geogrid.hierarchy.check_grids` says): it is
left open, never filled or refused. Snapping never joins two points of the outline with
land outside the jurisdiction between them, so a notch narrower than ``snap_m`` stays
open. Nor does it join two vertices whose every edge is already in place (shared exactly
with a neighbour, or along the parent's outline): the ends of a short edge of a sound
coverage are no near miss. A gap piece under 0.01 m² that no child can take is rounding
noise (the check's ``min_area_m2``): it is left, not refused. Grids may be Polygons or
MultiPolygons.

After a repair, :func:`geogrid.hierarchy.check_grids` reports nothing of what the
log claims fixed.

Repair is incremental: the edge-twin pass of the checks finds the grids whose family
does not tile its parent exactly; only those (and the grids they overlap or could snap
to) are rebuilt, and every other grid keeps its geometry byte for byte. The result
equals a full rebuild of every level (same grids, log and refusals).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from geogrid import _hierarchy_impl as _himpl
from geogrid import _repair_impl as _impl
from geogrid.hierarchy import REPORTED_PROBLEM_KINDS, _as_geometry
from layers.crs import ensure_crs, metric_crs, to_crs_object
from layers.errors import TopologyError, ValidationError, format_ids
from layers.validate import invalid_rows_at_door

__all__ = ["REPAIR_ACTIONS", "RepairResult", "repair_grids"]

REPAIR_ACTIONS: tuple[str, ...] = ("made_valid", "snapped", "noded", "clipped", "overlap_resolved", "gap_filled")
"""Every change-log action, in the order the log is sorted."""

_LOG_COLUMNS = ["action", "level", "grid_id", "parent_id", "other_ids", "area_m2", "distance_m", "message", "geometry"]
_REFUSAL_COLUMNS = ["kind", "level", "grid_ids", "area_m2", "message", "geometry"]
_MOSTLY_OUTSIDE = 0.5
_NOISE_M2 = 0.01
"""A gap piece smaller than this (m²) that no child can take is rounding noise (``check_grids`` ignores it too): left, not refused."""


@dataclass
class RepairResult:
    """What :func:`repair_grids` did.

    Attributes
    ----------
    grids
        The repaired layer: same index, columns, attributes and CRS as the input.
    log
        One row per change (GeoDataFrame in the input CRS): ``action`` (one of
        :data:`REPAIR_ACTIONS`), ``level``, ``grid_id`` (the grid that changed: it
        received the piece, lost it, or had vertices moved), ``parent_id``, ``other_ids``
        (the grids the piece was taken from or shared with), ``area_m2`` (pieces),
        ``distance_m`` (the largest vertex move, for ``snapped``), ``message``,
        ``geometry`` (the piece, or the moved vertices).
    refused
        What was not repaired (only with ``errors="skip"``; else empty): ``kind``,
        ``level``, ``grid_ids``, ``area_m2``, ``message``, ``geometry``.
    summary
        ``changed`` (grid count), counts and areas per action, ``refused`` (count),
        ``metric_crs``, ``snap_m``, ``max_gap_m2``.
    """

    grids: gpd.GeoDataFrame
    log: gpd.GeoDataFrame
    refused: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=_REFUSAL_COLUMNS))
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """True when at least one grid changed."""
        return len(self.log) > 0


def repair_grids(
    grids: gpd.GeoDataFrame,
    *,
    snap_m: float = 0.5,
    max_gap_m2: float = 5000.0,
    exempt: object = None,
    metric_crs: object = None,
    errors: Literal["raise", "skip"] = "raise",
) -> RepairResult:
    """Repair gaps, overlaps, near-misses and leaks of a grid hierarchy, parent-aware.

    Parameters
    ----------
    grids
        A grid layer (all levels): ``grid_id``, ``parent_id``, ``level``, polygons, any
        other columns; any CRS.
    snap_m
        Vertices closer than this (metres) are merged; 0 disables snapping.
    max_gap_m2
        A gap piece larger than this is refused, not filled: someone must decide who
        covers it.
    exempt
        Areas that need no grid (as in :func:`~geogrid.hierarchy.check_grids`): gaps
        there are left open.
    metric_crs
        CRS in which areas and distances are measured (default: as ``check_grids``).
    errors
        ``"raise"`` (default): any refusal raises and nothing changes. ``"skip"``:
        refused grids and gaps are left as they are, the rest is repaired, and
        ``refused`` lists every refusal (the same list ``"raise"`` puts in the error).

    Returns
    -------
    RepairResult
        The repaired layer, the change log, the refusals and a summary.

    Raises
    ------
    TopologyError
        Something cannot be repaired safely (``errors="raise"``); the message lists every
        refusal and ``err.findings`` holds them as a DataFrame.
    ValidationError
        The layer is unusable (missing columns, duplicate ids, wrong geometry types ...).
    CRSError
        ``grids`` has no CRS.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame(
    ...     {"grid_id": ["D", "a", "b"], "parent_id": [None, "D", "D"], "level": [0, 1, 1]},
    ...     geometry=[shapely.box(117.2, 39.1, 117.22, 39.11), shapely.box(117.2, 39.1, 117.2101, 39.11),
    ...               shapely.box(117.21, 39.1, 117.21998, 39.11)], crs="EPSG:4326")
    >>> result = repair_grids(g)
    >>> result.log[["action", "grid_id", "other_ids"]].values.tolist()
    [['overlap_resolved', 'b', ('a',)], ['gap_filled', 'b', ()]]
    >>> from geogrid.hierarchy import check_grids
    >>> check_grids(result.grids).sound
    True
    """
    return _repair_grids(
        grids, snap_m=snap_m, max_gap_m2=max_gap_m2, exempt=exempt, metric_crs=metric_crs, errors=errors
    )


def _repair_grids(
    grids: gpd.GeoDataFrame,
    *,
    snap_m: float = 0.5,
    max_gap_m2: float = 5000.0,
    exempt: object = None,
    metric_crs: object = None,
    errors: Literal["raise", "skip"] = "raise",
    incremental: bool = True,
) -> RepairResult:
    """:func:`repair_grids`; ``incremental=False`` rebuilds every level in full (the reference path)."""
    if errors not in ("raise", "skip"):
        msg = f"errors={errors!r}: pass 'raise' or 'skip'"
        raise ValueError(msg)
    crs = ensure_crs(grids.crs, what="grids")
    invalid_rows = _door_invalid_rows(grids)
    ids = grids["grid_id"].astype(str).to_numpy(dtype=object)
    parents = grids["parent_id"].astype("string").str.strip().to_numpy(dtype=object, na_value=None)
    parents[parents == ""] = None  # a blank parent_id is none
    level = pd.to_numeric(grids["level"]).to_numpy(dtype=np.int64)
    raw = np.asarray(grids.geometry.array, dtype=object)
    usable = ~(shapely.is_missing(raw) | shapely.is_empty(raw))
    bounds = shapely.total_bounds(raw[usable]) if usable.any() else np.zeros(4)
    metric = None if metric_crs is None else to_crs_object(metric_crs, what="metric_crs")
    frame = _himpl.Frame.build(crs, bounds, metric, _metric_crs_of)
    exempt_g = _as_geometry(exempt, crs, "exempt")
    log = _impl.Change()
    refusals: list[_impl.Refusal] = []

    # 0. what cannot be repaired at all: broken parent links, no geometry
    found = _himpl.Findings(frame)
    parent_row = _himpl.hierarchy_findings(ids, parents, level, raw, found)
    for k, lv, gids, m, g in zip(found.kind, found.level, found.grid_ids, found.message, found.geometry, strict=True):
        refusals.append(_impl.Refusal(k, lv, gids, f"{m} (repair needs every parent link sound)", geometry=g))
    for r in np.flatnonzero(~usable):
        msg = f"grid {ids[r]!r} has no geometry: draw it or delete the row"
        refusals.append(_impl.Refusal("empty", int(level[r]), (str(ids[r]),), msg))
    out = raw.copy()
    valid = np.ones(len(raw), dtype=bool)
    if invalid_rows is None:
        valid[usable] = shapely.is_valid(raw[usable])
    else:  # the door found them already when it passed
        valid[invalid_rows] = False
    bad = np.flatnonzero(~valid)
    if bad.size:
        reasons = shapely.is_valid_reason(raw[bad])
        out[bad] = _himpl.polygonal(shapely.make_valid(raw[bad]))
        for r, reason in zip(bad, reasons, strict=True):
            where = _himpl.reason_point(str(reason))
            log.add("made_valid", int(level[r]), str(ids[r]), parents[r], (), f"made valid ({reason})", where)

    # 1. level by level, parents first, each against its repaired parents
    ok = usable & ((parent_row >= 0) | (level == 0))
    rim = _impl.outline_of(out[usable & (level == level[usable].min())], frame) if usable.any() else None
    segments: dict[int, tuple[np.ndarray, _himpl.Segments]] = {}
    start = out.copy()  # the grids before any level is rebuilt
    for lv in sorted({int(v) for v in level[usable]}):
        rows = _by_id(np.flatnonzero(ok & (level == lv)), ids)
        above = _by_id(np.flatnonzero(usable & (level == lv - 1)), ids) if lv else np.zeros(0, dtype=np.int64)
        shared = _LevelSegments.of(
            _by_id(np.flatnonzero(usable & (level == lv)), ids), above, parent_row, out, segments.get(lv - 1)
        )
        level_rim = _settle(rim, shared, above, parent_row, out, frame)
        skip: set[int] = set()
        earlier: list[tuple[_impl.Refusal, int | None]] = []  # refusals of the grids left out of the rerun
        while True:
            use = rows if not skip else np.array([r for r in rows if r not in skip], dtype=np.int64)
            frozen = np.flatnonzero(usable & (level == lv) & ~np.isin(np.arange(len(raw)), use))
            fast = None
            if incremental and not lv and frozen.size == 0 and use.size == 1 and valid[use[0]]:
                fast = _Outcome({}, _impl.Change(), [])  # one valid grid on top: nothing to snap, fill or clip
            elif incremental and lv and frozen.size == 0:
                fast = _repair_level_incremental(
                    lv,
                    use,
                    above,
                    ids,
                    parent_row,
                    out,
                    frame,
                    snap_m,
                    max_gap_m2,
                    exempt_g,
                    ~valid,
                    segments,
                    level_rim,
                    start,
                    shared,
                )
            outcome = fast or _repair_level(
                lv, use, above, frozen, ids, parent_row, out, frame, snap_m, max_gap_m2, exempt_g, ~valid, rim=level_rim
            )
            dropped = {int(rf[1]) for rf in outcome.refusals if rf[1] is not None} - skip
            if dropped:
                # Refused grids stay as they are: repair the level again without them, in both modes
                # (raise mode then lists what skip mode leaves, and the levels below see the same parents).
                earlier += [rf for rf in outcome.refusals if rf[1] in dropped]
                skip |= dropped
                continue
            break
        refusals += [rf for rf, _ in earlier + outcome.refusals]
        for row, new in outcome.geoms.items():
            out[row] = new
        _extend(log, outcome.log)

    refused = _refusal_frame(refusals)
    if errors == "raise" and len(refused):
        listed = "\n".join(
            f"  - [{k}, level {lv}] {m}"
            for k, lv, m in zip(refused["kind"], refused["level"], refused["message"], strict=True)
        )
        msg = (
            f"repair refused {len(refused)} problem(s); nothing was changed:\n{listed}\n"
            "fix these by hand, or pass errors='skip' (CLI: the default) to repair the rest"
        )
        raise TopologyError(msg, findings=refused)

    changed = np.flatnonzero(
        np.fromiter((a is not b for a, b in zip(out, raw, strict=True)), dtype=bool, count=len(raw))
    )
    if not changed.size:
        result = grids.copy()
    else:  # set_geometry returns a new frame (copy-on-write): no deep copy of the input first
        geo = raw.copy()
        geo[changed] = out[changed]
        result = grids.set_geometry(gpd.GeoSeries(geo, index=grids.index, crs=crs), crs=crs)
        result = result.rename_geometry(grids.geometry.name) if result.geometry.name != grids.geometry.name else result
    logframe = _log_frame(log, crs)
    acts = logframe["action"].to_numpy(dtype=object)
    area = logframe["area_m2"].to_numpy(dtype=float)
    counts = {a: int((acts == a).sum()) for a in REPAIR_ACTIONS}
    summary = {
        "changed": int(changed.size),
        "counts": {a: c for a, c in counts.items() if c},
        "area_m2": {
            a: float(pd.Series(area[acts == a]).sum())
            for a in ("clipped", "overlap_resolved", "gap_filled")
            if counts[a]
        },
        "refused": len(refused),
        "metric_crs": frame.metric.to_string(),
        "snap_m": float(snap_m),
        "max_gap_m2": float(max_gap_m2),
    }
    return RepairResult(result, logframe, refused, summary)


def _door_invalid_rows(grids: gpd.GeoDataFrame) -> np.ndarray | None:
    """Raise the door problems that make the layer unusable (as ``check_grids``).

    Returns the positions of the invalid polygons when the layer passed the door, else
    None (then validity is tested here). The door's canonical frame is not built: only
    its verdict is needed, and not its hierarchy pass: every problem it finds is a
    refusal here (``hierarchy_findings``), never an error.
    """
    try:
        return invalid_rows_at_door(grids, "grids", source="grids", hierarchy=False)
    except ValidationError as err:
        fatal = [p for p in err.problems if p.kind not in REPORTED_PROBLEM_KINDS]
        if fatal:
            raise ValidationError(err.source, fatal) from err
        return None


@dataclass
class _LevelSegments:
    """The edge segments of a level's grids and of their parents, and their family twins, computed once.

    ``rows``: the level's usable grids in id order. :func:`_settle` and the incremental path
    (when it repairs exactly these rows) share them: computed once per level, not twice.
    """

    rows: np.ndarray
    cs: _himpl.Segments  # of geoms[rows]
    ps: _himpl.Segments | None  # of the parents geoms[above] (None on the top level)
    cgroup: np.ndarray | None  # position in ``above`` of each row's parent (-1: none)
    fam: np.ndarray | None  # each of cs's segments twinned in its family (the parent's outline reversed)
    pfam: np.ndarray | None  # each of ps's segments twinned in its family

    @classmethod
    def of(
        cls,
        rows: np.ndarray,
        above: np.ndarray,
        parent_row: np.ndarray,
        geoms: np.ndarray,
        known: tuple[np.ndarray, _himpl.Segments] | None,
    ) -> _LevelSegments:
        """Segments of ``geoms[rows]`` and of ``geoms[above]`` (``known``: the cached segments of a parent level)."""
        cs = _himpl.Segments.of(geoms[rows])
        if not above.size:
            return cls(rows, cs, None, None, None, None)
        ps = known[1] if known is not None and np.array_equal(known[0], above) else _himpl.Segments.of(geoms[above])
        cgroup = _parent_pos(rows, above, parent_row)
        fam, pfam = _family_twins(cs, ps, cgroup)
        return cls(rows, cs, ps, cgroup, fam, pfam)


def _settle(
    rim: _impl.Outline | None,
    shared: _LevelSegments,
    above: np.ndarray,
    parent_row: np.ndarray,
    geoms: np.ndarray,
    frame: _himpl.Frame,
) -> _impl.Outline | None:
    """``rim`` with the settled vertices of the level ``rows``: those whose every edge segment is in place.

    In place: twinned as in the edge-twin pass (shared exactly once, reversed, with a sibling or
    with the parent's outline; on the top level with a sibling or the jurisdiction's outline), or
    running along that outline within :data:`~geogrid._repair_impl.ON_OUTLINE_M` (a child's vertex
    on a parent edge that has no vertex there, as an enclave cut through every grid leaves).
    Computed once per level on all its grids, so the full rebuild and the incremental path
    (which snaps a part of the level) leave the same pairs of vertices apart.
    """
    rows, cs = shared.rows, shared.cs
    if rim is None or rows.size == 0:
        return rim
    if shared.fam is not None:
        tw, cgroup = shared.fam.copy(), shared.cgroup
        parts, part_parent = shapely.get_parts(_himpl.polygonal(geoms[above]), return_index=True)
        outline, ring_part = shapely.get_rings(parts, return_index=True)
        ring_parent = part_parent[ring_part]
    else:
        tw = _himpl.twinned(cs.key, cs.forward)
        if rim.rings.size:
            tw |= np.isin(_void(cs.key), _void(_himpl.Segments.of(shapely.polygons(rim.rings)).key))
        outline, ring_parent, cgroup = rim.rings, np.zeros(len(rim.rings), dtype=np.int64), None
    loose = np.flatnonzero(~tw)
    if loose.size and len(outline):
        # along the outline: both ends and the middle of the segment lie on one of the parent's rings
        k = cs.key[loose]
        group = np.zeros(loose.size, dtype=np.int64) if cgroup is None else cgroup[cs.cell[loose]]
        # only the rings of the loose segments' parents can count (below): the others stay out of the tree
        ring_at = np.arange(len(outline)) if cgroup is None else np.flatnonzero(np.isin(ring_parent, group))
        tree = shapely.STRtree(frame.local(outline[ring_at]))

        def on_outline(xy: np.ndarray, of: np.ndarray) -> np.ndarray:
            """Whether each point lies on a ring of its parent ``of``: each distinct (point, parent) once."""
            order = np.lexsort((xy[:, 1], xy[:, 0], of))
            first = np.ones(order.size, dtype=bool)
            step = xy[order[1:]] != xy[order[:-1]]
            first[1:] = step[:, 0] | step[:, 1] | (of[order[1:]] != of[order[:-1]])
            distinct = order[first]
            pi, ri = tree.query(
                frame.local(shapely.points(xy[distinct])), predicate="dwithin", distance=_impl.ON_OUTLINE_M
            )
            ri = ring_at[ri]
            if cgroup is not None:  # the segment's own parent's rings only
                pi = pi[ring_parent[ri] == of[distinct[pi]]]
            hit = np.zeros(distinct.size, dtype=bool)
            hit[pi] = True
            out = np.empty(order.size, dtype=bool)
            out[order] = hit[np.cumsum(first) - 1]
            return out

        # both ends on the outline, then the middle (of those segments only)
        ends = on_outline(np.concatenate([k[:, :2], k[:, 2:]]), np.concatenate([group, group]))
        along = np.flatnonzero(ends[: loose.size] & ends[loose.size :])
        if along.size:
            middle = on_outline((k[along, :2] + k[along, 2:]) / 2, group[along])
            tw[loose[along[middle]]] = True
    ends = cs.key.reshape(-1, 2)
    z = ends[:, 0] + 1j * ends[:, 1]
    off = np.repeat(~tw, 2)
    # settled: an end of an edge in place and of none out of place (snap_vertices tests the few it needs)
    return _impl.Outline(rim.rings, rim.local, z[~off], z[off])


def _void(key: np.ndarray) -> np.ndarray:
    """Each (m, 4) segment key as one 32-byte value, for exact set tests (-0.0 as 0.0)."""
    return np.ascontiguousarray(key + 0.0).view(np.dtype((np.void, 32))).ravel()


def _metric_crs_of(lon: float, lat: float) -> Any:
    return metric_crs(lon, lat)


def _parent_pos(rows: np.ndarray, above: np.ndarray, parent_row: np.ndarray) -> np.ndarray:
    """Position in ``above`` of each row's parent (-1: none, or not in ``above``)."""
    at = np.full(len(parent_row) + 1, -1, dtype=np.int64)  # the last slot answers parent_row -1
    at[above] = np.arange(above.size)
    return at[np.asarray(parent_row)[rows]]


def _by_id(rows: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Rows in grid-id order: positions then break ties the same way whatever the row order."""
    return rows[np.argsort(ids[rows].astype(str), kind="stable")]


@dataclass
class _Outcome:
    geoms: dict[int, shapely.Geometry]
    log: _impl.Change
    refusals: list[tuple[_impl.Refusal, int | None]]
    overlapped: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # holders overlapped
    smallest_face_m2: float = float("inf")  # of the arrangement


def _repair_level(
    lv: int,
    rows: np.ndarray,
    above: np.ndarray,
    frozen: np.ndarray,
    ids: np.ndarray,
    parent_row: np.ndarray,
    geoms: np.ndarray,
    frame: _himpl.Frame,
    snap_m: float,
    max_gap_m2: float,
    exempt: shapely.Geometry | None,
    made_valid: np.ndarray,
    *,
    anchors: np.ndarray | None = None,
    anchor_owner: np.ndarray | None = None,
    parent_lines: np.ndarray | None = None,
    holders: np.ndarray | None = None,
    with_children: set[int] | None = None,
    rim: _impl.Outline | None = None,
) -> _Outcome:
    """Repair the grids ``rows`` of level ``lv`` against their parents ``above``.

    The keywords serve the incremental path (:func:`_repair_level_incremental`):
    ``rows`` is then a part of the level, ``anchors`` the parent edges it may snap
    to (``anchor_owner``: the parent ring of each), ``parent_lines`` the parent edges that matter, ``holders`` the level's other
    grids (kept as they are) and ``with_children`` the parents that have any child.
    """
    log = _impl.Change()
    refusals: list[tuple[_impl.Refusal, int | None]] = []
    n = rows.size
    cells = geoms[rows]
    gid = [str(ids[r]) for r in rows]
    if lv == 0:
        cgroup = np.zeros(n, dtype=np.int64)
        par = None
        pid: list[str | None] = [None]
    else:
        cgroup = _parent_pos(rows, above, parent_row)
        par = geoms[above]
        pid = [str(ids[r]) for r in above]

    def parent_of(c: int) -> str | None:
        return pid[cgroup[c]] if cgroup[c] >= 0 else None

    if anchors is None:
        anchors = _impl.rings_of(par) if par is not None else np.empty(0, dtype=object)
    rim_owner = None
    if rim is not None and rim.rings.size:  # the outline: one owner for all its vertices (they never join)
        owner_of = np.arange(len(anchors)) if anchor_owner is None else np.asarray(anchor_owner)
        rim_owner = int(owner_of.max()) + 1 if owner_of.size else 0
        anchors = np.concatenate([anchors, rim.rings]).astype(object)
        anchor_owner = np.concatenate([owner_of, np.full(len(rim.rings), rim_owner)]).astype(np.int64)
    snapped, moved_n, moved_d, moved_at = _impl.snap_vertices(
        cells,
        anchors,
        frame,
        snap_m,
        anchor_owner,
        rim_owner,
        rim.local if rim is not None else None,
        rim.settled if rim is not None else None,
        rim.unsettled if rim is not None else None,
    )
    arr = _impl.arrange(snapped, par, frame, exempt, geoms[frozen], parent_lines=parent_lines, holders=holders)
    nf = len(arr.faces)
    owner = np.full(nf, -1, dtype=np.int64)
    candidates: list[list[int]] = [[] for _ in range(nf)]
    kind = np.zeros(nf, dtype=np.int8)  # 0 kept, 1 overlap, 2 gap
    # the incremental path: a gap in a parent with children, none of them in play (a kept one may
    # touch it): this arrangement cannot tell who takes it, the full rebuild does
    unseen = np.zeros(nf, dtype=bool)
    lost: list[tuple[int, int]] = []  # (cell, face) the cell covers but may not keep
    children: dict[int, list[int]] = {}
    for c in range(n):
        children.setdefault(int(cgroup[c]), []).append(c)
    for f, gs in arr.groups.items():
        # a face in overlapping parents (one refused, left as it is) belongs to the parent whose child
        # covers it, else to the first with children
        with_kids = [g for g in gs if g in (children if with_children is None else with_children)] or gs
        arr.group[f] = next((g for g in with_kids if any(cgroup[c] == g for c in arr.cover[f])), with_kids[0])
    for f in range(nf):
        g = int(arr.group[f])
        cov = arr.cover[f]
        in_all = arr.groups.get(f)
        own = [c for c in cov if g >= 0 and (cgroup[c] == g if in_all is None else int(cgroup[c]) in in_all)]
        lost += [(c, f) for c in cov if c not in own]
        if g < 0:
            continue
        if len(own) == 1:
            owner[f] = own[0]
        elif own:
            candidates[f], kind[f] = own, 1
        elif not arr.held[f]:
            candidates[f], kind[f] = children.get(g, []), 2
            unseen[f] = with_children is not None and not candidates[f]

    # gaps: too large, or in a parent with no children -> refused (left open)
    gap_faces = np.flatnonzero(kind == 2)
    if gap_faces.size:
        groups = arr.group[gap_faces]
        by_group = [(g, gap_faces[groups == g]) for g in np.unique(groups)]
        group_parts = [shapely.get_parts(_impl.union_faces(arr.faces[fs])) for _, fs in by_group]
        group_area, _ = frame.measure_input(np.concatenate(group_parts))  # one pass through the transformer
        at = 0
        for (g, fs), parts in zip(by_group, group_parts, strict=True):
            area = group_area[at : at + len(parts)]
            at += len(parts)
            where = pid[g] if lv else "the jurisdiction"
            for part, a in zip(parts, area, strict=True):
                if a < _NOISE_M2:
                    continue
                if not (children.get(int(g)) if with_children is None else int(g) in with_children):
                    msg = (
                        f"{_himpl.area_text(a)} of grid {where!r} has no child on level {lv} to take it: "
                        f"draw a level-{lv} grid there"
                    )
                elif a > max_gap_m2:
                    msg = (
                        f"a gap of {_himpl.area_text(a)} in {where!r} on level {lv} is larger than "
                        f"max_gap_m2={max_gap_m2:g}: decide which grid covers it, or raise the limit"
                    )
                else:
                    continue
                refusals.append((_impl.Refusal("gap", lv, (str(where),), msg, float(a), part), None))
                for f in fs[shapely.intersects(part, _impl.interior_points(arr.faces[fs]))]:
                    candidates[f] = []
                    unseen[f] = False

    owner = _impl.assign(arr, candidates, owner, frame)
    for f in np.flatnonzero((owner < 0) & (kind == 1)).tolist():
        owner[f] = candidates[f][0]  # an overlap enclosed by overlaps: the first by id
    offered = np.array([bool(c) for c in candidates], dtype=bool) | unseen
    for f in np.flatnonzero((owner < 0) & (kind == 2) & offered).tolist():
        if arr.area[f] < _NOISE_M2:
            continue
        g = int(arr.group[f])
        msg = f"a gap of {_himpl.area_text(arr.area[f])} in {pid[g]!r} touches none of its children: draw its grid"
        refusals.append((_impl.Refusal("gap", lv, (str(pid[g]),), msg, float(arr.area[f]), arr.faces[f]), None))

    # grids that would vanish or lose most of their area to clipping: refused
    # the cells made valid: as arranged when snapping moved nothing (the same geometries)
    valid_cells = (
        arr.valid if snapped is cells and arr.valid is not None else _himpl.polygonal(shapely.make_valid(cells))
    )
    cell_area, _ = frame.measure_input(valid_cells)
    clipped_area = np.zeros(n)
    clipped_into: dict[int, set[str]] = {}
    for c, f in lost:
        if owner[f] != c and kind[f] != 1:
            clipped_area[c] += arr.area[f]
            g = int(arr.group[f])
            if lv and g >= 0:
                clipped_into.setdefault(c, set()).add(str(pid[g]))
    kept = np.bincount(owner[owner >= 0], minlength=n)
    for c in range(n):
        if kept[c] == 0 or clipped_area[c] > _MOSTLY_OUTSIDE * cell_area[c]:
            into = sorted(clipped_into.get(c, ()))
            where = f" (it lies in {format_ids(into, 3)})" if into else ""
            share = 100 * clipped_area[c] / cell_area[c] if cell_area[c] > 0 else 100.0
            msg = (
                f"grid {gid[c]!r} would lose {share:.0f}% of its area outside its parent "
                f"{parent_of(c)!r}{where}: check its parent_id and geometry"
            )
            if kept[c] == 0 and share < 100 * _MOSTLY_OUTSIDE:
                msg = f"grid {gid[c]!r} lies wholly under its siblings: delete it or redraw it"
            refusals.append(
                (_impl.Refusal("outside_parent", lv, (gid[c],), msg, float(clipped_area[c]), cells[c]), int(rows[c]))
            )

    # the log: pieces merged per (action, grid, others), snapped vertices, then the new geometry
    pieces: dict[tuple[str, int, tuple[str, ...]], list[int]] = {}
    for c, f in lost:
        if kind[f] == 1 or owner[f] == c:
            continue
        others: tuple[str, ...] = (gid[owner[f]],) if owner[f] >= 0 else ()
        pieces.setdefault(("clipped", c, others), []).append(f)
    for f in np.flatnonzero(owner >= 0).tolist():
        o = int(owner[f])
        if kind[f] == 1:
            pieces.setdefault(("overlap_resolved", o, tuple(gid[c] for c in candidates[f] if c != o)), []).append(f)
        elif kind[f] == 2:
            pieces.setdefault(("gap_filled", o, ()), []).append(f)
    touched = {c for f in np.flatnonzero(kind == 1) for c in candidates[f]}
    merged: list[tuple[str, int, tuple[str, ...], np.ndarray]] = []
    for (action, c, others), fs in sorted(pieces.items(), key=lambda kv: (kv[0][0], gid[kv[0][1]], kv[0][2])):
        touched.add(c)
        faces = arr.faces[np.array(fs)]
        merged.append((action, c, others, shapely.get_parts(_impl.union_faces(faces)) if len(fs) > 1 else faces))
    if merged:
        all_parts = np.concatenate([m[3] for m in merged])
        all_area, _ = frame.measure_input(all_parts)  # one pass through the transformer
        at = 0
        for action, c, others, parts in merged:
            for part, a in zip(parts, all_area[at : at + len(parts)], strict=True):
                log.add(
                    action, lv, gid[c], parent_of(c), others, _say(action, gid[c], others, a, parent_of(c)), part, a
                )
            at += len(parts)
    geoms_out: dict[int, shapely.Geometry] = {}
    by_owner = np.argsort(owner, kind="stable")  # each grid's faces, in face order
    first_face = np.searchsorted(owner[by_owner], np.arange(n + 1))
    has_face = first_face[1:] > first_face[:-1]
    rebuilt = {
        c: _impl.union_faces(arr.faces[by_owner[first_face[c] : first_face[c + 1]]])
        for c in np.flatnonzero(has_face).tolist()
    }
    # the grids kept as they were unless their vertices changed: compared all at once
    quiet = [c for c in rebuilt if not moved_n[c] and c not in touched and not made_valid[rows[c]]]
    same = _same_vertices(cells[quiet], [rebuilt[c] for c in quiet])
    renoded = {c for c, kept in zip(quiet, same.tolist(), strict=True) if not kept}
    for c, new in rebuilt.items():
        if moved_n[c]:
            touched.add(c)
            msg = f"{moved_n[c]} vertex(es) of grid {gid[c]!r} snapped to a neighbour's or the parent's, by up to {moved_d[c]:.3g} m"
            log.add(
                "snapped", lv, gid[c], parent_of(c), (), msg, shapely.multipoints(moved_at[c]), distance_m=moved_d[c]
            )
        if c in touched:
            geoms_out[int(rows[c])] = new
        elif made_valid[rows[c]]:
            geoms_out[int(rows[c])] = new  # logged as made_valid; rebuilt so its edges match
        else:
            # Untouched, but a neighbour's vertex may now lie on its edge: it takes that vertex too.
            # Or the noding dropped a zero-width spike along a neighbour's edge.
            if c in renoded:
                had = set(map(tuple, shapely.get_coordinates(cells[c])))
                has = set(map(tuple, shapely.get_coordinates(new)))
                added, gone = sorted(has - had), sorted(had - has)
                msg = (
                    f"grid {gid[c]!r} re-noded to match its neighbours' edges exactly "
                    f"({len(added)} vertex(es) added, {len(gone)} on zero-width spikes dropped)"
                )
                where = shapely.multipoints(np.array(added + gone))
                log.add("noded", lv, gid[c], parent_of(c), (), msg, where)
                geoms_out[int(rows[c])] = new
    return _Outcome(geoms_out, log, refusals, arr.overlapped, float(arr.area.min()) if nf else float("inf"))


def _same_vertices(old: np.ndarray, new: list[shapely.Geometry]) -> np.ndarray:
    """Whether each ``old[i]`` has the same set of vertices as ``new[i]`` (all pairs in a few numpy passes)."""
    out = np.ones(len(old), dtype=bool)
    if len(old) == 0:
        return out
    sides = []
    for geoms in (old, np.array(new, dtype=object)):
        xy, at = shapely.get_coordinates(geoms, return_index=True)
        order = np.lexsort((xy[:, 1], xy[:, 0], at))
        xy, at = xy[order], at[order]
        first = np.ones(at.size, dtype=bool)  # each geometry's distinct points once
        first[1:] = (at[1:] != at[:-1]) | (xy[1:, 0] != xy[:-1, 0]) | (xy[1:, 1] != xy[:-1, 1])
        sides.append((xy[first], at[first]))
    xy = np.concatenate([sides[0][0], sides[1][0]])
    at = np.concatenate([sides[0][1], sides[1][1]])
    order = np.lexsort((xy[:, 1], xy[:, 0], at))
    xy, at = xy[order], at[order]
    start = np.ones(at.size, dtype=bool)
    start[1:] = (at[1:] != at[:-1]) | (xy[1:, 0] != xy[:-1, 0]) | (xy[1:, 1] != xy[:-1, 1])
    run = np.flatnonzero(start)
    alone = np.diff(np.append(run, at.size)) == 1  # a point of one side only
    out[at[run[alone]]] = False
    return out


_FULL_SHARE = 0.6
"""Above this share of a level's grids in play, the full rebuild is as cheap: take it."""
_ROUNDING_M2 = 1e-6
"""A face smaller than this (m²) is rounding-size: whether it forms, and its owners, depend on how
GEOS nodes the whole linework, which the partial linework of the incremental path does not match."""
_HASH = np.array([1.0, 3.0, 7.0, 13.0])


def _repair_level_incremental(
    lv: int,
    rows: np.ndarray,
    above: np.ndarray,
    ids: np.ndarray,
    parent_row: np.ndarray,
    geoms: np.ndarray,
    frame: _himpl.Frame,
    snap_m: float,
    max_gap_m2: float,
    exempt: shapely.Geometry | None,
    made_valid: np.ndarray,
    segments: dict[int, tuple[np.ndarray, _himpl.Segments]],
    rim: _impl.Outline | None = None,
    before: np.ndarray | None = None,
    shared: _LevelSegments | None = None,
) -> _Outcome | None:
    """Repair level ``lv`` by rebuilding only the grids in play; None: take the full rebuild.

    A grid whose every edge segment is twinned -- shared exactly once, in the opposite
    direction, with a sibling or with its parent's outline (the edge-twin pass of
    :mod:`geogrid._hierarchy_impl`) -- lies where its family tiles its parent exactly.
    In play are the grids with an untwinned segment (and made-valid ones), every grid
    whose interior an untwinned segment enters, and, transitively, every grid with a
    vertex within ``snap_m`` of a vertex of one in play. The rest hold their faces
    and keep their geometry byte for byte; on the grids in play the full rebuild
    computes the same faces, owners, snaps and log. A kept grid overlapped after all,
    or whose segments lose a twin (a neighbour in play gained a vertex on their shared
    edge), or that a rebuilt grid overlaps, is brought into play and the level redone; so is,
    from the start, every grid touching (or within snap reach of) what the parents' own repair
    changed -- the area a parent gained or lost and the vertices it gained or lost -- whatever
    its parent: the full rebuild nodes its edges against the new parent edges there.
    Refusals, a parent without children, a face of rounding size (a 0 m² sliver: whether it
    forms depends on the noding of the whole linework) or a level mostly in play go to the
    full rebuild, which decides them.
    ``segments`` caches the edge segments of levels left unchanged, for their children;
    ``shared``, the level's segments and family twins as :func:`_settle` computed them, saves
    computing them again when it holds exactly ``rows``.
    """
    n = rows.size
    if n == 0 or above.size == 0:
        return None
    cells = geoms[rows]
    cgroup = _parent_pos(rows, above, parent_row)
    if (cgroup < 0).any():
        return None
    par = geoms[above]
    if (
        shared is not None
        and shared.ps is not None
        and shared.fam is not None
        and shared.pfam is not None
        and np.array_equal(shared.rows, rows)
    ):
        cs, ps, fam0, pfam = shared.cs, shared.ps, shared.fam, shared.pfam
    else:
        known = segments.get(lv - 1)
        ps = known[1] if known is not None and np.array_equal(known[0], above) else _himpl.Segments.of(par)
        cs = _himpl.Segments.of(cells)
        fam0, pfam = _family_twins(cs, ps, cgroup)
    play = np.zeros(n, dtype=bool)
    play[cs.cell[~fam0]] = True
    play |= made_valid[rows]
    k = np.array(frame.scale)
    reach = 2 * snap_m / min(k) if snap_m > 0 else 0.0  # input units: a snapped grid stays this close
    if before is not None:
        # What the parents' own repair changed -- the area a parent gained or lost (a sliver, a
        # zero-width spike) and every vertex it gained or lost (a neighbour's vertex noded in changes
        # no area) -- is where the full rebuild's parent linework differs from the parents the
        # children were drawn against. A child of any parent touching it, or within snap reach, may
        # get other faces, owners or snaps there, even with all its edges twinned: it is in play.
        moved = np.array([r for r in above if geoms[r] is not before[r]], dtype=np.int64)
        if moved.size:
            new_xy = shapely.get_coordinates(geoms[moved])
            old_xy = shapely.get_coordinates(before[moved])
            odd_z = np.setxor1d(new_xy[:, 0] + 1j * new_xy[:, 1], old_xy[:, 0] + 1j * old_xy[:, 1])
            zone = shapely.symmetric_difference(geoms[moved], before[moved])
            zone = zone[~shapely.is_empty(zone)]
            if odd_z.size:
                zone = np.append(zone, shapely.multipoints(np.column_stack([odd_z.real, odd_z.imag])))
            if zone.size:
                hit = shapely.STRtree(cells).query(zone, predicate="dwithin", distance=reach)[1]
                play[np.unique(hit)] = True
    with_children = {int(g) for g in cgroup}
    if not play.any():
        # every family tiles its parent exactly (an untwinned parent edge would need an untwinned child edge)
        if (~pfam).any():
            return None
        segments[lv] = (rows, cs)
        return _Outcome({}, _impl.Change(), [])
    if any(int(p) not in with_children for p in ps.cell[~pfam]):
        return None  # a parent with no child: the full rebuild refuses it
    tree = shapely.STRtree(cells)
    # untwinned segments of the children, and of the parents (a parent's edge cutting through a
    # child whose own edges all twin, e.g. a hole punched into the parent)
    odd = shapely.linestrings(np.concatenate([cs.key[~fam0], ps.key[~pfam]]).reshape(-1, 2, 2))
    # crosses or within, in one pass: the segment's interior meets the grid's interior
    a, b = tree.query(odd)
    a, b = a[~play[b]], b[~play[b]]  # a grid in play already needs no test
    play[b[shapely.relate_pattern(odd[a], cells[b], "T********")]] = True
    vertices = _Vertices.of(cells, frame, snap_m)
    if snap_m > 0 and len(ps.key):
        # A grid with a vertex within snap_m of a parent's vertex but not on it (one the parents' own
        # repair may just have moved): the full rebuild, where every parent vertex is an anchor with its
        # own ring's ownership, decides those snaps; the partial anchor set here does not match it.
        pts = ps.key.reshape(-1, 2)
        z = pts[:, 0] + 1j * pts[:, 1]
        by_z = np.argsort(z, kind="stable")  # a merge sort: faster on the partly ordered points of rings
        z_sorted, cell_sorted = z[by_z], np.repeat(ps.cell, 2)[by_z]
        pz = z_sorted[np.concatenate([[True], z_sorted[1:] != z_sorted[:-1]])]  # np.unique(z), sorted once
        pxy = np.column_stack([pz.real, pz.imag])
        if vertices.near((pxy - np.array(frame.origin)) * np.array(frame.scale), pxy, z_sorted, cell_sorted):
            return None
    untwinned_p = np.flatnonzero(~pfam)
    par_tree = shapely.STRtree(par)
    # each parent's segments, for the envelope test below
    seg_by_parent = np.argsort(ps.cell, kind="stable")
    seg_count = np.bincount(ps.cell, minlength=len(par))
    seg_start = np.cumsum(seg_count) - seg_count
    seg_env = np.column_stack(
        [
            np.minimum(ps.key[:, 0], ps.key[:, 2]),
            np.minimum(ps.key[:, 1], ps.key[:, 3]),
            np.maximum(ps.key[:, 0], ps.key[:, 2]),
            np.maximum(ps.key[:, 1], ps.key[:, 3]),
        ]
    )
    for _ in range(6):
        play = vertices.partners(play)
        if play.sum() > _FULL_SHARE * n:
            return None
        inplay = np.flatnonzero(play)
        box = shapely.bounds(cells[inplay]) + np.array([-reach, -reach, reach, reach])
        boxes = shapely.box(box[:, 0], box[:, 1], box[:, 2], box[:, 3])
        # The parents' segments whose envelope meets a box's: a segment's envelope lies in its parent's,
        # so only the boxes meeting that parent's envelope are tested, in numpy, with the comparisons
        # of an STRtree's envelope test (touching counts).
        bi, pj = par_tree.query(boxes)
        cnt = seg_count[pj]
        seg = seg_by_parent[_impl.ranges(seg_start[pj], cnt)]
        e, b_env = seg_env[seg], box[np.repeat(bi, cnt)]
        meets = (
            (b_env[:, 0] <= e[:, 2]) & (b_env[:, 2] >= e[:, 0]) & (b_env[:, 1] <= e[:, 3]) & (b_env[:, 3] >= e[:, 1])
        )
        near_mask = np.zeros(len(ps.key), dtype=bool)  # np.union1d, sorted by marking
        near_mask[untwinned_p] = True
        near_mask[seg[meets]] = True
        near = np.flatnonzero(near_mask)
        seg_lines = shapely.linestrings(ps.key[near].reshape(-1, 2, 2))
        kept = np.flatnonzero(~play)
        outcome = _repair_level(
            lv,
            rows[inplay],
            above,
            np.zeros(0, dtype=np.int64),
            ids,
            parent_row,
            geoms,
            frame,
            snap_m,
            max_gap_m2,
            exempt,
            made_valid,
            anchors=seg_lines,  # parent vertices it may snap to
            anchor_owner=ps.cell[near],
            parent_lines=seg_lines,  # snapping can move a grid's edge off the parent edge it twinned
            holders=cells[kept],
            with_children=with_children,
            rim=rim,
        )
        if outcome.refusals or outcome.smallest_face_m2 < _ROUNDING_M2:
            return None  # rounding-size faces: only the full rebuild's noding decides them
        if outcome.overlapped.size:  # a grid in play overlaps a kept one: that one is in play too
            play[kept[outcome.overlapped]] = True
            continue
        hit = _overlapping_kept(outcome, cells, kept)
        if hit.size:
            # A rebuilt grid overlaps a kept one by a piece no face of this arrangement holds (a sliver
            # the kept grid's own edges would have cut off: the full rebuild nodes them): in play too.
            play[hit] = True
            continue
        broken = _lost_twins(outcome, rows, play, cs, ps, cgroup)
        if broken.size == 0:
            if not outcome.geoms:
                segments[lv] = (rows, cs)
            return outcome
        play[broken] = True
    return None


def _overlapping_kept(outcome: _Outcome, cells: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Positions (in ``cells``) of the kept grids whose interior meets a rebuilt grid's interior."""
    if not outcome.geoms or kept.size == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.array(list(outcome.geoms.values()), dtype=object)
    ni, ki = shapely.STRtree(cells[kept]).query(new)  # envelopes only: the pattern fails on disjoint pairs anyway
    inner = shapely.relate_pattern(new[ni], cells[kept][ki], "T********")
    return np.unique(kept[ki[inner]])


def _family_twins(segs: _himpl.Segments, ps: _himpl.Segments, cgroup: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether each child segment, and each parent segment, is twinned in its family (parent outline reversed)."""
    m = len(segs.key)
    fam = _himpl.twinned(
        np.concatenate([segs.key, ps.key]),
        np.concatenate([segs.forward, ~ps.forward]),
        np.concatenate([cgroup[segs.cell], ps.cell]),
    )
    return fam[:m], fam[m:]


def _lost_twins(
    outcome: _Outcome,
    rows: np.ndarray,
    play: np.ndarray,
    cs: _himpl.Segments,
    ps: _himpl.Segments,
    cgroup: np.ndarray,
) -> np.ndarray:
    """Kept grids with a segment twinned (in the family, or in the level) before the rebuild but not after.

    Only segments equal to one the rebuilt grids lost or gained can change: the
    edge-twin pass runs again, before and after, on those alone.
    """
    if not outcome.geoms:
        return np.zeros(0, dtype=np.int64)
    by_row = np.argsort(rows)
    changed = np.sort(by_row[np.searchsorted(rows[by_row], np.fromiter(outcome.geoms, dtype=np.int64))])
    new = _himpl.Segments.of(np.array([outcome.geoms[int(rows[c])] for c in changed], dtype=object))
    new.cell = changed[new.cell]
    was = np.zeros(len(rows), dtype=bool)
    was[changed] = True
    was = was[cs.cell]
    touched = np.concatenate([cs.key[was], new.key]) @ _HASH  # equal keys hash equal; collisions only add work
    keep = ~play[cs.cell] & _impl.isin_float(cs.key @ _HASH, touched)
    if not keep.any():
        return np.zeros(0, dtype=np.int64)
    pk = _impl.isin_float(ps.key @ _HASH, touched)
    sub = _himpl.Segments(ps.key[pk], ps.forward[pk], ps.cell[pk])
    m = int(keep.sum())
    status = []
    for other in (was, None):
        segs = (
            _himpl.Segments(
                np.concatenate([cs.key[keep], cs.key[was]]),
                np.concatenate([cs.forward[keep], cs.forward[was]]),
                np.concatenate([cs.cell[keep], cs.cell[was]]),
            )
            if other is not None
            else _himpl.Segments(
                np.concatenate([cs.key[keep], new.key]),
                np.concatenate([cs.forward[keep], new.forward]),
                np.concatenate([cs.cell[keep], new.cell]),
            )
        )
        fam, _ = _family_twins(segs, sub, cgroup)
        status.append((fam[:m], _himpl.twinned(segs.key, segs.forward)[:m]))
    (fam0, lvl0), (fam1, lvl1) = status
    lost = (fam0 & ~fam1) | (lvl0 & ~lvl1)
    return np.unique(cs.cell[keep][lost])


@dataclass
class _Vertices:
    """The distinct vertices of a level in local metres, bucketed in ``snap_m`` squares, with their grids."""

    xy: np.ndarray  # distinct points
    own_cells: np.ndarray  # the grids that have each point: own_cells[own_start[p] : own_start[p + 1]]
    own_start: np.ndarray
    point_of: np.ndarray  # distinct-point id of each vertex (in get_coordinates order)
    cell_of: np.ndarray  # the grid of each vertex
    bucket: np.ndarray  # (m, 2) int, per distinct point
    order: np.ndarray  # distinct points by bucket key
    sorted_key: np.ndarray
    snap_m: float
    input_z: np.ndarray  # each distinct point in input coordinates, as x + iy

    @classmethod
    def of(cls, cells: np.ndarray, frame: _himpl.Frame, snap_m: float) -> _Vertices:
        """Index the vertices of ``cells``."""
        raw, cell = shapely.get_coordinates(cells, return_index=True)
        xy = (raw - np.array(frame.origin)) * np.array(frame.scale)
        # distinct points by a hash table, numbered as first met (nothing below depends on the numbering)
        point, distinct = pd.factorize(xy[:, 0] + 1j * xy[:, 1], use_na_sentinel=False)
        uniq = np.column_stack([distinct.real, distinct.imag])
        by_point = np.argsort(point, kind="stable")
        input_z = np.empty(len(uniq), dtype=complex)
        input_z[point] = raw[:, 0] + 1j * raw[:, 1]
        own_start = np.concatenate([[0], np.cumsum(np.bincount(point, minlength=len(uniq)))])
        scale = snap_m if snap_m > 0 else 1.0
        bucket = np.floor(uniq / scale).astype(np.int64)
        key = bucket[:, 0] * 4_294_967_296 + bucket[:, 1]
        order = np.argsort(key, kind="stable")
        return cls(uniq, cell[by_point], own_start, point, cell, bucket, order, key[order], snap_m, input_z)

    def near(self, anchors: np.ndarray, anchors_input: np.ndarray, ring_z: np.ndarray, ring_of: np.ndarray) -> bool:
        """Whether snapping would join a point of the level to one of ``anchors`` (local metres).

        As in :func:`geogrid._repair_impl.snap_vertices`: two distinct points within ``snap_m``
        join unless one grid has both, or one parent has both (``ring_z``: the parents' points as
        ``x + iy``, sorted; ``ring_of``: the parent of each). ``anchors_input``: the anchors in
        input coordinates, to find which grids and parents have them.
        """
        if self.snap_m <= 0 or len(self.xy) == 0 or len(anchors) == 0:
            return False
        own_z = self.input_z
        bucket = np.floor(anchors / self.snap_m).astype(np.int64)
        pairs = [self._in_buckets(bucket, dx) for dx in (-1, 0, 1)]
        a, v = np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
        d2 = ((anchors[a] - self.xy[v]) ** 2).sum(axis=1)
        hit = (d2 > 0) & (d2 <= self.snap_m * self.snap_m)
        a, v = a[hit], v[hit]
        if a.size == 0:
            return False
        # one parent has both points: the parents of each end, as ranges of ring_z, compared pairwise
        za = anchors_input[a, 0] + 1j * anchors_input[a, 1]
        lo_a, hi_a = np.searchsorted(ring_z, za), np.searchsorted(ring_z, za, side="right")
        lo_b, hi_b = np.searchsorted(ring_z, own_z[v]), np.searchsorted(ring_z, own_z[v], side="right")
        n_a = hi_a - lo_a
        h = np.repeat(np.arange(a.size), n_a)
        i = _impl.ranges(lo_a, n_a)
        n_b = (hi_b - lo_b)[h]
        hh = np.repeat(h, n_b)
        j = _impl.ranges(lo_b[h], n_b)
        shared = np.zeros(a.size, dtype=bool)
        shared[hh[ring_of[np.repeat(i, n_b)] == ring_of[j]]] = True
        order_z = np.argsort(own_z)
        for t in np.flatnonzero(~shared).tolist():
            b = int(v[t])
            at = np.searchsorted(own_z[order_z], za[t])
            if at < len(order_z) and own_z[order_z[at]] == za[t]:
                u = order_z[at]
                ob = self.own_cells[self.own_start[b] : self.own_start[b + 1]]
                if np.intersect1d(ob, self.own_cells[self.own_start[u] : self.own_start[u + 1]]).size:
                    continue  # one grid has both points
            return True
        return False

    def _in_buckets(self, bucket: np.ndarray, dx: int) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (probe, point) of each probe (its ``bucket``) with the points of the buckets at ``dx``, ``dy`` -1..1.

        The three buckets of one column are consecutive keys: one range of the sorted keys.
        """
        base = (bucket[:, 0] + dx) * 4_294_967_296 + bucket[:, 1]
        start = np.searchsorted(self.sorted_key, base - 1)
        count = np.searchsorted(self.sorted_key, base + 1, side="right") - start
        a = np.repeat(np.arange(len(bucket)), count)
        v = self.order[_impl.ranges(start, count)]
        return a, v

    def partners(self, play: np.ndarray) -> np.ndarray:
        """``play`` and, transitively, every grid that has a point snapping could join to one in play.

        Distinct points within ``snap_m``, unless one grid has both (as in
        :func:`geogrid._repair_impl.snap_vertices`); the grids of both points join.
        """
        play = play.copy()
        if self.snap_m <= 0 or len(self.xy) == 0:
            return play
        done = np.zeros(len(self.xy), dtype=bool)
        while True:
            fresh = np.zeros_like(done)
            fresh[self.point_of[play[self.cell_of]]] = True
            fresh &= ~done
            if not fresh.any():
                return play
            done |= fresh
            probe = np.flatnonzero(fresh)
            grew = False
            for dx in (-1, 0, 1):
                i, v = self._in_buckets(self.bucket[probe], dx)
                u = probe[i]
                d2 = ((self.xy[u] - self.xy[v]) ** 2).sum(axis=1)
                near = (u != v) & (d2 <= self.snap_m * self.snap_m)
                for a, b in zip(u[near].tolist(), v[near].tolist(), strict=True):
                    oa = self.own_cells[self.own_start[a] : self.own_start[a + 1]]
                    ob = self.own_cells[self.own_start[b] : self.own_start[b + 1]]
                    if np.intersect1d(oa, ob).size == 0 and not (play[oa].all() and play[ob].all()):
                        play[oa] = True
                        play[ob] = True
                        grew = True
            if not grew:
                return play


def _say(action: str, grid: str, others: tuple[str, ...], area: float, parent: str | None) -> str:
    a = _himpl.area_text(area)
    if action == "clipped":
        to = f", now {format_ids(others, 3)}'s" if others else ""
        return f"{a} of grid {grid!r} outside its parent {parent!r} clipped off{to}"
    if action == "overlap_resolved":
        return f"grid {grid!r} keeps {a} it overlapped with {format_ids(others, 3)} (longest shared edge)"
    return f"grid {grid!r} received a gap piece of {a} (longest shared edge under {parent!r})"


def _extend(log: _impl.Change, more: _impl.Change) -> None:
    for name in _LOG_COLUMNS:
        getattr(log, name).extend(getattr(more, name))


def _log_frame(log: _impl.Change, crs: Any) -> gpd.GeoDataFrame:
    n = len(log.action)
    order = np.arange(n)
    if n:
        rank = {a: i for i, a in enumerate(REPAIR_ACTIONS)}
        area = np.array(log.area_m2, dtype=float)
        key = (  # by level, action, grid, larger pieces first; stable
            -np.where(np.isnan(area), 0.0, area),
            np.array(log.grid_id, dtype=str),
            np.array([rank[a] for a in log.action]),
            np.array(log.level, dtype=np.int64),
        )
        order = np.lexsort(key)

    def col(values: list[Any]) -> np.ndarray:
        arr = np.empty(n, dtype=object)
        arr[:] = values
        return arr[order]

    index = pd.RangeIndex(n)  # built in column order, as one frame: no alignment, no reordering copy
    data = {
        "action": pd.Series(col(log.action), index=index, dtype=object),
        "level": pd.Series(np.array(log.level, dtype=np.int64)[order], index=index, dtype="int64"),
        "grid_id": pd.Series(col(log.grid_id), index=index, dtype=object),
        "parent_id": pd.Series(col(log.parent_id), index=index, dtype=object),
        "other_ids": pd.Series(col(log.other_ids), index=index, dtype=object),
        "area_m2": pd.Series(np.array(log.area_m2, dtype=float)[order], index=index, dtype="float64"),
        "distance_m": pd.Series(np.array(log.distance_m, dtype=float)[order], index=index, dtype="float64"),
        "message": pd.Series(col(log.message), index=index, dtype=object),
        "geometry": gpd.GeoSeries(col(log.geometry), index=index, crs=crs),
    }
    return gpd.GeoDataFrame(data, geometry="geometry", crs=crs)


def _refusal_frame(refusals: list[_impl.Refusal]) -> pd.DataFrame:
    if not refusals:  # the usual case: a copy of the empty frame costs a tenth of building it
        return _NO_REFUSALS.copy()
    return _build_refusal_frame(refusals)


def _build_refusal_frame(refusals: list[_impl.Refusal]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "kind": pd.Series([r.kind for r in refusals], dtype=object),
            "level": pd.Series([r.level for r in refusals], dtype="int64"),
            "grid_ids": pd.Series([r.grid_ids for r in refusals], dtype=object),
            "area_m2": pd.Series([r.area_m2 for r in refusals], dtype="float64"),
            "message": pd.Series([r.message for r in refusals], dtype=object),
            "geometry": pd.Series([r.geometry for r in refusals], dtype=object),
        }
    )


_NO_REFUSALS = _build_refusal_frame([])
