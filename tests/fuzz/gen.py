"""Seeded generators of grid hierarchies, their perturbations and their encodings.

A hierarchy is built from one GEOS Voronoi diagram (neighbouring cells share their vertices
exactly), so it is a valid coverage at every level by construction: the basic grids are
Voronoi cells, each coarser level dissolves groups of nearby children with
``coverage_union_all`` (groups need not be connected: a parent may have exclaves). The
district is the union of the cells whose generating points fall inside a random blob,
so its outline is irregular. Coordinates are built in metres around the origin, then
placed in a UTM zone or turned into lon/lat (China or elsewhere) *before* dissolving, so
nesting is exact in the stored CRS.

Every generator takes a ``numpy.random.Generator`` and returns plain GeoDataFrames, so a
failing case is reproduced from its seed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely
from pyproj import Transformer

__all__ = ["CRS_KINDS", "ENCODINGS", "PERTURBATIONS", "encode", "hierarchy", "perturb"]

CRS_KINDS = ("utm", "lonlat_cn", "lonlat_eu")
_PLACE = {  # metric CRS the metres are placed in, the false origin, and the CRS stored
    "utm": ("EPSG:32650", (480_000.0, 4_330_000.0), "EPSG:32650"),
    "lonlat_cn": ("EPSG:32650", (480_000.0, 4_330_000.0), "EPSG:4326"),
    "lonlat_eu": ("EPSG:32633", (420_000.0, 5_800_000.0), "EPSG:4326"),
}


def hierarchy(rng: np.random.Generator, n_basic: int, n_levels: int, crs_kind: str) -> gpd.GeoDataFrame:
    """A valid hierarchy of ``n_levels`` levels (0 = district) with about ``n_basic`` basic grids."""
    side = 120.0 * np.sqrt(n_basic)  # ~120 m cells
    pts = rng.uniform(-side, side, size=(int(n_basic * 2.2), 2))
    cells = shapely.get_parts(
        shapely.voronoi_polygons(
            shapely.multipoints(pts), extend_to=shapely.box(-3 * side, -3 * side, 3 * side, 3 * side)
        )
    )
    seeds = shapely.get_coordinates(shapely.points(pts))
    # the Voronoi output is in no particular order: match each cell to its generating point
    tree = shapely.STRtree(cells)
    ci, pi = tree.query(shapely.points(seeds), predicate="within")
    order = np.full(len(seeds), -1)
    order[ci] = pi
    cells = cells[order[order >= 0]]
    centre = seeds[order >= 0]
    # an irregular blob: a radius that varies with the angle
    ang = np.arctan2(centre[:, 1], centre[:, 0])
    k = rng.integers(2, 6)
    r = side * (0.62 + 0.18 * np.sin(k * ang + rng.uniform(0, 6.3)) + 0.08 * np.cos((k + 2) * ang))
    inside = np.hypot(centre[:, 0], centre[:, 1]) < r
    cells, centre = cells[inside], centre[inside]
    metric, (x0, y0), stored = _PLACE[crs_kind]
    if stored == metric:
        cells = shapely.transform(cells, lambda xy: xy + np.array([x0, y0]))
    else:
        tr = Transformer.from_crs(metric, stored, always_xy=True)
        cells = shapely.transform(cells, lambda xy: np.column_stack(tr.transform(xy[:, 0] + x0, xy[:, 1] + y0)))
    n = len(cells)
    levels_geoms = [cells]
    levels_ids = [np.array([f"G{i:04d}" for i in range(n)], dtype=object)]
    parents_of: list[np.ndarray] = []
    cur_centre = centre
    for depth in range(n_levels - 1, 0, -1):
        n_par = int(rng.integers(1, 4)) if depth == 1 else max(2, len(levels_geoms[0]) // int(rng.integers(3, 9)))
        pick = rng.choice(len(cur_centre), size=min(n_par, len(cur_centre)), replace=False)
        d = np.hypot(
            cur_centre[:, None, 0] - cur_centre[None, pick, 0], cur_centre[:, None, 1] - cur_centre[None, pick, 1]
        )
        group = np.argmin(d, axis=1)
        group = np.unique(group, return_inverse=True)[1].ravel()
        geoms = levels_geoms[0]
        parent_geoms = np.array(
            [shapely.coverage_union_all(geoms[group == g]) for g in range(group.max() + 1)], dtype=object
        )
        parent_centre = np.array([cur_centre[group == g].mean(axis=0) for g in range(group.max() + 1)])
        prefix = "D" if depth == 1 else f"L{depth - 1}_"
        ids = np.array([f"{prefix}{g:03d}" for g in range(len(parent_geoms))], dtype=object)
        parents_of.insert(0, ids[group])
        levels_geoms.insert(0, parent_geoms)
        levels_ids.insert(0, ids)
        cur_centre = parent_centre
    rows = []
    for lv, (geoms, ids) in enumerate(zip(levels_geoms, levels_ids, strict=True)):
        par = parents_of[lv - 1] if lv > 0 else [None] * len(ids)
        rows.append(pd.DataFrame({"grid_id": ids, "parent_id": par, "level": lv, "geometry": geoms}))
    df = pd.concat(rows, ignore_index=True)
    return gpd.GeoDataFrame(df, geometry="geometry", crs=stored)


# -- perturbations ------------------------------------------------------------------
def _metres(grids: gpd.GeoDataFrame) -> float:
    """Input units per metre (1 for a projected CRS)."""
    return 1.0 / 111_000.0 if grids.crs.is_geographic else 1.0


def _pick(rng: np.random.Generator, grids: gpd.GeoDataFrame, level: int | None = None) -> int:
    lv = int(grids["level"].max()) if level is None else level
    rows = np.flatnonzero(grids["level"].to_numpy() == lv)
    return int(rng.choice(rows))


def _set(grids: gpd.GeoDataFrame, row: int, geom: shapely.Geometry) -> None:
    geoms = grids.geometry.to_numpy().copy()
    geoms[row] = geom
    grids.geometry = gpd.GeoSeries(geoms, index=grids.index, crs=grids.crs)


def _move_vertex(rng: np.random.Generator, g: gpd.GeoDataFrame) -> str:
    r = _pick(rng, g)
    d = rng.uniform(0.1, 50.0) * _metres(g)
    geom = g.geometry.iloc[r]
    xy = shapely.get_coordinates(geom)
    k = int(rng.integers(0, len(xy)))
    shift = d * np.array([np.cos(a := rng.uniform(0, 6.3)), np.sin(a)])
    target = xy[k].copy()

    def f(c: np.ndarray) -> np.ndarray:
        c = c.copy()
        c[(c == target).all(axis=1)] += shift
        return c

    _set(g, r, shapely.transform(geom, f))
    return f"vertex of {g.grid_id.iloc[r]} moved {d / _metres(g):.2f} m"


def _translate(rng: np.random.Generator, g: gpd.GeoDataFrame) -> str:
    r = _pick(rng, g)
    d = rng.uniform(0.1, 50.0) * _metres(g)
    a = rng.uniform(0, 6.3)
    _set(g, r, shapely.affinity.translate(g.geometry.iloc[r], d * np.cos(a), d * np.sin(a)))
    return f"{g.grid_id.iloc[r]} translated"


def _delete(rng: np.random.Generator, g: gpd.GeoDataFrame) -> str:
    r = _pick(rng, g)
    gid = g.grid_id.iloc[r]
    _remove(g, np.arange(len(g)) == r)
    return f"{gid} deleted"


_GONE = -1
"""Level that marks a row a perturbation removed (:func:`perturb` drops them)."""


def _remove(g: gpd.GeoDataFrame, rows: np.ndarray) -> None:
    """Mark ``rows`` (a boolean mask) removed; perturbations change the frame they are given."""
    g.loc[rows, "level"] = _GONE


def _append(g: gpd.GeoDataFrame, rows: gpd.GeoDataFrame) -> None:
    """Append ``rows`` to ``g`` in place (perturbations change the frame they are given)."""
    start = int(g.index.max()) + 1 if len(g) else 0
    for i in range(len(rows)):
        g.loc[start + i] = rows.iloc[i]


def _duplicate(rng: np.random.Generator, g: gpd.GeoDataFrame) -> str:
    r = _pick(rng, g, int(rng.integers(1, int(g["level"].max()) + 1)))
    row = g.iloc[[r]].copy()
    row["grid_id"] = row["grid_id"] + "_dup"
    _append(g, row)
    return f"{row.grid_id.iloc[0]} duplicated"


def _shift_block(rng: np.random.Generator, g: gpd.GeoDataFrame) -> str:
    """A copy of one parent's children (new ids, same parent), shifted 0.5-30 m: a stacked block."""
    lv = int(g["level"].max())
    kids = g[g["level"] == lv]
    par = str(rng.choice(sorted(set(kids["parent_id"].dropna())))) if lv > 0 else None
    block = kids[kids["parent_id"] == par].copy() if par is not None else kids.copy()
    d = rng.uniform(0.5, 30.0) * _metres(g)
    a = rng.uniform(0, 6.3)
    block["grid_id"] = block["grid_id"] + "_cp"
    block = block.set_geometry(block.geometry.translate(d * np.cos(a), d * np.sin(a)))
    _append(g, block)
    return f"{len(block)} children of {par} copied and shifted {d / _metres(g):.1f} m"


