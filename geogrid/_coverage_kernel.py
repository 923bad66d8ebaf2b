"""Private: per-grid covered area by Green's theorem, compiled with numba.

``area(G ∩ (V1 ∪ … ∪ Vk))`` is the sum, over the oriented boundary pieces of the
result, of ``∮ (x dy - y dx) / 2``: ``(x1 y2 - x2 y1) / 2`` for a straight piece and, for a
piece of a circular arc (centre ``(X, Y)``, radius ``r``, from angle ``a`` to ``b``),
``(r² (b - a) + r X (sin b - sin a) - r Y (cos b - cos a)) / 2``; no polygon is ever built.
An edge may be such an arc (camera views are exact sectors, not polygons): each arc lies in one
quadrant of its circle, so it is monotone in x and y and its box is its end points' box. Each edge of the grid and
of its candidate views is split where other edges cross or touch it, and each piece is
decided by its midpoint: inside, outside, or on another polygon's boundary (same or
opposite direction). A piece lies on the result's boundary when the result is on its
left and not on its right. A piece shared by several polygons (identical views, a view
edge along the grid edge) is counted once, by the lowest-indexed owner (the grid first).

A piece that runs along an edge within a hair of it, but not within the tolerance,
flags its grid (the "on" decision might differ along the pair): the caller measures
flagged grids with GEOS instead. The same pass gives the area of each
(grid, view) pair, from which the views that see a grid are taken.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numba
import numpy as np

import shapely

_OUT, _IN, _ON_SAME, _ON_OPPOSITE = 0, 1, 2, 3

TOL_REL = 2.0**-40
"""Points within this share of the coordinate scale (~1e-12) of a boundary lie on it."""

_CHUNK = 8
"""Edges per chunk: a chunk's box lets a loop skip its edges at once."""

_SPLITS = 4096
"""Room for the split points of one edge; an edge cut more often makes its grid uncertain."""

NEAR = 256.0
"""A piece within ``NEAR`` tolerances of an edge it runs along, but not on it, is uncertain."""

_PARALLEL = 0.01
"""Sine of the angle below which a piece runs along an edge (crossing pieces are safe)."""

MAX_VIEWS = 512
"""Grids with more candidate views go to GEOS: the kernel's work per grid grows as their square."""

_GRIDS_PER_THREAD = 2_000
"""Fewer grids than this per thread are not worth a thread."""


class Flat(NamedTuple):
    """Polygons as flat arrays (see :func:`flatten`)."""

    ring_off: np.ndarray
    chunk_off: np.ndarray
    cedge: np.ndarray
    cbox: np.ndarray
    xy: np.ndarray
    bbox: np.ndarray
    arc: np.ndarray


