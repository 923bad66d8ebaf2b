"""Private core of :mod:`geogrid.hierarchy`: the checks on plain arrays.

Topology is computed in a *local affine frame*: the input's own coordinates, shifted
to the data's centre and scaled to metres (for lon/lat: metres per degree at the
centre). An affine map keeps straight edges straight, so grids that nest exactly in
the input's coordinates still nest exactly here. Projecting vertices into a
transverse Mercator would not: a parallel between two district corners bends by
~5 cm over 2 km, enough to make an exactly nested street layer look like it leaks.
Every reported area and length is then measured in the explicit metric CRS.

Linear-ish plan per level (n cells):

- ``shapely.coverage_invalid_edges(gap_width)`` (GEOS, linear) gives the
  ``edge_mismatch`` lines and the *dirty* cells. A cell with no invalid edge overlaps
  nothing, so only pairs with a dirty cell are intersected for ``overlap``.
- The union of a level is ``coverage_union_all`` of the clean cells (a valid coverage)
  plus ``union_all`` of the few dirty ones; ``gap`` = jurisdiction - union - exempt.
- ``outside_parent``: prepared ``covers(parent, child)``; differences only for failures.
- ``parent_not_tiled``: a parent whose children are clean, inside it and whose areas
  sum to its area is tiled; differences only for the others.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

import shapely
from pyproj import CRS, Transformer
from shapely.errors import GEOSException

from layers.errors import format_ids

__all__: list[str] = []

KINDS = ("invalid", "overlap", "gap", "edge_mismatch", "outside_parent", "parent_not_tiled", "hierarchy")
"""Finding kinds, in the order findings are sorted."""

_POLYGON, _MULTIPOLYGON, _COLLECTION = 3, 6, 7
_ON_OUTLINE_M = 1e-6
"""A segment within this (local metres) of the jurisdiction's boundary at both ends and its middle lies on it."""
_REASON_POINT = re.compile(r"\[\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)\s*\]")

Progress = Callable[[str], None]
_HASH_SEED, _HASH_MUL, _HASH_SHIFT = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(31)


# -- coordinates ------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _transformer(src: str, dst: str) -> Transformer:
    """Return a cached Transformer between two CRSs given as WKT (building one costs ~0.05-0.1 s)."""
    return Transformer.from_crs(CRS.from_wkt(src), CRS.from_wkt(dst), always_xy=True)