def _exclave(rng: np.random.Generator, g: gpd.GeoDataFrame) -> str:
    """A part of grid A drawn inside its neighbour B (B unchanged): an overlap."""
    lv = int(g["level"].max())
    r = _pick(rng, g, lv)
    a = g.geometry.iloc[r]
    rows = np.flatnonzero((g["level"].to_numpy() == lv) & shapely.touches(g.geometry.to_numpy(), a))
    if rows.size == 0:
        return "no neighbour"
    b = g.geometry.iloc[int(rng.choice(rows))]
    size = rng.uniform(2, 30) * _metres(g)
    c = shapely.get_coordinates(shapely.point_on_surface(b))[0]
    part = shapely.intersection(shapely.box(c[0] - size, c[1] - size, c[0] + size, c[1] + size), b)
    _set(g, r, shapely.MultiPolygon([*shapely.get_parts(a), *shapely.get_parts(part)]))
    return f"exclave of {g.grid_id.iloc[r]} inside a neighbour"


def _sliver(rng: np.random.Generator, g: gpd.GeoDataFrame) -> str:
    """A strip 0.2-2 m wide cut from a basic grid along its boundary: a sliver gap."""
    r = _pick(rng, g)
    w = rng.uniform(0.2, 2.0) * _metres(g)
    geom = g.geometry.iloc[r]
    ring = shapely.get_exterior_ring(shapely.get_parts(geom)[0])
    edge = shapely.LineString(shapely.get_coordinates(ring)[:2])
    _set(g, r, shapely.difference(geom, shapely.buffer(edge, w / 2, cap_style="flat")))
    return f"sliver {w / _metres(g):.2f} m cut from {g.grid_id.iloc[r]}"


