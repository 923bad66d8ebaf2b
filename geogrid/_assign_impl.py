"""The point locator behind :mod:`geogrid.assignment`: an owner raster over the polygons.

A regular raster of square cells is laid over the polygons' bounding box. Each cell gets a code:

* ``>= 0``: every point of the cell (grown by a small margin ``eps``) lies in the interior of
  exactly that polygon, so a point falling there is answered by one array lookup;
* ``-1``: the cell lies outside every polygon;
* ``<= -2``: a *special* cell, ``-2 - code`` being its slot in a candidate table (CSR): a polygon
  boundary passes within ``eps`` of it, or several polygons claim its centre (overlaps). Points in
  special cells are tested exactly with prepared ``shapely.intersects_xy`` against the cell's
  candidates only, all at once (no Python loop).

Building it (all numpy, no Point objects):

1. boundary cells: every ring segment is walked strip by strip along its major axis; in each strip
   the rows between the segment's entry and exit (grown by ``eps``) are marked with the segment's
   polygon (a conservative superset of the cells the closed segment touches);
2. interior owners: a scan line through the centre of every raster row crosses the rings with the
   half-open rule ``(y1 <= yc) != (y2 <= yc)``; sorted per polygon and row, consecutive crossings
   pair up into spans, and a difference array counts, for every cell centre, how many polygons
   hold it and the sum of their ids;
3. candidates of a special cell: the polygons whose segments touch it plus the polygons whose
   spans hold its centre (so overlapping or enclosing polygons are never missed).

Correctness does not depend on the raster resolution, only speed does: a cell coded ``>= 0`` has
no boundary within ``eps`` of it, so rounding in the point-to-cell computation cannot mislead.
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
_MAX_CELLS = 1 << 23
_CELLS_PER_POLYGON = 1024
_MIN_CELLS = 1 << 12
_CHUNK = 1 << 20


def _ragged_arange(counts: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """For counts ``[2, 3]`` return owners ``[0, 0, 1, 1, 1]`` and offsets ``[0, 1, 0, 1, 2]``."""
    counts = counts.astype(_I64, copy=False)
    total = int(counts.sum())
    owner = np.repeat(np.arange(counts.size, dtype=_I64), counts)
    starts = np.cumsum(counts) - counts
    offset = np.arange(total, dtype=_I64) - starts[owner]
    return owner, offset


def _segments(polygons: npt.NDArray[np.object_]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Return every ring segment as rows ``(x1, y1, x2, y2)`` and the index of its polygon."""
    parts, part_idx = shapely.get_parts(polygons, return_index=True)
    rings, ring_idx = shapely.get_rings(parts, return_index=True)
    coords, coord_idx = shapely.get_coordinates(rings, return_index=True)
    same = coord_idx[:-1] == coord_idx[1:]
    seg = np.column_stack([coords[:-1][same], coords[1:][same]])
    poly = part_idx[ring_idx[coord_idx[:-1][same]]].astype(_I64)
    return seg, poly


