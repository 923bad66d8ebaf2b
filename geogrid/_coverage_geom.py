"""Private: the geometry of camera coverage on plain arrays in a metric CRS.

Sector polygons built in one vectorised pass (drawn with chords, or exact: corner polygons
plus circular arcs for the area kernel), 2-D occlusion by shadow polygons behind building
edges (exact views are cut on a fine polygon and get their arcs back), and per-grid
coverage as the union of the views clipped to each grid (STRtree pairs, one intersection
per pair, one grouped union per grid), or, when only the areas are needed, the compiled
Green's-theorem kernel of :mod:`geogrid._coverage_kernel`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import shapely

from geogrid import _coverage_kernel as _kernel

_FAR_MIN_COS = 0.02
"""Edge pieces seen under more than ~177.7° cast no shadow quad (cut at the perpendicular's foot,
none is seen under 90° or more unless the camera lies on its line)."""


def sectors(
    x: np.ndarray,
    y: np.ndarray,
    heading_deg: np.ndarray,
    fov_deg: np.ndarray,
    range_m: np.ndarray,
    *,
    resolution: int = 8,
    min_distance_m: float | np.ndarray = 0.0,
) -> np.ndarray:
    """Sector polygons (domes: discs) with ``resolution`` arc segments per 90°.

    With ``min_distance_m`` > 0 the apex is cut away: a sector becomes an annular
    sector, a dome an annulus (a polygon with a hole).
    """
    n = len(x)
    if n == 0:
        return np.empty(0, dtype=object)
    f = np.clip(np.asarray(fov_deg, dtype=float), 0.0, 360.0)
    r = np.asarray(range_m, dtype=float)
    r0 = np.broadcast_to(np.asarray(min_distance_m, dtype=float), (n,))
    dome = f >= 360.0
    nseg = np.maximum(np.ceil(f / 90.0 * resolution).astype(np.int64), 1)
    nseg[dome] = 4 * resolution
    start = np.radians(np.where(dome, 0.0, heading_deg - f / 2))
    span = np.radians(np.where(dome, 360.0, f))
    inner = r0 > 0

    # Outer ring: arc from start to start + span; sectors add the apex or the inner arc back.
    arc_n = nseg + 1
    back_n = np.where(dome, 0, np.where(inner, nseg + 1, 1))
    npts = arc_n + back_n + np.where(dome, 0, 1)  # closing point for sectors (domes close themselves)
    ring_of = np.repeat(np.arange(n), npts)
    off = np.concatenate([[0], np.cumsum(npts)])
    k = np.arange(off[-1]) - off[ring_of]
    ns, a0, sp = nseg[ring_of], start[ring_of], span[ring_of]
    on_arc = k < arc_n[ring_of]
    kb = k - arc_n[ring_of]  # position on the way back
    t = np.where(on_arc, a0 + k / ns * sp, a0 + (ns - kb) / ns * sp)
    rad = np.where(on_arc, r[ring_of], r0[ring_of])
    closing = ~dome[ring_of] & (k == npts[ring_of] - 1)
    t = np.where(closing, a0, t)
    rad = np.where(closing, r[ring_of], rad)
    px = x[ring_of] + rad * np.sin(t)
    py = y[ring_of] + rad * np.cos(t)
    if dome.any():  # close the dome rings exactly on their first point
        last = off[1:][dome] - 1
        px[last], py[last] = px[off[:-1][dome]], py[off[:-1][dome]]
    shells = shapely.linearrings(np.column_stack([px, py]), indices=ring_of)
    out = shapely.polygons(shells)
    holes = dome & inner
    if holes.any():
        idx = np.flatnonzero(holes)
        hole = shapely.buffer(shapely.points(x[idx], y[idx]), r0[idx], quad_segs=resolution)
        out[idx] = shapely.difference(out[idx], hole)
    return out


def exact_sectors(
    x: np.ndarray,
    y: np.ndarray,
    heading_deg: np.ndarray,
    fov_deg: np.ndarray,
    range_m: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Sectors (domes: discs) whose arcs are exact: the polygon of their corners and the arcs.

    Each arc is cut where it crosses an axis of its circle (north, east, south, west of the
    camera), so that every piece lies in one quadrant. Returns ``(polygons, arcs)``: the
    polygons through the apex and the arc's end and cut points (counter-clockwise), and one row
    ``(cx, cy, r)`` per coordinate in the order of ``shapely.get_coordinates(polygons)``: the
    edge that starts there is that arc (``r = 0``: a straight edge). A camera with no range or
    no field of view gets an empty polygon.
    """
    n = len(x)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    f = np.clip(np.asarray(fov_deg, dtype=float), 0.0, 360.0)
    r = np.asarray(range_m, dtype=float)
    if n == 0:
        return np.empty(0, dtype=object), np.empty((0, 3))
    live = (f > 0) & (r > 0)
    dome = f >= 360.0
    # Counter-clockwise in maths angles (0 = east): from 90 - heading - fov/2 to 90 - heading + fov/2.
    start = np.where(dome, 0.0, np.mod(90.0 - np.asarray(heading_deg, dtype=float) - f / 2, 360.0))
    end = start + np.where(dome, 360.0, f)
    k0 = np.floor(start / 90.0) + 1
    cuts = 90.0 * (k0[:, None] + np.arange(4))  # the axis crossings after the start
    angles = np.column_stack([start, cuts, end])  # up to 6 points on the arc
    keep = np.ones(angles.shape, bool)
    keep[:, 1:5] = cuts < end[:, None] - 1e-9
    keep[:, 1] &= cuts[:, 0] > start + 1e-9
    n_arc = keep.sum(1)
    # Ring: apex, arc points, apex (sectors); arc points, first point again (domes).
    n_pts = np.where(dome, n_arc, n_arc + 2)
    n_pts[~live] = 0
    ring = np.repeat(np.arange(n), n_pts)
    pos = np.arange(n_pts.sum()) - np.repeat(np.cumsum(n_pts) - n_pts, n_pts)
    a_idx = np.where(dome[ring], pos, pos - 1)  # index among the arc points
    on_arc = (a_idx >= 0) & (a_idx < n_arc[ring])
    rank = np.cumsum(keep, 1) - 1  # arc point j is column where rank == j
    col = np.zeros(len(ring), np.int64)
    for c in range(6):  # the column of each ring point's angle
        col = np.where(keep[ring, c] & (rank[ring, c] == a_idx), c, col)
    deg = np.mod(angles[ring, col], 360.0)
    rad = np.radians(deg)
    cs, sn = np.cos(rad), np.sin(rad)
    for q, (qc, qs) in enumerate(((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))):
        exact = deg == 90.0 * q  # axis points exactly on the axis
        cs[exact], sn[exact] = qc, qs
    rr = r[ring]
    px = np.where(on_arc, x[ring] + rr * cs, x[ring])
    py = np.where(on_arc, y[ring] + rr * sn, y[ring])
    last = np.cumsum(n_pts)[dome & live] - 1  # domes close on their first point
    first = (np.cumsum(n_pts) - n_pts)[dome & live]
    px[last], py[last] = px[first], py[first]
    is_arc = on_arc & (a_idx < n_arc[ring] - 1)  # an arc edge starts at every arc point but the last
    arcs = np.column_stack([x[ring], y[ring], np.where(is_arc, rr, 0.0)])
    arcs[~is_arc, :2] = 0.0
    out = np.full(n, shapely.Polygon(), dtype=object)
    if live.any():
        ring_live = np.searchsorted(np.flatnonzero(live), ring)
        out[live] = shapely.polygons(shapely.linearrings(np.column_stack([px, py]), indices=ring_live))
    return out, arcs


