"""Private: per-grid covered area by Green's theorem, compiled with numba.

``area(G ∩ (V1 ∪ … ∪ Vk))`` is the sum, over the oriented boundary pieces of the
result, of ``(x1 y2 - x2 y1) / 2``; no polygon is ever built. Each edge of the grid and
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


def flatten(geoms: np.ndarray, origin: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """Polygon rings as CSR arrays for :func:`covered_areas`, interiors on the left.

    Returns ``(ring_off, chunk_off, cedge, cbox, xy, bbox)`` as described there,
    coordinates shifted by ``-origin``. Shells run counter-clockwise and holes clockwise.
    Missing, empty and non-polygonal geometries get no rings.
    """
    n = len(geoms)
    geoms = np.where(shapely.is_missing(geoms), shapely.Polygon(), geoms)
    kind = shapely.get_type_id(geoms)
    live = ((kind == 3) | (kind == 6)) & ~shapely.is_empty(geoms)
    # Plain polygons (the views of most cameras, most grids): one ring each, read at once.
    simple = live & (kind == 3) & (shapely.get_num_interior_rings(geoms) == 0)
    s_idx = np.flatnonzero(simple)
    s_xy, s_ring = shapely.get_coordinates(geoms[s_idx], return_index=True)
    # The others ring by ring.
    parts, part_of = shapely.get_parts(geoms[live & ~simple], return_index=True)
    part_of = np.flatnonzero(live & ~simple)[part_of]
    keep = ~shapely.is_empty(parts)
    parts, part_of = parts[keep], part_of[keep]
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    c_xy, c_ring = shapely.get_coordinates(rings, return_index=True)
    # All rings, sorted by polygon (stable: a part's shell before its holes).
    ring_poly = np.concatenate([s_idx, part_of[ring_part]])
    ring_hole = np.concatenate([np.zeros(len(s_idx), bool), np.r_[False, ring_part[1:] == ring_part[:-1]]])
    ring_len = np.concatenate([np.bincount(s_ring, minlength=len(s_idx)), np.bincount(c_ring, minlength=len(rings))])
    src = np.concatenate([s_xy, c_xy])
    src_off = np.r_[0, np.cumsum(ring_len)]
    order = np.argsort(ring_poly, kind="stable")
    ring_len, ring_hole = ring_len[order], ring_hole[order]
    coord_off = np.r_[0, np.cumsum(ring_len)].astype(np.int64)
    take = np.repeat(src_off[:-1][order] - coord_off[:-1], ring_len) + np.arange(coord_off[-1])
    xy = np.ascontiguousarray(src[take] - np.asarray(origin, dtype=float))
    _orient(coord_off, ring_hole, xy)
    ring_off = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(ring_poly, minlength=n), out=ring_off[1:])
    bbox = shapely.bounds(geoms) - np.tile(np.asarray(origin, dtype=float), 2)
    bbox[~live] = (np.inf, np.inf, -np.inf, -np.inf)
    chunk_off, cedge, cbox = _chunks(coord_off, xy)
    return ring_off, chunk_off, cedge, cbox, xy, bbox


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _orient(coord_off, hole, xy):
    """Reverse, in place, the shells that run clockwise and the holes that run counter-clockwise."""
    for r in range(len(coord_off) - 1):
        c0, c1 = coord_off[r], coord_off[r + 1]
        twice = 0.0
        for c in range(c0, c1 - 1):
            twice += (xy[c, 0] - xy[c0, 0]) * (xy[c + 1, 1] - xy[c0, 1]) - (xy[c + 1, 0] - xy[c0, 0]) * (
                xy[c, 1] - xy[c0, 1]
            )
        if (twice < 0.0) != hole[r]:
            i, j = c0, c1 - 1
            while i < j:
                x, y = xy[i, 0], xy[i, 1]
                xy[i, 0], xy[i, 1] = xy[j, 0], xy[j, 1]
                xy[j, 0], xy[j, 1] = x, y
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


@numba.njit(cache=True, nogil=True, error_model="numpy")
def covered_areas(ring_off, chunk_off, cedge, cbox, xy, bbox, cand_off, cand, tol, near):
    """Covered area of each grid and area of each (grid, candidate view) pair.

    Polygons ``0 … n_grids - 1`` are the grids; grid ``g``'s candidate views are the
    polygons ``cand[cand_off[g]:cand_off[g + 1]]``. Polygon ``p`` owns rings
    ``ring_off[p]:ring_off[p + 1]``, ring ``r`` the chunks ``chunk_off[r]:chunk_off[r + 1]``,
    chunk ``h`` the edges starting at ``cedge[h, 0]:cedge[h, 1]`` of ``xy``, within the box
    ``cbox[h]``; ``bbox[p]`` is the polygon's box. A view edge is first cut by the grid
    alone (stage 0); only its stretches inside the grid are then cut by the other views
    (stage 1). A grid edge goes to stage 1 whole.

    Everything is one function on purpose: passing arrays to helper functions costs an
    atomic reference count per call, which here would take more time than the geometry.

    Returns ``(covered, pair_area, uncertain)``.
    """
    n = len(cand_off) - 1
    covered = np.zeros(n)
    pair_area = np.zeros(len(cand))
    uncertain = np.zeros(n, np.bool_)
    kmax = 1
    for g in range(n):
        kmax = max(kmax, cand_off[g + 1] - cand_off[g] + 1)
    polys = np.empty(kmax, np.int64)
    pa = np.zeros(kmax)
    hit = np.zeros(kmax, np.bool_)  # the polygon cuts the current stretch
    state = np.zeros(kmax, np.int64)  # its state along the stretch when it does not (-1: not known yet)
    ts = np.empty(_SPLITS)
    lo_in, hi_in = np.empty(_SPLITS), np.empty(_SPLITS)
    lo_out, hi_out = np.empty(_SPLITS), np.empty(_SPLITS)
    for g in range(n):
        k = cand_off[g + 1] - cand_off[g] + 1
        polys[0] = g
        for j in range(1, k):
            polys[j] = cand[cand_off[g] + j - 1]
            pa[j] = 0.0
        if ring_off[g] == ring_off[g + 1]:
            continue
        gx0, gy0, gx1, gy1 = bbox[g, 0] - tol, bbox[g, 1] - tol, bbox[g, 2] + tol, bbox[g, 3] + tol
        ox, oy = 0.5 * (bbox[g, 0] + bbox[g, 2]), 0.5 * (bbox[g, 1] + bbox[g, 3])
        acc = 0.0
        unsure = False
        for pi in range(k):
            p = polys[pi]
            if pi > 0 and (bbox[p, 0] > gx1 or bbox[p, 2] < gx0 or bbox[p, 1] > gy1 or bbox[p, 3] < gy0):
                continue
            for h in range(chunk_off[ring_off[p]], chunk_off[ring_off[p + 1]]):
                if pi > 0 and (cbox[h, 0] > gx1 or cbox[h, 2] < gx0 or cbox[h, 1] > gy1 or cbox[h, 3] < gy0):
                    continue
                for c in range(cedge[h, 0], cedge[h, 1]):
                    ax, ay = xy[c, 0], xy[c, 1]
                    bx, by = xy[c + 1, 0], xy[c + 1, 1]
                    if pi > 0 and (min(ax, bx) > gx1 or max(ax, bx) < gx0 or min(ay, by) > gy1 or max(ay, by) < gy0):
                        continue
                    dx, dy = bx - ax, by - ay
                    ll = dx * dx + dy * dy
                    length = np.sqrt(ll)
                    if length <= tol:
                        continue
                    lo_in[0], hi_in[0] = 0.0, 1.0
                    n_in = 1
                    for stage in range(0 if pi > 0 else 1, 2):
                        # Stage 0 cuts by the grid alone, stage 1 by the views but this one.
                        qa, qb = (0, 1) if stage == 0 else (1, k)
                        n_out = 0
                        for ii in range(n_in):
                            t_lo, t_hi = lo_in[ii], hi_in[ii]
                            # -- split points of the stretch: crossings and touching vertices
                            x0 = min(ax + t_lo * dx, ax + t_hi * dx) - tol
                            x1 = max(ax + t_lo * dx, ax + t_hi * dx) + tol
                            y0 = min(ay + t_lo * dy, ay + t_hi * dy) - tol
                            y1 = max(ay + t_lo * dy, ay + t_hi * dy) + tol
                            tmin, tmax = t_lo + tol / length, t_hi - tol / length
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
                                    continue
                                n0 = nt
                                for ch in range(chunk_off[ring_off[q]], chunk_off[ring_off[q + 1]]):
                                    if cbox[ch, 0] > x1 or cbox[ch, 2] < x0 or cbox[ch, 1] > y1 or cbox[ch, 3] < y0:
                                        continue
                                    for cq in range(cedge[ch, 0], cedge[ch, 1]):
                                        cx, cy = xy[cq, 0], xy[cq, 1]
                                        ex, ey = xy[cq + 1, 0], xy[cq + 1, 1]
                                        if min(cx, ex) > x1 or max(cx, ex) < x0 or min(cy, ey) > y1 or max(cy, ey) < y0:
                                            continue
                                        d1 = (dx * (cy - ay) - dy * (cx - ax)) / length
                                        d2 = (dx * (ey - ay) - dy * (ex - ax)) / length
                                        if abs(d1) <= tol:  # c lies on a -> b
                                            t = ((cx - ax) * dx + (cy - ay) * dy) / ll
                                            if tmin < t < tmax:
                                                if nt < _SPLITS:
                                                    ts[nt] = t
                                                nt += 1
                                        if abs(d2) <= tol:  # e lies on a -> b
                                            t = ((ex - ax) * dx + (ey - ay) * dy) / ll
                                            if tmin < t < tmax:
                                                if nt < _SPLITS:
                                                    ts[nt] = t
                                                nt += 1
                                        if (d1 > tol and d2 < -tol) or (d1 < -tol and d2 > tol):
                                            fx, fy = ex - cx, ey - cy
                                            lf = np.sqrt(fx * fx + fy * fy)
                                            d3 = (fx * (ay - cy) - fy * (ax - cx)) / lf
                                            d4 = (fx * (by - cy) - fy * (bx - cx)) / lf
                                            if (d3 > tol and d4 < -tol) or (d3 < -tol and d4 > tol):
                                                t = d3 / (d3 - d4)
                                                if tmin < t < tmax:
                                                    if nt < _SPLITS:
                                                        ts[nt] = t
                                                    nt += 1
                                hit[qi] = nt > n0
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
                            # -- decide each piece by its midpoint
                            for j in range(nt - 1):
                                t0, t1 = ts[j], ts[j + 1]
                                if (t1 - t0) * length <= tol:
                                    continue
                                tm = 0.5 * (t0 + t1)
                                mx, my = ax + tm * dx, ay + tm * dy
                                cr = 0.5 * (
                                    (ax + t0 * dx - ox) * (ay + t1 * dy - oy)
                                    - (ax + t1 * dx - ox) * (ay + t0 * dy - oy)
                                )
                                if stage == 1 and pi > 0:
                                    pa[pi] += cr
                                keep = stage == 1 and pi > 0  # a view piece bounds the union unless ...
                                seen = False  # a grid piece bounds it where some view holds its left side
                                for qi in range(qa, qb):
                                    if qi == pi:
                                        continue
                                    s = state[qi]
                                    if s < 0 or hit[qi]:
                                        # Where does m lie against polygon q?
                                        q = polys[qi]
                                        s = _OUT
                                        if not (
                                            mx < bbox[q, 0] - near
                                            or mx > bbox[q, 2] + near
                                            or my < bbox[q, 1] - near
                                            or my > bbox[q, 3] + near
                                        ):
                                            inside = False
                                            on = 0
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
                                                    # Even-odd ray towards +x.
                                                    if (cy > my) != (ey > my) and mx < cx + (my - cy) * (ex - cx) / (
                                                        ey - cy
                                                    ):
                                                        inside = not inside
                                                    if (
                                                        mx < min(cx, ex) - near
                                                        or mx > max(cx, ex) + near
                                                        or my < min(cy, ey) - near
                                                        or my > max(cy, ey) + near
                                                    ):
                                                        continue
                                                    fx, fy = ex - cx, ey - cy
                                                    lf = fx * fx + fy * fy
                                                    if lf == 0.0:
                                                        continue
                                                    u = min(max(((mx - cx) * fx + (my - cy) * fy) / lf, 0.0), 1.0)
                                                    qx, qy = cx + u * fx - mx, cy + u * fy - my
                                                    dist = np.sqrt(qx * qx + qy * qy)
                                                    if dist <= tol:
                                                        on = _ON_SAME if dx * fx + dy * fy > 0.0 else _ON_OPPOSITE
                                                        break
                                                    if dist <= near and abs(
                                                        dx * fy - dy * fx
                                                    ) <= _PARALLEL * length * np.sqrt(lf):
                                                        unsure = True  # nearly along an edge, but not on it
                                                if on:
                                                    break
                                            s = on if on else (_IN if inside else _OUT)
                                        if not hit[qi]:
                                            state[qi] = s
                                    if stage == 0:
                                        if s == _IN:  # inside the grid (on its boundary the grid's piece counts)
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
                        if stage == 0:
                            for ii in range(n_out):
                                lo_in[ii], hi_in[ii] = lo_out[ii], hi_out[ii]
                            n_in = n_out
        covered[g] = acc
        uncertain[g] = unsure
        for j in range(1, k):
            pair_area[cand_off[g] + j - 1] = pa[j]
    return covered, pair_area, uncertain
