"""The point locator behind :mod:`geogrid.assignment`: an owner raster over the polygons.

A regular raster of square cells is laid over the polygons' bounding box. Each cell gets a code:

* ``>= 0``: every point of the cell (grown by a small margin ``eps``) lies in the interior of
  exactly that polygon, so a point falling there is answered by one array lookup;
* ``-1``: the cell lies outside every polygon;
* ``<= -2``: a *special* cell, ``-2 - code`` being its slot: a polygon boundary passes within
  ``eps`` of it, or its centre is not held by exactly zero or one polygon (overlaps).

A special cell keeps, in one row of ``slot_info``, its kind, its candidates (the polygon holding
its centre ``c`` and those with a boundary segment in it, sorted, at most 64 used as bits), the
bit of the candidate holding ``c``, and its distinct boundary segments (a segment shared by two
polygons is stored once, its coordinates copied next to the cell's other segments and turned so
that ``c`` lies on its left), each with the mask of the candidates it bounds. A point ``p`` in the
cell then holds exactly the candidates ``mask(c) XOR (masks of the segments that the segment c-p
crosses)`` (the crossing-number rule, walked from ``c`` instead of from infinity); the answer is
the lowest set bit. A cell crossed right through by a single segment stores both answers and
needs one orientation test.

Exactness: every orientation is decided with Shewchuk's static error bound for ``orient2d``
(``|det| > (3 + 16u) u (|l| + |r|)`` certifies the sign of the exact determinant). A point whose
decision is not certified (it lies on or within rounding of a segment's line, or the segment
``c-p`` passes through a vertex) goes to prepared ``shapely.intersects_xy`` against the polygons
an STRtree returns for it, which decides closed-set membership exactly; so does every point of a
*fallback* cell: one whose centre lies within ``eps`` of a segment (where the centre's
classification could round), one held by several polygons, or one with more than 64 candidates.
Correctness does not depend on the raster resolution, only speed does.

Building it (numba kernels over flat arrays, no Point objects):

1. ring segments with a winding sign (shells counter-clockwise, holes clockwise), and their
   distinct undirected versions with the polygons each bounds;
2. boundary cells: every distinct segment is walked strip by strip along its major axis; in each
   strip the rows between the segment's entry and exit (grown by ``eps``) are marked (a
   conservative superset of the cells the closed segment touches);
3. interior owners: a scan line through the centre of every raster row crosses the rings with the
   half-open rule ``(y1 <= yc) != (y2 <= yc)``; each crossing adds its signed polygon code to the
   first cell centre right of it, and a prefix sum along the row gives every centre's winding
   count and the sum of the ids holding it (no sort);
4. the special cells' tables, one slot at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba
import numpy as np
import numpy.typing as npt

import shapely

__all__: list[str] = []

_I64 = np.int64
_I32 = np.int32
_U64 = np.uint64
_MAX_CELLS = 1 << 21
_MIN_CELLS = 1 << 12
_TARGET_SPECIAL = 0.02  # aim: this share of the raster's area in boundary cells (capped by _MAX_CELLS)
_CHUNK = 1 << 17  # points per chunk: temporaries stay in reused memory (fresh pages cost more than the math)
_MAX_BITS = 64
_U = 2.0**-53  # unit roundoff
_CCW_ERR = (3.0 + 16.0 * _U) * _U  # Shewchuk's ccwerrboundA
_ID_BITS = 40  # a crossing adds +-((1 << 40) + poly + 1) to the cells right of it: count above, id sum below
_UNSURE = -3  # the kernel's mark for a point shapely must decide

_GENERAL, _SINGLE, _FALLBACK = 0, 1, 2  # kinds of special cell
SLOT = np.dtype(
    [
        ("x1", "f8"), ("y1", "f8"), ("x2", "f8"), ("y2", "f8"),  # a single cell's segment, centre on the left
        ("cmask", "u8"),  # the candidate holding the centre (bit)
        ("q0", "i4"), ("q1", "i4"),  # the cell's segments in pair_xy / pair_mask
        ("cand", "i4"),  # its first candidate in candidates
        ("kind", "i4"),
        ("same", "i4"), ("other", "i4"),  # a single cell's answers on the centre's side and the other
    ],
    align=True,
)  # fmt: skip
"""One special cell: 64 bytes, one cache line (a point in a single cell reads nothing else)."""


def _aligned_slots(n: int) -> npt.NDArray[np.void]:
    """Return a zeroed array of ``n`` slots starting on a 64-byte boundary."""
    raw = np.zeros((n + 1) * SLOT.itemsize, dtype=np.uint8)
    skip = -raw.ctypes.data % 64
    return raw[skip : skip + n * SLOT.itemsize].view(SLOT)


@numba.njit(cache=True, nogil=True, inline="always")
def _orient1(ax: float, ay: float, bx: float, by: float, cx: float, cy: float) -> tuple[float, bool]:
    """Orientation of ``c`` against the line ``a -> b`` (> 0: left) and whether its sign is certain."""
    left = (ax - cx) * (by - cy)
    right = (ay - cy) * (bx - cx)
    det = left - right
    return det, abs(det) > _CCW_ERR * (abs(left) + abs(right))


@numba.njit(cache=True, nogil=True, inline="always")
def _lowest_bit(held):
    """Return the index of the lowest set bit of the uint64 ``held``, -1 if none is set."""
    if held == 0:
        return -1
    bit = 0
    while (held >> np.uint64(bit)) & np.uint64(1) == 0:
        bit += 1
    return bit


@numba.njit(cache=True, nogil=True, inline="always")
def _candidate(bit, buf):
    """Return ``buf[bit]``, -1 for no bit."""
    return -1 if bit < 0 else buf[bit]


@numba.njit(cache=True, nogil=True)
def _locate_kernel(x, y, x0, y0, inv, width, height, codes, xc, yc, slot_info, pair_xy, pair_mask, candidates, out):
    """Locate every point into ``out``; return how many were marked :data:`_UNSURE`.

    Per point: its cell's code answers it, or (a special cell) the segment c-p from the cell's
    centre is walked across the cell's segments, XOR-ing the masks of those it crosses; any
    orientation the static bound cannot certify marks the point for shapely.
    """
    n_unsure = 0
    # Two passes: first every point's cell code (independent loads the CPU overlaps), then the
    # points of special cells, whose record loads no longer wait on their code's.
    special = np.empty(x.size, dtype=np.int64)
    m = 0
    for i in range(x.size):
        fx = (x[i] - x0) * inv
        if not fx >= 0.0:  # also NaN: the corner cell, always empty
            fx = 0.0
        if fx > width - 1:
            fx = width - 1
        fy = (y[i] - y0) * inv
        if not fy >= 0.0:
            fy = 0.0
        if fy > height - 1:
            fy = height - 1
        code = codes[int(fy) * width + int(fx)]
        out[i] = code
        if code <= -2:
            special[m] = i
            m += 1
    for j in range(m):
        i = special[j]
        px = x[i]
        py = y[i]
        code = out[i]
        rec = slot_info[-2 - code]
        kind = rec.kind
        if kind == _SINGLE:
            det, sure = _orient1(rec.x1, rec.y1, rec.x2, rec.y2, px, py)
            if not sure:
                out[i] = _UNSURE
                n_unsure += 1
            elif det > 0:  # the centre's side
                out[i] = rec.same
            else:
                out[i] = rec.other
            continue
        if kind == _FALLBACK:
            out[i] = _UNSURE
            n_unsure += 1
            continue
        cx = xc[min(max(int((px - x0) * inv), 0), width - 1)]  # NaN points never reach here
        cy = yc[min(max(int((py - y0) * inv), 0), height - 1)]
        flips = np.uint64(0)
        unsure = False
        for q in range(rec.q0, rec.q1):
            ax, ay, bx, by = pair_xy[q, 0], pair_xy[q, 1], pair_xy[q, 2], pair_xy[q, 3]
            d2, sure = _orient1(ax, ay, bx, by, px, py)
            if not sure:
                unsure = True
                break
            if d2 > 0:
                continue  # p on the centre's side of the segment's line: c-p cannot cross it
            d3, sure3 = _orient1(cx, cy, px, py, ax, ay)
            d4, sure4 = _orient1(cx, cy, px, py, bx, by)
            if not (sure3 and sure4):
                unsure = True
                break
            if (d3 > 0) != (d4 > 0):
                flips ^= pair_mask[q]
        if unsure:
            out[i] = _UNSURE
            n_unsure += 1
            continue
        bit = _lowest_bit(rec.cmask ^ flips)
        out[i] = -1 if bit < 0 else candidates[rec.cand + bit]
    return n_unsure


@dataclass
class OwnerRaster:
    """The built locator: raster geometry, cell codes and the tables of the special cells."""

    polygons: npt.NDArray[np.object_]
    x0: float
    y0: float
    size: float
    width: int
    height: int
    codes: npt.NDArray[np.int32]
    xc: npt.NDArray[np.float64]  # cell-centre abscissae (exactly those the scan lines used)
    yc: npt.NDArray[np.float64]
    slot_info: npt.NDArray[np.void]  # slot -> its record (:data:`SLOT`)
    pair_xy: npt.NDArray[np.float64]  # the slots' segments, centre on the left, grouped by slot
    pair_mask: npt.NDArray[np.uint64]  # candidates bounded by the segment (bits)
    candidates: npt.NDArray[np.int32]  # each slot's sorted candidates from its record's ``cand``
    stats: dict[str, float] = field(default_factory=dict)
    _tree: shapely.STRtree | None = field(default=None, repr=False)

    @property
    def nbytes(self) -> int:
        """Memory held by the raster and the tables of its special cells."""
        arrays = (self.codes, self.xc, self.yc, self.slot_info, self.pair_xy, self.pair_mask, self.candidates)
        return int(sum(a.nbytes for a in arrays))

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_tree"] = None  # rebuilt on demand
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        shapely.prepare(self.polygons)  # prepared state does not survive pickling

    # -- lookup ----------------------------------------------------------------------
    def locate(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """Index of the polygon holding each point (lowest index on shared boundaries), -1 if none."""
        out = np.empty(x.size, dtype=_I64)
        for start in range(0, x.size, _CHUNK):
            sl = slice(start, start + _CHUNK)
            out[sl] = self.locate_chunk(x[sl], y[sl])
        return out

    def locate_chunk(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.int32]:
        """:meth:`locate` for one chunk (keep chunks small: ~1e5 points), as int32."""
        return self.locate_chunk_flagged(x, y)[0]

    def locate_chunk_flagged(
        self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """:meth:`locate_chunk`, and the positions of the points shapely decided.

        Every other point is certified to lie off every boundary segment (farther than rounding)
        and to be held by at most one polygon; a point on a boundary is always among the decided.
        """
        x = np.ascontiguousarray(x, dtype=np.float64)
        y = np.ascontiguousarray(y, dtype=np.float64)
        out = np.empty(x.size, dtype=_I32)
        unsure = _locate_kernel(
            x, y, self.x0, self.y0, 1.0 / self.size, self.width, self.height, self.codes, self.xc, self.yc,
            self.slot_info, self.pair_xy, self.pair_mask, self.candidates, out,
        )  # fmt: skip
        redo = np.flatnonzero(out == _UNSURE) if unsure else np.zeros(0, dtype=_I64)
        if redo.size:
            out[redo] = self._exact(x[redo], y[redo])
        return out, redo

    def _exact(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.int32]:
        """Test points against the polygons whose boxes hold them, with shapely; keep the lowest holder."""
        if self._tree is None:
            self._tree = shapely.STRtree(self.polygons)
        return lowest_holder(self._tree, self.polygons.size, x, y)


def lowest_holder(
    tree: shapely.STRtree, n: int, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> npt.NDArray[np.int32]:
    """Lowest position among the ``n`` polygons of ``tree`` whose closure holds each point; -1 if none.

    GEOS decides ``intersects`` of a point and a polygon with exact orientation tests.
    """
    pts, cand = tree.query(shapely.points(x, y), predicate="intersects")
    best = np.full(x.size, n, dtype=_I64)
    np.minimum.at(best, pts, cand)
    best[best == n] = -1
    return best.astype(_I32)


def _empty_raster(polygons: npt.NDArray[np.object_]) -> OwnerRaster:
    return OwnerRaster(
        polygons, 0.0, 0.0, 1.0, 1, 1, np.full(1, -1, _I32), np.zeros(1), np.zeros(1), _aligned_slots(0),
        np.zeros((0, 4)), np.zeros(0, _U64), np.zeros(0, _I32),
    )  # fmt: skip


# -- building ---------------------------------------------------------------------------------
Segs = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]
"""Ring segments ``(x1, y1, x2, y2)``, their polygon and winding sign, as :func:`_segments` gives them."""


def _segments(polygons: npt.NDArray[np.object_]) -> Segs:
    """Every ring segment as rows ``(x1, y1, x2, y2)``, its polygon, and its ring's winding sign.

    The sign is +1 for counter-clockwise shells and clockwise holes, -1 for the others: with it
    every polygon winds once around its interior points. Plain polygons (no holes, not in a
    multipolygon: most grids) are read with one ``get_coordinates``; only the others are taken apart.
    """
    types = shapely.get_type_id(polygons)
    plain = types == 3
    parts, part_poly = polygons[plain], np.flatnonzero(plain)
    other = np.flatnonzero(~plain & (types != -1))
    if other.size:
        sub, sub_idx = shapely.get_parts(polygons[other], return_index=True)
        keep = shapely.get_type_id(sub) == 3
        parts = np.concatenate([parts, sub[keep]])
        part_poly = np.concatenate([part_poly, other[sub_idx[keep]]])
    holed = shapely.get_num_interior_rings(parts) > 0
    xy, ring = shapely.get_coordinates(parts[~holed], return_index=True)  # one ring per part
    ring_poly, ring_shell = part_poly[~holed], np.ones(int((~holed).sum()), dtype=bool)
    if holed.any():
        rings, ring_part = shapely.get_rings(parts[holed], return_index=True)
        xy2, ring2 = shapely.get_coordinates(rings, return_index=True)
        xy, ring = np.concatenate([xy, xy2]), np.concatenate([ring, ring2 + ring_poly.size])
        ring_poly = np.concatenate([ring_poly, part_poly[holed][ring_part]])
        ring_shell = np.concatenate([ring_shell, np.r_[True, ring_part[1:] != ring_part[:-1]]])
    same = ring[:-1] == ring[1:]
    seg = np.column_stack([xy[:-1][same], xy[1:][same]])
    ring = ring[:-1][same]
    twice_area = np.bincount(ring, seg[:, 0] * seg[:, 3] - seg[:, 2] * seg[:, 1], minlength=ring_poly.size)
    sign = np.where((twice_area > 0) == ring_shell, 1, -1).astype(_I64)
    return seg, ring_poly[ring].astype(_I64), sign[ring]


def ring_segments(polygons: npt.NDArray[np.object_]) -> Segs:
    """Every ring segment of ``polygons``, its polygon and winding sign (see :func:`_segments`)."""
    return _segments(polygons)


def boundaries_add_up(
    finest: npt.NDArray[np.object_] | Segs,
    coarse: npt.NDArray[np.object_],
    anc: npt.NDArray[np.int64],
) -> bool:
    """Whether each coarse polygon's boundary is exactly the sum of its descendants' boundaries.

    Every ring segment, turned so that its polygon lies on its left (shells counter-clockwise,
    holes clockwise), counts +1 for the descendants (``anc``: finest position -> coarse position)
    and -1 for their coarse polygon; the test holds when every segment, compared bit for bit,
    sums to zero per coarse polygon: segments shared by two descendants cancel, and the rest are
    the coarse polygon's own. The winding number is linear in these segments, so for valid
    polygons the descendants' indicator functions then add up to their ancestor's off the
    segments: the descendants tile the ancestor exactly, and every coarse boundary segment is a
    finest one. A coarse polygon drawn with vertices its descendants lack (or the other way
    round) fails the test, even when the point sets agree. ``finest`` may be given as its
    :func:`_segments` already (several coarse levels against one finest level).
    """
    parts = []
    for polys, owner, w in ((finest, anc, 1), (coarse, None, -1)):
        s, s_poly, sign = polys if isinstance(polys, tuple) else _segments(polys)
        s = np.where((sign < 0)[:, None], s[:, [2, 3, 0, 1]], s)  # polygon on the left
        parts.append((s, s_poly if owner is None else owner[s_poly], np.full(len(s), w, dtype=_I64)))
    seg = np.concatenate([p[0] for p in parts]) + 0.0  # -0.0 -> 0.0
    group = np.concatenate([p[1] for p in parts])
    weight = np.concatenate([p[2] for p in parts])
    keep = (seg[:, 0] != seg[:, 2]) | (seg[:, 1] != seg[:, 3])
    seg, group, weight = seg[keep], group[keep], weight[keep]
    if (group < 0).any():
        return False
    swap = (seg[:, 0] > seg[:, 2]) | ((seg[:, 0] == seg[:, 2]) & (seg[:, 1] > seg[:, 3]))
    seg = np.where(swap[:, None], seg[:, [2, 3, 0, 1]], seg)
    weight = np.where(swap, -weight, weight)
    # Sort by a hash of (group, bits): equal keys become neighbours. Runs split wherever the key
    # changes, so a hash collision can only split a key's copies apart (a false "no": the level
    # is then located by geometry), never add up different keys.
    h = group.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for i in range(4):
        h ^= seg[:, i].copy().view(np.uint64)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(31)
    order = np.argsort(h, kind="stable")
    seg, group, weight = seg[order], group[order], weight[order]
    new = np.ones(len(seg), dtype=bool)
    new[1:] = (group[1:] != group[:-1]) | (seg[1:] != seg[:-1]).any(axis=1)
    return bool((np.add.reduceat(weight, np.flatnonzero(new)) == 0).all()) if len(seg) else True


def _distinct_segments(
    seg: npt.NDArray[np.float64], seg_poly: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Distinct undirected segments (zero-length ones dropped) and, as CSR, the polygons each bounds."""
    x1, y1, x2, y2 = seg.T
    keep = (x1 != x2) | (y1 != y2)
    seg, seg_poly = seg[keep], seg_poly[keep]
    x1, y1, x2, y2 = seg.T
    swap = (x1 > x2) | ((x1 == x2) & (y1 > y2))
    canon = np.where(swap[:, None], seg[:, [2, 3, 0, 1]], seg)
    canon += 0.0  # -0.0 -> 0.0, so equal coordinates have equal bits
    # Sort by a hash of the bits: equal segments become neighbours (a rare collision between
    # different segments only keeps copies apart, which is still correct, just slower).
    h = np.zeros(len(canon), dtype=np.uint64)
    for i in range(4):
        h ^= canon[:, i].view(np.uint64)
        h *= np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(29)
    order = np.argsort(h)
    canon, h = canon[order], h[order]
    new = np.ones(len(canon), dtype=bool)
    new[1:] = (h[1:] != h[:-1]) | (canon[1:] != canon[:-1]).any(axis=1)
    return np.ascontiguousarray(canon[new]), np.flatnonzero(np.append(new, True)), seg_poly[order]