@dataclass
class OwnerRaster:
    """The built locator: raster geometry, cell codes and the candidate table."""

    polygons: npt.NDArray[np.object_]
    x0: float
    y0: float
    size: float
    width: int
    height: int
    codes: npt.NDArray[np.int32]
    ptr: npt.NDArray[np.int64]
    candidates: npt.NDArray[np.int32]
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Memory held by the raster and the candidate table."""
        return int(self.codes.nbytes + self.ptr.nbytes + self.candidates.nbytes)

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
            out[sl] = self._locate_chunk(x[sl], y[sl])
        return out

    def _locate_chunk(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        inv = 1.0 / self.size
        with np.errstate(invalid="ignore"):
            fx = (x - self.x0) * inv
            fy = (y - self.y0) * inv
            ok = (fx >= 0) & (fx < self.width) & (fy >= 0) & (fy < self.height)
        cell = np.zeros(x.size, dtype=_I64)
        cell[ok] = fy[ok].astype(_I64) * self.width + fx[ok].astype(_I64)
        code = self.codes[cell].astype(_I64)
        code[~ok] = -1
        special = np.flatnonzero(code <= -2)
        if special.size:
            code[special] = self._exact(special, -2 - code[special], x, y)
        return code

    def _exact(
        self,
        points: npt.NDArray[np.int64],
        slots: npt.NDArray[np.int64],
        x: npt.NDArray[np.float64],
        y: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.int64]:
        """Test points in special cells against their candidates; keep the lowest index that holds each."""
        order = None
        if slots.size > 4096:
            # Visit cells in raster order (a 16-bit radix sort on coarse buckets): neighbouring
            # tests hit the same prepared polygons, which is several times faster than random order.
            n_slots = self.ptr.size - 1
            order = np.argsort((slots * (65535.0 / max(n_slots, 1))).astype(np.uint16), kind="stable")
            points, slots = points[order], slots[order]
        first = self.ptr[slots]
        counts = self.ptr[slots + 1] - first
        owner, offset = _ragged_arange(counts)
        cand = self.candidates[first[owner] + offset].astype(_I64)
        pts = points[owner]
        hit = shapely.intersects_xy(self.polygons[cand], x[pts], y[pts])
        n = self.polygons.size
        val = np.where(hit, cand, n)
        starts = np.cumsum(counts) - counts
        best = np.minimum.reduceat(val, starts)
        best[best == n] = -1
        if order is not None:
            out = np.empty_like(best)
            out[order] = best
            return out
        return best


def build_owner_raster(
    polygons: npt.NDArray[np.object_],
    *,
    max_cells: int = _MAX_CELLS,
    cells_per_polygon: int = _CELLS_PER_POLYGON,
) -> OwnerRaster:
    """Build the owner raster of ``polygons`` (Polygon/MultiPolygon; None and empty are skipped)."""
    polygons = np.asarray(polygons, dtype=object)
    n = polygons.size
    usable = ~(shapely.is_missing(polygons) | shapely.is_empty(polygons)) if n else np.zeros(0, bool)
    if not usable.any():
        return OwnerRaster(
            polygons, 0.0, 0.0, 1.0, 1, 1, np.full(1, -1, np.int32), np.zeros(1, _I64), np.zeros(0, np.int32)
        )
    shapely.prepare(polygons[usable])
    seg, seg_poly = _segments(polygons)
    minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(polygons[usable]))
    span_x, span_y = maxx - minx, maxy - miny
    n_cells = min(max(int(usable.sum()) * cells_per_polygon, _MIN_CELLS), max_cells)
    extent = max(span_x, span_y, 1e-300)
    size = math.sqrt(max(span_x * span_y, extent * extent / n_cells) / n_cells)
    size = max(size, extent / math.sqrt(max_cells) * 1.0001, 1e-300)
    # Margin: larger than any rounding of (x - x0) / size, far smaller than a cell.
    scale = max(abs(minx), abs(maxx), abs(miny), abs(maxy), 1.0)
    eps = max(size * 1e-7, 64 * float(np.spacing(scale)))
    x0, y0 = minx - size, miny - size
    width = math.ceil((maxx - x0) / size) + 2
    height = math.ceil((maxy - y0) / size) + 2

    b_cells, b_polys = _boundary_pairs(seg, seg_poly, x0, y0, size, width, height, eps)
    cnt, idsum, spans = _interior(seg, seg_poly, x0, y0, size, width, height)

    special = cnt >= 2
    special[b_cells] = True
    codes = np.where(cnt == 1, idsum - 1, -1).astype(np.int32)
    del idsum
    special_cells = np.flatnonzero(special)
    codes[special_cells] = (-2 - np.arange(special_cells.size)).astype(np.int32)

    # candidates: edge pairs + the polygons whose spans hold a special cell's centre
    row, c0, c1, sp_poly = spans
    n_before = np.cumsum(special, dtype=_I64) - special  # special cells before each cell
    lo = n_before[row * width + c0]
    hi = n_before[row * width + c1]
    del n_before
    owner, offset = _ragged_arange(hi - lo)
    s_cells = special_cells[lo[owner] + offset]
    s_polys = sp_poly[owner]
    slot = np.concatenate([-2 - codes[b_cells].astype(_I64), -2 - codes[s_cells].astype(_I64)])
    key = slot * n + np.concatenate([b_polys, s_polys])
    key.sort()
    if key.size:
        key = key[np.concatenate(([True], key[1:] != key[:-1]))]
    slots = key // n
    del special
    ptr = np.zeros(special_cells.size + 1, dtype=_I64)
    np.cumsum(np.bincount(slots, minlength=special_cells.size), out=ptr[1:])
    candidates = (key % n).astype(np.int32)
    stats = {
        "cells": float(width * height),
        "special_cells": float(special_cells.size),
        "candidates": float(candidates.size),
        "cell_size": size,
    }
    return OwnerRaster(polygons, x0, y0, size, width, height, codes, ptr, candidates, stats)


def _boundary_pairs(
    seg: npt.NDArray[np.float64],
    seg_poly: npt.NDArray[np.int64],
    x0: float,
    y0: float,
    size: float,
    width: int,
    height: int,
    eps: float,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Cells within ``eps`` of each segment (a superset), with the segment's polygon."""
    cells_out: list[npt.NDArray[np.int64]] = []
    polys_out: list[npt.NDArray[np.int64]] = []
    x1, y1, x2, y2 = seg.T
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
            polys_out.append(seg_poly[sel[k[owner2]]])
    if not cells_out:
        return np.zeros(0, _I64), np.zeros(0, _I64)
    return np.concatenate(cells_out), np.concatenate(polys_out)


