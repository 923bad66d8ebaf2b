"""Private core of :mod:`geogrid.repair`: one level rebuilt from its noded linework.

Plan per level, parents first (a level is repaired against its repaired parents):

1. *Snap*: vertices of the level (and of the parents' outlines) closer than the snap
   distance are clustered (pairs within the distance, then connected components);
   each cluster moves to one representative: a parent vertex if there is one, else the
   coordinate most grids already share, else the smallest.
2. *Arrange*: the outlines of the snapped grids and of their parents are noded
   together (``union_all`` of the rings) and polygonized into faces. Faces come from
   one noded arrangement, so any union of them shares its edges exactly with the
   union of the others: the rebuilt level is a valid coverage by construction.
3. *Assign*: each face lies in one parent (or in none: outside the jurisdiction) and
   is covered by 0, 1 or more grids. Covered once by a child of its parent: that
   child keeps it. Covered by grids of another parent: they lose it (clipped). Covered
   by several siblings (an overlap) or by none (a gap): it goes to the sibling -- among
   those covering it, or among all children of that parent for a gap -- with the
   longest shared edge, in rounds, so a piece enclosed by other pieces waits for them.

Topology is done in the input's own coordinates (an unchanged vertex keeps its exact
value, so untouched edges still coincide with the parents' edges); distances and
lengths are measured in the local metric frame of :mod:`geogrid._hierarchy_impl`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

import shapely

from geogrid._hierarchy_impl import Frame, fill_holes, holes_of, polygonal, row_classes

__all__: list[str] = []

NO_GROUP = -1
ON_OUTLINE_M = 1e-6
"""A vertex this close (m) to the outline lies on it (a crossing computed by an overlay is off it by rounding)."""
GAP_WIDTH_M = 1.0
"""Holes of the top level at least this wide (m) are enclaves, not gaps (``check_grids``' default ``gap_width_m``)."""


@dataclass
class Change:
    """Rows of the change log, collected column-wise (geometry in the input CRS)."""

    action: list[str] = field(default_factory=list)
    level: list[int] = field(default_factory=list)
    grid_id: list[str] = field(default_factory=list)
    parent_id: list[str | None] = field(default_factory=list)
    other_ids: list[tuple[str, ...]] = field(default_factory=list)
    area_m2: list[float] = field(default_factory=list)
    distance_m: list[float] = field(default_factory=list)
    message: list[str] = field(default_factory=list)
    geometry: list[shapely.Geometry | None] = field(default_factory=list)

    def add(
        self,
        action: str,
        level: int,
        grid_id: str,
        parent_id: str | None,
        other: Sequence[str],
        message: str,
        geometry: shapely.Geometry | None,
        area_m2: float = float("nan"),
        distance_m: float = float("nan"),
    ) -> None:
        """Add one change."""
        self.action.append(action)
        self.level.append(int(level))
        self.grid_id.append(grid_id)
        self.parent_id.append(parent_id)
        self.other_ids.append(tuple(other))
        self.area_m2.append(float(area_m2))
        self.distance_m.append(float(distance_m))
        self.message.append(message)
        self.geometry.append(geometry)


@dataclass
class Refusal:
    """Something repair will not fix, with the reason and the fix."""

    kind: str
    level: int
    grid_ids: tuple[str, ...]
    message: str
    area_m2: float = float("nan")
    geometry: shapely.Geometry | None = None


def rings_of(geoms: np.ndarray) -> np.ndarray:
    """Every ring (exterior and holes) of the polygons and multipolygons in ``geoms``."""
    if len(geoms) == 0:
        return np.empty(0, dtype=object)
    return shapely.get_rings(shapely.get_parts(polygonal(np.asarray(geoms, dtype=object))))


@dataclass
class Outline:
    """The jurisdiction the top level implies, for snapping: its rings and its area in local metres."""

    rings: np.ndarray
    local: shapely.Geometry
    settled: np.ndarray | None = None
    """Vertices (``x + iy``, input coordinates; any order, repeats allowed) of the level being
    repaired with an edge already shared exactly; those not also in ``unsettled`` (every edge
    in place) are settled: two of them are no near miss and never join (see :func:`snap_vertices`)."""
    unsettled: np.ndarray | None = None
    """Vertices (as ``settled``) with an edge not in place."""


def outline_of(top: np.ndarray, frame: Frame) -> Outline:
    """Return the outline the top level implies: its union's shells and its enclaves' rings.

    Snapping treats them as one ring: two of its vertices never snap together, so a notch
    in the outline narrower than the snap distance stays open (as ``check_grids`` calls it
    sound), wherever grids of different parents meet it. Nor do two vertices lying on it
    with land outside the jurisdiction between them (a seam meeting one side of a notch).
    """
    if len(top) == 0:
        return Outline(np.empty(0, dtype=object), shapely.Polygon())
    union = shapely.union_all(polygonal(np.asarray(top, dtype=object)))
    parts = shapely.get_parts(union)
    shells = shapely.get_exterior_ring(parts)
    holes = shapely.get_parts(holes_of(np.array([union], dtype=object)))
    wide = holes[~shapely.is_empty(shapely.buffer(frame.local(holes), -GAP_WIDTH_M / 2))] if holes.size else holes
    area = shapely.difference(
        shapely.union_all(shapely.polygons(shells)),
        shapely.union_all(shapely.polygons(shapely.get_exterior_ring(wide))),
    )
    local = frame.local(np.array([area], dtype=object))[0]
    shapely.prepare(local)
    return Outline(np.concatenate([shells, shapely.get_exterior_ring(wide)]).astype(object), local)


def interior_points(faces: np.ndarray) -> np.ndarray:
    """Return a point strictly inside each face, to tell which grids and parents cover it.

    GEOS's ``point_on_surface`` takes the middle of the widest section of a scan line; when that
    line crosses only a near-zero-width spike of the face (two nearly collinear edges of
    different grids), the point rounds onto the boundary or beyond it, inside a neighbour. Those
    faces take the centre of their largest inscribed circle instead.
    """
    reps = shapely.point_on_surface(faces)
    off = np.flatnonzero(~shapely.contains_properly(faces, reps))
    if off.size:
        centre = shapely.get_point(shapely.maximum_inscribed_circle(faces[off]), 0)
        inside = shapely.contains_properly(faces[off], centre)
        reps[off[inside]] = centre[inside]
    return reps


def union_faces(faces: np.ndarray) -> shapely.Geometry:
    """Union of faces of one arrangement, by ``coverage_union_all``.

    GEOS calls a near-degenerate sliver face "overlapping" (even alone): then ``union_all``.
    """
    if len(faces) == 1:
        return faces[0]
    try:
        return shapely.coverage_union_all(faces)
    except shapely.errors.GEOSException:
        return shapely.union_all(faces)


def unique_xy(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(xy, axis=0, return_inverse=True)`` (same order), 4x faster through complex numbers."""
    uniq, inverse, _ = unique_xy_grouped(xy)
    return uniq, inverse


def unique_xy_grouped(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`unique_xy` and the rows grouped by point: ``np.argsort(inverse, kind="stable")``.

    One stable sort of ``x + iy`` (a merge sort: faster than ``np.unique``'s on the partly
    ordered coordinates of rings) gives all three.
    """
    z = xy[:, 0] + 1j * xy[:, 1]
    order = np.argsort(z, kind="stable")
    zs = z[order]
    first = np.ones(zs.size, dtype=bool)
    first[1:] = zs[1:] != zs[:-1]
    inverse = np.empty(zs.size, dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    u = zs[first]
    return np.column_stack([u.real, u.imag]), inverse, order


def ranges(start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``start[k], start[k] + 1, ..., start[k] + count[k] - 1`` for every k, concatenated (no Python loop)."""
    total = int(count.sum())
    return np.repeat(start, count) + np.arange(total) - np.repeat(np.cumsum(count) - count, count)


def near_pairs(xy: np.ndarray, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``a < b`` of the points ``xy`` (distinct) at most ``distance`` apart, in any order.

    The pairs of ``STRtree(points).query(points, predicate="dwithin", distance=distance)``,
    with the distance GEOS computes (``sqrt(dx * dx + dy * dy)``), without building a point
    or a tree: points bucketed in squares a little wider than ``distance``, each bucket's
    points against its own and the next column's three buckets (sorted by bucket, those are
    two runs).
    """
    none = np.zeros(0, dtype=np.int64)
    if len(xy) < 2:
        return none, none
    cell = np.floor(xy / (distance * (1 + 1e-7)))  # a pair is at most one bucket apart
    cell -= cell.min(axis=0)
    stride = float(cell[:, 1].max()) + 3.0  # a column's keys and the buckets either side of it
    if (float(cell[:, 0].max()) + 2.0) * stride >= 2.0**62:  # too many buckets for an int64 key
        pts = shapely.points(xy)
        a, b = shapely.STRtree(pts).query(pts, predicate="dwithin", distance=distance)
        return a[a < b], b[a < b]
    bucket = cell.astype(np.int64)
    step = int(stride)
    key = bucket[:, 0] * step + bucket[:, 1]
    order = np.argsort(key)
    sk = key[order]
    out_a, out_b = [], []
    for dx in (0, 1):
        lo = np.searchsorted(sk, sk + (dx * step - 1))
        hi = np.searchsorted(sk, sk + (dx * step + 1), side="right")
        count = hi - lo
        i = np.repeat(np.arange(sk.size), count)
        j = ranges(lo, count)
        if dx == 0:  # each pair of one column twice: once
            once = i < j
            i, j = i[once], j[once]
        a, b = order[i], order[j]
        d = xy[a] - xy[b]
        ok = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]) <= distance
        a, b = a[ok], b[ok]
        out_a.append(np.minimum(a, b))
        out_b.append(np.maximum(a, b))
    return np.concatenate(out_a), np.concatenate(out_b)


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected-component label (smallest member) of ``n`` nodes linked by pairs ``a``-``b``."""
    label = np.arange(n)
    if a.size == 0:
        return label
    while True:
        lo = np.minimum(label[a], label[b])
        before = label.copy()
        np.minimum.at(label, a, lo)
        np.minimum.at(label, b, lo)
        label = label[label]  # pointer jumping
        if np.array_equal(label, before):
            return label


def snap_vertices(
    geoms: np.ndarray,
    anchors: np.ndarray,
    frame: Frame,
    snap_m: float,
    anchor_owner: np.ndarray | None = None,
    outline_owner: int | None = None,
    outline: shapely.Geometry | None = None,
    settled: np.ndarray | None = None,
    unsettled: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """Snap the vertices of ``geoms`` that lie within ``snap_m`` of each other or of ``anchors``.

    ``anchor_owner`` numbers the outline each anchor belongs to (default: each anchor
    is one ring); vertices of one outline never snap together. The anchors owned by
    ``outline_owner`` are the jurisdiction's outline (``outline``: its area, in local
    metres): two vertices lying on it (within :data:`ON_OUTLINE_M`) with land outside
    the jurisdiction between them never join (a vertex where a seam meets one side of a
    narrow notch stays off the other side), while two a near miss apart along it do.
    Two ``settled`` points (``x + iy``, input coordinates: vertices whose every edge is
    shared exactly; those in ``settled`` and not in ``unsettled``, as :class:`Outline` holds
    them) never join either: a short edge of a sound coverage is no near miss,
    and joining its ends would move grids that need no repair. A point within
    :data:`ON_OUTLINE_M` of a settled point (a rounding apart) joins it and counts as
    settled against every other point.

    Returns the snapped geometries (possibly invalid: only their linework is used),
    the number of moved vertices and the largest move (m) per geometry, and the new
    positions of the moved vertices per geometry.
    """
    n = len(geoms)
    moved_n = np.zeros(n, dtype=np.int64)
    moved_d = np.zeros(n)
    where: list[np.ndarray] = [np.zeros((0, 2)) for _ in range(n)]
    if n == 0 or snap_m <= 0:
        return geoms, moved_n, moved_d, where
    xy, owner = shapely.get_coordinates(geoms, return_index=True)
    axy, aowner = (
        shapely.get_coordinates(anchors, return_index=True) if anchors.size else (np.zeros((0, 2)), np.zeros(0, int))
    )
    allxy = np.concatenate([axy, xy])
    is_anchor = np.arange(len(allxy)) < len(axy)
    o, k = np.array(frame.origin), np.array(frame.scale)
    loc = (allxy - o) * k
    # Exact duplicates first (shared vertices): the query then runs on distinct points.
    uniq, inverse = unique_xy(loc)
    a, b = near_pairs(uniq, snap_m)
    # Only vertices of different grids are near-coincident; a grid's own short edges stay.
    # (Owner ids: grids 0..n-1, the anchors' rings n..; two vertices link when no grid or
    # ring owns both.)
    if anchor_owner is not None and aowner.size:
        aowner = anchor_owner[aowner]
    who = np.concatenate([aowner + n, owner]).astype(np.int64)
    m = int(who.max()) + 1
    pair_keys = np.unique(inverse.astype(np.int64) * m + who)
    u_of, o_of = np.divmod(pair_keys, m)
    start = np.searchsorted(u_of, np.arange(len(uniq)))
    stop = np.searchsorted(u_of, np.arange(len(uniq)), side="right")
    # Pair t is co-owned when some owner o of a[t] also owns b[t]: is b[t]*m + o a key?
    count = stop[a] - start[a]
    pair = np.repeat(np.arange(a.size), count)
    o = o_of[ranges(start[a], count)]
    probe = b[pair].astype(np.int64) * m + o
    at = np.minimum(np.searchsorted(pair_keys, probe), len(pair_keys) - 1)
    shared = np.bincount(pair[pair_keys[at] == probe], minlength=a.size) > 0
    a, b = a[~shared], b[~shared]
    if a.size and settled is not None and settled.size:
        orig = np.empty((len(uniq), 2))
        orig[inverse] = allxy
        ends = np.unique(np.concatenate([a, b]))  # only the points of a pair need the test
        z = orig[ends, 0] + 1j * orig[ends, 1]
        fixed = np.zeros(len(uniq), dtype=bool)
        fixed[ends] = _member(z, settled)
        if unsettled is not None and unsettled.size:
            fixed[ends] &= ~_member(z, unsettled)
        # A settled place is one up to rounding: a point within ON_OUTLINE_M of a settled one (a
        # parent vertex its own level's re-noding moved by a ULP) joins that one and is settled
        # for every other pair, so a short edge ending there stays as well.
        tiny = np.hypot(*(uniq[a] - uniq[b]).T) <= ON_OUTLINE_M
        weld = tiny & (fixed[a] != fixed[b])
        welded = fixed.copy()
        welded[a[weld]] = welded[b[weld]] = True
        both = (fixed[a] & fixed[b]) | (welded[a] & welded[b] & ~tiny)
        a, b = a[~both], b[~both]
    if a.size and outline is not None and outline_owner is not None and anchor_owner is not None:
        across = _across_outline(uniq, a, b, anchors[np.asarray(anchor_owner) == outline_owner], outline, frame)
        a, b = a[~across], b[~across]
    if a.size == 0:
        return geoms, moved_n, moved_d, where
    label = components(len(uniq), a, b)
    counts = np.bincount(u_of, minlength=len(uniq))  # distinct grids (and rings) sharing each point
    # Representative per cluster: an anchor vertex, else the most shared, else the smallest.
    anchor_u = np.zeros(len(uniq), dtype=bool)
    anchor_u[inverse[is_anchor]] = True
    order = np.lexsort((uniq[:, 1], uniq[:, 0], -counts, ~anchor_u, label))
    first = np.ones(len(order), dtype=bool)
    first[1:] = label[order][1:] != label[order][:-1]
    rep_of_label = np.full(len(uniq), -1)
    rep_of_label[label[order][first]] = order[first]
    rep = rep_of_label[label]  # unique point -> representative unique point
    # Back to input coordinates: the representative's original coordinates (exact).
    orig_of_uniq = np.empty((len(uniq), 2))
    orig_of_uniq[inverse] = allxy
    new_all = orig_of_uniq[rep[inverse]]
    new_xy = new_all[len(axy) :]
    changed = (new_xy != xy).any(axis=1)
    if not changed.any():
        return geoms, moved_n, moved_d, where
    dist = np.hypot(*(((new_xy - xy) * k).T))
    moved_n = np.bincount(owner[changed], minlength=n)
    moved_d = np.zeros(n)
    np.maximum.at(moved_d, owner[changed], dist[changed])
    for i in np.flatnonzero(moved_n):
        where[i] = new_xy[changed & (owner == i)]
    out = shapely.set_coordinates(geoms.copy(), new_xy)
    return out, moved_n, moved_d, where


def isin_float(values: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """``np.isin(values, pool)`` for floats, by a hash table (no sort): -0.0 equals 0.0, NaN nothing."""
    bits = np.ascontiguousarray(values + 0.0).view(np.uint64)
    found = pd.Series(bits, copy=False).isin(np.ascontiguousarray(pool + 0.0).view(np.uint64)).to_numpy(dtype=bool)
    return found & ~np.isnan(values)


def _member(z: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """``np.isin(z, pool)`` for a few complex ``z`` and a large unsorted ``pool``: sorts only ``z``."""
    out = np.zeros(z.size, dtype=bool)
    if z.size == 0 or pool.size == 0:
        return out
    order = np.argsort(z, kind="stable")
    zs = z[order]
    at = np.minimum(np.searchsorted(zs, pool), zs.size - 1)
    found = np.zeros(zs.size, dtype=bool)
    found[at[zs[at] == pool]] = True  # the first of each run of equal values
    out[order] = found[np.searchsorted(zs, zs)]
    return out


def _across_outline(
    uniq: np.ndarray, a: np.ndarray, b: np.ndarray, rim: np.ndarray, outline: shapely.Geometry, frame: Frame
) -> np.ndarray:
    """Which pairs of points (local metres) both lie on the outline ``rim`` with land outside it between them."""
    out = np.zeros(a.size, dtype=bool)
    if rim.size == 0:
        return out
    probe = np.unique(np.concatenate([a, b]))
    segs = shapely.get_coordinates(frame.local(rim), return_index=True)
    xy, ring = segs
    same = ring[1:] == ring[:-1]
    lines = shapely.linestrings(np.stack([xy[:-1][same], xy[1:][same]], axis=1))
    hit = shapely.STRtree(lines).query(shapely.points(uniq[probe]), predicate="dwithin", distance=ON_OUTLINE_M)[0]
    on = np.zeros(len(uniq), dtype=bool)
    on[probe[hit]] = True
    both = np.flatnonzero(on[a] & on[b])
    if both.size == 0:
        return out
    for t in (0.25, 0.5, 0.75):
        pts = shapely.points(uniq[a[both]] * (1 - t) + uniq[b[both]] * t)
        out[both] |= ~shapely.dwithin(outline, pts, ON_OUTLINE_M)
    return out


@dataclass
class Arrangement:
    """Faces of a level's noded linework, with the grids covering each and its group."""

    faces: np.ndarray
    cover: list[list[int]]  # grid positions covering each face
    group: np.ndarray  # parent position of each face (NO_GROUP outside)
    area: np.ndarray  # m²
    held: np.ndarray  # covered by a frozen (refused, left as is) grid or a holder: not a gap
    overlapped: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # holders under a grid
    groups: dict[int, list[int]] = field(default_factory=dict)  # every parent of a face in overlapping parents
    valid: np.ndarray | None = None  # the cells as arranged, made valid and polygonal


def _segment_keys(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every segment of ``lines`` as an (m, 4) key (lexicographically smaller end first, -0.0 as 0.0)."""
    xy, line = shapely.get_coordinates(lines, return_index=True)
    same = line[1:] == line[:-1]
    p, q = xy[:-1][same], xy[1:][same]
    fwd = (p[:, 0] < q[:, 0]) | ((p[:, 0] == q[:, 0]) & (p[:, 1] < q[:, 1]))
    key = np.column_stack([np.where(fwd[:, None], p, q), np.where(fwd[:, None], q, p)]) + 0.0
    return np.ascontiguousarray(key), line[:-1][same]


def _rows_in(key: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Which rows of ``key`` are a row of ``pool`` (both (m, 4) floats, -0.0 as 0.0, no NaN in ``key``).

    Classes of equal rows over both by a hash table (:func:`~geogrid._hierarchy_impl.row_classes`);
    a byte-wise sort decides when that cannot (a hash collision).
    """
    code = row_classes(np.concatenate([pool, key]))
    if code is None:  # a hash collision (or NaN): sort
        void = np.dtype((np.void, 32))
        return np.isin(np.ascontiguousarray(key).view(void).ravel(), np.ascontiguousarray(pool).view(void).ravel())
    in_pool = np.zeros(int(code.max()) + 1, dtype=bool)
    in_pool[code[: len(pool)]] = True
    return in_pool[code[len(pool) :]]


def _has_segment(segments: np.ndarray, rings: np.ndarray) -> np.ndarray:
    """Which two-point ``segments`` are exactly a segment of ``rings``: noding them adds nothing."""
    out = np.zeros(len(segments), dtype=bool)
    if len(segments) == 0 or len(rings) == 0:
        return out
    seg_key, seg_of = _segment_keys(segments)
    ring_key, _ = _segment_keys(rings)
    if len(seg_key) != len(segments) or np.isnan(shapely.get_coordinates(segments)).any():
        return out  # not all two-point lines (or NaN): keep every one
    out[seg_of[_rows_in(seg_key, ring_key)]] = True
    return out


def arrange(
    cells: np.ndarray,
    parents: np.ndarray | None,
    frame: Frame,
    exempt: shapely.Geometry | None,
    frozen: np.ndarray,
    *,
    parent_lines: np.ndarray | None = None,
    holders: np.ndarray | None = None,
) -> Arrangement:
    """Node the outlines of ``cells`` (and ``parents``) and classify the faces.

    ``frozen`` grids (refused, left as they are) cut the linework and hold their
    faces: those are no gap. ``parents`` None means the top level: the group of a face is 0 inside the
    jurisdiction (the cells' union with its holes filled, except enclaves: holes at least
    :data:`GAP_WIDTH_M` wide, however many grids border them), else ``NO_GROUP``.

    Incremental repair passes ``parent_lines`` (the parts of the parents' outlines
    that matter, instead of every ring) and ``holders``: the level's grids left as
    they are, which hold their faces (no gap) without cutting the linework.
    """
    rings = [rings_of(cells), rings_of(frozen)]
    if parent_lines is not None:
        rings.append(parent_lines[~_has_segment(parent_lines, rings[0])])
    elif parents is not None and len(parents):
        rings.append(rings_of(parents))
    lines = np.concatenate(rings)
    lines = lines[~shapely.is_empty(lines)]
    noded = shapely.union_all(lines)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    faces = faces[~shapely.is_empty(faces)]
    reps = interior_points(faces)
    valid = polygonal(shapely.make_valid(cells))
    tree = shapely.STRtree(valid)
    fi, ci = tree.query(reps, predicate="intersects")
    order = np.lexsort((ci, fi))  # each face's grids by position (= by id): ties go the same way every run
    fi, ci = fi[order], ci[order]
    cover: list[list[int]] = [[] for _ in range(len(faces))]
    for f, c in zip(fi.tolist(), ci.tolist(), strict=True):
        cover[f].append(c)
    held = np.zeros(len(faces), dtype=bool)
    if len(frozen):
        held[np.unique(shapely.STRtree(frozen).query(reps, predicate="intersects")[0])] = True
    overlapped = np.zeros(0, dtype=np.int64)
    if holders is not None and len(holders):
        hf, hi = shapely.STRtree(holders).query(reps, predicate="intersects")
        held[hf] = True
        overlapped = np.unique(hi[np.fromiter((bool(cover[f]) for f in hf), dtype=bool, count=hf.size)])
    group = np.full(len(faces), NO_GROUP, dtype=np.int64)
    also: dict[int, list[int]] = {}
    if parents is None:
        union = shapely.union_all(valid)
        inside = shapely.intersects(fill_holes(union), reps)
        holes = shapely.get_parts(holes_of(np.array([union], dtype=object)))
        if holes.size:
            # A hole of the level's union is an enclave (land outside the jurisdiction, however many
            # grids border it) unless it is narrower than the gap width everywhere: a sliver gap.
            wide = ~shapely.is_empty(shapely.buffer(frame.local(holes), -GAP_WIDTH_M / 2))
            if wide.any():
                inside &= ~shapely.intersects(shapely.union_all(holes[wide]), reps)
        group[inside] = 0
    elif len(parents):
        ptree = shapely.STRtree(parents)
        fi, pi = ptree.query(reps, predicate="intersects")
        order = np.lexsort((pi, fi))
        fi, pi = fi[order], pi[order]
        group[fi[::-1]] = pi[::-1]  # the first parent by position (= by id)
        more = np.flatnonzero(np.bincount(fi, minlength=len(faces)) > 1)
        for f in more.tolist():  # overlapping parents (one refused and left as it is): the face is in each
            also[f] = pi[fi == f].tolist()
    if exempt is not None:
        # Exempt faces nobody covers are left alone (they need no grid).
        out = shapely.intersects(exempt, reps) & np.array([not c for c in cover], dtype=bool)
        group[out] = NO_GROUP
        for f in np.flatnonzero(out).tolist():
            also.pop(f, None)
    area, _ = frame.measure_input(faces)
    return Arrangement(faces, cover, group, area, held, overlapped, also, valid)


def shared_lengths(faces: np.ndarray, pending: np.ndarray, frame: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (pending face, neighbour face) sharing an edge, with the shared length in metres."""
    if pending.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    tree = shapely.STRtree(faces)
    a, b = tree.query(faces[pending])  # envelopes only: disjoint pairs share no length, dropped below
    a = pending[a]
    keep = a != b
    a, b = a[keep], b[keep]
    need = np.zeros(len(faces), dtype=bool)
    need[a] = need[b] = True
    rim = np.full(len(faces), None, dtype=object)
    rim[need] = shapely.boundary(faces[need])  # each face's once
    common = shapely.intersection(rim[a], rim[b])
    _, length = frame.measure_input(common)
    keep = length > 0
    return a[keep], b[keep], length[keep]


def assign(
    arr: Arrangement,
    candidates: list[list[int]],
    owner: np.ndarray,
    frame: Frame,
) -> np.ndarray:
    """Give each face with ``owner == -1`` and candidates to the candidate sharing the longest edge.

    Rounds: a face whose neighbours are all still pending waits. Returns ``owner``
    (faces no candidate neighbours stay -1).
    """
    pending = np.flatnonzero((owner < 0) & np.array([bool(c) for c in candidates], dtype=bool))
    a, b, length = shared_lengths(arr.faces, pending, frame)
    order = np.argsort(a, kind="stable")
    a, b, length = a[order], b[order], length[order]
    starts = np.searchsorted(a, pending)
    ends = np.searchsorted(a, pending, side="right")
    todo = list(range(pending.size))
    while todo:
        decided: list[tuple[int, int]] = []
        left: list[int] = []
        for t in todo:
            f = int(pending[t])
            score: dict[int, float] = {}
            for j in range(starts[t], ends[t]):
                o = int(owner[b[j]])
                if o in candidates[f]:
                    score[o] = score.get(o, 0.0) + float(length[j])
            if score:
                best = max(sorted(score), key=lambda c: score[c])  # ties: the lowest position
                decided.append((f, best))
            else:
                left.append(t)
        if not decided:
            break
        for f, c in decided:  # applied after the round: the order of faces does not matter
            owner[f] = c
        todo = left
    return owner