def flatten(geoms: np.ndarray, origin: tuple[float, float], arcs: np.ndarray | None = None) -> Flat:
    """Polygon rings as CSR arrays, interiors on the left, coordinates shifted by ``-origin``.

    ``arcs`` (optional) has one row ``(cx, cy, r)`` per coordinate of ``geoms`` in the order of
    ``shapely.get_coordinates(geoms)``: the edge that starts at that coordinate is the arc of
    the circle ``(cx, cy), r`` between its two end points (the one under 180°); ``r = 0`` for a
    straight edge. Each arc must lie in one quadrant of its circle. ``arc`` of the result holds
    the same rows, shifted and aligned with ``xy`` (r = 0 everywhere without ``arcs``).

    Polygon ``p`` owns rings ``ring_off[p]:ring_off[p + 1]``; ring ``r`` owns the chunks
    ``chunk_off[r]:chunk_off[r + 1]``; chunk ``h`` owns the edges starting at coordinates
    ``cedge[h, 0]:cedge[h, 1]`` of ``xy`` and lies in the box ``cbox[h]``; ``bbox[p]`` is
    the polygon's box (inverted when it has no rings). Shells run counter-clockwise and
    holes clockwise. Missing, empty and non-polygonal geometries get no rings.
    """
    n = len(geoms)
    shift = np.asarray(origin, dtype=float)
    kind = shapely.get_type_id(geoms)  # -1: missing
    empty = shapely.is_empty(geoms)
    live = ((kind == 3) | (kind == 6)) & ~empty
    # Plain polygons (most views, most grids): one ring each, read at once.
    simple = live & (kind == 3) & (shapely.get_num_interior_rings(geoms) == 0)
    if arcs is not None:
        gstart = np.r_[0, np.cumsum(shapely.get_num_coordinates(geoms))]
    if np.all(simple | empty | (kind == -1)):
        ring_poly = np.flatnonzero(simple)
        xy, s_ring = shapely.get_coordinates(geoms, return_index=True)
        xy -= shift
        src_pos = None
        coord_off = np.zeros(len(ring_poly) + 1, np.int64)
        np.cumsum(np.bincount(s_ring, minlength=n)[ring_poly], out=coord_off[1:])
        del s_ring
        ring_hole = np.zeros(len(ring_poly), np.bool_)
    else:
        s_idx = np.flatnonzero(simple)
        s_xy, s_ring = shapely.get_coordinates(geoms[s_idx], return_index=True)
        # The others part by part, ring by ring.
        c_idx = np.flatnonzero(live & ~simple)
        parts, part_of = shapely.get_parts(geoms[c_idx], return_index=True)
        keep = ~shapely.is_empty(parts)
        parts, part_of = parts[keep], c_idx[part_of[keep]]
        rings, ring_part = shapely.get_rings(parts, return_index=True)
        c_xy, c_ring = shapely.get_coordinates(rings, return_index=True)
        # All rings, sorted by polygon (stable: a part's shell before its holes).
        ring_poly = np.concatenate([s_idx, part_of[ring_part]])
        ring_hole = np.concatenate([np.zeros(len(s_idx), bool), np.r_[False, ring_part[1:] == ring_part[:-1]]])
        ring_len = np.concatenate(
            [np.bincount(s_ring, minlength=len(s_idx)), np.bincount(c_ring, minlength=len(rings))]
        )
        src = np.concatenate([s_xy, c_xy])
        src_off = np.r_[0, np.cumsum(ring_len)]
        order = np.argsort(ring_poly, kind="stable")
        ring_poly, ring_len, ring_hole = ring_poly[order], ring_len[order], ring_hole[order]
        coord_off = np.r_[0, np.cumsum(ring_len)].astype(np.int64)
        take = np.repeat(src_off[:-1][order] - coord_off[:-1], ring_len) + np.arange(coord_off[-1])
        xy = src[take] - shift
        src_pos = None
        if arcs is not None:  # where each coordinate sits in get_coordinates(geoms)
            idx = np.concatenate([s_idx, c_idx])
            cnt = gstart[idx + 1] - gstart[idx]
            src_pos = (np.repeat(gstart[idx] - np.r_[0, np.cumsum(cnt)[:-1]], cnt) + np.arange(cnt.sum()))[take]
    if arcs is None:
        arc = np.zeros((len(xy), 3))
    else:
        arc = np.array(arcs if src_pos is None else arcs[src_pos], dtype=float)
        on = arc[:, 2] > 0
        arc[on, :2] -= shift
    _orient(coord_off, ring_hole, xy, arc)
    ring_off = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(ring_poly, minlength=n), out=ring_off[1:])
    bbox = shapely.bounds(geoms) - np.tile(shift, 2)
    bbox[~live] = (np.inf, np.inf, -np.inf, -np.inf)
    chunk_off, cedge, cbox = _chunks(coord_off, xy)
    return Flat(ring_off, chunk_off, cedge, cbox, xy, bbox, arc)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _orient(coord_off, hole, xy, arc):
    """Reverse, in place, the shells that run clockwise and the holes that run counter-clockwise.

    An arc row belongs to the edge that starts at its coordinate: reversed with the edges.
    """
    for r in range(len(coord_off) - 1):
        c0, c1 = coord_off[r], coord_off[r + 1]
        twice = 0.0
        for c in range(c0, c1 - 1):
            twice += (xy[c, 0] - xy[c0, 0]) * (xy[c + 1, 1] - xy[c0, 1]) - (xy[c + 1, 0] - xy[c0, 0]) * (
                xy[c, 1] - xy[c0, 1]
            )
            rr = arc[c, 2]
            if rr > 0.0:  # the circular segment between the arc and its chord
                dth = _sweep(xy[c, 0], xy[c, 1], xy[c + 1, 0], xy[c + 1, 1], arc[c, 0], arc[c, 1])
                twice += np.sign(dth) * rr * rr * (abs(dth) - np.sin(abs(dth)))
        if (twice < 0.0) != hole[r]:
            i, j = c0, c1 - 1
            while i < j:
                x, y = xy[i, 0], xy[i, 1]
                xy[i, 0], xy[i, 1] = xy[j, 0], xy[j, 1]
                xy[j, 0], xy[j, 1] = x, y
                i += 1
                j -= 1
            i, j = c0, c1 - 2
            while i < j:
                for m in range(3):
                    a = arc[i, m]
                    arc[i, m] = arc[j, m]
                    arc[j, m] = a
                i += 1
                j -= 1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _chunks(coord_off, xy):
    """Cut each ring's edges into runs of ``_CHUNK`` with their boxes."""
    nr = len(coord_off) - 1
    chunk_off = np.zeros(nr + 1, np.int64)
    for r in range(nr):
        ne = max(coord_off[r + 1] - coord_off[r] - 1, 0)
        chunk_off[r + 1] = chunk_off[r] + (ne + _CHUNK - 1) // _CHUNK
    nc = chunk_off[nr]
    cedge = np.zeros((nc, 2), np.int64)
    cbox = np.empty((nc, 4))
    for r in range(nr):
        last = coord_off[r + 1] - 1  # edges start at coord_off[r] … last - 1
        for h in range(chunk_off[r], chunk_off[r + 1]):
            c0 = coord_off[r] + (h - chunk_off[r]) * _CHUNK
            c1 = min(c0 + _CHUNK, last)
            cedge[h, 0], cedge[h, 1] = c0, c1
            x0, y0, x1, y1 = np.inf, np.inf, -np.inf, -np.inf
            for c in range(c0, c1 + 1):
                x0, x1 = min(x0, xy[c, 0]), max(x1, xy[c, 0])
                y0, y1 = min(y0, xy[c, 1]), max(y1, xy[c, 1])
            cbox[h, 0], cbox[h, 1], cbox[h, 2], cbox[h, 3] = x0, y0, x1, y1
    return chunk_off, cedge, cbox