def _bow_tie(rng: np.random.Generator, g: gpd.GeoDataFrame) -> str:
    r = _pick(rng, g)
    xy = shapely.get_coordinates(shapely.get_exterior_ring(shapely.get_parts(g.geometry.iloc[r])[0]))[:-1]
    if len(xy) < 4:
        return "too few vertices"
    xy[[0, 1]] = xy[[1, 0]]
    _set(g, r, shapely.Polygon(xy))
    return f"{g.grid_id.iloc[r]} made a bow-tie"


def _hole(rng: np.random.Generator, g: gpd.GeoDataFrame) -> str:
    r = _pick(rng, g)
    geom = g.geometry.iloc[r]
    c = shapely.get_coordinates(shapely.point_on_surface(geom))[0]
    s = rng.uniform(1, 15) * _metres(g)
    _set(g, r, shapely.difference(geom, shapely.box(c[0] - s, c[1] - s, c[0] + s, c[1] + s)))
    return f"hole punched in {g.grid_id.iloc[r]}"


def _straddle(rng: np.random.Generator, g: gpd.GeoDataFrame) -> str:
    """A grid whose parent_id names a neighbour of its parent: outside one, missing from the other."""
    lv = int(g["level"].max())
    if lv < 2:
        return "too few levels"
    r = _pick(rng, g, lv)
    par = g.parent_id.iloc[r]
    others = sorted(set(g.loc[g["level"] == lv - 1, "grid_id"]) - {par})
    if not others:
        return "one parent"
    g.iloc[r, g.columns.get_loc("parent_id")] = str(rng.choice(others))
    return f"{g.grid_id.iloc[r]} given another parent"