@dataclass
class Frame:
    """The local affine frame (topology) and the metric CRS (measurement) of one input."""

    crs: CRS
    metric: CRS
    origin: tuple[float, float]
    scale: tuple[float, float]
    _to_metric: Transformer = field(repr=False)
    _to_wgs84: Transformer | None = field(repr=False)

    @classmethod
    def build(cls, crs: CRS, bounds: np.ndarray, metric: CRS | None, choose: Callable[[float, float], CRS]) -> Frame:
        """Frame centred on ``bounds`` (minx, miny, maxx, maxy in ``crs``)."""
        x0, y0 = (bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2
        wgs = CRS.from_epsg(4326)
        same_as_wgs = crs.equals(wgs, ignore_axis_order=True) or crs.equals(CRS.from_epsg(4490), ignore_axis_order=True)
        to_wgs = None if same_as_wgs else _transformer(crs.to_wkt(), wgs.to_wkt())
        lon, lat = (x0, y0) if to_wgs is None else to_wgs.transform(x0, y0)
        if metric is None:
            metric = choose(float(lon), float(lat))
        if crs.is_geographic:
            a, f = 6378137.0, 1 / 298.257223563
            e2 = f * (2 - f)
            phi = math.radians(float(y0))
            w = 1 - e2 * math.sin(phi) ** 2
            kx = a / math.sqrt(w) * math.cos(phi) * math.pi / 180
            ky = a * (1 - e2) / w**1.5 * math.pi / 180
        else:
            kx = ky = float(crs.axis_info[0].unit_conversion_factor) if crs.axis_info else 1.0
        return cls(
            crs=crs,
            metric=metric,
            origin=(float(x0), float(y0)),
            scale=(kx, ky),
            _to_metric=_transformer(crs.to_wkt(), metric.to_wkt()),
            _to_wgs84=to_wgs,
        )

    def local(self, geoms: np.ndarray) -> np.ndarray:
        """Input CRS -> local metres."""
        o, k = np.array(self.origin), np.array(self.scale)
        return shapely.transform(geoms, lambda xy: (xy - o) * k)

    def unlocal(self, geoms: np.ndarray) -> np.ndarray:
        """Local metres -> input CRS."""
        o, k = np.array(self.origin), np.array(self.scale)
        return shapely.transform(geoms, lambda xy: xy / k + o)

    def _metric_xy(self, xy: np.ndarray) -> np.ndarray:
        x, y = self._to_metric.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    def to_wgs84(self, geoms: np.ndarray) -> np.ndarray:
        """Input CRS -> EPSG:4326."""
        tr = self._to_wgs84
        if tr is None:
            return geoms

        def f(xy: np.ndarray) -> np.ndarray:
            x, y = tr.transform(xy[:, 0], xy[:, 1])
            return np.column_stack([x, y])

        return shapely.transform(geoms, f)

    def measure_input(self, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Area (m²) and length (m) of input-CRS geometries, straight to the metric CRS (no local round trip)."""
        g = shapely.transform(geoms, self._metric_xy)
        return shapely.area(g), shapely.length(g)

    def measure(self, local_geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Area (m²) and length (m) of local geometries, measured in the metric CRS."""
        g = shapely.transform(self.unlocal(local_geoms), self._metric_xy)
        return shapely.area(g), shapely.length(g)


# -- geometry helpers -------------------------------------------------------------
def single_parts(geoms: np.ndarray) -> np.ndarray:
    """Unwrap MultiPolygons of one part (every grid after a GeoPackage round trip) into Polygons.

    The same area and boundary; GEOS handles plain polygons faster all the way down.
    """
    one = (shapely.get_type_id(geoms) == _MULTIPOLYGON) & (shapely.get_num_geometries(geoms) == 1)
    if one.any():
        geoms = geoms.copy()
        geoms[one] = shapely.get_geometry(geoms[one], 0)
    return geoms


def polygonal(geoms: np.ndarray) -> np.ndarray:
    """Keep the polygonal part of each geometry (lines and points of collections dropped)."""
    geoms = np.asarray(geoms, dtype=object)
    out = geoms.copy()
    types = shapely.get_type_id(geoms)
    mixed = np.flatnonzero((types != _POLYGON) & (types != _MULTIPOLYGON))
    if mixed.size == 0:
        return out
    parts, idx = shapely.get_parts(geoms[mixed], return_index=True)
    ptypes = shapely.get_type_id(parts)
    multi = ptypes == _MULTIPOLYGON
    if multi.any():
        sub, sidx = shapely.get_parts(parts[multi], return_index=True)
        parts = np.concatenate([parts[~multi], sub])
        idx = np.concatenate([idx[~multi], idx[multi][sidx]])
        ptypes = shapely.get_type_id(parts)
    keep = ptypes == _POLYGON
    built = np.empty(mixed.size, dtype=object)
    built[:] = [shapely.MultiPolygon() for _ in range(mixed.size)]
    if keep.any():
        shapely.multipolygons(parts[keep], indices=idx[keep], out=built)
    # Single polygons need no MultiPolygon wrapper.
    single = shapely.get_num_geometries(built) == 1
    built[single] = shapely.get_geometry(built[single], 0)
    out[mixed] = built
    return out


def _clean_union(clean: np.ndarray, *, verify: bool = True) -> tuple[shapely.Geometry, bool]:
    """Coverage union of cells taken for a valid coverage, and whether they really were one.

    A valid coverage's union is valid and has exactly the sum of its cells' areas; when it
    is not (an overlap no fast pass saw), the overlay union is returned with False.
    """
    if clean.size == 0:
        return shapely.Polygon(), True
    try:
        base = shapely.coverage_union_all(clean)
    except GEOSException:  # not a valid coverage after all: the slow, safe path
        return shapely.union_all(clean), False
    if verify and overlooked_overlap(clean, base):
        return shapely.union_all(clean), False
    return base, True


def union_level(geoms: np.ndarray, dirty: np.ndarray) -> shapely.Geometry:
    """Union of some cells of a level :func:`unite` has seen: coverage union of the clean ones, overlay of the rest.

    The clean cells of a level that :func:`unite` verified are a valid coverage, and so is
    any subset of them: no need to verify again.
    """
    base, _ok = _clean_union(geoms[~dirty], verify=False)
    if dirty.any():
        return shapely.union_all(np.concatenate([[base], geoms[dirty]]))
    return base


def unite(lv: Level, above: Level | None = None, known: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Set ``lv.union``; if its clean cells turn out to overlap, mark every cell dirty.

    ``above``, ``known``: the level above and :func:`families` / :func:`exactly_tiled` of
    the two levels. A grid above whose children tile it exactly (their rings cancel
    against its ring) and are all clean stands in for them: it is the same point set, its
    ring has exactly their outer segments (so it is noded like them), and no other clean
    cell overlaps them. The coverage union then runs on far fewer cells; when every grid
    above does so and every cell has one of them as parent, the union is the one above.

    The other check is never seen to fire: it would take an overlap between cells every
    fast pass called clean. The whole level then goes to the exhaustive path (every
    intersecting pair is tested) rather than a guess.
    """
    clean = ~lv.dirty
    if above is not None and above.union is not None and known is not None and len(above.geoms):
        fam, exact = known
        has = fam >= 0
        kid_dirty = np.bincount(fam[has], weights=lv.dirty[has], minlength=len(above.geoms)) > 0
        whole = exact & ~kid_dirty
        if whole.all() and has.all() and not lv.dirty.any() and not above.dirty.any():
            lv.union = above.union
            return
        stand_in = np.zeros(len(lv.geoms), dtype=bool)
        stand_in[has] = whole[fam[has]]
        pieces = np.concatenate([above.geoms[whole], lv.geoms[clean & ~stand_in]])
    else:
        pieces = lv.geoms[clean]
    base, ok = _clean_union(pieces)
    if not ok:
        lv.dirty[:] = True
        lv.union = shapely.union_all(lv.geoms)
    elif lv.dirty.any():
        lv.union = shapely.union_all(np.concatenate([[base], lv.geoms[lv.dirty]]))
    else:
        lv.union = base


def overlooked_overlap(clean: np.ndarray, union: shapely.Geometry) -> bool:
    """Whether cells taken for a valid coverage are not one, by their coverage union.

    On overlapping cells GEOS's coverage union returns an invalid geometry (parts that
    overlap) or one with less area than the cells.
    """
    total = float(shapely.area(clean).sum())
    return not shapely.is_valid(union) or abs(total - float(shapely.area(union))) > 1e-9 * total


def fill_holes(geom: shapely.Geometry) -> shapely.Geometry:
    """Return the polygon(s) bounded by the exterior rings of ``geom``."""
    polys = shapely.get_parts(polygonal(np.array([geom], dtype=object)))
    if polys.size == 0:
        return shapely.Polygon()
    return shapely.union_all(shapely.polygons(shapely.get_exterior_ring(polys)))


def holes_of(geoms: np.ndarray) -> shapely.Geometry:
    """Union of the interior rings (as polygons) of every polygon in ``geoms``."""
    polys = shapely.get_parts(polygonal(geoms))
    if polys.size == 0:
        return shapely.Polygon()
    n = shapely.get_num_interior_rings(polys)
    rings = [shapely.get_interior_ring(p, i) for p, k in zip(polys, n, strict=True) for i in range(k)]
    if not rings:
        return shapely.Polygon()
    return shapely.union_all(shapely.polygons(np.array(rings, dtype=object)))


def reason_point(reason: str) -> shapely.Point | None:
    """Parse the location out of an ``is_valid_reason`` text such as ``Self-intersection[1 2]``."""
    m = _REASON_POINT.search(reason)
    return shapely.Point(float(m.group(1)), float(m.group(2))) if m else None


# -- findings ---------------------------------------------------------------------
@dataclass
class Findings:
    """Collects findings column-wise. Geometry is local (measured) or input-CRS (not)."""

    frame: Frame
    kind: list[str] = field(default_factory=list)
    level: list[int] = field(default_factory=list)
    grid_ids: list[tuple[str, ...]] = field(default_factory=list)
    area_m2: list[float] = field(default_factory=list)
    length_m: list[float] = field(default_factory=list)
    message: list[str] = field(default_factory=list)
    geometry: list[shapely.Geometry | None] = field(default_factory=list)  # input CRS

    def add(
        self,
        kind: str,
        level: int,
        ids: Sequence[str],
        message: str,
        geometry: shapely.Geometry | None,
        area_m2: float = math.nan,
        length_m: float = math.nan,
    ) -> None:
        """Add one finding whose geometry is already in the input CRS (or None)."""
        self.kind.append(kind)
        self.level.append(int(level))
        self.grid_ids.append(tuple(ids))
        self.area_m2.append(float(area_m2))
        self.length_m.append(float(length_m))
        self.message.append(message)
        self.geometry.append(geometry)

    def add_local(
        self,
        kind: str,
        level: int,
        ids: Sequence[Sequence[str]],
        local: np.ndarray,
        message: Callable[[int, float, float], str],
        *,
        measure: str = "area",
    ) -> None:
        """Add a batch with local geometries; ``message(i, area_m2, length_m)`` words each one."""
        if len(local) == 0:
            return
        area, length = self.frame.measure(local)
        geoms = self.frame.unlocal(local)
        for i in range(len(local)):
            a = float(area[i]) if measure == "area" else math.nan
            ln = float(length[i]) if measure == "length" else math.nan
            self.add(kind, level, ids[i], message(i, float(area[i]), float(length[i])), geoms[i], a, ln)


def area_text(a: float) -> str:
    """'1,234.5 m²' / '0.0123 m²'."""
    return f"{a:,.1f} m²" if a >= 1 else f"{a:.4g} m²"


def _ids_text(ids: Sequence[str]) -> str:
    return format_ids(ids, limit=5)


# -- hierarchy --------------------------------------------------------------------
def hierarchy_findings(
    ids: np.ndarray, parents: np.ndarray, levels: np.ndarray, geoms: np.ndarray, out: Findings
) -> np.ndarray:
    """Report parent_id problems and empty levels; return each grid's usable parent row (-1: none).

    ``parents`` holds ``None`` where a grid has no parent_id.
    """
    n = len(ids)
    has = np.asarray(pd.notna(parents), dtype=bool) if n else np.zeros(0, dtype=bool)
    prow = np.full(n, -1, dtype=np.int64)
    if has.any():
        prow[has] = pd.Index(ids, dtype=object).get_indexer(parents[has])  # parent ids are str
    plevel = np.where(prow >= 0, levels[np.maximum(prow, 0)], -1)
    top = levels == 0
    ok = has & ~top & (prow >= 0) & (plevel == levels - 1)
    for r in np.flatnonzero(~ok & (has | ~top)):
        gid, p, lv = str(ids[r]), parents[r], int(levels[r])
        if lv == 0:
            out.add("hierarchy", lv, (gid, p), f"level-0 grid {gid!r} has parent_id {p!r}: leave it empty", geoms[r])
        elif p is None:
            msg = (
                f"grid {gid!r} on level {lv} has no parent_id: give it the id of the level-{lv - 1} grid containing it"
            )
            out.add("hierarchy", lv, (gid,), msg, geoms[r])
        elif prow[r] < 0:
            out.add("hierarchy", lv, (gid, p), f"grid {gid!r}: parent_id {p!r} does not exist", geoms[r])
        else:
            msg = f"grid {gid!r} is on level {lv} but its parent {p!r} is on level {plevel[r]}, not {lv - 1}"
            out.add("hierarchy", lv, (gid, p), msg, geoms[r])
    if (has & (prow >= 0) & ~ok).any():
        # A cycle needs a link that breaks the level rule, so only then is there one to find.
        parent_of = {str(ids[r]): str(ids[prow[r]]) for r in np.flatnonzero(prow >= 0)}
        row_of = {str(i): r for r, i in enumerate(ids)}
        state: dict[str, int] = {}
        for begin in sorted(parent_of):
            if state.get(begin):
                continue
            path: list[str] = []
            node: str | None = begin
            while node is not None and not state.get(node):
                state[node] = 1
                path.append(node)
                node = parent_of.get(node)
            if node is not None and state.get(node) == 1:
                cycle = sorted(path[path.index(node) :])
                lv = int(min(levels[row_of[c]] for c in cycle))
                msg = f"parent_id links form a cycle through {_ids_text(cycle)}: every chain must end at level 0"
                out.add("hierarchy", lv, cycle, msg, None)
            for v in path:
                state[v] = 2
    present = {int(v) for v in np.unique(levels)}
    for lv in range(max(present) + 1 if present else 0):
        if lv not in present:
            out.add("hierarchy", lv, (), f"level {lv} has no grids (levels present: {sorted(present)})", None)
    prow[~ok] = -1
    return prow


# -- per-level checks -------------------------------------------------------------
@dataclass
class Level:
    """The usable cells of one level, in local coordinates."""

    level: int
    rows: np.ndarray  # rows of the input
    ids: np.ndarray  # str
    geoms: np.ndarray  # local, valid, polygonal
    tree: shapely.STRtree
    dirty: np.ndarray
    edges: np.ndarray
    segs: Segments = field(default_factory=lambda: Segments.of(np.empty(0, dtype=object)))
    union: shapely.Geometry | None = None
    mate: np.ndarray | None = None  # twin_mates of segs, when computed


@dataclass
class Segments:
    """Every edge segment of a set of cells, undirected key plus direction (rings oriented alike)."""

    key: np.ndarray  # (m, 4) float: lexicographically smaller end first
    forward: np.ndarray  # bool: the ring runs from the smaller end
    cell: np.ndarray  # int: the cell each segment belongs to
    _hash: np.ndarray | None = field(default=None, repr=False, compare=False)

    def key_hash(self) -> np.ndarray:
        """64-bit hash of each key (computed once; the keys are never changed in place)."""
        if self._hash is None:
            self._hash = _row_hash(self.key, None)
        return self._hash

    @classmethod
    def of(cls, geoms: np.ndarray) -> Segments:
        """Segments of ``geoms`` (exteriors counter-clockwise, holes clockwise)."""
        if len(geoms) == 0:
            return cls(np.zeros((0, 4)), np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64))
        if (shapely.get_type_id(geoms) != _POLYGON).any():
            # Multi-part grids (every grid after a GeoPackage round trip): segments of each part,
            # credited to its grid, so the parts take the fast path of plain polygons below.
            parts, part_cell = shapely.get_parts(geoms, return_index=True)
            segs = cls.of(parts)
            return cls(segs.key, segs.forward, part_cell[segs.cell])
        # A polygon without holes is its one ring: its coordinates need no ring objects,
        # and the sign of its area (shoelace) says its orientation, so GEOS reorients only
        # the others and the rings too thin for the sign to be sure.
        simple = (shapely.get_type_id(geoms) == _POLYGON) & (shapely.get_num_interior_rings(geoms) == 0)
        s_cell = np.flatnonzero(simple)
        xy_s, ring_s = shapely.get_coordinates(geoms[s_cell], return_index=True)
        first = np.ones(len(ring_s), dtype=bool)  # coordinates come ring by ring
        first[1:] = ring_s[1:] != ring_s[:-1]
        start = np.flatnonzero(first)[np.cumsum(first) - 1]  # each point's ring's first point
        rx, ry = xy_s[:, 0] - xy_s[start, 0], xy_s[:, 1] - xy_s[start, 1]
        cross = rx[:-1] * ry[1:] - rx[1:] * ry[:-1]
        cross[first[1:]] = 0.0
        area2 = np.bincount(ring_s[:-1], weights=cross, minlength=s_cell.size)
        b = shapely.bounds(geoms[s_cell])
        sure = np.abs(area2) > 1e-9 * (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        o_cell = np.flatnonzero(~simple)
        if not sure.all():
            keep = sure[ring_s]
            xy_s, ring_s = xy_s[keep], ring_s[keep]
            o_cell = np.union1d(o_cell, s_cell[~sure])
        # get_rings returns nothing for a MultiPolygon (only Polygons have rings): take the parts first,
        # or a multi-part grid has no segments at all and looks twinned (clean) to every later pass.
        parts, part_cell = shapely.get_parts(shapely.orient_polygons(geoms[o_cell]), return_index=True)
        rings, ring_part = shapely.get_rings(parts, return_index=True)
        ring_cell = part_cell[ring_part]
        if len(rings):
            xy_o, ring_o = shapely.get_coordinates(rings, return_index=True)
            xy = np.concatenate([xy_s, xy_o])
            ring_of = np.concatenate([ring_s, ring_o + s_cell.size])
        else:
            xy, ring_of = xy_s, ring_s
        cell_of_ring = np.concatenate([s_cell, o_cell[ring_cell]])
        clockwise = np.concatenate([area2 < 0, np.zeros(len(rings), dtype=bool)])
        x, y = xy[:, 0], xy[:, 1]  # column by column: a third of the time of (m, 2) blocks
        px, py, qx, qy = x[:-1], y[:-1], x[1:], y[1:]
        # segments join consecutive points of a ring; repeated points are not segments
        sel = np.flatnonzero((ring_of[1:] == ring_of[:-1]) & ((px != qx) | (py != qy)))
        px, py, qx, qy, ring = px[sel], py[sel], qx[sel], qy[sel], ring_of[sel]
        cell = cell_of_ring[ring]
        fwd = (px < qx) | ((px == qx) & (py < qy))
        key = np.empty((sel.size, 4))
        for j, (lo, hi) in enumerate(((px, qx), (py, qy), (qx, px), (qy, py))):
            np.copyto(key[:, j], hi)  # the smaller end first
            np.copyto(key[:, j], lo, where=fwd)
        fwd ^= clockwise[ring]  # a clockwise exterior runs the other way once oriented
        return cls(key, fwd, cell)


def _mix(h: np.ndarray, col: np.ndarray) -> None:
    """Fold one uint64 column into the running hash ``h`` in place."""
    np.bitwise_xor(h, col, out=h)
    np.multiply(h, _HASH_MUL, out=h)
    h ^= h >> _HASH_SHIFT


def _row_hash(key: np.ndarray, group: np.ndarray | None, base: np.ndarray | None = None) -> np.ndarray:
    """Hash each row of ``key`` (floats, -0.0 counted as 0.0) and its group to 64 bits.

    ``base``, the hash of ``key`` alone (:meth:`Segments.key_hash`), saves hashing the keys again.
    """
    if base is None:
        bits = np.ascontiguousarray(key + 0.0).view(np.uint64)
        h = np.full(len(key), _HASH_SEED, dtype=np.uint64)
        for j in range(bits.shape[1]):
            _mix(h, bits[:, j])
    else:
        h = base.copy()
    if group is not None:
        _mix(h, np.asarray(group, dtype=np.int64).view(np.uint64))
    return h


def row_classes(
    key: np.ndarray, group: np.ndarray | None = None, key_hash: np.ndarray | None = None
) -> np.ndarray | None:
    """Class of each row of ``key`` (and ``group``): equal rows, equal class (-0.0 as 0.0), numbered as met.

    By a 64-bit hash of each row in a hash table (``pandas.factorize``: no sort), each class then
    checked to hold one row value. None when two different rows share a hash (never seen) or a
    row holds NaN: the caller then sorts exactly.
    """
    g = None if group is None else np.asarray(group)
    run, hashes = pd.factorize(_row_hash(key, g, key_hash))
    member = np.empty(len(hashes), dtype=np.int64)
    member[run] = np.arange(len(key))  # some row of each class
    of = member[run]
    if (key[of] == key).all() and (g is None or (g[of] == g).all()):
        return run
    return None


def twinned(
    key: np.ndarray, forward: np.ndarray, group: np.ndarray | None = None, *, key_hash: np.ndarray | None = None
) -> np.ndarray:
    """Whether each segment occurs exactly twice in its group, once in each direction.

    Equal segments are brought together by a 64-bit hash of (key, group) in a hash table
    (``pandas.factorize``: no sort); each class of equal hashes is checked to hold one key.
    Should two different keys share a hash (never seen), the runs of a sort are used instead
    (:func:`_twin_runs`: by hash, told apart by the full key, else the exact lexicographic sort).
    """
    if len(key) == 0:
        return np.zeros(0, dtype=bool)
    run = row_classes(key, group, key_hash)
    if run is not None:
        count = np.bincount(run)
        fwd = np.bincount(run, weights=forward)
        return ((count == 2) & (fwd == 1))[run]
    order, run, good, _start = _twin_runs(key, forward, group, key_hash)  # a hash collision (or NaN)
    out = np.empty(len(key), dtype=bool)
    out[order] = good[run]
    return out


def twin_mates(key: np.ndarray, forward: np.ndarray, *, key_hash: np.ndarray | None = None) -> np.ndarray:
    """Each segment's twin: the other segment of its key, running the other way (-1: not twinned).

    ``twin_mates(...) >= 0`` equals :func:`twinned` without groups.
    """
    mate = np.full(len(key), -1, dtype=np.int64)
    if len(key) == 0:
        return mate
    order, run, good, start = _twin_runs(key, forward, None, key_hash)
    first = np.flatnonzero(start & good[run])  # a twinned run is two consecutive sorted positions
    a, b = order[first], order[first + 1]
    mate[a], mate[b] = b, a
    return mate


def _twin_runs(
    key: np.ndarray, forward: np.ndarray, group: np.ndarray | None, key_hash: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sort order, run of each sorted position, whether each run is a twin pair, and the run starts."""
    g = None if group is None else np.asarray(group)
    h = _row_hash(key, g, key_hash)
    order = np.argsort(h)
    k = key[order]
    start = np.ones(len(k), dtype=bool)
    start[1:] = (k[1:] != k[:-1]).any(axis=1)
    if g is not None:
        start[1:] |= g[order][1:] != g[order][:-1]
    hs = h[order]
    if (start[1:] & (hs[1:] == hs[:-1])).any():  # a hash collision: sort exactly
        cols = (key[:, 3], key[:, 2], key[:, 1], key[:, 0]) + (() if g is None else (g,))
        order = np.lexsort(cols)
        k = key[order]
        start = np.ones(len(k), dtype=bool)
        start[1:] = (k[1:] != k[:-1]).any(axis=1)
        if g is not None:
            start[1:] |= g[order][1:] != g[order][:-1]
    run = np.cumsum(start) - 1
    count = np.bincount(run)
    fwd = np.bincount(run, weights=forward[order])
    return order, run, (count == 2) & (fwd == 1), start


def untwinned(geoms: np.ndarray, segs: Segments | None = None) -> np.ndarray:
    """Cells with an edge segment that is not shared exactly once, in the opposite direction.

    In a coverage whose shared edges are exactly noded, every interior segment occurs
    exactly twice with opposite directions (rings oriented alike). Cells whose every
    segment does are never flagged by ``coverage_invalid_edges``: GEOS treats matched
    segments as valid. This numpy pass is linear and much cheaper than GEOS.
    """
    segs = segs or Segments.of(geoms)
    out = np.zeros(len(geoms), dtype=bool)
    out[segs.cell[~twinned(segs.key, segs.forward, key_hash=segs.key_hash())]] = True
    return out


def families(parents: Level, children: Level, parent_row: np.ndarray) -> np.ndarray:
    """Position in ``parents`` of each child's usable parent (-1: none)."""
    pr = parent_row[children.rows]
    if not len(parents.rows):
        return np.full(len(pr), -1)
    at = np.clip(np.searchsorted(parents.rows, pr), 0, len(parents.rows) - 1)
    return np.where((pr >= 0) & (parents.rows[at] == pr), at, -1)


def exactly_tiled(parents: Level, children: Level, child_parent: np.ndarray) -> np.ndarray:
    """Parents whose children's rings, with the parent's ring reversed, twin exactly.

    Then the children tile the parent with no overlap and nothing outside: the case of
    a hierarchy built by dissolving children. Parents that fail go to the GEOS tests.
    """
    n = len(parents.geoms)
    cs, ps = children.segs, parents.segs
    group_c = child_parent[cs.cell]
    keep = group_c >= 0
    mate = children.mate
    if mate is not None and len(ps.key):
        # A pair of twins of the level within one family is a run of its own here (count 2, one
        # each way) unless a parent segment has its key: such pairs need no sorting again. A
        # key-hash match keeps the pair in (equal keys hash alike; a collision only keeps more).
        paired = keep & (mate >= 0)
        paired[paired] = group_c[mate[paired]] == group_c[paired]
        probe = np.flatnonzero(paired & cs.forward)  # one of each pair: exactly one runs forward
        ph = np.sort(ps.key_hash())
        h = cs.key_hash()[probe]
        near = probe[ph[np.minimum(np.searchsorted(ph, h), len(ph) - 1)] == h]
        paired[near] = False
        paired[mate[near]] = False
        keep &= ~paired
    key = np.concatenate([cs.key[keep], ps.key])
    fwd = np.concatenate([cs.forward[keep], ~ps.forward])
    group = np.concatenate([group_c[keep], ps.cell])
    ok = twinned(key, fwd, group, key_hash=np.concatenate([cs.key_hash()[keep], ps.key_hash()]))
    bad = np.zeros(n, dtype=bool)
    bad[group[~ok]] = True
    has_child = np.bincount(child_parent[child_parent >= 0], minlength=n) > 0
    return has_child & ~bad


def build_level(level: int, rows: np.ndarray, ids: np.ndarray, geoms: np.ndarray, gap_width: float) -> Level:
    """Index a level and validate it as a coverage.

    GEOS validates only the cells with an untwinned segment (outer boundary, suspects)
    and their neighbours within the gap width, so it sees every cell that can matter
    to them; the result for those cells equals a run on the whole level.
    """
    g = geoms[rows]
    tree = shapely.STRtree(g)
    segs = Segments.of(g)
    mate = twin_mates(segs.key, segs.forward, key_hash=segs.key_hash())
    core = np.flatnonzero(np.bincount(segs.cell[mate < 0], minlength=len(g)))  # as untwinned(g, segs)
    edges = np.empty(len(g), dtype=object)
    edges[:] = shapely.LineString()
    if core.size:
        near = np.union1d(core, tree.query(g[core], predicate="dwithin", distance=gap_width)[1])
        found = shapely.coverage_invalid_edges(g[near], gap_width=gap_width)
        pos = np.searchsorted(near, core)
        edges[core] = found[pos]
    dirty = ~shapely.is_empty(edges)
    dirty |= stacked(g, tree, dirty)
    return Level(level, rows, ids[rows], g, tree, dirty, edges, segs=segs, mate=mate)


def stacked(geoms: np.ndarray, tree: shapely.STRtree, dirty: np.ndarray) -> np.ndarray:
    """Cells with no invalid edge that still overlap another cell.

    A cell whose every segment is twinned can overlap a cell that is twinned too: a block
    of grids copied with a shift has twinned interior cells lying on the originals'. Such a
    region of overlap is bounded by untwinned edges, so a dirty cell overlaps into it, and
    moving across it from cell to cell every step keeps one of the overlapping cells: the
    cells that overlap form chains from a dirty cell. They are followed from the dirty
    cells, one overlap at a time, until no new cell overlaps. (:func:`unite` checks the
    result: clean cells that still overlap hand the level to the exhaustive path.)
    """
    found = np.zeros(len(geoms), dtype=bool)
    seen = dirty.copy()
    frontier = np.flatnonzero(dirty)
    while frontier.size:
        src, hit = tree.query(geoms[frontier], predicate="intersects")
        a = frontier[src]
        keep = ~seen[hit]
        a, hit = a[keep], hit[keep]
        new = np.unique(hit[shapely.relate_pattern(geoms[a], geoms[hit], "T********")])
        seen[new] = True
        found[new] = True
        frontier = new
    return found


def _nearest_other(lv: Level, geoms: np.ndarray, own: np.ndarray, gap_width: float, rank: np.ndarray) -> np.ndarray:
    """Row of the cell other than ``own[i]`` whose boundary is nearest ``geoms[i]`` within the gap width (-1: none).

    Ties go to the lowest ``rank`` (grid_id order), so the answer does not depend on row order.
    """
    q, cand = lv.tree.query(geoms, predicate="dwithin", distance=gap_width)
    keep = cand != own[q]
    q, cand = q[keep], cand[keep]
    dist = shapely.distance(geoms[q], shapely.boundary(lv.geoms[cand]))
    order = np.lexsort((rank[cand], dist, q))
    q, cand = q[order], cand[order]
    first = np.r_[True, q[1:] != q[:-1]] if q.size else np.zeros(0, dtype=bool)
    out = np.full(len(geoms), -1, dtype=np.int64)
    out[q[first]] = cand[first]
    return out


def edge_findings(lv: Level, gap_width: float, out: Findings, outline: shapely.Geometry | None = None) -> None:
    """Edge lines that do not match a neighbour's: one finding per pair of neighbours.

    Segments lying on ``outline`` (the jurisdiction's boundary: its outer ring, enclaves)
    are not reported: GEOS flags edges of the coverage's boundary that come within the gap
    width of each other (an acute notch in the outline, the corners of an enclave), but
    there is no neighbour there to match, and any overlap or gap there is reported as such.

    Each dirty cell's mismatched lines are split by the neighbour they lie within the gap width
    of; the pieces of both cells of a pair make one finding naming both (so the planner knows
    which two grids to fix). A line near no neighbour stays a finding of its own cell.
    """
    d = np.flatnonzero(~shapely.is_empty(lv.edges))
    if d.size == 0:
        return
    # Each segment of the lines faces the neighbour whose boundary is nearest its midpoint (within
    # the gap width). The lines first get the vertices of nearby neighbours that lie on them (a
    # T-junction's vertex), so a line along two neighbours is split exactly where they meet.
    src, hit = lv.tree.query(lv.edges[d], predicate="dwithin", distance=gap_width)
    vx, vi = shapely.get_coordinates(shapely.boundary(lv.geoms[hit]), return_index=True)
    owner = src[vi]
    order = np.argsort(owner, kind="stable")
    verts = np.full(d.size, None, dtype=object)
    has = np.unique(owner)
    verts[has] = shapely.multipoints(vx[order], indices=np.searchsorted(has, owner[order]))
    edges = shapely.normalize(lv.edges[d])  # the same segments whatever the row order
    snap = np.flatnonzero(verts != None)  # noqa: E711 - elementwise
    edges[snap] = shapely.snap(edges[snap], verts[snap], tolerance=gap_width * 1e-6)
    parts, part_cell = shapely.get_parts(edges, return_index=True)
    xy, which = shapely.get_coordinates(parts, return_index=True)
    cut = which[:-1] == which[1:]
    seg = shapely.linestrings(np.stack([xy[:-1][cut], xy[1:][cut]], axis=1))
    seg_cell = d[part_cell[which[:-1][cut]]]
    if outline is not None and not shapely.is_empty(outline) and len(seg):
        ends = shapely.points(np.concatenate([xy[:-1][cut], xy[1:][cut]]))
        mids = shapely.line_interpolate_point(seg, 0.5, normalized=True)
        shapely.prepare(outline)
        on = shapely.dwithin(outline, ends, _ON_OUTLINE_M).reshape(2, -1).all(axis=0)
        on &= shapely.dwithin(outline, mids, _ON_OUTLINE_M)
        seg, seg_cell = seg[~on], seg_cell[~on]
        if seg.size == 0:
            return
    rank = np.argsort(np.argsort(lv.ids.astype(str), kind="stable"))  # ties go to the lowest grid_id, not row
    facing = _nearest_other(lv, shapely.line_interpolate_point(seg, 0.5, normalized=True), seg_cell, gap_width, rank)
    # A long segment whose neighbour comes near it only away from its middle: the nearest
    # neighbour of the whole segment (within the gap width).
    lost = np.flatnonzero(facing < 0)
    if lost.size:
        facing[lost] = _nearest_other(lv, seg[lost], seg_cell[lost], gap_width, rank)
    pair = np.where(facing >= 0, np.minimum(seg_cell, facing), seg_cell)
    mate = np.where(facing >= 0, np.maximum(seg_cell, facing), -1)
    key = np.unique(np.column_stack([pair, mate]), axis=0, return_inverse=True)
    groups, group_of = key[0], key[1].ravel()
    ids: list[tuple[str, ...]] = [
        tuple(sorted((str(lv.ids[i]), str(lv.ids[j])))) if j >= 0 else (str(lv.ids[i]),) for i, j in groups
    ]
    order = np.argsort(group_of, kind="stable")
    bounds = np.cumsum(np.bincount(group_of, minlength=len(groups)))[:-1]
    # normalised: the same lines whatever the row order of the input
    merged = [shapely.line_merge(shapely.union_all(part)) for part in np.split(seg[order], bounds)]
    lines = shapely.normalize(np.array(merged, dtype=object))

    def msg(i: int, _a: float, length: float) -> str:
        what = f"an overlap, a sliver narrower than {gap_width:g} m, or a vertex missing where a neighbour's edge ends"
        if len(ids[i]) == 2:
            return f"grids {ids[i][0]!r} and {ids[i][1]!r}: {length:,.1f} m of their common edge do not match ({what})"
        return f"grid {ids[i][0]!r}: {length:,.1f} m of edge do not match a neighbour's exactly ({what})"

    out.add_local("edge_mismatch", lv.level, ids, lines, msg, measure="length")


def overlap_findings(lv: Level, min_area: float, out: Findings) -> None:
    """One finding per pair of cells whose interiors overlap (only pairs with a dirty cell)."""
    d = np.flatnonzero(lv.dirty)
    if d.size == 0:
        return
    src, hit = lv.tree.query(lv.geoms[d], predicate="intersects")
    a, b = d[src], hit
    keep = a != b
    a, b = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    if a.size == 0:
        return
    pairs = np.unique(np.column_stack([a, b]), axis=0)
    a, b = pairs[:, 0], pairs[:, 1]
    interior = shapely.relate_pattern(lv.geoms[a], lv.geoms[b], "T********")
    a, b = a[interior], b[interior]
    shared = polygonal(shapely.intersection(lv.geoms[a], lv.geoms[b]))
    area, _ = out.frame.measure(shared)
    big = area >= min_area
    a, b, shared = a[big], b[big], shared[big]
    ids = [tuple(sorted((str(lv.ids[i]), str(lv.ids[j])))) for i, j in zip(a, b, strict=True)]

    def msg(i: int, area: float, _ln: float) -> str:
        return f"grids {ids[i][0]!r} and {ids[i][1]!r} overlap by {area_text(area)}"

    out.add_local("overlap", lv.level, ids, shared, msg)


def _explode(geom: shapely.Geometry) -> np.ndarray:
    return shapely.get_parts(polygonal(np.array([geom], dtype=object)))


def _neighbour_rows(lv: Level, parts: np.ndarray) -> list[np.ndarray]:
    """Positions of the cells of ``lv`` that intersect each part."""
    src, hit = lv.tree.query(parts, predicate="intersects")
    return np.split(hit[np.argsort(src, kind="stable")], np.cumsum(np.bincount(src, minlength=parts.size))[:-1])


def _neighbours(lv: Level, parts: np.ndarray) -> list[tuple[str, ...]]:
    if parts.size == 0:
        return []
    return [tuple(sorted(str(lv.ids[h]) for h in hits)) for hits in _neighbour_rows(lv, parts)]


def gap_findings(
    lv: Level,
    jurisdiction: shapely.Geometry,
    exempt: shapely.Geometry | None,
    gap_width: float,
    min_area: float,
    out: Findings,
) -> None:
    """Parts of the jurisdiction that no cell of the level covers (exempt areas excluded)."""
    assert lv.union is not None
    rest = shapely.difference(jurisdiction, lv.union)
    if exempt is not None and not shapely.is_empty(rest):
        rest = shapely.difference(rest, exempt)
    parts = _explode(rest)
    if parts.size == 0:
        return
    area, _ = out.frame.measure(parts)
    parts = parts[area >= min_area]
    if parts.size == 0:
        return
    sliver = shapely.is_empty(shapely.buffer(parts, -gap_width / 2))
    ids = _neighbours(lv, parts)

    def msg(i: int, area: float, _ln: float) -> str:
        what = f"a sliver gap narrower than {gap_width:g} m" if sliver[i] else "a gap"
        nb = f", next to {_ids_text(ids[i])}" if ids[i] else ""
        return f"{what} of {area_text(area)} on level {lv.level} that no grid covers{nb}"

    out.add_local("gap", lv.level, ids, parts, msg)


def nesting_findings(
    parents: Level,
    children: Level,
    parent_row: np.ndarray,
    exempt: shapely.Geometry | None,
    min_area: float,
    out: Findings,
    *,
    report_outside: bool,
    report_untiled: bool,
    known: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """``outside_parent`` for the children, ``parent_not_tiled`` for the parents.

    ``known``: :func:`families` and :func:`exactly_tiled` of these two levels, if computed already.
    """
    if known is None:
        child_parent = families(parents, children, parent_row)
        exact = exactly_tiled(parents, children, child_parent)
    else:
        child_parent, exact = known
    has = child_parent >= 0
    ci = np.flatnonzero(has)
    test = ci[~exact[child_parent[ci]]]  # children of exactly tiled parents are inside them
    shapely.prepare(parents.geoms)
    outside_child = np.zeros(len(children.rows), dtype=bool)
    try:
        covered = shapely.covers(parents.geoms[child_parent[test]], children.geoms[test])
    finally:
        shapely.destroy_prepared(parents.geoms)
    cand = test[~covered]
    if cand.size:
        parts = polygonal(shapely.difference(children.geoms[cand], parents.geoms[child_parent[cand]]))
        area, _ = out.frame.measure(parts)
        big = area >= min_area
        cand, parts = cand[big], parts[big]
        outside_child[cand] = True
        if report_outside and cand.size:
            ids: list[tuple[str, ...]] = []
            into: list[list[str]] = []
            for c, part in zip(cand, parts, strict=True):
                p = child_parent[c]
                ids.append((str(children.ids[c]), str(parents.ids[p])))
                others = parents.tree.query(part, predicate="intersects")
                others = [o for o in others if o != p]
                if others:
                    shared = polygonal(shapely.intersection(parents.geoms[others], part))
                    a_other, _ = out.frame.measure(shared)
                    others = [o for o, a in zip(others, a_other, strict=True) if a >= min_area]
                into.append(sorted(str(parents.ids[o]) for o in others))

            def msg(i: int, area: float, _ln: float) -> str:
                where = f" (into {_ids_text(into[i])})" if into[i] else ""
                return f"grid {ids[i][0]!r} extends {area_text(area)} outside its parent {ids[i][1]!r}{where}"

            out.add_local("outside_parent", children.level, ids, parts, msg)
    if not report_untiled:
        return
    n_par = len(parents.rows)
    child_area = shapely.area(children.geoms)
    sums = np.bincount(child_parent[ci], weights=child_area[ci], minlength=n_par)
    counts = np.bincount(child_parent[ci], minlength=n_par)
    suspect = np.bincount(child_parent[ci], weights=(children.dirty | outside_child)[ci], minlength=n_par) > 0
    parea = shapely.area(parents.geoms)
    off = np.abs(parea - sums) > min_area + 1e-9 * parea
    cand_p = np.flatnonzero((suspect | off | (counts == 0)) & ~exact)
    if cand_p.size == 0:
        return
    order = np.argsort(child_parent[ci], kind="stable")
    by_parent = np.split(ci[order], np.cumsum(counts)[:-1])
    # What each candidate's own children leave of it: the unions one family at a time, then
    # the differences, the parts and their areas in one GEOS / pyproj call each.
    has_kids = counts[cand_p] > 0
    rests = parents.geoms[cand_p].copy()
    with_kids = cand_p[has_kids]
    if with_kids.size:
        unions = np.empty(with_kids.size, dtype=object)
        for i, p in enumerate(with_kids):
            kids = by_parent[p]
            unions[i] = union_level(children.geoms[kids], children.dirty[kids])
        rests[has_kids] = shapely.difference(parents.geoms[with_kids], unions)
    if exempt is not None:
        rests = shapely.difference(rests, exempt)
    parts, part_of = shapely.get_parts(polygonal(rests), return_index=True)
    if parts.size == 0:
        return
    area, _ = out.frame.measure(parts)
    big = area >= min_area
    parts, part_of = parts[big], part_of[big]
    covering = _neighbour_rows(children, parts) if parts.size else []
    all_parts: list[shapely.Geometry] = []
    all_ids: list[tuple[str, ...]] = []
    notes: list[str] = []
    own: set[str] = set()
    last = -1
    for part, at, hits in zip(parts, part_of, covering, strict=True):
        p = cand_p[at]
        kids = by_parent[p]
        pid = str(parents.ids[p])
        if at != last:
            own = {str(children.ids[k]) for k in kids}
            last = at
        # Children of other parents (or of none) that cover this part straddle into it.
        rows = sorted((h for h in hits if str(children.ids[h]) not in own), key=lambda h: str(children.ids[h]))
        strad = [str(children.ids[h]) for h in rows]
        if strad:
            g = children.geoms[rows]
            shared, _ = out.frame.measure(polygonal(shapely.intersection(g, part)))
            strad = sorted(c for c, a in zip(strad, shared, strict=True) if a >= min_area)
        all_parts.append(part)
        all_ids.append((pid, *[str(s) for s in strad]))
        if kids.size == 0:
            notes.append(f"has no children on level {children.level}")
        elif strad:
            notes.append(f"is covered there by {_ids_text(strad)}, not by its own children")
        else:
            notes.append(f"is not covered by any of its {kids.size} children")

    def untiled_msg(i: int, area: float, _ln: float) -> str:
        return f"{area_text(area)} of grid {all_ids[i][0]!r} {notes[i]}"

    out.add_local("parent_not_tiled", parents.level, all_ids, np.array(all_parts, dtype=object), untiled_msg)


def jurisdiction_of(top: Level | None, outline: shapely.Geometry | None, gap_width: float) -> shapely.Geometry:
    """Return the outline, or the top level's union with its holes filled except enclaves.

    A hole of the top level's union is an enclave (land outside the jurisdiction, however
    many top-level grids border it) unless it is narrower than the gap width everywhere:
    then it is a sliver gap between grids.
    """
    if outline is not None:
        return outline
    if top is None or top.union is None:
        return shapely.Polygon()
    filled = fill_holes(top.union)
    holes = shapely.get_parts(holes_of(np.array([top.union], dtype=object)))
    if holes.size == 0:
        return filled
    enclaves = holes[~shapely.is_empty(shapely.buffer(holes, -gap_width / 2))]
    return shapely.difference(filled, shapely.union_all(enclaves)) if enclaves.size else filled