def measure(
    flat: Flat,
    cand_off: np.ndarray,
    cand: np.ndarray,
    tol: float,
    *,
    threads: int | None = None,
    max_views: int = MAX_VIEWS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Covered area of each grid and area of each (grid, candidate view) pair.

    Polygons ``0 … n_grids - 1`` of ``flat`` are the grids; grid ``g``'s candidate views
    are the polygons ``cand[cand_off[g]:cand_off[g + 1]]`` (any order; a grid's own
    order decides which of two identical pieces counts). ``threads``: how many threads
    share the grids (default: one per available core, one per ``_GRIDS_PER_THREAD`` grids
    at most); the results do not depend on it.

    Returns ``(covered, pair_area, to_geos)``: ``to_geos`` marks the grids the kernel
    could not decide (a piece within a hair of an edge it runs along) or did not try
    (more than ``max_views`` candidates); their areas are to be measured otherwise.
    """
    n = len(cand_off) - 1
    covered = np.zeros(n)
    pair_area = np.zeros(len(cand))
    to_geos = np.zeros(n, np.bool_)
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, min(threads, n // _GRIDS_PER_THREAD))
    # Cut the grids into runs of about equal work (candidate pairs plus one per grid).
    work = cand_off + np.arange(n + 1)
    cuts = np.searchsorted(work, np.linspace(0, work[-1], threads + 1)).tolist()
    cuts[0], cuts[-1] = 0, n
    args = (*flat, cand_off, cand, tol, NEAR * tol, max_views)
    if threads == 1:
        _covered_areas(*args, 0, n, covered, pair_area, to_geos)
    else:
        with ThreadPoolExecutor(threads) as pool:
            runs = [
                pool.submit(_covered_areas, *args, lo, hi, covered, pair_area, to_geos)
                for lo, hi in itertools.pairwise(cuts)
            ]
            for run in runs:
                run.result()
    return covered, pair_area, to_geos


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _arc_t(px, py, ux, uy, ax, ay, dth):
    """Return the angle from ``a`` to ``p`` about ``u``, as a share of the arc's signed angle ``dth``."""
    vx, vy = ax - ux, ay - uy
    wx, wy = px - ux, py - uy
    return np.arctan2(vx * wy - vy * wx, vx * wx + vy * wy) / dth


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _sweep(ax, ay, bx, by, ux, uy):
    """Signed angle of the arc from ``a`` to ``b`` about ``u`` (under 180°)."""
    vx, vy = ax - ux, ay - uy
    wx, wy = bx - ux, by - uy
    return np.arctan2(vx * wy - vy * wx, vx * wx + vy * wy)


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _at(t, ax, ay, dx, dy, ux, uy, rr, th0, dth):
    """Return the point at ``t`` (0 at ``a``, 1 at ``a + d``) of a straight edge, or of an arc if ``rr > 0``."""
    if t <= 0.0:
        return ax, ay
    if t >= 1.0:
        return ax + dx, ay + dy
    if rr > 0.0:
        th = th0 + t * dth
        return ux + rr * np.cos(th), uy + rr * np.sin(th)
    return ax + t * dx, ay + t * dy


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _tangent(px, py, ax, ay, dx, dy, ux, uy, rr, dth):
    """Return the unit direction of travel at ``p`` of a straight edge (``d``), or of an arc about ``u``."""
    if rr > 0.0:
        tx, ty = -(py - uy), px - ux
        if dth < 0.0:
            tx, ty = -tx, -ty
    else:
        tx, ty = dx, dy
    n = np.sqrt(tx * tx + ty * ty)
    if n == 0.0:
        return 0.0, 0.0
    return tx / n, ty / n


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _edge_dist(px, py, cx, cy, ex, ey, ux, uy, rr):
    """Distance from ``p`` to the edge ``c -> e`` (an arc about ``u`` when ``rr > 0``), unit direction there."""
    fx, fy = ex - cx, ey - cy
    if rr > 0.0:
        # Within the arc's angle (under 180°): on the inner side of both radii, by cross products.
        sg = 1.0 if (cx - ux) * (ey - uy) - (cy - uy) * (ex - ux) >= 0.0 else -1.0
        wx, wy = px - ux, py - uy
        w = np.sqrt(wx * wx + wy * wy)
        if w > 0.0 and sg * ((cx - ux) * wy - (cy - uy) * wx) >= 0.0 and sg * (wx * (ey - uy) - wy * (ex - ux)) >= 0.0:
            return abs(w - rr), -sg * wy / w, sg * wx / w
        dc = np.sqrt((px - cx) ** 2 + (py - cy) ** 2)
        de = np.sqrt((px - ex) ** 2 + (py - ey) ** 2)
        if dc <= de:
            return dc, -sg * (cy - uy) / rr, sg * (cx - ux) / rr
        return de, -sg * (ey - uy) / rr, sg * (ex - ux) / rr
    lf = fx * fx + fy * fy
    if lf == 0.0:
        return np.inf, 0.0, 0.0
    u = min(max(((px - cx) * fx + (py - cy) * fy) / lf, 0.0), 1.0)
    qx, qy = cx + u * fx - px, cy + u * fy - py
    n = np.sqrt(lf)
    return np.sqrt(qx * qx + qy * qy), fx / n, fy / n


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _line_circle(px, py, fx, fy, ux, uy, rr):
    """Parameters ``s`` where ``p + s f`` meets the circle ``u, rr``: count and the two roots."""
    gx, gy = px - ux, py - uy
    a = fx * fx + fy * fy
    b = fx * gx + fy * gy
    c = gx * gx + gy * gy - rr * rr
    disc = b * b - a * c
    if a == 0.0 or disc < 0.0:
        return 0, 0.0, 0.0
    sq = np.sqrt(disc)
    q = -(b + sq) if b >= 0.0 else -(b - sq)  # the root without cancellation first
    s1 = q / a
    s2 = c / q if q != 0.0 else s1
    return 2, s1, s2


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _covered_areas(
    ring_off,
    chunk_off,
    cedge,
    cbox,
    xy,
    bbox,
    arc,
    cand_off,
    cand,
    tol,
    near,
    max_views,
    g_lo,
    g_hi,
    covered,
    pair_area,
    to_geos,
):
    """Grids ``g_lo … g_hi - 1`` of :func:`measure`, written into its output arrays.

    A view edge is first cut by the grid alone (stage 0); only its stretches inside the
    grid are then cut by the other views (stage 1). A grid edge goes to stage 1 whole.
    An edge is a straight segment or (``arc[c, 2] > 0``) an arc within one quadrant, its
    points ``t`` taken by angle. The geometry lives in one function on purpose: passing
    arrays to a helper costs atomic reference counting per call, which here would cost more
    than the geometry (the helpers take scalars only).
    """
    kmax, emax = 1, 1
    for g in range(g_lo, g_hi):
        kmax = max(kmax, cand_off[g + 1] - cand_off[g] + 1)
        ne = 0
        for j in range(cand_off[g] - 1, cand_off[g + 1]):
            p = g if j < cand_off[g] else cand[j]
            for h in range(chunk_off[ring_off[p]], chunk_off[ring_off[p + 1]]):
                ne += cedge[h, 1] - cedge[h, 0]
        emax = max(emax, ne)
    polys = np.empty(kmax, np.int64)
    pa = np.zeros(kmax)
    hit = np.zeros(kmax, np.bool_)  # the polygon cuts the current stretch
    state = np.zeros(kmax, np.int64)  # if not, its state along the stretch (-1: not known yet)
    # Carried along a ring: each polygon's state at the end of the previous edge, and whether
    # that vertex lies on the polygon's boundary (then the state may change there).
    end_state = np.full(kmax, -1, np.int64)
    end_touch = np.zeros(kmax, np.bool_)
    ts = np.empty(_SPLITS)
    lo_in, hi_in = np.empty(_SPLITS), np.empty(_SPLITS)
    lo_out, hi_out = np.empty(_SPLITS), np.empty(_SPLITS)
    e_c = np.empty(emax, np.int64)  # the edges to walk: first coordinate, owner
    e_pi = np.empty(emax, np.int64)
    for g in range(g_lo, g_hi):
        k = cand_off[g + 1] - cand_off[g] + 1
        if k - 1 > max_views:
            to_geos[g] = True
            continue
        polys[0] = g
        for j in range(1, k):
            polys[j] = cand[cand_off[g] + j - 1]
            pa[j] = 0.0
        if ring_off[g] == ring_off[g + 1]:
            continue
        gx0, gy0, gx1, gy1 = bbox[g, 0] - tol, bbox[g, 1] - tol, bbox[g, 2] + tol, bbox[g, 3] + tol
        ox, oy = 0.5 * (bbox[g, 0] + bbox[g, 2]), 0.5 * (bbox[g, 1] + bbox[g, 3])
        # The grid's edges and the view edges that reach into the grid's box.
        ne = 0
        for pi in range(k):
            p = polys[pi]
            if pi > 0 and (bbox[p, 0] > gx1 or bbox[p, 2] < gx0 or bbox[p, 1] > gy1 or bbox[p, 3] < gy0):
                continue
            for h in range(chunk_off[ring_off[p]], chunk_off[ring_off[p + 1]]):
                if pi > 0 and (cbox[h, 0] > gx1 or cbox[h, 2] < gx0 or cbox[h, 1] > gy1 or cbox[h, 3] < gy0):
                    continue
                for c in range(cedge[h, 0], cedge[h, 1]):
                    if pi > 0 and (
                        min(xy[c, 0], xy[c + 1, 0]) > gx1
                        or max(xy[c, 0], xy[c + 1, 0]) < gx0
                        or min(xy[c, 1], xy[c + 1, 1]) > gy1
                        or max(xy[c, 1], xy[c + 1, 1]) < gy0
                    ):
                        continue
                    e_c[ne], e_pi[ne] = c, pi
                    ne += 1
        acc = 0.0
        unsure = False
        ends0 = ends1 = False  # the previous edge's stage 0 / 1 reached its end vertex
        for e in range(ne):
            c, pi = e_c[e], e_pi[e]
            follows = e > 0 and e_c[e - 1] == c - 1 and e_pi[e - 1] == pi  # the ring's previous edge
            was0, was1 = follows and ends0, follows and ends1
            ends0 = ends1 = False
            ax, ay = xy[c, 0], xy[c, 1]
            bx, by = xy[c + 1, 0], xy[c + 1, 1]
            dx, dy = bx - ax, by - ay
            ll = dx * dx + dy * dy
            rr = arc[c, 2]
            ux, uy = arc[c, 0], arc[c, 1]
            th0 = dth = 0.0
            if rr > 0.0:
                th0 = np.arctan2(ay - uy, ax - ux)
                dth = _sweep(ax, ay, bx, by, ux, uy)
                length = rr * abs(dth)
            else:
                length = np.sqrt(ll)
            if length <= tol or np.sqrt(ll) <= tol:
                continue
            tl = tol * length
            lo_in[0], hi_in[0] = 0.0, 1.0
            n_in = 1
            for stage in range(0 if pi > 0 else 1, 2):
                # Stage 0 cuts by the grid alone, stage 1 by the views but this one.
                qa, qb = (0, 1) if stage == 0 else (1, k)
                n_out = 0
                for ii in range(n_in):
                    t_lo, t_hi = lo_in[ii], hi_in[ii]
                    # -- Split points of the stretch: crossings and touching vertices.
                    plx, ply = _at(t_lo, ax, ay, dx, dy, ux, uy, rr, th0, dth)
                    phx, phy = _at(t_hi, ax, ay, dx, dy, ux, uy, rr, th0, dth)
                    x0, x1 = min(plx, phx) - tol, max(plx, phx) + tol
                    y0, y1 = min(ply, phy) - tol, max(ply, phy) + tol
                    tmin, tmax = t_lo + tol / length, t_hi - tol / length
                    at_start = t_lo == 0.0 and (was0 if stage == 0 else was1)
                    at_end = t_hi == 1.0
                    ts[0], ts[1] = t_lo, t_hi
                    nt = 2
                    for qi in range(qa, qb):
                        q = polys[qi]
                        hit[qi] = False
                        state[qi] = -1
                        if qi == pi:
                            continue
                        if bbox[q, 0] > x1 or bbox[q, 2] < x0 or bbox[q, 1] > y1 or bbox[q, 3] < y0:
                            state[qi] = _OUT
                            end_touch[qi] = False
                            continue
                        n0 = nt
                        touch = False  # b within the tolerance of q's boundary
                        for ch in range(chunk_off[ring_off[q]], chunk_off[ring_off[q + 1]]):
                            if cbox[ch, 0] > x1 or cbox[ch, 2] < x0 or cbox[ch, 1] > y1 or cbox[ch, 3] < y0:
                                continue
                            for cq in range(cedge[ch, 0], cedge[ch, 1]):
                                cx, cy = xy[cq, 0], xy[cq, 1]
                                ex, ey = xy[cq + 1, 0], xy[cq + 1, 1]
                                if min(cx, ex) > x1 or max(cx, ex) < x0 or min(cy, ey) > y1 or max(cy, ey) < y0:
                                    continue
                                rq = arc[cq, 2]
                                vx, vy = arc[cq, 0], arc[cq, 1]
                                if (
                                    at_end
                                    and not touch
                                    and min(cx, ex) - tol <= bx <= max(cx, ex) + tol
                                    and min(cy, ey) - tol <= by <= max(cy, ey) + tol
                                ):
                                    dist, _, _ = _edge_dist(bx, by, cx, cy, ex, ey, vx, vy, rq)
                                    touch = dist <= tol
                                if rr == 0.0 and rq == 0.0:
                                    # Distances of c and e from the line a -> b, times its length.
                                    d1 = dx * (cy - ay) - dy * (cx - ax)
                                    d2 = dx * (ey - ay) - dy * (ex - ax)
                                    if abs(d1) <= tl:  # c lies on a -> b
                                        t = ((cx - ax) * dx + (cy - ay) * dy) / ll
                                        if tmin < t < tmax:
                                            if nt < _SPLITS:
                                                ts[nt] = t
                                            nt += 1
                                    if abs(d2) <= tl:  # e lies on a -> b
                                        t = ((ex - ax) * dx + (ey - ay) * dy) / ll
                                        if tmin < t < tmax:
                                            if nt < _SPLITS:
                                                ts[nt] = t
                                            nt += 1
                                    if (d1 > tl and d2 < -tl) or (d1 < -tl and d2 > tl):
                                        fx, fy = ex - cx, ey - cy
                                        tf = tol * np.sqrt(fx * fx + fy * fy)
                                        d3 = fx * (ay - cy) - fy * (ax - cx)
                                        d4 = fx * (by - cy) - fy * (bx - cx)
                                        if (d3 > tf and d4 < -tf) or (d3 < -tf and d4 > tf):
                                            t = d3 / (d3 - d4)
                                            if tmin < t < tmax:
                                                if nt < _SPLITS:
                                                    ts[nt] = t
                                                nt += 1
                                    continue
                                # An arc on either side: end points of q on this edge, then the
                                # crossings of the two curves (a spare split point does no harm).
                                for side in range(2):
                                    px, py = (cx, cy) if side == 0 else (ex, ey)
                                    dist, _, _ = _edge_dist(px, py, ax, ay, bx, by, ux, uy, rr)
                                    if dist <= tol:
                                        if rr > 0.0:
                                            t = _arc_t(px, py, ux, uy, ax, ay, dth)
                                        else:
                                            t = ((px - ax) * dx + (py - ay) * dy) / ll
                                        if tmin < t < tmax:
                                            if nt < _SPLITS:
                                                ts[nt] = t
                                            nt += 1
                                fx, fy = ex - cx, ey - cy
                                lq = np.sqrt(fx * fx + fy * fy)
                                if lq <= tol:
                                    continue
                                sgq = 1.0 if (cx - vx) * (ey - vy) - (cy - vy) * (ex - vx) >= 0.0 else -1.0
                                slack = near / lq
                                # Up to two meeting points, each inside q's edge (within a hair).
                                ok1 = ok2 = False
                                p1x = p1y = p2x = p2y = 0.0
                                if rr == 0.0:  # a straight edge against an arc of q
                                    nr, s1, s2 = _line_circle(ax, ay, dx, dy, vx, vy, rq)
                                    if nr:
                                        p1x, p1y = ax + s1 * dx, ay + s1 * dy
                                        p2x, p2y = ax + s2 * dx, ay + s2 * dy
                                        ok1 = ok2 = True
                                elif rq == 0.0:  # an arc against a straight edge of q
                                    nr, s1, s2 = _line_circle(cx, cy, fx, fy, ux, uy, rr)
                                    if nr:
                                        p1x, p1y = cx + s1 * fx, cy + s1 * fy
                                        p2x, p2y = cx + s2 * fx, cy + s2 * fy
                                        ok1 = -slack <= s1 <= 1.0 + slack
                                        ok2 = -slack <= s2 <= 1.0 + slack
                                else:  # two arcs: two circles
                                    wx, wy = vx - ux, vy - uy
                                    dd = np.sqrt(wx * wx + wy * wy)
                                    if tol < dd <= rr + rq + tol and dd >= abs(rr - rq) - tol:
                                        a0 = (rr * rr - rq * rq + dd * dd) / (2.0 * dd)
                                        hh = np.sqrt(max(rr * rr - a0 * a0, 0.0))
                                        mx0, my0 = ux + a0 * wx / dd, uy + a0 * wy / dd
                                        p1x, p1y = mx0 - hh * wy / dd, my0 + hh * wx / dd
                                        p2x, p2y = mx0 + hh * wy / dd, my0 - hh * wx / dd
                                        ok1 = ok2 = True
                                for m in range(2):
                                    if not (ok1 if m == 0 else ok2):
                                        continue
                                    px, py = (p1x, p1y) if m == 0 else (p2x, p2y)
                                    if rq > 0.0:
                                        # inside q's angle, give or take ``near`` (cross products of radii)
                                        wx, wy = px - vx, py - vy
                                        if (
                                            sgq * ((cx - vx) * wy - (cy - vy) * wx) < -near * rq
                                            or sgq * (wx * (ey - vy) - wy * (ex - vx)) < -near * rq
                                        ):
                                            continue
                                    if rr > 0.0:
                                        t = _arc_t(px, py, ux, uy, ax, ay, dth)
                                    else:
                                        t = ((px - ax) * dx + (py - ay) * dy) / ll
                                    if tmin < t < tmax:
                                        if nt < _SPLITS:
                                            ts[nt] = t
                                        nt += 1
                        hit[qi] = nt > n0
                        # Nothing of q on the stretch and its start not on q's boundary: q's
                        # state there is the one the previous edge ended with.
                        if at_start and not hit[qi] and not end_touch[qi] and end_state[qi] in (_IN, _OUT):
                            state[qi] = end_state[qi]
                        end_touch[qi] = touch
                    if nt > _SPLITS:
                        unsure = True
                        nt = _SPLITS
                    for i in range(1, nt):  # insertion sort: a handful of values
                        v = ts[i]
                        j = i - 1
                        while j >= 0 and ts[j] > v:
                            ts[j + 1] = ts[j]
                            j -= 1
                        ts[j + 1] = v
                    # -- Decide each piece by its midpoint.
                    for qi in range(qa, qb):
                        end_state[qi] = -1
                    for j in range(nt - 1):
                        t0, t1 = ts[j], ts[j + 1]
                        if (t1 - t0) * length <= tol:
                            continue
                        tm = 0.5 * (t0 + t1)
                        mx, my = _at(tm, ax, ay, dx, dy, ux, uy, rr, th0, dth)
                        if rr > 0.0:
                            a0, a1 = th0 + t0 * dth, th0 + t1 * dth
                            cr = 0.5 * (
                                rr * rr * (a1 - a0)
                                + rr * (ux - ox) * (np.sin(a1) - np.sin(a0))
                                - rr * (uy - oy) * (np.cos(a1) - np.cos(a0))
                            )
                        else:
                            cr = 0.5 * (
                                (ax + t0 * dx - ox) * (ay + t1 * dy - oy) - (ax + t1 * dx - ox) * (ay + t0 * dy - oy)
                            )
                        tux, tuy = _tangent(mx, my, ax, ay, dx, dy, ux, uy, rr, dth)
                        if stage == 1 and pi > 0:
                            pa[pi] += cr
                        keep = stage == 1 and pi > 0  # a view piece bounds the union unless ...
                        seen = False  # a grid piece bounds it where some view holds its left side
                        for qi in range(qa, qb):
                            if qi == pi:
                                continue
                            s = state[qi]
                            if s < 0 or hit[qi]:
                                # Where does m lie against polygon q: even-odd ray towards +x, and
                                # on an edge when within the tolerance of it.
                                q = polys[qi]
                                s = _OUT
                                inside = False
                                if (
                                    bbox[q, 0] - near <= mx <= bbox[q, 2] + near
                                    and bbox[q, 1] - near <= my <= bbox[q, 3] + near
                                ):
                                    for ch in range(chunk_off[ring_off[q]], chunk_off[ring_off[q + 1]]):
                                        if (
                                            my < cbox[ch, 1] - near
                                            or my > cbox[ch, 3] + near
                                            or mx > cbox[ch, 2] + near
                                        ):
                                            continue  # neither crossed by the ray nor near
                                        for cq in range(cedge[ch, 0], cedge[ch, 1]):
                                            cx, cy = xy[cq, 0], xy[cq, 1]
                                            ex, ey = xy[cq + 1, 0], xy[cq + 1, 1]
                                            rq = arc[cq, 2]
                                            if (cy > my) != (ey > my):
                                                if rq > 0.0:  # one quadrant: one crossing, on its side
                                                    vx, vy = arc[cq, 0], arc[cq, 1]
                                                    w = np.sqrt(max(rq * rq - (my - vy) ** 2, 0.0))
                                                    xc = vx + w if cx + ex > 2.0 * vx else vx - w
                                                else:
                                                    xc = cx + (my - cy) * (ex - cx) / (ey - cy)
                                                if mx < xc:
                                                    inside = not inside
                                            if (
                                                my < min(cy, ey) - near
                                                or my > max(cy, ey) + near
                                                or mx < min(cx, ex) - near
                                                or mx > max(cx, ex) + near
                                            ):
                                                continue
                                            dist, fx, fy = _edge_dist(
                                                mx, my, cx, cy, ex, ey, arc[cq, 0], arc[cq, 1], rq
                                            )
                                            if dist <= tol:
                                                on = _ON_SAME if tux * fx + tuy * fy > 0.0 else _ON_OPPOSITE
                                                if s != _OUT and s != on:
                                                    unsure = True  # on two edges running both ways: a spike
                                                s = on
                                                continue
                                            if (
                                                dist <= near
                                                and abs(tux * fy - tuy * fx) <= _PARALLEL
                                                and (rr > 0.0) == (rq > 0.0)  # a line and an arc only touch
                                            ):
                                                unsure = True  # running along an edge, a hair off it
                                    if s == _OUT and inside:
                                        s = _IN
                                if not hit[qi]:
                                    state[qi] = s
                            if j == nt - 2:
                                end_state[qi] = s
                            if stage == 0:
                                if s == _IN:  # inside the grid (on its boundary, the grid's piece counts)
                                    if n_out > 0 and hi_out[n_out - 1] == t0:
                                        hi_out[n_out - 1] = t1
                                    elif n_out < _SPLITS:
                                        lo_out[n_out], hi_out[n_out] = t0, t1
                                        n_out += 1
                                    else:
                                        unsure = True
                            elif pi == 0:
                                if s in (_IN, _ON_SAME):
                                    pa[qi] += cr
                                    seen = True
                            elif s in (_IN, _ON_OPPOSITE) or (s == _ON_SAME and qi < pi):
                                # ... another view holds its right side, or a lower owner counts it.
                                keep = False
                                break
                        if keep or seen:
                            acc += cr
                    if at_end:
                        if stage == 0:
                            ends0 = True
                        else:
                            ends1 = True
                if stage == 0:
                    for ii in range(n_out):
                        lo_in[ii], hi_in[ii] = lo_out[ii], hi_out[ii]
                    n_in = n_out
        covered[g] = acc
        to_geos[g] = unsure
        for j in range(1, k):
            pair_area[cand_off[g] + j - 1] = pa[j]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def recover_arcs(xy, ring_off, ring_view, cam, ang, ang_off, eps):
    """Rings of fine views cut by shadows, with their arc pieces made exact (all rings at once).

    Ring ``i`` holds the closed coordinates ``xy[ring_off[i]:ring_off[i + 1]]`` of a view
    of camera ``ring_view[i]`` (``cam`` rows: x, y, range); that camera's fine arc has its
    vertices at the maths angles ``ang[ang_off[v]:ang_off[v + 1]]`` (sorted, unwrapped).
    An edge that lies on one of the fine arc's chords is a piece of the arc: its end points
    inside the chord (where a shadow edge crossed it) move onto the circle along that shadow
    edge (straight out from the camera between two chords), and the edge becomes the arc
    between its ends. Runs of arc edges merge up to the axis vertices (each arc stays in
    one quadrant; a ring keeps at least three corners). Returns ``(xy, ring_off, arc)``:
    the new closed rings and one arc row ``(cx, cy, r)`` per coordinate (``r = 0``: straight).
    """
    n_out = len(xy)
    out = np.empty((n_out, 2))
    arc = np.zeros((n_out, 3))
    off = np.zeros(len(ring_off), np.int64)
    mmax = 1
    for i in range(len(ring_off) - 1):
        mmax = max(mmax, ring_off[i + 1] - ring_off[i])
    rel = np.empty((mmax, 2))
    q = np.empty((mmax, 2))
    chord = np.zeros(mmax, np.bool_)
    keep = np.zeros(mmax, np.bool_)
    w = 0
    for i in range(len(ring_off) - 1):
        v = ring_view[i]
        cx, cy, r, e = cam[v, 0], cam[v, 1], cam[v, 2], eps[v]
        a = ang[ang_off[v] : ang_off[v + 1]]
        c0 = ring_off[i]
        m = ring_off[i + 1] - c0 - 1
        for j in range(m):
            rel[j, 0], rel[j, 1] = xy[c0 + j, 0] - cx, xy[c0 + j, 1] - cy
        n_chord = 0
        for j in range(m):
            j2 = (j + 1) % m
            px, py, nx, ny = rel[j, 0], rel[j, 1], rel[j2, 0], rel[j2, 1]
            chord[j] = False
            if (px == nx and py == ny) or len(a) < 2:
                continue
            phi = np.arctan2(0.5 * (py + ny), 0.5 * (px + nx))
            phi = a[0] + np.mod(phi - a[0], 2 * np.pi)
            k = min(max(np.searchsorted(a, phi) - 1, 0), len(a) - 2)
            ax, ay = r * np.cos(a[k]), r * np.sin(a[k])
            fx, fy = r * np.cos(a[k + 1]) - ax, r * np.sin(a[k + 1]) - ay
            lf = np.sqrt(fx * fx + fy * fy)
            if lf == 0.0:
                continue
            d1 = abs(fx * (py - ay) - fy * (px - ax)) / lf
            d2 = abs(fx * (ny - ay) - fy * (nx - ax)) / lf
            chord[j] = d1 <= e and d2 <= e
            n_chord += chord[j]
        if n_chord == 0:
            for j in range(m + 1):
                out[w + j, 0], out[w + j, 1] = xy[c0 + j, 0], xy[c0 + j, 1]
            w += m + 1
            off[i + 1] = w
            continue
        n_keep = 0
        for j in range(m):
            prev = chord[(j - 1 + m) % m]
            px, py = rel[j, 0], rel[j, 1]
            q[j, 0], q[j, 1] = px, py
            d = np.sqrt(px * px + py * py)
            if (chord[j] or prev) and abs(d - r) > e and d > 0.0:
                done = False
                if not (chord[j] and prev):  # along the shadow edge that ends here
                    o = (j + 1) % m if prev else (j - 1 + m) % m
                    wx, wy = rel[o, 0], rel[o, 1]
                    gx, gy = px - wx, py - wy
                    aa = gx * gx + gy * gy
                    bb = wx * gx + wy * gy
                    cc = wx * wx + wy * wy - r * r
                    disc = bb * bb - aa * cc
                    if aa > 0.0 and disc >= 0.0:
                        sq = np.sqrt(disc)
                        s1, s2 = (-bb - sq) / aa, (-bb + sq) / aa
                        s = s1 if abs(s1 - 1.0) < abs(s2 - 1.0) else s2
                        q[j, 0], q[j, 1] = wx + s * gx, wy + s * gy
                        done = True
                if not done:
                    q[j, 0], q[j, 1] = px / d * r, py / d * r
            axis = abs(q[j, 0]) <= e or abs(q[j, 1]) <= e
            # Merge only inside one quadrant: this vertex and both neighbours on the same side of both axes.
            jp, jn = (j - 1 + m) % m, (j + 1) % m
            same = q[jp, 0] * px >= 0.0 and q[jp, 1] * py >= 0.0 and rel[jn, 0] * px >= 0.0 and rel[jn, 1] * py >= 0.0
            keep[j] = j == 0 or not (chord[j] and prev and not axis and same)
            n_keep += keep[j]
        if n_keep < 3:
            for j in range(m):
                keep[j] = True
        first = w
        for j in range(m):
            if keep[j]:
                out[w, 0], out[w, 1] = q[j, 0] + cx, q[j, 1] + cy
                if chord[j]:
                    arc[w, 0], arc[w, 1], arc[w, 2] = cx, cy, r
                w += 1
        out[w, 0], out[w, 1] = out[first, 0], out[first, 1]
        w += 1
        off[i + 1] = w
    return out[:w], off, arc[:w]