def _cut_everywhere(g: gpd.GeoDataFrame, shape: shapely.Geometry) -> None:
    geoms = g.geometry.to_numpy().copy()
    hit = shapely.intersects(geoms, shape)
    geoms[hit] = shapely.difference(geoms[hit], shape)
    keep = ~shapely.is_empty(geoms)
    g.geometry = gpd.GeoSeries(geoms, index=g.index, crs=g.crs)
    _remove(g, ~keep)


def _enclave(rng: np.random.Generator, g: gpd.GeoDataFrame, *, between: bool) -> str:
    """Land outside the jurisdiction: a hole through every level (sound)."""
    basic = g[g["level"] == g["level"].max()]
    if between:  # around a vertex shared by three or more basic grids (by top-level grids if there are several)
        tops = g.geometry[g["level"] == 0].to_numpy()
        xy = shapely.get_coordinates(basic.geometry.to_numpy())
        u, cnt = np.unique(xy, axis=0, return_counts=True)
        inner = u[cnt >= 4]  # each ring repeats its first vertex; 3 cells meeting count >= 3
        top = shapely.boundary(shapely.union_all(tops))
        far = inner[shapely.distance(shapely.points(inner), top) > 60 * _metres(g)]
        if len(tops) > 1:
            seams = shapely.union_all(shapely.boundary(tops))
            on_seam = far[shapely.distance(shapely.points(far), seams) < 1e-9 * _metres(g) + 1e-12]
            far = on_seam if on_seam.size else far
        if far.size == 0:
            return "no inner vertex"
        c = far[int(rng.integers(0, len(far)))]
    else:
        c = shapely.get_coordinates(shapely.point_on_surface(basic.geometry.iloc[int(rng.integers(0, len(basic)))]))[0]
    s = rng.uniform(3, 25) * _metres(g)
    _cut_everywhere(g, shapely.Point(c).buffer(s, quad_segs=4))
    return f"enclave ({'between grids' if between else 'inside one grid'})"


def _notch(rng: np.random.Generator, g: gpd.GeoDataFrame) -> str:
    """An acute notch 0.3-1 m wide, 10-40 m deep cut into the outline through every level (sound)."""
    top = shapely.union_all(g.geometry[g["level"] == 0].to_numpy())
    ring = shapely.get_exterior_ring(shapely.get_parts(top)[0])
    # where two basic grids meet the outline, most of the time (the hard case); anywhere otherwise
    basic = g.geometry[g["level"] == g["level"].max()].to_numpy()
    xy, which = shapely.get_coordinates(basic, return_index=True)
    on = shapely.distance(shapely.points(xy), ring) < 1e-9 * _metres(g) + 1e-12
    u, cnt = np.unique(np.unique(np.column_stack([xy[on], which[on]]), axis=0)[:, :2], axis=0, return_counts=True)
    meet = u[cnt >= 2]
    if meet.size and rng.random() < 0.8:
        p = shapely.Point(meet[int(rng.integers(0, len(meet)))])
    else:
        p = shapely.line_interpolate_point(ring, rng.uniform(0, 1), normalized=True)
    inward = shapely.get_coordinates(shapely.centroid(top))[0] - shapely.get_coordinates(p)[0]
    inward /= np.hypot(*inward)
    depth, width = rng.uniform(10, 40) * _metres(g), rng.uniform(0.3, 1.0) * _metres(g)
    a = shapely.get_coordinates(p)[0] - inward * width
    tip = a + inward * (depth + width)
    normal = np.array([-inward[1], inward[0]]) * width / 2
    _cut_everywhere(g, shapely.Polygon([a + normal, tip, a - normal]))
    return "acute notch in the outline"


PERTURBATIONS: dict[str, Callable[[np.random.Generator, gpd.GeoDataFrame], str]] = {
    "none": lambda _rng, _g: "",
    "move_vertex": _move_vertex,
    "translate": _translate,
    "delete": _delete,
    "duplicate": _duplicate,
    "shift_block": _shift_block,
    "exclave": _exclave,
    "sliver": _sliver,
    "bow_tie": _bow_tie,
    "hole": _hole,
    "straddle": _straddle,
    "enclave_one": lambda rng, g: _enclave(rng, g, between=False),
    "enclave_between": lambda rng, g: _enclave(rng, g, between=True),
    "notch": _notch,
}
SOUND_PERTURBATIONS = frozenset({"none", "enclave_one", "enclave_between", "notch"})
"""Perturbations after which the layer is still sound."""