FINE_SEGMENTS = 128
"""Polygon sides per full circle of the fine views occlusion is cut from (arcs recovered after)."""

SLIVER_M = 1e-6
"""A part of a cut view with area under this times its perimeter (under ~2 µm wide) is dropped."""

FINE_SEGMENTS_NEAR = 8192
"""The same for a view whose shadow turns within the band between its fine arc and the true one."""


def fine_sectors(
    x: np.ndarray,
    y: np.ndarray,
    heading_deg: np.ndarray,
    fov_deg: np.ndarray,
    range_m: np.ndarray,
    segments: int | np.ndarray = FINE_SEGMENTS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inscribed sector polygons with ``segments`` sides per full circle plus a vertex on each axis.

    ``segments`` may differ per camera.
    Returns the polygons (counter-clockwise) and, per camera, the sorted maths angles (radians,
    from east, counter-clockwise, unwrapped) of the arc's vertices, as one array and its
    offsets: camera ``i``'s are ``angles[off[i]:off[i + 1]]``.
    """
    n = len(x)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    f = np.clip(np.asarray(fov_deg, dtype=float), 0.0, 360.0)
    r = np.asarray(range_m, dtype=float)
    live = (f > 0) & (r > 0)
    dome = f >= 360.0
    a0 = np.where(dome, 0.0, np.mod(90.0 - np.asarray(heading_deg, dtype=float) - f / 2, 360.0))
    # The arc's pieces between axis crossings, each cut into equal steps (at most 360° / segments).
    cuts = 90.0 * (np.floor(a0 / 90.0)[:, None] + 1 + np.arange(4))
    bounds = np.column_stack([a0, cuts, a0 + f])
    kept = np.ones(bounds.shape, bool)
    kept[:, 1:5] = (cuts < (a0 + f)[:, None] - 1e-9) & (cuts > a0[:, None] + 1e-9)
    kept &= live[:, None]
    kcam = np.repeat(np.arange(n), kept.sum(1))
    kdeg = bounds[kept]
    pair = kcam[1:] == kcam[:-1]
    pcam, pa, pb = kcam[:-1][pair], kdeg[:-1][pair], kdeg[1:][pair]
    seg = np.broadcast_to(np.asarray(segments, dtype=float), (n,))
    ps = np.maximum(np.ceil((pb - pa) / 360.0 * seg[pcam]), 1).astype(np.int64)
    cnt = np.bincount(pcam, weights=ps, minlength=n).astype(np.int64) + live  # + the end point
    ang_off = np.r_[0, np.cumsum(cnt)]
    deg = np.empty(int(ang_off[-1]))
    # Piece points: start + k / s of the piece, k = 0 .. s - 1; then each camera's end point.
    p_first = ang_off[pcam] + (np.cumsum(ps) - ps) - (np.cumsum(ps) - ps)[np.searchsorted(pcam, pcam)]
    rep = np.repeat(np.arange(len(ps)), ps)
    k = np.arange(int(ps.sum())) - np.repeat(np.cumsum(ps) - ps, ps)
    deg[p_first[rep] + k] = pa[rep] + (pb - pa)[rep] * k / ps[rep]
    deg[ang_off[1:][live] - 1] = (a0 + f)[live]
    cam = np.repeat(np.arange(n), cnt)
    rad = np.radians(deg)
    cs, sn = np.cos(rad), np.sin(rad)
    k90 = np.round(deg / 90.0)
    exact = np.abs(deg - 90.0 * k90) <= 1e-12
    quad = k90[exact].astype(np.int64) % 4
    cs[exact], sn[exact] = np.array([1.0, 0.0, -1.0, 0.0])[quad], np.array([0.0, 1.0, 0.0, -1.0])[quad]
    px, py = x[cam] + r[cam] * cs, y[cam] + r[cam] * sn
    cnt = np.bincount(cam, minlength=n)
    ang_off = np.r_[0, np.cumsum(cnt)]
    # Rings: apex + arc + apex for sectors; the arc closed on its first point for domes.
    sector = live & ~dome
    n_ring = np.where(sector, cnt + 2, cnt)
    ring_cam = np.repeat(np.arange(n), n_ring)
    pos = np.arange(len(ring_cam)) - np.repeat(np.cumsum(n_ring) - n_ring, n_ring)
    src = ang_off[ring_cam] + np.where(sector[ring_cam], pos - 1, pos)
    apex = sector[ring_cam] & ((pos == 0) | (pos == n_ring[ring_cam] - 1))
    src = np.clip(src, 0, max(len(px) - 1, 0))
    rx = np.where(apex, x[ring_cam], px[src] if len(px) else 0.0)
    ry = np.where(apex, y[ring_cam], py[src] if len(py) else 0.0)
    last = np.cumsum(n_ring)[dome & live] - 1
    rx[last], ry[last] = (
        rx[np.cumsum(n_ring)[dome & live] - n_ring[dome & live]],
        ry[np.cumsum(n_ring)[dome & live] - n_ring[dome & live]],
    )
    out = np.full(n, shapely.Polygon(), dtype=object)
    if live.any():
        ring_live = np.searchsorted(np.flatnonzero(live), ring_cam)
        out[live] = shapely.polygons(shapely.linearrings(np.column_stack([rx, ry]), indices=ring_live))
    return out, np.radians(deg), ang_off


def _turns_in_band(cam_xy: np.ndarray, range_m: np.ndarray, shade: np.ndarray, segments: int) -> np.ndarray:
    """Return, per camera, whether its shadow turns within the band next to its arc.

    True where the shadow has a vertex, or an edge's point nearest the camera, between radius
    ``r cos(π / segments)`` and ``r`` (a little widened); False without a shadow.
    """
    n = len(shade)
    out = np.zeros(n, bool)
    has = np.flatnonzero([s is not None for s in shade])
    if has.size == 0:
        return out
    parts, part_of = shapely.get_parts(shade[has], return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    cam = has[part_of[ring_part[ring_of]]]
    c = cam_xy[cam]
    r = range_m[cam]
    eps = 1e-9 * (np.abs(c).sum(1) + r)
    lo, hi = r * np.cos(np.pi / segments) - eps, r + eps
    d = np.hypot(xy[:, 0] - c[:, 0], xy[:, 1] - c[:, 1])
    bad = (d >= lo) & (d <= hi)
    same = ring_of[1:] == ring_of[:-1]  # edges: consecutive coordinates of one ring
    a, b, ce = xy[:-1][same], xy[1:][same], c[:-1][same]
    f = b - a
    lf = (f * f).sum(1)
    t = np.where(lf > 0, ((ce - a) * f).sum(1) / np.where(lf > 0, lf, 1.0), 0.0)
    foot = a + t[:, None] * f
    dp = np.hypot(foot[:, 0] - ce[:, 0], foot[:, 1] - ce[:, 1])
    bad_e = (t > 0) & (t < 1) & (dp >= lo[:-1][same]) & (dp <= hi[:-1][same])
    np.logical_or.at(out, cam[bad], True)
    np.logical_or.at(out, cam[:-1][same][bad_e], True)
    return out


def occlude_exact(
    cam_xy: np.ndarray,
    heading_deg: np.ndarray,
    fov_deg: np.ndarray,
    range_m: np.ndarray,
    buildings: np.ndarray,
    views: np.ndarray,
    arcs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact sectors (:func:`exact_sectors`) cut by the buildings' shadows, arcs kept exact.

    Each view a building reaches is built fine (:func:`fine_sectors`), cut by its shadow
    (:func:`shadows`), and its arc pieces recovered
    (:func:`geogrid._coverage_kernel.recover_arcs`): exact wherever the shadow's boundary
    crosses the band between the fine arc and the true one (``r (1 - cos(π / N))`` wide)
    straight through, without a corner or a turn inside it. A view whose shadow has a
    vertex, or an edge's nearest point to the camera, in that band is built again with
    ``N = FINE_SEGMENTS_NEAR`` (a band of 7e-8 r: what may be missed there is within it).
    Returns ``(views, arcs, shade)``: ``shade`` holds each view's shadow (None where none).
    """
    n = len(views)
    shade = np.full(n, None, dtype=object)
    if n == 0 or len(buildings) == 0:
        return views, arcs, shade
    r = np.asarray(range_m, dtype=float)
    discs = shapely.box(cam_xy[:, 0] - r, cam_xy[:, 1] - r, cam_xy[:, 0] + r, cam_xy[:, 1] + r)
    near = np.unique(shapely.STRtree(buildings).query(discs)[0])
    if near.size == 0:
        return views, arcs, shade
    # Which buildings reach a view: asked of coarse sectors around the true ones (chords at r or beyond).
    coarse = sectors(
        cam_xy[near, 0], cam_xy[near, 1], heading_deg[near], fov_deg[near], r[near] / np.cos(np.pi / 32), resolution=8
    )
    sh = shadows(cam_xy[near], coarse, r[near], buildings)
    has = np.array([s is not None for s in sh], dtype=bool)
    if not has.any():
        return views, arcs, shade
    seg = np.where(_turns_in_band(cam_xy[near], r[near], sh, FINE_SEGMENTS), FINE_SEGMENTS_NEAR, FINE_SEGMENTS)
    fine, ang, ang_off = fine_sectors(
        cam_xy[near, 0], cam_xy[near, 1], heading_deg[near], fov_deg[near], r[near], segments=seg
    )
    shade[near] = sh
    cut = near[has]  # camera positions
    local = np.flatnonzero(has)  # their rows among ``near``
    fine_cut = shapely.difference(fine[local], sh[local])
    parts, part_view = shapely.get_parts(fine_cut, return_index=True)
    poly = (shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)
    # The cut leaves zero-width slivers where shadows of neighbouring buildings meet (valid for
    # GEOS, but their two sides run along each other both ways): drop parts under 1 µm wide.
    poly &= shapely.area(parts) > SLIVER_M * shapely.length(parts)
    parts, part_view = parts[poly], part_view[poly]
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    ring_off = np.r_[0, np.cumsum(np.bincount(ring_of, minlength=len(rings)))]
    cx, cy = cam_xy[cut, 0], cam_xy[cut, 1]
    cam = np.column_stack([cx, cy, r[cut]])
    eps = 1e-14 * (np.abs(cx) + np.abs(cy)) + 1e-10 * r[cut] + 1e-12
    sub_off = ang_off[np.c_[local, local + 1]]
    ang_cut = np.concatenate([ang[a:b] for a, b in sub_off]) if len(local) else np.empty(0)
    ang_cut_off = np.r_[0, np.cumsum(sub_off[:, 1] - sub_off[:, 0])]
    new_xy, new_off, new_arc = _kernel.recover_arcs(
        xy, ring_off, part_view[ring_part].astype(np.int64), cam, ang_cut, ang_cut_off, eps
    )
    new_rings = shapely.linearrings(new_xy, indices=np.repeat(np.arange(len(rings)), np.diff(new_off)))
    new_parts = shapely.polygons(new_rings, indices=ring_part)
    n_parts = np.bincount(part_view, minlength=len(cut))
    new_views = np.full(len(cut), shapely.Polygon(), dtype=object)
    single = n_parts == 1
    first_part = np.cumsum(n_parts) - n_parts
    new_views[single] = new_parts[first_part[single]]
    multi = n_parts > 1
    if multi.any():
        sel = multi[part_view]
        new_views[multi] = shapely.multipolygons(
            new_parts[sel], indices=np.searchsorted(np.flatnonzero(multi), part_view[sel])
        )
    # Arc rows per view: the cut views' rows replace the exact sectors' rows.
    counts = shapely.get_num_coordinates(views)
    starts = np.r_[0, np.cumsum(counts)]
    blocks = [arcs[starts[i] : starts[i + 1]] for i in range(n)]
    view_rows = np.repeat(part_view[ring_part], np.diff(new_off))  # the cut view of each new coordinate
    row_starts = np.r_[0, np.cumsum(np.bincount(view_rows, minlength=len(cut)))]
    for k, i in enumerate(cut):
        blocks[i] = new_arc[row_starts[k] : row_starts[k + 1]]
    out = views.copy()
    out[cut] = new_views
    return out, np.concatenate(blocks), shade


def shadows(
    cam_xy: np.ndarray,
    views: np.ndarray,
    range_m: np.ndarray,
    buildings: np.ndarray,
) -> np.ndarray:
    """Per camera, the union of the shadows of the buildings within its view (or None).

    Each building edge that faces the camera casts a quadrilateral shadow: the edge and
    the edge pushed away from the camera until its far side lies beyond the range. The
    union over the facing edges is the building plus everything behind it, exact for
    concave footprints too. A building that holds the camera (a camera on a wall) casts
    no shadow on it.
    """
    n = len(views)
    out = np.full(n, None, dtype=object)
    # Rings come from polygons only (get_rings gives nothing for a MultiPolygon): parts first.
    parts = shapely.get_parts(np.asarray(buildings, dtype=object))
    buildings = parts[(shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)]
    if n == 0 or len(buildings) == 0:
        return out
    tree = shapely.STRtree(buildings)
    cam, bld = tree.query(views, predicate="intersects")
    if cam.size == 0:
        return out
    holds = shapely.covers(buildings[bld], shapely.points(cam_xy[cam]))
    cam, bld = cam[~holds], bld[~holds]
    # Edges of every building (exterior and holes), grouped by building.
    rings, ring_b = shapely.get_rings(buildings, return_index=True)
    is_hole = np.r_[False, ring_b[1:] == ring_b[:-1]]
    # The material lies left of a counter-clockwise shell and right of a counter-clockwise hole.
    outward_right = np.where(shapely.is_ccw(rings) != is_hole, 1.0, -1.0)
    xy, pt_ring = shapely.get_coordinates(rings, return_index=True)
    same = pt_ring[:-1] == pt_ring[1:]
    e_ring = pt_ring[:-1][same]
    order = np.argsort(ring_b[e_ring], kind="stable")
    ea, eb, e_ring = xy[:-1][same][order], xy[1:][same][order], e_ring[order]
    e_bld = ring_b[e_ring]
    first = np.searchsorted(e_bld, np.arange(len(buildings)))
    count = np.bincount(e_bld, minlength=len(buildings))
    # Expand (camera, building) pairs into (camera, edge) pairs.
    reps = count[bld]
    pc = np.repeat(cam, reps)
    pe = np.repeat(first[bld], reps) + (np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps))
    c = cam_xy[pc]
    a, b = ea[pe], eb[pe]
    da, db = a - c, b - c
    # cross((a - c), (b - c)) < 0: the camera is right of a -> b, i.e. on the outer side
    # of a shell edge that runs counter-clockwise.
    cross = da[:, 0] * db[:, 1] - da[:, 1] * db[:, 0]
    facing = cross * outward_right[e_ring[pe]] < 0
    pc, c, a, b = pc[facing], c[facing], a[facing], b[facing]
    # Cut each facing edge at the foot of the camera's perpendicular when it falls inside:
    # every piece is then seen under less than 90°, however close the camera stands to the
    # wall (an edge seen under nearly 180° was left out, and the camera saw through it).
    f = b - a
    lf = (f * f).sum(1)
    t = ((c - a) * f).sum(1) / np.where(lf > 0, lf, 1.0)
    cut = (t > 0) & (t < 1) & (lf > 0)
    foot = a[cut] + t[cut, None] * f[cut]
    pc = np.concatenate([pc[~cut], pc[cut], pc[cut]])
    c = np.concatenate([c[~cut], c[cut], c[cut]])
    a, b = np.concatenate([a[~cut], a[cut], foot]), np.concatenate([b[~cut], foot, b[cut]])
    da, db = a - c, b - c
    la, lb = np.hypot(da[:, 0], da[:, 1]), np.hypot(db[:, 0], db[:, 1])
    cos_half = np.sqrt(np.clip((1 + (da * db).sum(1) / np.maximum(la * lb, 1e-12)) / 2, 0.0, 1.0))
    ok = (cos_half > _FAR_MIN_COS) & (la > 1e-9) & (lb > 1e-9)
    pc, c, a, b, da, db, la, lb = pc[ok], c[ok], a[ok], b[ok], da[ok], db[ok], la[ok], lb[ok]
    # Push both ends beyond the range and beyond the edge itself: the quad is then simple
    # (an end farther than the push would cross the far side over the edge: a bow-tie).
    far = np.maximum((range_m[pc] + 1.0) / cos_half[ok] + 1.0, np.maximum(la, lb) + 1.0)
    a2 = c + da / la[:, None] * far[:, None]
    b2 = c + db / lb[:, None] * far[:, None]
    quads = shapely.polygons(np.stack([a, b, b2, a2, a], axis=1))
    bad = ~shapely.is_valid(quads)  # near-degenerate quads (camera almost on the edge line)
    if bad.any():
        quads[bad] = shapely.make_valid(quads[bad])
    return _group_union(quads, pc, n)