@numba.njit(cache=True, nogil=True)
def _permute_csr(ptr, vals, order):
    """Rows ``order`` of the CSR table ``(ptr, vals)``, as a new CSR table."""
    new_ptr = np.zeros(order.size + 1, dtype=np.int64)
    for i in range(order.size):
        new_ptr[i + 1] = new_ptr[i] + ptr[order[i] + 1] - ptr[order[i]]
    new_vals = np.empty(new_ptr[-1], dtype=vals.dtype)
    for i in range(order.size):
        new_vals[new_ptr[i] : new_ptr[i + 1]] = vals[ptr[order[i]] : ptr[order[i] + 1]]
    return new_ptr, new_vals


@numba.njit(cache=True, nogil=True)
def _walk(useg, x0, y0, size, width, height, eps, cells, segs):
    """Cells within ``eps`` of each segment (a superset, each cell once per segment).

    With empty ``cells`` only counts them; otherwise fills ``cells`` and ``segs``. Each segment is
    walked strip by strip along its major axis; in each strip the rows between its entry and exit
    (grown by ``eps``) are taken.
    """
    fill = cells.size > 0
    k = 0
    for s in range(useg.shape[0]):
        x1, y1, x2, y2 = useg[s, 0], useg[s, 1], useg[s, 2], useg[s, 3]
        steep = abs(y2 - y1) > abs(x2 - x1)
        if steep:  # walk along y: u = y, v = x
            ua, va, ub, vb, u0, v0, n_u, n_v = y1, x1, y2, x2, y0, x0, height, width
        else:
            ua, va, ub, vb, u0, v0, n_u, n_v = x1, y1, x2, y2, x0, y0, width, height
        du = ub - ua
        slope = (vb - va) / du if du != 0 else 0.0
        umin, umax = min(ua, ub), max(ua, ub)
        c_lo = int(np.floor((umin - eps - u0) / size))
        c_hi = int(np.floor((umax + eps - u0) / size))
        for c in range(c_lo, c_hi + 1):
            s_lo = max(umin, u0 + c * size - eps)
            s_hi = min(umax, u0 + (c + 1) * size + eps)
            v_lo = va + (s_lo - ua) * slope
            v_hi = va + (s_hi - ua) * slope
            r_lo = int(np.floor((min(v_lo, v_hi) - eps - v0) / size))
            r_hi = int(np.floor((max(v_lo, v_hi) + eps - v0) / size))
            cc = min(max(c, 0), n_u - 1)
            for r in range(r_lo, r_hi + 1):
                if fill:
                    rr = min(max(r, 0), n_v - 1)
                    cells[k] = cc * width + rr if steep else rr * width + cc
                    segs[k] = s
                k += 1
    return k