def _interior(
    seg: npt.NDArray[np.float64],
    seg_poly: npt.NDArray[np.int64],
    x0: float,
    y0: float,
    size: float,
    width: int,
    height: int,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64], tuple[npt.NDArray[np.int64], ...]]:
    """Count the polygons holding each cell centre (scan lines, even-odd per polygon) and sum their ids."""
    yc = y0 + (np.arange(height) + 0.5) * size
    xc = x0 + (np.arange(width) + 0.5) * size
    x1, y1, x2, y2 = seg.T
    ymin, ymax = np.minimum(y1, y2), np.maximum(y1, y2)
    r_lo = np.searchsorted(yc, ymin, side="left")
    r_hi = np.searchsorted(yc, ymax, side="left")  # rows with ymin <= yc < ymax: the half-open rule
    owner, offset = _ragged_arange((r_hi - r_lo).astype(_I64))
    row = r_lo[owner] + offset
    t = (yc[row] - y1[owner]) / (y2[owner] - y1[owner])
    xs = x1[owner] + t * (x2[owner] - x1[owner])
    poly = seg_poly[owner]
    order = np.lexsort((xs, row, poly))
    row, xs, poly = row[order], xs[order], poly[order]
    # every closed ring crosses a scan line an even number of times: pair them up
    row, poly = row[0::2], poly[0::2]
    c0 = np.searchsorted(xc, xs[0::2], side="right")
    c1 = np.searchsorted(xc, xs[1::2], side="right")
    keep = c1 > c0
    row, poly, c0, c1 = row[keep], poly[keep], c0[keep].astype(_I64), c1[keep].astype(_I64)
    # Every span ends before the last column (the raster has a margin), so one flat cumulative sum
    # over the raster returns to zero at each row end; bincount is far faster than ufunc.at here.
    cells = height * width
    start, stop = row * width + c0, row * width + c1
    cnt = np.cumsum(np.bincount(start, minlength=cells) - np.bincount(stop, minlength=cells)).astype(np.int32)
    w = (poly + 1).astype(np.float64)
    idsum = np.cumsum(np.bincount(start, w, minlength=cells) - np.bincount(stop, w, minlength=cells))
    idsum = np.rint(idsum).astype(_I64)
    return cnt, idsum, (row.astype(_I64), c0, c1, poly)
