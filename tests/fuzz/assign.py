"""Differential family "assign": :func:`geogrid.assignment.assign_points` against the plain rule.

One case = one seeded hierarchy and a few thousand adversarial points, assigned three ways:

- ``assign_points(points, grids)`` (``nested="auto"``: coarser levels derived through ``parent_id``
  when the hierarchy nests),
- ``assign_points(..., nested=False)`` (every level located by geometry),
- :func:`geogrid.reference.assign_points_reference` (per level, GEOS ``intersects`` through an
  STRtree, then the lowest grid_id).

Hierarchies: Voronoi cells clipped to a district (a box or a skewed quadrilateral), dissolved
bottom-up into 2-4 levels with ``coverage_union_all``; in a UTM zone (EPSG:32650) or in lon/lat
(EPSG:4326, in China or elsewhere, either hemisphere). Perturbations: enclaves (cells dropped: holes
through every level), exclaves (a unit handed to a far group: a multi-part parent, often with a hole
around it), one finest vertex nudged by 1e-9 of the extent (the areas still add up to 1e-9),
a parent link that contradicts the geometry. Encodings: Polygon, every grid a MultiPolygon,
mixed; rings reversed at random; repeated vertices; Z; a GeoPackage round trip. Ids are random
strings, so the lowest id on a level says nothing about the parents' ids (the "districts A | B
where B's child is called 'a'" case).

Points: every vertex of every level, every edge midpoint, points a few ulps and 1e-9 (relative to
the extent) off edges on either side, random points inside and outside the bounding box.

Columns: ``mismatch`` (points where the default answer differs from the reference, summed over
levels), ``mismatch_located`` (the same for ``nested=False``), ``mismatch_trusted`` (the same for
``nested=True``, on hierarchies whose parent links are right), ``crash``.
"""

from __future__ import annotations

import tempfile
import traceback

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from geogrid._reference_assign import assign_points_reference
from geogrid.assignment import assign_points
from tests.fuzz import Outcome

__all__ = ["COLUMNS", "FAMILY", "make_case", "run_case"]

FAMILY = "assign"
COLUMNS = ("crash", "mismatch", "mismatch_located", "mismatch_trusted")
_MAX_POINTS = 6_000


def _district(rng: np.random.Generator, x0: float, y0: float, side: float) -> shapely.Polygon:
    if rng.random() < 0.4:
        return shapely.box(x0, y0, x0 + side, y0 + side)
    j = rng.uniform(-0.15, 0.15, 8) * side
    return shapely.Polygon(
        [(x0 + j[0], y0 + j[1]), (x0 + side + j[2], y0 + j[3]), (x0 + side + j[4], y0 + side + j[5]),
         (x0 + j[6], y0 + side + j[7])]
    )  # fmt: skip


def _group(rng: np.random.Generator, centres: np.ndarray, k: int) -> np.ndarray:
    """Each unit's group: the nearest of ``k`` units picked as seeds."""
    k = max(1, min(k, len(centres)))
    seeds = centres[rng.choice(len(centres), k, replace=False)]
    d = ((centres[:, None, :] - seeds[None, :, :]) ** 2).sum(axis=2)
    return np.asarray(d.argmin(axis=1))


def _ids(rng: np.random.Generator, n: int, level: int) -> list[str]:
    """Distinct random ids whose order is unrelated to the hierarchy's."""
    alphabet = list("abcdefghijkmnpqrstuvwxyzABCDEFGH0123456789")
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.choice(alphabet, int(rng.integers(1, 4)))) + f"_{level}_{len(out)}")
    ids = list(out)
    rng.shuffle(ids)
    return ids


def _repeat_vertex(poly: shapely.Polygon) -> shapely.Polygon:
    def twice(ring: object) -> np.ndarray:
        c = shapely.get_coordinates(ring)
        return np.insert(c, 1, c[1], axis=0)

    return shapely.Polygon(twice(poly.exterior), [twice(r) for r in poly.interiors])


def _encode(rng: np.random.Generator, geoms: np.ndarray, mode: str) -> np.ndarray:
    out = []
    for g in geoms:
        if rng.random() < 0.3:
            g = shapely.reverse(g)
        parts = shapely.get_parts(g)
        if rng.random() < 0.2:  # repeat a vertex of every ring
            parts = np.array([_repeat_vertex(p) for p in parts], dtype=object)
        if mode == "multipolygon" or (mode == "mixed" and rng.random() < 0.5) or len(parts) > 1:
            g = shapely.multipolygons(parts)
        out.append(g)
    return np.asarray(out, dtype=object)