@numba.njit(cache=True, nogil=True)
def _winding(seg, seg_poly, seg_sign, xc, yc, width, height):
    """Per cell centre: (number of polygons winding around it << 40) + (sum of their ids + 1).

    A scan line through every row centre crosses the rings by the half-open rule; each crossing
    adds its signed code to the first centre right of it, and a prefix sum along the row
    accumulates the codes of the crossings left of each centre.
    """
    acc = np.zeros(width * height, dtype=np.int64)
    y_first = yc[0]
    x_first = xc[0]
    step_y = yc[1] - yc[0] if height > 1 else 1.0
    step_x = xc[1] - xc[0] if width > 1 else 1.0
    for s in range(seg.shape[0]):
        x1, y1, x2, y2 = seg[s, 0], seg[s, 1], seg[s, 2], seg[s, 3]
        if y1 == y2:
            continue
        ymin, ymax = min(y1, y2), max(y1, y2)
        # rows with ymin <= yc < ymax
        r = max(int(np.floor((ymin - y_first) / step_y)), 0)
        while r > 0 and yc[r - 1] >= ymin:
            r -= 1
        while r < height and yc[r] < ymin:
            r += 1
        code = ((np.int64(1) << _ID_BITS) + seg_poly[s] + 1) * (seg_sign[s] if y2 < y1 else -seg_sign[s])
        while r < height and yc[r] < ymax:
            xs = x1 + (yc[r] - y1) / (y2 - y1) * (x2 - x1)
            c = min(max(int(np.floor((xs - x_first) / step_x)) + 1, 0), width)  # first centre > xs
            while c > 0 and xc[c - 1] > xs:
                c -= 1
            while c < width and xc[c] <= xs:
                c += 1
            if c < width:
                acc[r * width + c] += code
            r += 1
    for r in range(height):
        run = np.int64(0)
        for c in range(r * width, (r + 1) * width):
            run += acc[c]
            acc[c] = run
    return acc


