"""The point locator behind :mod:`geogrid.assignment`: an owner raster over the polygons.

A regular raster of square cells is laid over the polygons' bounding box. Each cell gets a code:

* ``>= 0``: every point of the cell (grown by a small margin ``eps``) lies in the interior of
  exactly that polygon, so a point falling there is answered by one array lookup;
* ``-1``: the cell lies outside every polygon;
* ``<= -2``: a *special* cell, ``-2 - code`` being its slot: a polygon boundary passes within
  ``eps`` of it, or several polygons hold its centre (overlaps).

A special cell keeps its candidates (the polygons holding its centre ``c`` and those with a
boundary segment in it, sorted, at most 64 used as bits), the set of candidates holding ``c`` as a
bit mask, and its distinct boundary segments (a segment shared by two polygons is stored once),
each with the mask of the candidates it bounds and the side of ``c``. A point ``p`` in the cell
then holds exactly the candidates ``mask(c) XOR (masks of the segments that the segment c-p
crosses)`` (the crossing-number rule, walked from ``c`` instead of from infinity); the answer is
the lowest set bit. All of it is vectorised numpy over the points of a chunk: one orientation test
per (point, segment), two more only for segments whose line separates ``p`` from ``c``.

Exactness: every orientation is decided with Shewchuk's static error bound for ``orient2d``
(``|det| > (3 + 16u) u (|l| + |r|)`` certifies the sign of the exact determinant). A point whose
decision is not certified (it lies on or within rounding of a segment's line, or the segment
``c-p`` passes through a vertex) goes to prepared ``shapely.intersects_xy`` against its cell's
candidates, which decides closed-set membership exactly; so does every point of a cell whose
centre lies within ``eps`` of a segment (where the scan-line classification of ``c`` could
round). Correctness does not depend on the raster resolution, only speed does.

Building it (all numpy, no Point objects):

1. ring segments, and their distinct undirected versions with the polygons each bounds;
2. boundary cells: every distinct segment is walked strip by strip along its major axis; in each
   strip the rows between the segment's entry and exit (grown by ``eps``) are marked (a
   conservative superset of the cells the closed segment touches);
3. interior owners: a scan line through the centre of every raster row crosses the rings with the
   half-open rule ``(y1 <= yc) != (y2 <= yc)``; sorted per polygon and row, consecutive crossings
   pair up into spans, and a difference array counts, for every cell centre, how many polygons
   hold it and the sum of their ids; the spans also give the polygons holding each special
   cell's centre.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

import shapely

__all__: list[str] = []

_I64 = np.int64
_I32 = np.int32
_U64 = np.uint64
_MAX_CELLS = 1 << 22
_MIN_CELLS = 1 << 12
_TARGET_SPECIAL = 0.02  # aim: this share of the raster's area in boundary cells (capped by _MAX_CELLS)
_CHUNK = 1 << 17  # points per chunk: temporaries stay in reused memory (fresh pages cost more than the math)
_MAX_BITS = 64
_U = 2.0**-53  # unit roundoff
_CCW_ERR = (3.0 + 16.0 * _U) * _U  # Shewchuk's ccwerrboundA


def _ragged_arange(counts: npt.NDArray[np.integer]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """For counts ``[2, 3]`` return owners ``[0, 0, 1, 1, 1]`` and offsets ``[0, 1, 0, 1, 2]``."""
    counts = counts.astype(_I64, copy=False)
    total = int(counts.sum())
    owner = np.repeat(np.arange(counts.size, dtype=_I64), counts)
    starts = np.cumsum(counts) - counts
    offset = np.arange(total, dtype=_I64) - starts[owner]
    return owner, offset


def _orient(
    ax: npt.NDArray[np.float64],
    ay: npt.NDArray[np.float64],
    bx: npt.NDArray[np.float64],
    by: npt.NDArray[np.float64],
    cx: npt.NDArray[np.float64],
    cy: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Orientation of ``c`` against the line ``a -> b`` (> 0: left) and whether its sign is certain."""
    left = (ax - cx) * (by - cy)
    right = (ay - cy) * (bx - cx)
    det = left - right
    np.abs(left, out=left)
    np.abs(right, out=right)
    left += right
    left *= _CCW_ERR
    return det, np.abs(det) > left