def _group_union(geoms: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    """Union of ``geoms`` per group id in ``range(n)`` (None where a group is empty)."""
    out = np.full(n, None, dtype=object)
    if geoms.size == 0:
        return out
    order = np.argsort(group, kind="stable")
    g = group[order]
    counts = np.bincount(g, minlength=n)
    single = counts == 1
    starts = np.cumsum(counts) - counts
    out[single] = geoms[order][starts[single]]
    multi = np.flatnonzero(counts > 1)
    if multi.size:
        sel = np.isin(g, multi)
        gm = g[sel]
        row = np.searchsorted(multi, gm)
        pos = np.arange(gm.size) - np.repeat(np.cumsum(counts[multi]) - counts[multi], counts[multi])
        arr = np.full((multi.size, int(counts[multi].max())), None, dtype=object)
        arr[row, pos] = geoms[order][sel]
        out[multi] = shapely.union_all(arr, axis=1)
        # GEOS 3.14's unary union can return an invalid result ("Nested shells") for valid
        # inputs (libgeos/geos#1355 and kin); such a shadow then breaks the cut of the view.
        # Those groups are united again one pair at a time, then snap-rounded at 1 µm if
        # that is still not valid.
        bad = multi[~shapely.is_valid(out[multi])]
        for k in bad:
            out[k] = _union_pairwise(arr[np.searchsorted(multi, k)])
    return out


def _union_pairwise(geoms: np.ndarray) -> shapely.Geometry:
    """Unite ``geoms`` (None entries ignored) by binary unions; snap-round if still invalid."""
    parts = [g for g in geoms if g is not None]
    acc = parts[0]
    for g in parts[1:]:
        acc = shapely.union(acc, g)
    if not shapely.is_valid(acc):
        acc = shapely.union_all(np.asarray(parts, dtype=object), grid_size=SLIVER_M)
    if not shapely.is_valid(acc):
        msg = f"GEOS could not unite {len(parts)} shadow pieces into a valid polygon"
        raise shapely.errors.GEOSException(msg)
    return acc


def cut_views(views: np.ndarray, shade: np.ndarray) -> np.ndarray:
    """Each view minus its shadow."""
    out = views.copy()
    has = np.array([s is not None for s in shade], dtype=bool)
    if has.any():
        out[has] = shapely.difference(views[has], shade[has])
    return out


def covered_per_grid(grids: np.ndarray, views: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the seen part of each grid and the (grid, view) pairs that see it.

    Returns ``(covered, pair_grid, pair_view)``: ``covered[i]`` is the union of the views
    clipped to grid ``i`` (an empty polygon where none sees it); the pairs are those whose
    clipped view has positive area.
    """
    n = len(grids)
    empty = shapely.Polygon()
    covered = np.full(n, empty, dtype=object)
    if n == 0 or len(views) == 0:
        return covered, np.empty(0, np.int64), np.empty(0, np.int64)
    live = ~(shapely.is_empty(views) | shapely.is_missing(views))
    tree = shapely.STRtree(np.where(live, views, np.array(None, dtype=object)))
    gi, vi = tree.query(grids, predicate="intersects")
    # The view covers the whole grid: no clipping needed; otherwise clip.
    whole = shapely.covers(views[vi], grids[gi])
    clip = np.empty(gi.size, dtype=object)
    clip[whole] = grids[gi[whole]]
    part = ~whole
    clip[part] = shapely.intersection(views[vi[part]], grids[gi[part]])
    area = shapely.area(clip)
    seen = area > 1e-9 * np.maximum(shapely.area(grids[gi]), 1.0)
    gi, vi, clip = gi[seen], vi[seen], clip[seen]
    union = _group_union(clip, gi, n)
    got = np.array([u is not None for u in union], dtype=bool)
    covered[got] = union[got]
    # Several clipped pieces may leave collections of lines: keep the polygonal part.
    coll = shapely.get_type_id(covered) == 7
    if coll.any():
        covered[coll] = [shapely.union_all([p for p in shapely.get_parts(c) if p.area > 0]) for c in covered[coll]]
    return covered, gi, vi


def covered_area_per_grid(
    grids: np.ndarray,
    views: np.ndarray,
    *,
    arcs: np.ndarray | None = None,
    fine: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the seen area of each grid and the (grid, view) pairs that see it.

    The areas-only twin of :func:`covered_per_grid` (same results, no geometry built):
    ``(covered_m2, pair_grid, pair_view)``, pairs grouped by grid. With ``arcs`` (one row
    per coordinate of ``views``, as :func:`exact_sectors` gives) the views' arcs are exact;
    ``fine(positions)`` then gives those views as fine polygons for the grids measured
    with GEOS.
    """
    covered, gi, vi, _ = _covered_area_per_grid(grids, views, arcs=arcs, fine=fine)
    return covered, gi, vi


def _covered_area_per_grid(
    grids: np.ndarray,
    views: np.ndarray,
    *,
    arcs: np.ndarray | None = None,
    fine: Callable[[np.ndarray], np.ndarray] | None = None,
    threads: int | None = None,
    max_views: int = _kernel.MAX_VIEWS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`covered_area_per_grid`, plus the positions of the grids measured with GEOS.

    ``threads`` and ``max_views`` go to :func:`geogrid._coverage_kernel.measure`.
    """
    n = len(grids)
    none = np.empty(0, np.int64)
    if n == 0 or len(views) == 0:
        return np.zeros(n), none, none, none
    gi, vi = shapely.STRtree(views).query(grids)  # the tree leaves missing and empty views out
    if np.any(gi[1:] < gi[:-1]):  # grouped by grid (as the STRtree gives them)
        order = np.argsort(gi, kind="stable")
        gi, vi = gi[order], vi[order]
    gi, vi = gi.astype(np.int64), vi.astype(np.int64)
    both = np.concatenate([np.asarray(grids, dtype=object), np.asarray(views, dtype=object)])
    x0, y0, x1, y1 = shapely.total_bounds(both)
    if not np.isfinite([x0, y0, x1, y1]).all():
        return np.zeros(n), none, none, none
    if arcs is not None:
        arcs = np.concatenate([np.zeros((int(shapely.get_num_coordinates(grids).sum()), 3)), arcs])
    # Shift to the centre: coordinates near zero keep every cross product exact to more digits.
    flat = _kernel.flatten(both, ((x0 + x1) / 2, (y0 + y1) / 2), arcs)
    tol = max(abs(x0), abs(x1), abs(y0), abs(y1), 1.0) * _kernel.TOL_REL
    cand_off = np.searchsorted(gi, np.arange(n + 1))
    covered, pair_area, unsure = _kernel.measure(flat, cand_off, vi + n, tol, threads=threads, max_views=max_views)
    area = np.nan_to_num(shapely.area(grids))  # a missing grid has no area
    floor = 1e-9 * np.maximum(area, 1.0)
    unsure |= (covered < -floor) | (covered > area + floor)
    seen = pair_area > floor[gi]
    redo = np.flatnonzero(unsure)
    if redo.size:
        # Decisions too close to call, or too many views for the kernel: GEOS measures those grids.
        geos_views = np.asarray(views, dtype=object)
        if fine is not None:
            need = np.unique(vi[np.isin(gi, redo)])
            geos_views = np.full(len(views), None, dtype=object)
            geos_views[need] = fine(need)
        cov, fg, fv = covered_per_grid(np.asarray(grids)[redo], geos_views)
        covered[redo] = shapely.area(cov)
        seen &= ~unsure[gi]
        gi = np.concatenate([gi[seen], redo[fg]])
        vi = np.concatenate([vi[seen], fv])
        order = np.argsort(gi, kind="stable")
        gi, vi = gi[order], vi[order]
    else:
        gi, vi = gi[seen], vi[seen]
    return np.clip(covered, 0.0, area), gi, vi, redo
