"""Private: exact seen area per grid without GEOS overlays, on numpy arrays.

The seen area of a grid ``G`` under views ``V1 … Vk`` is, by inclusion–exclusion,

    area(G ∩ ∪ Vi) = Σ_S (-1)^(|S|+1) area(G ∩ ∩_{i∈S} Vi)

over the sets ``S`` of views whose common part inside ``G`` is not empty. With convex
views every term is one polygon obtained by Sutherland–Hodgman clipping, which we run
vectorised over all terms of a level at once: level 1 clips each view against each grid
it touches, level ``L + 1`` clips each level-``L`` piece by one more view of the same grid.
Pruning keeps it small: a set whose piece has no area has no superset with area, and a
candidate is formed only when the bounding boxes of its piece and the new view overlap.

Sutherland–Hodgman needs a convex clip polygon but accepts any simple subject (its output
may carry zero-width bridges, whose signed area is still exact): a view is clipped by a
convex grid, a non-convex grid by the (convex) view. A view with one reflex vertex (a
sector wider than 180°) is split into two convex halves, which share only an edge.

Grids with holes or several parts, views that are not convex and cannot be split so
(occluded views, annular sectors), and grids whose overlaps nest too deep for the
inclusion–exclusion budget are left to the caller (``slow``): it measures them with GEOS.
"""

from __future__ import annotations

import itertools

import numpy as np

import shapely

_MAX_LEVEL = 24
"""Deepest inclusion–exclusion level before a grid is handed to GEOS."""
_MAX_OVERLAPS_PER_PIECE = 2.0
"""Grids with more overlapping pairs of pieces than this per piece are measured by GEOS."""
_MAX_TERMS_PER_PIECE = 6
"""Most inclusion–exclusion terms per piece (levels 2 and up) before a grid goes to GEOS.

Both limits reflect measured costs: a numpy term costs about a fifth of a GEOS clip and
union of one piece, so deep overlaps (dense domes in large grids) are cheaper in GEOS."""
_CONVEX_TOL = 1e-9
"""Relative tolerance of the convexity test (collinear vertices, e.g. a 180° apex)."""