def make_case(seed: int) -> tuple[str, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The generator name, the grid layer and the points of case ``seed``."""
    rng = np.random.default_rng(seed)
    crs = str(rng.choice(["EPSG:32650", "EPSG:4326", "EPSG:4326"]))
    if crs == "EPSG:32650":
        x0, y0, side = 500_000.0 + rng.uniform(-2e5, 2e5), 4_300_000.0 + rng.uniform(-1e5, 1e5), 3_000.0
    else:
        x0, y0 = [(117.2, 39.1), (-3.7, 40.4), (151.2, -33.9), (-58.4, -34.6)][int(rng.integers(4))]
        side = 0.03
    n_levels = int(rng.integers(2, 5))
    n_cells = int(rng.integers(20, 220))
    district = _district(rng, x0, y0, side)
    seeds = shapely.multipoints(rng.uniform([x0, y0], [x0 + side, y0 + side], (n_cells, 2)))
    cells = shapely.intersection(shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=district)), district)
    cells = cells[~shapely.is_empty(cells)]
    perturb = []
    if rng.random() < 0.3:  # enclaves: land outside the jurisdiction, a hole through every level
        drop = rng.choice(len(cells), max(1, len(cells) // 25), replace=False)
        cells = np.delete(cells, drop)
        perturb.append("enclave")
    # bottom-up: units of the finest level, grouped into the next coarser level, and so on
    units = [cells]
    groups = []
    for lv in range(n_levels - 2, -1, -1):
        below = units[-1]
        k = max(1, round(len(below) / rng.uniform(2.5, 6))) if lv > 0 else int(rng.integers(1, 5))
        grp = _group(rng, shapely.get_coordinates(shapely.centroid(below)), k)
        if rng.random() < 0.3 and len(below) > 3 and grp.max() > 0:  # exclave: a unit joins a far group
            u = int(rng.integers(len(below)))
            grp[u] = (grp[u] + 1 + int(rng.integers(grp.max()))) % (grp.max() + 1)
            perturb.append("exclave")
        _, grp = np.unique(grp, return_inverse=True)
        groups.append(grp)
        units.append(np.array([shapely.coverage_union_all(below[grp == g]) for g in range(grp.max() + 1)]))
    units.reverse()  # units[0]: level 0
    groups.reverse()  # groups[lv]: level lv+1 unit -> level lv unit
    if rng.random() < 0.2:  # one finest vertex nudged by 1e-9 of the extent: the areas still add up
        units[-1] = units[-1].copy()
        i = int(rng.integers(len(units[-1])))
        xy = shapely.get_coordinates(units[-1][i])
        k = int(rng.integers(len(xy) - 1))
        step = rng.choice([-1.0, 1.0], 2) * 1e-9 * side
        units[-1][i] = shapely.set_coordinates(
            units[-1][i], np.where(np.all(xy == xy[k], axis=1)[:, None], xy + step, xy)
        )
        perturb.append("nudged")
    if n_levels > 1 and rng.random() < 0.2 and groups[-1].max() > 0:  # a parent link contradicting geometry
        groups[-1] = groups[-1].copy()
        u = int(rng.integers(len(groups[-1])))
        groups[-1][u] = (groups[-1][u] + 1) % (groups[-1].max() + 1)
        perturb.append("relinked")
    mode = str(rng.choice(["polygon", "multipolygon", "mixed"]))
    ids = [_ids(rng, len(u), lv) for lv, u in enumerate(units)]
    rows = []
    for lv, u in enumerate(units):
        enc = _encode(rng, u, mode)
        for i, g in enumerate(enc):
            parent = None if lv == 0 else ids[lv - 1][groups[lv - 1][i]]
            rows.append((ids[lv][i], parent, lv, g))
    grids = gpd.GeoDataFrame(
        pd.DataFrame(rows, columns=["grid_id", "parent_id", "level", "geometry"]), geometry="geometry", crs=crs
    )
    grids = grids.sample(frac=1.0, random_state=int(rng.integers(2**31)))  # row order must not matter
    if rng.random() < 0.15:  # Z: heights must not matter
        grids = grids.set_geometry(shapely.force_3d(grids.geometry.values, z=float(rng.uniform(0, 50))))
        mode += "+z"
    if rng.random() < 0.1:  # what a store gives back: a GeoPackage round trip (every grid a MultiPolygon)
        grids = _gpkg_round_trip(grids)
        mode += "+gpkg"
    points = _adversarial_points(rng, units, side)
    name = f"voronoi/{'utm' if crs != 'EPSG:4326' else 'lonlat'}/{n_levels}lv/{'+'.join(perturb) or 'plain'}/{mode}"
    return name, grids, gpd.GeoDataFrame(geometry=gpd.points_from_xy(points[:, 0], points[:, 1]), crs=crs)


def _gpkg_round_trip(grids: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/grids.gpkg"
        grids.to_file(path, layer="grids")
        return gpd.read_file(path, layer="grids")


def _adversarial_points(rng: np.random.Generator, units: list[np.ndarray], side: float) -> np.ndarray:
    everything = np.concatenate(units)
    rings = shapely.get_rings(shapely.get_parts(everything))
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    same = ring[:-1] == ring[1:]
    a, b = xy[:-1][same], xy[1:][same]
    a, b = a[(a != b).any(axis=1)], b[(a != b).any(axis=1)]
    mid = (a + b) / 2
    normal = np.column_stack([b[:, 1] - a[:, 1], a[:, 0] - b[:, 0]])
    normal /= np.hypot(normal[:, 0], normal[:, 1])[:, None]
    ulp = np.spacing(np.abs(mid)).max(axis=1)[:, None]
    off = [mid + s * k * ulp * normal for k in (1, 2, 4) for s in (-1, 1)]
    off += [mid + s * 1e-9 * side * normal for s in (-1, 1)]
    t = rng.uniform(0, 1, (len(a), 1))
    along = a + t * (b - a)  # a random point of each edge, rounded
    minx, miny, maxx, maxy = shapely.total_bounds(everything)
    pad = 0.1 * (maxx - minx)
    inner = rng.uniform([minx, miny], [maxx, maxy], (2_000, 2))
    outer = rng.uniform([minx - pad, miny - pad], [maxx + pad, maxy + pad], (500, 2))
    kinds = [np.unique(xy, axis=0), mid, along, *off]
    picked = [k[rng.choice(len(k), min(len(k), _MAX_POINTS // 10), replace=False)] for k in kinds]
    return np.concatenate([*picked, inner, outer])


def _compare(got: pd.DataFrame, ref: pd.DataFrame, column: str, points: gpd.GeoDataFrame, out: Outcome) -> None:
    for col in ref.columns:
        if not col.startswith("grid_id_"):
            continue
        a = np.array(got[col].astype(object), dtype=object)
        b = np.array(ref[col].astype(object), dtype=object)
        a[pd.isna(a)] = None
        b[pd.isna(b)] = None
        bad = np.flatnonzero(a != b)
        for i in bad[:3]:
            p = points.geometry.iloc[i]
            out.details.append(f"{column} {col}: point {i} ({p.x!r}, {p.y!r}) got {a[i]!r}, rule says {b[i]!r}")
        if bad.size:
            out.counts[column] = out.counts.get(column, 0) + int(bad.size)
    if not (got["outside"].to_numpy() == ref["outside"].to_numpy()).all():
        out.fail(column, "outside flags differ")


def run_case(seed: int) -> Outcome:
    """Build case ``seed``, assign its points both ways and by the reference; count the differences."""
    try:
        name, grids, points = make_case(seed)
    except Exception:  # a generator bug is a crash of the harness, reported as such
        out = Outcome(FAMILY, seed, "generator")
        out.fail("crash", traceback.format_exc(limit=3))
        return out
    out = Outcome(FAMILY, seed, name, counts=dict.fromkeys(COLUMNS, 0))
    try:
        ref = assign_points_reference(points, grids)
        _compare(assign_points(points, grids), ref, "mismatch", points, out)
        _compare(assign_points(points, grids, nested=False), ref, "mismatch_located", points, out)
        if "relinked" not in name and "nudged" not in name:  # parent_id is right: trusting it is too
            _compare(assign_points(points, grids, nested=True), ref, "mismatch_trusted", points, out)
    except Exception:  # any exception of either path is counted as a crash, with its traceback
        out.fail("crash", traceback.format_exc(limit=5))
    return out