def _segments(polygons: npt.NDArray[np.object_]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Return every ring segment as rows ``(x1, y1, x2, y2)`` and the index of its polygon."""
    parts, part_idx = shapely.get_parts(polygons, return_index=True)
    rings, ring_idx = shapely.get_rings(parts, return_index=True)
    coords, coord_idx = shapely.get_coordinates(rings, return_index=True)
    same = coord_idx[:-1] == coord_idx[1:]
    seg = np.column_stack([coords[:-1][same], coords[1:][same]])
    poly = part_idx[ring_idx[coord_idx[:-1][same]]].astype(_I64)
    return seg, poly


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


def _unique_rank(keys: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Sorted distinct ``keys`` (non-negative) and each key's position among them (one sort, no search)."""
    if keys.size == 0:
        return keys.copy(), keys.copy()
    idx_bits = max(int(keys.size).bit_length(), 1)
    if int(keys.max()).bit_length() + idx_bits <= 63:  # pack key and position into one int64
        packed = (keys << idx_bits) | np.arange(keys.size, dtype=_I64)
        packed.sort()
        skeys = packed >> idx_bits
        origin = packed & ((1 << idx_bits) - 1)
        del packed
    else:
        origin = np.argsort(keys, kind="stable")
        skeys = keys[origin]
    new = np.empty(skeys.size, dtype=bool)
    new[0] = True
    np.not_equal(skeys[1:], skeys[:-1], out=new[1:])
    rank = np.empty(keys.size, dtype=_I64)
    rank[origin] = np.cumsum(new) - 1
    return skeys[new], rank


def _lowest(
    held: npt.NDArray[np.uint64], first: npt.NDArray[np.int64], candidates: npt.NDArray[np.int32]
) -> npt.NDArray[np.int32]:
    """Return the candidate of the lowest set bit of ``held`` (candidates start at ``first``); -1 if none."""
    low = held & (~held + _U64(1))
    bit = np.frexp(low.astype(np.float64))[1] - 1
    return np.where(held != 0, candidates[first + np.maximum(bit, 0)], -1).astype(_I32)


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
    special_cells: npt.NDArray[np.int64]  # slot -> cell
    cand_ptr: npt.NDArray[np.int64]  # slot -> its candidates (sorted polygon indices)
    candidates: npt.NDArray[np.int32]
    centre_mask: npt.NDArray[np.uint64]  # slot -> candidates holding the centre (bits)
    fallback: npt.NDArray[np.bool_]  # slot -> decide every point with shapely
    pair_ptr: npt.NDArray[np.int64]  # slot -> its distinct segments
    pair_seg: npt.NDArray[np.int32]
    pair_mask: npt.NDArray[np.uint64]  # candidates bounded by the segment (bits)
    pair_left: npt.NDArray[np.bool_]  # the centre lies left of the segment
    useg: npt.NDArray[np.float64]  # distinct segments (x1, y1, x2, y2)
    # slots split by one segment that runs right through the cell: the answer on each side
    single: npt.NDArray[np.bool_]
    same_side: npt.NDArray[np.int32]
    other_side: npt.NDArray[np.int32]
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Memory held by the raster and the tables of its special cells."""
        arrays = (
            self.codes,
            self.xc,
            self.yc,
            self.special_cells,
            self.cand_ptr,
            self.candidates,
            self.centre_mask,
            self.fallback,
            self.pair_ptr,
            self.pair_seg,
            self.pair_mask,
            self.pair_left,
            self.useg,
            self.single,
            self.same_side,
            self.other_side,
        )
        return int(sum(a.nbytes for a in arrays))

    def __getstate__(self) -> dict[str, object]:
        return self.__dict__.copy()

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
        inv = 1.0 / self.size
        # Clamp into the raster (its outermost ring of cells is always -1); fmax maps NaN to 0.
        fx = np.subtract(x, self.x0)
        fx *= inv
        np.fmax(fx, 0.0, out=fx)
        np.fmin(fx, self.width - 1, out=fx)
        fy = np.subtract(y, self.y0)
        fy *= inv
        np.fmax(fy, 0.0, out=fy)
        np.fmin(fy, self.height - 1, out=fy)
        cell = fy.astype(np.intp)
        cell *= self.width
        cell += fx.astype(np.intp)
        code = self.codes[cell]
        special = np.flatnonzero(code <= -2)
        if special.size:
            code[special] = self._special(special, -2 - code[special].astype(_I64), x, y)
        return code

    def _special(
        self,
        points: npt.NDArray[np.int64],
        slots: npt.NDArray[np.int64],
        x: npt.NDArray[np.float64],
        y: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.int32]:
        """Decide the points of special cells: crossing parity from the cell centre, else shapely."""
        single = self.single[slots]
        if not single.any():
            return self._general(points, slots, x, y)
        out = np.empty(points.size, dtype=_I32)
        one = np.flatnonzero(single)
        rest = np.flatnonzero(~single)
        if rest.size:
            out[rest] = self._general(points[rest], slots[rest], x, y)
        sl, pts = slots[one], points[one]
        q = self.pair_ptr[sl]
        s = self.pair_seg[q]
        d2, sure = _orient(self.useg[s, 0], self.useg[s, 1], self.useg[s, 2], self.useg[s, 3], x[pts], y[pts])
        out[one] = np.where((d2 > 0) == self.pair_left[q], self.same_side[sl], self.other_side[sl])
        redo = np.flatnonzero(~sure)
        if redo.size:
            out[one[redo]] = self._exact(pts[redo], sl[redo], x, y)
        return out

    def _general(
        self,
        points: npt.NDArray[np.int64],
        slots: npt.NDArray[np.int64],
        x: npt.NDArray[np.float64],
        y: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.int32]:
        """Any special cell: XOR the masks of the segments that the segment c-p crosses."""
        px, py = x[points], y[points]
        k = points.size
        first = self.pair_ptr[slots]
        count = self.pair_ptr[slots + 1] - first
        owner, offset = _ragged_arange(count)
        q = first[owner] + offset
        s = self.pair_seg[q]
        ax, ay, bx, by = (self.useg[s, i] for i in range(4))
        qx, qy = px[owner], py[owner]
        d2, sure = _orient(ax, ay, bx, by, qx, qy)
        # the segment's line separates p from c: does the segment c-p cross the segment itself?
        sep = np.flatnonzero(((d2 > 0) != self.pair_left[q]) & sure)
        cross = np.zeros(q.size, dtype=bool)
        if sep.size:
            cell = self.special_cells[slots[owner[sep]]]
            row = cell // self.width
            cx, cy = self.xc[cell - row * self.width], self.yc[row]
            sx, sy = qx[sep], qy[sep]
            d3, sure3 = _orient(cx, cy, sx, sy, ax[sep], ay[sep])
            d4, sure4 = _orient(cx, cy, sx, sy, bx[sep], by[sep])
            cross[sep] = (d3 > 0) != (d4 > 0)
            sure[sep] &= sure3 & sure4
        unsure = self.fallback[slots]
        unsure[owner[~sure]] = True
        flips = np.zeros(k, dtype=_U64)
        has = np.flatnonzero(count > 0)
        if has.size:
            masks = np.where(cross, self.pair_mask[q], _U64(0))
            flips[has] = np.bitwise_xor.reduceat(masks, (np.cumsum(count) - count)[has])
        out = _lowest(self.centre_mask[slots] ^ flips, self.cand_ptr[slots], self.candidates)
        redo = np.flatnonzero(unsure)
        if redo.size:
            out[redo] = self._exact(points[redo], slots[redo], x, y)
        return out

    def _exact(
        self,
        points: npt.NDArray[np.int64],
        slots: npt.NDArray[np.int64],
        x: npt.NDArray[np.float64],
        y: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.int32]:
        """Test points against all their cell's candidates with shapely; keep the lowest that holds each."""
        first = self.cand_ptr[slots]
        counts = self.cand_ptr[slots + 1] - first
        owner, offset = _ragged_arange(counts)
        cand = self.candidates[first[owner] + offset].astype(_I64)
        pts = points[owner]
        hit = shapely.intersects_xy(self.polygons[cand], x[pts], y[pts])
        n = self.polygons.size
        best = np.full(points.size, n, dtype=_I64)
        np.minimum.at(best, owner[hit], cand[hit])
        best[best == n] = -1
        return best.astype(_I32)


def _empty_raster(polygons: npt.NDArray[np.object_]) -> OwnerRaster:
    z64, z32 = np.zeros(0, _I64), np.zeros(0, _I32)
    return OwnerRaster(
        polygons, 0.0, 0.0, 1.0, 1, 1, np.full(1, -1, _I32), np.zeros(1), np.zeros(1), z64,
        np.zeros(1, _I64), z32, np.zeros(0, _U64), np.zeros(0, bool), np.zeros(1, _I64), z32,
        np.zeros(0, _U64), np.zeros(0, bool), np.zeros((0, 4)), np.zeros(0, bool), z32, z32,
    )  # fmt: skip


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
    shapely.prepare(polygons[usable])
    seg, seg_poly = _segments(polygons)
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

    b_cells, b_seg = _boundary_pairs(useg, x0, y0, size, width, height, eps)
    boundary = np.zeros(width * height, dtype=bool)
    boundary[b_cells] = True
    codes, special_cells, c_slot, c_poly = _paint(_spans(seg, seg_poly, xc, yc), boundary, width, height)
    del seg, seg_poly, boundary
    n_slots = special_cells.size

    # (slot, distinct segment) pairs sorted by slot; then the polygons each pair bounds
    nu = max(useg.shape[0], 1)
    pkey = (-2 - codes[b_cells].astype(_I64)) * nu + b_seg
    del b_cells, b_seg
    pkey.sort()
    p_slot = pkey // nu
    p_seg = pkey - p_slot * nu
    del pkey
    pair_ptr = np.zeros(n_slots + 1, dtype=_I64)
    np.cumsum(np.bincount(p_slot, minlength=n_slots), out=pair_ptr[1:])
    per_pair = u_ptr[p_seg + 1] - u_ptr[p_seg]
    t_pair, t_off = _ragged_arange(per_pair)
    t_key = p_slot[t_pair] * n + u_poly[u_ptr[p_seg][t_pair] + t_off]
    del t_off, t_pair

    # candidates of each slot: sorted and distinct; each key's rank within its slot gives its bit
    keys = np.concatenate([t_key, c_slot * n + c_poly])
    n_t = t_key.size
    del t_key, c_slot, c_poly
    ukeys, rank = _unique_rank(keys)
    k_slot = ukeys // n
    candidates = (ukeys - k_slot * n).astype(_I32)
    cand_ptr = np.zeros(n_slots + 1, dtype=_I64)
    np.cumsum(np.bincount(k_slot, minlength=n_slots), out=cand_ptr[1:])
    del ukeys
    fallback = np.diff(cand_ptr) > _MAX_BITS
    rank -= cand_ptr[keys // n]
    np.minimum(rank, _MAX_BITS - 1, out=rank)
    bit = np.left_shift(_U64(1), rank.astype(_U64))
    del rank
    centre_mask = np.zeros(n_slots, dtype=_U64)
    # a polygon's spans on a row are disjoint: each (slot, polygon) once, so adding sets the bits
    np.add.at(centre_mask, keys[n_t:] // n, bit[n_t:])
    del keys
    pair_mask = np.bitwise_xor.reduceat(bit[:n_t], np.cumsum(per_pair) - per_pair) if n_t else bit[:0]
    del bit

    # the side of each segment the centre lies on; a centre too near a segment's line sends its cell to shapely
    cell = special_cells[p_slot]
    r = cell // width
    cx, cy = xc[cell - r * width], yc[r]
    del cell, r
    ax, ay, bx, by = (useg[p_seg, i] for i in range(4))
    d1, sure = _orient(ax, ay, bx, by, cx, cy)
    sure &= np.abs(d1) > eps * u_len[p_seg]
    fallback[p_slot[~sure]] = True
    # Does the segment run right through the cell (grown by 2 eps)? Then, for p and c in the cell
    # on either side of its line, the segment c-p crosses it (Liang-Barsky, with slack in t).
    t_in = np.full(p_seg.size, -np.inf)
    t_out = np.full(p_seg.size, np.inf)
    for a, b, centre in ((ax, bx, cx), (ay, by, cy)):
        d = b - a
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (centre - (size / 2 + 2 * eps) - a) / d
            t2 = (centre + (size / 2 + 2 * eps) - a) / d
        flat = d == 0
        t1[flat], t2[flat] = -np.inf, np.inf
        np.maximum(t_in, np.minimum(t1, t2), out=t_in)
        np.minimum(t_out, np.maximum(t1, t2), out=t_out)
    through = (t_in >= 1e-9) & (t_out <= 1 - 1e-9)
    single = (np.diff(pair_ptr) == 1) & ~fallback
    single[p_slot[~through]] = False
    first = pair_ptr[:-1][single]
    same_side = _lowest(centre_mask[single], cand_ptr[:-1][single], candidates)
    other_side = _lowest(centre_mask[single] ^ pair_mask[first], cand_ptr[:-1][single], candidates)
    q_same = np.full(n_slots, -1, dtype=_I32)
    q_other = np.full(n_slots, -1, dtype=_I32)
    q_same[single], q_other[single] = same_side, other_side
    stats = {
        "cells": float(width * height),
        "special_cells": float(n_slots),
        "candidates": float(candidates.size),
        "segments_in_cells": float(p_seg.size),
        "fallback_cells": float(fallback.sum()),
        "single_segment_cells": float(single.sum()),
        "cell_size": size,
    }
    return OwnerRaster(
        polygons, x0, y0, size, width, height, codes, xc, yc, special_cells, cand_ptr, candidates,
        centre_mask, fallback, pair_ptr, p_seg.astype(_I32), pair_mask, d1 > 0, useg, single, q_same, q_other,
        stats,
    )  # fmt: skip


def _boundary_pairs(
    useg: npt.NDArray[np.float64],
    x0: float,
    y0: float,
    size: float,
    width: int,
    height: int,
    eps: float,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Cells within ``eps`` of each segment (a superset, each cell once per segment), with the segment."""
    cells_out: list[npt.NDArray[np.int64]] = []
    segs_out: list[npt.NDArray[np.int64]] = []
    x1, y1, x2, y2 = useg.T
    steep = np.abs(y2 - y1) > np.abs(x2 - x1)
    for is_steep in (False, True):
        sel = np.flatnonzero(steep == is_steep)
        if not sel.size:
            continue
        if is_steep:  # walk along y: u = y, v = x
            ua, va, ub, vb, u0, v0, n_u, n_v = y1[sel], x1[sel], y2[sel], x2[sel], y0, x0, height, width
        else:
            ua, va, ub, vb, u0, v0, n_u, n_v = x1[sel], y1[sel], x2[sel], y2[sel], x0, y0, width, height
        du = ub - ua
        slope = np.divide(vb - va, du, out=np.zeros_like(du), where=du != 0)
        umin, umax = np.minimum(ua, ub), np.maximum(ua, ub)
        c_lo = np.floor((umin - eps - u0) / size).astype(_I64)
        c_hi = np.floor((umax + eps - u0) / size).astype(_I64)
        counts = c_hi - c_lo + 1
        # process in batches of about 4M strips to bound memory
        csum = np.cumsum(counts)
        bounds = np.searchsorted(csum, np.arange(0, int(csum[-1]) + (1 << 22), 1 << 22), side="left")
        bounds = np.unique(np.concatenate(([0], np.minimum(bounds, sel.size), [sel.size])))
        for a, b in itertools.pairwise(bounds):
            if a == b:
                continue
            owner, offset = _ragged_arange(counts[a:b])
            k = owner + a
            c = c_lo[k] + offset
            s_lo = np.maximum(umin[k], u0 + c * size - eps)
            s_hi = np.minimum(umax[k], u0 + (c + 1) * size + eps)
            v_lo = va[k] + (s_lo - ua[k]) * slope[k]
            v_hi = va[k] + (s_hi - ua[k]) * slope[k]
            vmin = np.minimum(v_lo, v_hi) - eps
            vmax = np.maximum(v_lo, v_hi) + eps
            r_lo = np.floor((vmin - v0) / size).astype(_I64)
            r_hi = np.floor((vmax - v0) / size).astype(_I64)
            owner2, offset2 = _ragged_arange(r_hi - r_lo + 1)
            cc = np.clip(c[owner2], 0, n_u - 1)
            rr = np.clip(r_lo[owner2] + offset2, 0, n_v - 1)
            cell = cc * width + rr if is_steep else rr * width + cc
            cells_out.append(cell)
            segs_out.append(sel[k[owner2]])
    if not cells_out:
        return np.zeros(0, _I64), np.zeros(0, _I64)
    return np.concatenate(cells_out), np.concatenate(segs_out)


def _spans(
    seg: npt.NDArray[np.float64],
    seg_poly: npt.NDArray[np.int64],
    xc: npt.NDArray[np.float64],
    yc: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Scan-line spans ``(row, c0, c1, poly)``, sorted by row: centres ``c0 <= col < c1`` of ``row`` lie in ``poly``.

    A scan line through the centre of every raster row crosses the rings with the half-open rule
    ``(y1 <= yc) != (y2 <= yc)``; sorted per row and polygon, consecutive crossings pair up (even-odd).
    """
    x1, y1, x2, y2 = seg.T
    ymin, ymax = np.minimum(y1, y2), np.maximum(y1, y2)
    r_lo = np.searchsorted(yc, ymin, side="left")
    r_hi = np.searchsorted(yc, ymax, side="left")  # rows with ymin <= yc < ymax: the half-open rule
    owner, offset = _ragged_arange((r_hi - r_lo).astype(_I64))
    row = r_lo[owner] + offset
    t = (yc[row] - y1[owner]) / (y2[owner] - y1[owner])
    xs = x1[owner] + t * (x2[owner] - x1[owner])
    poly = seg_poly[owner]
    del owner, offset, t
    # order by (row, polygon), then by xs inside each group: most groups (convex rings) hold two
    # crossings, put in order by a min/max; only larger groups need a sort of their own
    n_poly = int(seg_poly.max()) + 1 if seg_poly.size else 1
    key = row * n_poly + poly
    order = np.argsort(key)
    key, xs = key[order], xs[order]
    del order, row, poly
    start = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    size = np.diff(np.append(start, key.size))
    big = np.flatnonzero(size > 2)
    if big.size:
        owner, offset = _ragged_arange(size[big])
        idx = start[big][owner] + offset
        xs[idx] = xs[idx[np.lexsort((xs[idx], key[idx]))]]
    lo, hi = np.minimum(xs[0::2], xs[1::2]), np.maximum(xs[0::2], xs[1::2])
    key = key[0::2]
    row, poly = key // n_poly, key % n_poly
    c0 = np.searchsorted(xc, lo, side="right")
    c1 = np.searchsorted(xc, hi, side="right")
    keep = c1 > c0
    return row[keep], c0[keep].astype(_I64), c1[keep].astype(_I64), poly[keep]


_ID_BITS = 40  # a span adds (1 << 40) + poly + 1 to its cells: the count above, the id sum below


def _paint(
    spans: tuple[npt.NDArray[np.int64], ...],
    boundary: npt.NDArray[np.bool_],
    width: int,
    height: int,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Cell codes, special cells, and (slot, polygon) for every polygon holding a special cell's centre.

    Works in blocks of rows so that no temporary spans the whole raster. Every span ends before
    its row's last column (the raster has a margin), so a difference array over a block of whole
    rows sums back to zero at each row end.
    """
    row, c0, c1, poly = spans
    codes = np.empty(height * width, dtype=_I32)
    rows_per_block = max(1, (1 << 18) // width)
    bounds = np.searchsorted(row, np.arange(0, height + rows_per_block, rows_per_block))
    enc = (poly + 1) + (1 << _ID_BITS)
    mask = (1 << _ID_BITS) - 1
    special_out: list[npt.NDArray[np.int64]] = []
    slot_out: list[npt.NDArray[np.int64]] = []
    poly_out: list[npt.NDArray[np.int64]] = []
    slot0 = 0
    for b, r0 in enumerate(range(0, height, rows_per_block)):
        s = r0 * width
        e = min(r0 + rows_per_block, height) * width
        i, j = bounds[b], bounds[b + 1]
        start = row[i:j] * width - s
        diff = np.zeros(e - s + 1, dtype=_I64)
        np.add.at(diff, start + c0[i:j], enc[i:j])
        np.add.at(diff, start + c1[i:j], -enc[i:j])
        acc = np.cumsum(diff[:-1])
        cnt = acc >> _ID_BITS
        code = np.where(cnt == 1, (acc & mask) - 1, -1).astype(_I32)
        special = cnt >= 2
        special |= boundary[s:e]
        local = np.flatnonzero(special)
        code[local] = -2 - np.arange(slot0, slot0 + local.size, dtype=_I32)
        codes[s:e] = code
        special_out.append(local + s)
        # the special cells inside each span hold its polygon at their centre
        before = np.cumsum(special, dtype=_I64)
        before -= special
        lo = before[start + c0[i:j]]
        hi = before[start + c1[i:j]]
        owner, offset = _ragged_arange(hi - lo)
        slot_out.append(lo[owner] + offset + slot0)
        poly_out.append(poly[i:j][owner])
        slot0 += local.size
    return codes, np.concatenate(special_out), np.concatenate(slot_out), np.concatenate(poly_out)