def _ring_arrays(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exterior rings of the single-ring polygons as padded counter-clockwise arrays.

    Returns ``(x, y, k, ok)``: ``ok`` marks the polygons without holes that have at least
    three distinct vertices; row ``j`` of ``x``/``y`` holds the ``k[j]`` distinct vertices of
    the ``j``-th of them, then copies of its first vertex (at least one: the closing one).
    """
    n = len(geoms)
    ok = np.zeros(n, dtype=bool)
    if n:
        ok = (shapely.get_type_id(geoms) == 3) & ~shapely.is_empty(geoms)
        ok[ok] = shapely.get_num_interior_rings(geoms[ok]) == 0
    idx = np.flatnonzero(ok)
    xy, ring = shapely.get_coordinates(shapely.get_exterior_ring(geoms[idx]), return_index=True)
    # Drop each vertex equal to the next one in its ring (this drops the closing vertex).
    nxt_same = np.r_[ring[1:] == ring[:-1], False]
    start = np.searchsorted(ring, np.arange(idx.size))
    nxt = np.where(nxt_same, np.arange(ring.size) + 1, start[ring] if ring.size else 0)
    keep = np.any(xy != xy[nxt], axis=1) & nxt_same
    xy, ring = xy[keep], ring[keep]
    k = np.bincount(ring, minlength=idx.size)
    good = k >= 3
    # Signed area (twice) per ring, to orient counter-clockwise and drop flat rings.
    start = np.cumsum(k) - k
    col = np.arange(ring.size) - start[ring]
    nx_i = np.where(col + 1 < k[ring], np.arange(ring.size) + 1, start[ring])
    area2 = np.bincount(ring, xy[:, 0] * xy[nx_i, 1] - xy[nx_i, 0] * xy[:, 1], minlength=idx.size)
    good &= area2 != 0
    ccw = area2 > 0
    col = np.where(ccw[ring], col, k[ring] - 1 - col)
    sel = good[ring]
    xy, ring, col = xy[sel], ring[sel], col[sel]
    rows = np.cumsum(good) - 1
    m = int(good.sum())
    kk = k[good]
    width = int(kk.max()) + 1 if m else 2
    x = np.empty((m, width))
    y = np.empty((m, width))
    r = rows[ring]
    first = col == 0
    x[:] = 0.0
    y[:] = 0.0
    x[r[first], :] = xy[first, 0][:, None]
    y[r[first], :] = xy[first, 1][:, None]
    x[r, col] = xy[:, 0]
    y[r, col] = xy[:, 1]
    ok[idx[~good]] = False
    return x, y, kk, ok


def _reflex(x: np.ndarray, y: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Mask of the reflex vertices of padded counter-clockwise rings."""
    m, w = x.shape
    col = np.arange(w)[None, :]
    real = col < k[:, None]
    prev = np.where(col == 0, k[:, None] - 1, col - 1)
    r = np.arange(m)[:, None]
    ex_in, ey_in = x - x[r, prev], y - y[r, prev]
    ex_out, ey_out = x[:, 1:] - x[:, :-1], y[:, 1:] - y[:, :-1]
    ex_out = np.concatenate([ex_out, np.zeros((m, 1))], axis=1)
    ey_out = np.concatenate([ey_out, np.zeros((m, 1))], axis=1)
    cross = ex_in * ey_out - ey_in * ex_out
    scale = np.hypot(ex_in, ey_in) * np.hypot(ex_out, ey_out)
    return real & (cross < -_CONVEX_TOL * scale)


def _take(
    x: np.ndarray, y: np.ndarray, rows: np.ndarray, cols: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rings made of the given columns of the given rows (``cols`` ``(m, w)``; ``k`` used)."""
    w = cols.shape[1]
    c = np.where(np.arange(w)[None, :] < k[:, None], cols, cols[:, :1])
    c = np.concatenate([c, c[:, :1]], axis=1)
    return x[rows[:, None], c], y[rows[:, None], c]


def convex_parts(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split polygons into convex counter-clockwise rings where that is easy.

    Returns ``(x, y, k, owner, ok)``: the convex parts as padded rings, the polygon each
    came from (sorted), and which polygons were split (a convex polygon gives one part, a
    polygon with one reflex vertex two, cut from that vertex to the opposite one).
    """
    x, y, k, ok = _ring_arrays(geoms)
    src = np.flatnonzero(ok)
    refl = _reflex(x, y, k)
    n_refl = refl.sum(axis=1)
    one = np.flatnonzero(n_refl == 1)
    rv = np.argmax(refl[one], axis=1)
    kk = k[one]
    h = kk // 2
    w = int(kk.max()) + 1 if one.size else 1
    j = np.arange(w)[None, :]
    c1 = (rv[:, None] + j) % kk[:, None]
    c2 = (rv[:, None] + h[:, None] + j) % kk[:, None]
    x1, y1 = _take(x, y, one, c1, h + 1)
    x2, y2 = _take(x, y, one, c2, kk - h + 1)
    k1, k2 = h + 1, kk - h + 1
    split_ok = (k1 >= 3) & (k2 >= 3)
    split_ok &= ~_reflex(x1, y1, k1).any(axis=1) & ~_reflex(x2, y2, k2).any(axis=1)
    conv = np.flatnonzero(n_refl == 0)
    good = one[split_ok]
    width = max(x.shape[1], x1.shape[1])
    parts_x = [_grow(x[conv], width), _grow(x1[split_ok], width), _grow(x2[split_ok], width)]
    parts_y = [_grow(y[conv], width), _grow(y1[split_ok], width), _grow(y2[split_ok], width)]
    pk = np.concatenate([k[conv], k1[split_ok], k2[split_ok]])
    owner = np.concatenate([src[conv], src[good], src[good]])
    order = np.argsort(owner, kind="stable")
    bad = np.ones(len(src), dtype=bool)
    bad[conv] = False
    bad[good] = False
    ok[src[bad]] = False
    px, py = np.concatenate(parts_x)[order], np.concatenate(parts_y)[order]
    return px, py, pk[order], owner[order], ok


def _halfplanes(x: np.ndarray, y: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edge half-planes ``a x + b y >= c`` of padded convex CCW rings (``k`` edges each).

    Padding edges give ``a = b = 0, c = -1``: always inside.
    """
    dx, dy = x[:, 1:] - x[:, :-1], y[:, 1:] - y[:, :-1]
    a, b = -dy, dx
    c = dx * y[:, :-1] - dy * x[:, :-1]
    pad = np.arange(dx.shape[1])[None, :] >= k[:, None]
    a[pad], b[pad], c[pad] = 0.0, 0.0, -1.0
    return a, b, c


def _cut(
    x: np.ndarray, y: np.ndarray, k: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Sutherland–Hodgman step: each row's ring cut by its half-plane ``a x + b y >= c``.

    Returns the new padded rings and their vertex counts (0: nothing left).
    """
    m, w = x.shape
    s = a[:, None] * x + b[:, None] * y - c[:, None]
    inside = s >= 0
    ev = inside[:, :-1] & (np.arange(w - 1)[None, :] < k[:, None])
    ex = inside[:, :-1] != inside[:, 1:]
    n_out = ev.astype(np.int8) + ex
    pos = np.cumsum(n_out, axis=1, dtype=np.int64)
    cnt = pos[:, -1].copy()
    pos -= n_out
    w2 = int(cnt.max()) + 1 if m else 2
    ox = np.empty((m, w2))
    oy = np.empty((m, w2))
    r, i = np.nonzero(ev)
    p = pos[r, i]
    ox[r, p] = x[r, i]
    oy[r, p] = y[r, i]
    r, i = np.nonzero(ex)
    s0, s1 = s[r, i], s[r, i + 1]
    t = s0 / (s0 - s1)
    p = pos[r, i] + ev[r, i]
    x0, y0 = x[r, i], y[r, i]
    ox[r, p] = x0 + t * (x[r, i + 1] - x0)
    oy[r, p] = y0 + t * (y[r, i + 1] - y0)
    pad = np.arange(w2)[None, :] >= cnt[:, None]
    ox = np.where(pad, ox[:, :1], ox)
    oy = np.where(pad, oy[:, :1], oy)
    empty = cnt == 0
    ox[empty] = 0.0
    oy[empty] = 0.0
    return ox, oy, cnt


def _grow(x: np.ndarray, w: int) -> np.ndarray:
    if x.shape[1] >= w:
        return x
    return np.concatenate([x, np.repeat(x[:, :1], w - x.shape[1], axis=1)], axis=1)


def clip_convex(
    x: np.ndarray,
    y: np.ndarray,
    k: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    n_edges: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip each row's ring (any simple ring) by its convex polygon's half-planes.

    Returns the clipped padded rings and their vertex counts (0: nothing left). Rows are
    processed in buckets of similar vertex count, so short rings are not padded to the
    longest one.
    """
    m = len(x)
    if m == 0:
        return x, y, k
    # Rows whose bounding box no half-plane cuts are left as they are.
    x0, x1, y0, y1 = x.min(1), x.max(1), y.min(1), y.max(1)
    touched = np.zeros(m, dtype=bool)
    for lo in range(0, m, _CHUNK):
        s = slice(lo, min(lo + _CHUNK, m))
        low = np.where(a[s] > 0, a[s] * x0[s, None], a[s] * x1[s, None])
        low += np.where(b[s] > 0, b[s] * y0[s, None], b[s] * y1[s, None])
        touched[s] = (low < c[s]).any(axis=1)
    touched &= k > 0
    idx = np.flatnonzero(touched)
    if idx.size == 0:
        return x, y, k
    bucket = np.searchsorted(_BUCKETS, k[idx])
    order = idx[np.argsort(bucket, kind="stable")]
    bounds = np.searchsorted(np.sort(bucket), np.arange(len(_BUCKETS) + 2))
    parts = []
    for lo, hi in itertools.pairwise(bounds):
        if hi == lo:
            continue
        rows = order[lo:hi]
        kr = k[rows]
        w = int(kr.max()) + 1
        parts.append((rows, *_clip_bucket(x[rows, :w], y[rows, :w], kr, a[rows], b[rows], c[rows], n_edges[rows])))
    w = max(x.shape[1], *(p[1].shape[1] for p in parts))
    rx, ry, rk = _grow(x, w), _grow(y, w), k.copy()
    if rx is x:
        rx, ry = x.copy(), y.copy()
    for rows, bx, by, bk in parts:
        rx[rows], ry[rows], rk[rows] = _grow(bx, w), _grow(by, w), bk
    return rx, ry, rk


_BUCKETS = np.array([6, 10, 14, 20, 28, 40])
"""Upper vertex counts of the row buckets in :func:`clip_convex`."""


def _clip_bucket(
    x: np.ndarray,
    y: np.ndarray,
    k: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    n_edges: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`clip_convex` on rows of similar width.

    Only the half-planes that cut a row's bounding box are applied to it; rows are sorted
    by how many there are, so that step ``j`` works on a leading slice of the rows.
    """
    m = len(x)
    out_x, out_y, out_k = [], [], []
    for lo in range(0, m, _CHUNK):
        hi = min(lo + _CHUNK, m)
        cx, cy, ck = x[lo:hi], y[lo:hi], k[lo:hi]
        ca, cb, cc = a[lo:hi], b[lo:hi], c[lo:hi]
        x0, x1, y0, y1 = cx.min(1), cx.max(1), cy.min(1), cy.max(1)
        # The lowest value of a x + b y over the box is at the corner picked by the signs.
        low = np.where(ca > 0, ca * x0[:, None], ca * x1[:, None]) + np.where(
            cb > 0, cb * y0[:, None], cb * y1[:, None]
        )
        cuts = low < cc  # padding edges (a = b = 0, c = -1) never cut
        n_cut = cuts.sum(axis=1)
        order = np.argsort(-n_cut, kind="stable")
        n_cut = n_cut[order]
        edge = np.argsort(~cuts[order], axis=1, kind="stable")  # the cutting edges first
        cx, cy, ck = cx[order], cy[order], ck[order]
        ca, cb, cc = ca[order], cb[order], cc[order]
        steps = int(n_cut[0]) if n_cut.size else 0
        w = cx.shape[1]
        cx, cy = _grow(cx, w + min(steps, 4)), _grow(cy, w + min(steps, 4))
        for j in range(steps):
            n_j = int(np.searchsorted(-n_cut, -j, side="left"))  # rows with more than j cuts
            r = np.arange(n_j)
            e = edge[:n_j, j]
            nx, ny, nk = _cut(cx[:n_j], cy[:n_j], ck[:n_j], ca[r, e], cb[r, e], cc[r, e])
            if nx.shape[1] > cx.shape[1]:
                cx, cy = _grow(cx, nx.shape[1]), _grow(cy, nx.shape[1])
            w = cx.shape[1]
            cx[:n_j], cy[:n_j], ck[:n_j] = _grow(nx, w), _grow(ny, w), nk
        back = np.empty_like(order)
        back[order] = np.arange(order.size)
        out_x.append(cx[back])
        out_y.append(cy[back])
        out_k.append(ck[back])
    w = max(v.shape[1] for v in out_x)
    return (
        np.concatenate([_grow(v, w) for v in out_x]),
        np.concatenate([_grow(v, w) for v in out_y]),
        np.concatenate(out_k),
    )


_CHUNK = 32768
"""Rows clipped together (bounds the temporary (rows, edges) arrays)."""


def ring_area(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Absolute shoelace area of each padded ring."""
    return np.abs(0.5 * np.sum(x[:, :-1] * y[:, 1:] - x[:, 1:] * y[:, :-1], axis=1))


def seen_area(
    grids: np.ndarray, views: np.ndarray, gi: np.ndarray, vi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seen area of each grid from the (grid, view) pairs that may intersect.

    Returns ``(covered_m2, pair_area, slow)``: the seen area per grid, the area of each
    pair's view inside its grid, and the grids this method leaves to GEOS (their entries
    in the other two are meaningless).
    """
    n = len(grids)
    covered = np.zeros(n)
    pair_area = np.zeros(gi.size)
    gx, gy, gk, g_ok = _ring_arrays(grids)
    px, py, pk, owner, v_ok = convex_parts(views)
    slow = ~g_ok
    slow[gi[~v_ok[vi]]] = True
    fast = ~slow[gi]
    if not fast.any():
        return covered, pair_area, slow
    origin = np.array([(gx.min() + gx.max()) / 2, (gy.min() + gy.max()) / 2])
    gx, gy, px, py = gx - origin[0], gy - origin[1], px - origin[0], py - origin[1]
    # Expand the fast pairs into (pair, view part) rows, grouped by grid.
    first_part = np.searchsorted(owner, np.arange(len(views)))
    n_parts = np.bincount(owner, minlength=len(views))
    pidx = np.flatnonzero(fast)
    reps = n_parts[vi[pidx]]
    row_pair = np.repeat(pidx, reps)
    row_part = np.repeat(first_part[vi[pidx]], reps) + (np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps))
    row_grid = gi[row_pair]
    order = np.lexsort((row_part, row_grid))
    row_pair, row_part, row_grid = row_pair[order], row_part[order], row_grid[order]

    grid_row = np.full(n, -1, dtype=np.int64)
    grid_row[np.flatnonzero(g_ok)] = np.arange(len(gx))
    # Grids where many views overlap one another (deep inclusion–exclusion) go to GEOS:
    # judged by the pairs of pieces whose boxes (view box within grid box) overlap.
    gr = grid_row[row_grid]
    bx0 = np.maximum(px[row_part].min(1), gx[gr].min(1))
    bx1 = np.minimum(px[row_part].max(1), gx[gr].max(1))
    by0 = np.maximum(py[row_part].min(1), gy[gr].min(1))
    by1 = np.minimum(py[row_part].max(1), gy[gr].max(1))
    end = np.searchsorted(row_grid, row_grid, side="right")
    reps = end - np.arange(row_grid.size) - 1
    i = np.repeat(np.arange(row_grid.size), reps)
    j = np.repeat(np.arange(row_grid.size) + 1, reps) + (np.arange(i.size) - np.repeat(np.cumsum(reps) - reps, reps))
    hit = (bx0[i] < bx1[j]) & (bx0[j] < bx1[i]) & (by0[i] < by1[j]) & (by0[j] < by1[i])
    n_pairs = np.bincount(row_grid[i[hit]], minlength=n)
    n_rows = np.bincount(row_grid, minlength=n)
    slow |= n_pairs > _MAX_OVERLAPS_PER_PIECE * n_rows
    keep = ~slow[row_grid]
    row_pair, row_part, row_grid = row_pair[keep], row_part[keep], row_grid[keep]
    budget = _MAX_TERMS_PER_PIECE * n_rows
    spent = np.zeros(n, dtype=np.int64)
    ga, gb, gc = _halfplanes(gx, gy, gk)
    pa, pb, pc = _halfplanes(px, py, pk)
    g_convex = np.asarray(~_reflex(gx, gy, gk).any(axis=1), dtype=bool)
    g_area = ring_area(gx, gy)

    # Level 1: each view part inside each grid (the convex one clips the other).
    m = row_pair.size
    gr = grid_row[row_grid]
    conv = g_convex[gr]
    x1, y1, k1 = np.zeros((m, 2)), np.zeros((m, 2)), np.zeros(m, dtype=np.int64)
    for use_grid, sel in ((True, np.flatnonzero(conv)), (False, np.flatnonzero(~conv))):
        if sel.size == 0:
            continue
        if use_grid:  # subject: the view part; clip: the convex grid
            q, h = row_part[sel], gr[sel]
            ox, oy, ok_ = clip_convex(px[q], py[q], pk[q], ga[h], gb[h], gc[h], gk[h])
        else:  # subject: the grid; clip: the convex view part
            q, h = gr[sel], row_part[sel]
            ox, oy, ok_ = clip_convex(gx[q], gy[q], gk[q], pa[h], pb[h], pc[h], pk[h])
        w = max(x1.shape[1], ox.shape[1])
        x1, y1 = _grow(x1, w), _grow(y1, w)
        x1[sel], y1[sel], k1[sel] = _grow(ox, w), _grow(oy, w), ok_
    a1 = ring_area(x1, y1)
    np.add.at(pair_area, row_pair, a1)
    live = a1 > 1e-12 * np.maximum(g_area[gr], 1.0)
    covered += np.bincount(row_grid[live], a1[live], minlength=n)

    # The level-1 pieces, by position; each grid's pieces are contiguous.
    pos1 = np.flatnonzero(live)
    p_grid, p_part = row_grid[pos1], row_part[pos1]
    cx, cy, ck = x1[pos1], y1[pos1], k1[pos1]
    bx0, bx1, by0, by1 = cx.min(1), cx.max(1), cy.min(1), cy.max(1)
    block_end = np.searchsorted(p_grid, p_grid, side="right")
    # The current level's terms: piece, grid, position of the last piece in the set.
    c_grid, c_last = p_grid, np.arange(pos1.size)
    cb = (bx0, bx1, by0, by1)
    sign = 1.0
    level = 1
    while c_last.size:
        level += 1
        sign = -sign
        reps = block_end[c_last] - c_last - 1
        src = np.repeat(np.arange(c_last.size), reps)
        if src.size == 0:
            break
        nxt = np.repeat(c_last + 1, reps) + (np.arange(src.size) - np.repeat(np.cumsum(reps) - reps, reps))
        sx0, sx1, sy0, sy1 = (v[src] for v in cb)
        hit = (sx0 < bx1[nxt]) & (bx0[nxt] < sx1) & (sy0 < by1[nxt]) & (by0[nxt] < sy1)
        src, nxt = src[hit], nxt[hit]
        if src.size == 0:
            break
        t_grid = c_grid[src]
        per_grid = np.bincount(t_grid, minlength=n)
        spent += per_grid
        bail = spent > budget
        if level > _MAX_LEVEL:
            bail |= per_grid > 0
        if bail.any():
            slow |= bail
            keep = ~bail[t_grid]
            src, nxt, t_grid = src[keep], nxt[keep], t_grid[keep]
        q = p_part[nxt]
        cx, cy, ck = clip_convex(cx[src], cy[src], ck[src], pa[q], pb[q], pc[q], pk[q])
        ak = ring_area(cx, cy)
        live = ak > 1e-12 * np.maximum(g_area[grid_row[t_grid]], 1.0)
        covered += sign * np.bincount(t_grid[live], ak[live], minlength=n)
        cx, cy, ck, c_grid, c_last = cx[live], cy[live], ck[live], t_grid[live], nxt[live]
        cb = (cx.min(1), cx.max(1), cy.min(1), cy.max(1))
    return covered, pair_area, slow