@numba.njit(cache=True, nogil=True)
def _paint(acc, boundary_cells, n_poly):
    """Cell codes, the cell of each slot, and the polygon holding each slot's centre (-1 none, -2 unknown)."""
    n = acc.size
    boundary = np.zeros(n, dtype=np.bool_)
    for c in boundary_cells:
        boundary[c] = True
    codes = np.empty(n, dtype=np.int32)
    slot_cell = np.empty(n, dtype=np.int64)
    slot_centre = np.empty(n, dtype=np.int64)
    one = np.int64(1) << _ID_BITS
    k = 0
    for c in range(n):
        a = acc[c]
        centre = -2
        if a == 0:
            centre = -1
        elif one < a <= one + n_poly:  # exactly one polygon
            centre = a - one - 1
        if centre != -2 and not boundary[c]:
            codes[c] = centre
            continue
        codes[c] = -2 - k
        slot_cell[k] = c
        slot_centre[k] = centre
        k += 1
    return codes, slot_cell[:k].copy(), slot_centre[:k].copy()


@numba.njit(cache=True, nogil=True)
def _tables(slots, codes, slot_cell, slot_centre, cells, segs, useg, u_ptr, u_poly, xc, yc, width, size, eps):
    """Fill ``slots`` (the special cells' records); return ``pair_xy``, ``pair_mask``, ``candidates``."""
    n_slots = slot_cell.size
    n_pairs = cells.size
    # group the (cell, segment) pairs by slot: a counting sort
    count = np.zeros(n_slots + 1, dtype=np.int64)
    for i in range(n_pairs):
        count[-2 - codes[cells[i]] + 1] += 1
    for s in range(n_slots):
        count[s + 1] += count[s]
    cursor = count[:-1].copy()
    p_seg = np.empty(n_pairs, dtype=np.int64)
    for i in range(n_pairs):
        s = -2 - codes[cells[i]]
        p_seg[cursor[s]] = segs[i]
        cursor[s] += 1
    info = slots
    pair_xy = np.empty((n_pairs, 4), dtype=np.float64)
    pair_mask = np.zeros(n_pairs, dtype=np.uint64)
    cand_total = 0
    for s in range(n_slots):
        cand_total += count[s + 1] - count[s] + 1
    candidates = np.empty(max(cand_total, 1), dtype=np.int32)
    buf = np.empty(_MAX_BITS + 1, dtype=np.int64)
    one = np.uint64(1)
    k_cand = 0
    n_fallback = 0
    n_single = 0
    for s in range(n_slots):
        q0, q1 = count[s], count[s + 1]
        cell = slot_cell[s]
        row = cell // width
        cx, cy = xc[cell - row * width], yc[row]
        rec = info[s]
        rec.q0 = q0
        rec.q1 = q1
        rec.same = -1
        rec.other = -1
        centre = slot_centre[s]
        kind = _GENERAL if centre != -2 else _FALLBACK
        # candidates: the centre's polygon and every polygon bounded by a segment of the cell
        m = 0
        if centre >= 0:
            buf[0] = centre
            m = 1
        for q in range(q0, q1):
            if kind == _FALLBACK:
                break
            sg = p_seg[q]
            for t in range(u_ptr[sg], u_ptr[sg + 1]):
                p = u_poly[t]
                j = m
                dup = False
                for jj in range(m):
                    if buf[jj] == p:
                        dup = True
                        break
                if dup:
                    continue
                if m == _MAX_BITS:
                    kind = _FALLBACK
                    break
                while j > 0 and buf[j - 1] > p:  # insertion sort
                    buf[j] = buf[j - 1]
                    j -= 1
                buf[j] = p
                m += 1
        # the segments, turned so that the centre lies on their left; a centre near a line: fallback
        for q in range(q0, q1):
            sg = p_seg[q]
            ax, ay, bx, by = useg[sg, 0], useg[sg, 1], useg[sg, 2], useg[sg, 3]
            d1, sure = _orient1(ax, ay, bx, by, cx, cy)
            if not sure or abs(d1) <= eps * math.hypot(bx - ax, by - ay):
                kind = _FALLBACK
            if d1 < 0:
                ax, ay, bx, by = bx, by, ax, ay
            pair_xy[q, 0], pair_xy[q, 1], pair_xy[q, 2], pair_xy[q, 3] = ax, ay, bx, by
            if kind != _FALLBACK:
                mask = np.uint64(0)
                for t in range(u_ptr[sg], u_ptr[sg + 1]):
                    p = u_poly[t]
                    for jj in range(m):
                        if buf[jj] == p:
                            mask ^= one << np.uint64(jj)
                            break
                pair_mask[q] = mask
        rec.kind = kind
        if kind == _FALLBACK:
            n_fallback += 1
            continue
        cmask = np.uint64(0)
        if centre >= 0:
            for jj in range(m):
                if buf[jj] == centre:
                    cmask = one << np.uint64(jj)
        rec.cmask = cmask
        rec.cand = k_cand
        for jj in range(m):
            candidates[k_cand + jj] = buf[jj]
        k_cand += m
        if q1 - q0 == 1:
            # Does the segment run right through the cell (grown by 2 eps)? Then, for p and c in the
            # cell on either side of its line, the segment c-p crosses it (Liang-Barsky, slack in t).
            ax, ay, bx, by = pair_xy[q0, 0], pair_xy[q0, 1], pair_xy[q0, 2], pair_xy[q0, 3]
            t_in, t_out = -np.inf, np.inf
            half = size / 2 + 2 * eps
            for a, b, mid in ((ax, bx, cx), (ay, by, cy)):
                d = b - a
                if d != 0:
                    t1 = (mid - half - a) / d
                    t2 = (mid + half - a) / d
                    t_in = max(t_in, min(t1, t2))
                    t_out = min(t_out, max(t1, t2))
            if t_in >= 1e-9 and t_out <= 1 - 1e-9:
                rec.kind = _SINGLE
                rec.x1, rec.y1, rec.x2, rec.y2 = ax, ay, bx, by
                n_single += 1
                rec.same = _candidate(_lowest_bit(cmask), buf)
                rec.other = _candidate(_lowest_bit(cmask ^ pair_mask[q0]), buf)
    return pair_xy, pair_mask, candidates[: max(k_cand, 1)].copy(), n_fallback, n_single