def perturb(rng: np.random.Generator, grids: gpd.GeoDataFrame, kind: str) -> tuple[gpd.GeoDataFrame, str]:
    """Return a perturbed copy and a description."""
    g = grids.copy()
    what = PERTURBATIONS[kind](rng, g)
    return g[g["level"] != _GONE].reset_index(drop=True), what


# -- encodings ----------------------------------------------------------------------
def _each(
    grids: gpd.GeoDataFrame,
    f: Callable[[np.ndarray], np.ndarray],
    share: float = 1.0,
    rng: np.random.Generator | None = None,
) -> gpd.GeoDataFrame:
    g = grids.copy()
    geoms = g.geometry.to_numpy().copy()
    sel = np.ones(len(geoms), dtype=bool) if rng is None else rng.random(len(geoms)) < share
    sel &= ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if sel.any():
        geoms[sel] = f(geoms[sel])
    g.geometry = gpd.GeoSeries(geoms, index=g.index, crs=g.crs)
    return g


def _multi(geoms: np.ndarray) -> np.ndarray:
    out = np.empty(len(geoms), dtype=object)
    out[:] = [shapely.MultiPolygon(list(shapely.get_parts(x))) if x.geom_type == "Polygon" else x for x in geoms]
    return out


def _repeat(geoms: np.ndarray) -> np.ndarray:
    def f(xy: np.ndarray) -> np.ndarray:
        return np.repeat(xy, 1 + (np.arange(len(xy)) % 3 == 1), axis=0)

    out = np.empty(len(geoms), dtype=object)
    for i, g in enumerate(geoms):
        polys = [
            shapely.Polygon(f(np.asarray(p.exterior.coords)), [f(np.asarray(h.coords)) for h in p.interiors])
            for p in shapely.get_parts(g)
        ]
        out[i] = polys[0] if g.geom_type == "Polygon" else shapely.MultiPolygon(polys)
    return out


def _round_trip(grids: gpd.GeoDataFrame, driver: str) -> gpd.GeoDataFrame:
    ext = {"GPKG": "gpkg", "GeoJSON": "geojson", "ESRI Shapefile": "shp"}[driver]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, f"grids.{ext}")
        g = grids.copy()
        g["parent_id"] = g["parent_id"].astype(object)
        g.to_file(path, driver=driver, engine="pyogrio")
        back = gpd.read_file(path, engine="pyogrio")
    back["level"] = back["level"].astype("int64")
    back["parent_id"] = back["parent_id"].where(back["parent_id"].notna() & (back["parent_id"] != ""), None)
    return back[["grid_id", "parent_id", "level", "geometry"]]


ENCODINGS: dict[str, Callable[[np.random.Generator, gpd.GeoDataFrame], gpd.GeoDataFrame]] = {
    "polygon": lambda _rng, g: g,
    "multipolygon": lambda _rng, g: _each(g, _multi),
    "mixed": lambda rng, g: _each(g, _multi, 0.5, rng),
    "reversed": lambda rng, g: _each(g, shapely.reverse, 0.5, rng),
    "repeated_vertices": lambda rng, g: _each(g, _repeat, 0.5, rng),
    "z": lambda _rng, g: _each(g, lambda a: shapely.force_3d(a, 7.0)),
    "gpkg": lambda _rng, g: _round_trip(g, "GPKG"),
    "geojson": lambda _rng, g: _round_trip(g, "GeoJSON"),
    "shapefile": lambda _rng, g: _round_trip(g, "ESRI Shapefile"),
}


def encode(rng: np.random.Generator, grids: gpd.GeoDataFrame, kind: str) -> gpd.GeoDataFrame:
    """Return ``grids`` as a user would hand them over after ``kind`` (a file round trip, MultiPolygons...)."""
    return ENCODINGS[kind](rng, grids).reset_index(drop=True)