def build_owner_raster(
    polygons: npt.NDArray[np.object_],
    *,
    max_cells: int = _MAX_CELLS,
    target_special: float = _TARGET_SPECIAL,
) -> OwnerRaster:
    """Build the owner raster of ``polygons`` (Polygon/MultiPolygon; None and empty are skipped)."""
    polygons = np.asarray(polygons, dtype=object)
    n = polygons.size
    usable = ~(shapely.is_missing(polygons) | shapely.is_empty(polygons)) if n else np.zeros(0, bool)
    if not usable.any():
        return _empty_raster(polygons)
    seg, seg_poly, seg_sign = _segments(polygons)
    useg, u_ptr, u_poly = _distinct_segments(seg, seg_poly)
    u_len = np.hypot(useg[:, 2] - useg[:, 0], useg[:, 3] - useg[:, 1])
    minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(polygons[usable]))
    span_x, span_y = maxx - minx, maxy - miny
    extent = max(span_x, span_y, 1e-300)
    # Boundary cells of side h cover about (4/pi) * length * h of the area: pick h for the target share.
    area = max(span_x * span_y, extent * extent * 1e-6)
    h_target = target_special * area / max(4.0 / math.pi * float(u_len.sum()), 1e-300)
    n_cells = int(min(max(area / (h_target * h_target), _MIN_CELLS), max_cells))
    size = math.sqrt(max(span_x * span_y, extent * extent / n_cells) / n_cells)
    size = max(size, extent / math.sqrt(max_cells) * 1.0001, 1e-300)
    # Margin: larger than any rounding of (x - x0) / size or of a scan-line crossing, far below a cell.
    scale = max(abs(minx), abs(maxx), abs(miny), abs(maxy), 1.0)
    eps = max(size * 1e-7, 64 * float(np.spacing(scale)))
    # two empty cells on every side: the outermost ring is never within eps of a segment
    x0, y0 = minx - 2 * size, miny - 2 * size
    width = math.ceil((maxx - x0) / size) + 3
    height = math.ceil((maxy - y0) / size) + 3
    xc: npt.NDArray[np.float64] = x0 + (np.arange(width, dtype=np.float64) + 0.5) * size
    yc: npt.NDArray[np.float64] = y0 + (np.arange(height, dtype=np.float64) + 0.5) * size
    # distinct segments in raster order of their midpoints: the walks and tables below then read
    # and write memory close to what they touched last
    order = np.argsort(
        ((useg[:, 1] + useg[:, 3]) * 0.5 - y0) // size * width + ((useg[:, 0] + useg[:, 2]) * 0.5 - x0) // size
    )
    u_ptr, u_poly = _permute_csr(u_ptr, u_poly, order)
    useg = useg[order]

    none = np.zeros(0, _I64)
    n_pairs = _walk(useg, x0, y0, size, width, height, eps, none, none)
    cells, segs = np.empty(n_pairs, _I64), np.empty(n_pairs, _I64)
    _walk(useg, x0, y0, size, width, height, eps, cells, segs)
    acc = _winding(seg, seg_poly, seg_sign, xc, yc, width, height)
    del seg, seg_poly, seg_sign
    codes, slot_cell, slot_centre = _paint(acc, cells, n)
    del acc
    info = _aligned_slots(slot_cell.size)
    pair_xy, pair_mask, candidates, n_fallback, n_single = _tables(
        info, codes, slot_cell, slot_centre, cells, segs, useg, u_ptr, u_poly, xc, yc, width, size, eps
    )
    stats = {
        "cells": float(width * height),
        "special_cells": float(slot_cell.size),
        "candidates": float(candidates.size),
        "segments_in_cells": float(n_pairs),
        "fallback_cells": float(n_fallback),
        "single_segment_cells": float(n_single),
        "cell_size": size,
    }
    return OwnerRaster(
        polygons, x0, y0, size, width, height, codes, xc, yc, info, pair_xy, pair_mask, candidates, stats
    )
