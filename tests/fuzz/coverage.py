"""Differential family "coverage": per-grid covered area against the fine-arc GEOS reference.

One case: Voronoi grids (5-40 cells over 200-1,500 m) in a UTM zone or in EPSG:4326, encoded as
Polygons, every grid a MultiPolygon, or mixed, some with holes, enclaves and exclaves, rings in
either orientation, some vertices repeated; cameras at random points, on grid corners, on grid
edges (some with a straight side running along the edge), and placed so that only their arc grazes
a grid (0.001-1 m deep); 360° domes and sectors of every width; sometimes buildings that block the
views (some with a corner within 1 mm of a camera's range), sometimes offline cameras. The answer of :func:`geogrid.coverage.grid_coverage` must lie within 0.1 % (plus 1e-5 m²)
of the bracket :func:`geogrid._reference_coverage.reference_covered_area` gives.

Columns: ``crash`` (the engine raised), ``off_by_more_than_0.1pct`` (grids outside the bracket).
"""

from __future__ import annotations

import numpy as np

import geopandas as gpd
import shapely

from tests.fuzz import Outcome

__all__ = ["COLUMNS", "FAMILY", "make_case", "run_case"]

FAMILY = "coverage"
COLUMNS = ("crash", "off_by_more_than_0.1pct")

RTOL = 1e-3
"""Relative tolerance per grid (0.1 %)."""

ATOL_M2 = 1e-5
"""Absolute tolerance per grid, for grids barely touched (the reference's own error is in its bracket)."""

UTM_ZONES = (("EPSG:32650", 440_000.0, 4_420_000.0), ("EPSG:32633", 390_000.0, 5_810_000.0))
"""Beijing and Berlin, roughly."""


def _repeat_vertex(poly: shapely.Polygon, rng: np.random.Generator) -> shapely.Polygon:
    rings = [np.asarray(poly.exterior.coords)] + [np.asarray(r.coords) for r in poly.interiors]
    out = []
    for ring in rings:
        i = int(rng.integers(0, len(ring) - 1))
        out.append(np.insert(ring, i, ring[i], axis=0))
    return shapely.Polygon(out[0], out[1:])


def make_grids(rng: np.random.Generator, x0: float, y0: float) -> tuple[np.ndarray, str]:
    """Voronoi grids in metres around ``(x0, y0)`` and the name of their encoding."""
    side = float(rng.uniform(200, 1500))
    n = int(rng.integers(5, 41))
    frame = shapely.box(x0, y0, x0 + side, y0 + side)
    seeds = shapely.multipoints(np.column_stack([rng.uniform(x0, x0 + side, n), rng.uniform(y0, y0 + side, n)]))
    cells = shapely.intersection(shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=frame)), frame)
    cells = [c for c in cells if c.area > 1.0]
    tags = []
    if rng.random() < 0.4 and len(cells) > 3:  # an enclave: a hole through one grid, filled by another grid
        i = int(rng.integers(len(cells)))
        c = cells[i]
        hole = shapely.affinity.scale(c, 0.3, 0.3, origin=c.centroid)
        if hole.within(c):
            cells[i] = c.difference(hole)
            cells.append(hole)
            tags.append("enclave")
    if rng.random() < 0.4 and len(cells) > 3:  # an exclave: two cells that do not touch, one grid
        i = int(rng.integers(len(cells)))
        far = [j for j, c in enumerate(cells) if j != i and not c.touches(cells[i]) and not c.intersects(cells[i])]
        if far:
            j = far[int(rng.integers(len(far)))]
            cells[i] = shapely.MultiPolygon([cells[i], cells[j]])
            del cells[j]
            tags.append("exclave")
    if rng.random() < 0.3:
        cells = [_repeat_vertex(c, rng) if c.geom_type == "Polygon" else c for c in cells]
        tags.append("repeated")
    geoms = np.array(cells, dtype=object)
    if rng.random() < 0.5:
        geoms = shapely.orient_polygons(geoms, exterior_cw=True)
        tags.append("cw")
    enc = ("polygon", "multipolygon", "mixed")[int(rng.integers(3))]
    if enc != "polygon":
        wrap = np.ones(len(geoms), bool) if enc == "multipolygon" else rng.random(len(geoms)) < 0.5
        for i in np.flatnonzero(wrap):
            if geoms[i].geom_type == "Polygon":
                geoms[i] = shapely.MultiPolygon([geoms[i]])
    return geoms, "+".join([enc, *tags])


def make_cameras(rng: np.random.Generator, grids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Camera positions ``(n, 2)`` and ``(heading, fov, range)`` rows, in metres."""
    x0, y0, x1, y1 = shapely.total_bounds(grids)
    bound = shapely.get_coordinates(shapely.boundary(grids))
    xy = np.empty((n, 2))
    hfr = np.empty((n, 3))
    kinds = set()
    for i in range(n):
        kind = rng.choice(["random", "corner", "edge", "along", "graze"], p=[0.4, 0.15, 0.15, 0.15, 0.15])
        kinds.add(str(kind))
        fov = float(rng.choice([rng.uniform(5, 180), 90.0, 360.0, rng.uniform(180, 359.9)], p=[0.4, 0.2, 0.25, 0.15]))
        r = float(rng.uniform(5, 200))
        h = float(rng.uniform(0, 360))
        if kind == "random":
            p = (rng.uniform(x0, x1), rng.uniform(y0, y1))
        elif kind in ("corner", "along"):
            j = int(rng.integers(len(bound) - 1))
            p = tuple(bound[j])
            if kind == "along" and fov < 360:  # one straight side along the grid edge from this corner
                d = bound[j + 1] - bound[j]
                edge_h = float(np.degrees(np.arctan2(d[0], d[1])))
                h = edge_h + fov / 2 if rng.random() < 0.5 else edge_h - fov / 2
        elif kind == "edge":
            j = int(rng.integers(len(bound) - 1))
            t = rng.random()
            p = tuple(bound[j] + t * (bound[j + 1] - bound[j]))
        else:  # graze: the arc dips 0.001-1 m into a grid across one of its edges, apex outside
            j = int(rng.integers(len(bound) - 1))
            a, b = bound[j], bound[j + 1]
            m = a + rng.uniform(0.2, 0.8) * (b - a)
            d = b - a
            nrm = np.array([d[1], -d[0]]) / max(np.hypot(*d), 1e-9)
            side = 1.0 if rng.random() < 0.5 else -1.0
            depth = float(10 ** rng.uniform(-3, 0))
            p = tuple(m + side * nrm * (r - depth))
            h = float(np.degrees(np.arctan2(-side * nrm[0], -side * nrm[1])))
        xy[i] = p
        hfr[i] = (h % 360.0, fov, r)
    return xy, hfr, "+".join(sorted(kinds))


def make_buildings(rng: np.random.Generator, grids: np.ndarray, cams: np.ndarray, hfr: np.ndarray) -> np.ndarray:
    """A few rotated rectangles near the cameras (some holding a camera, some with a courtyard).

    Sometimes one with a corner a hair (0-1 mm) inside or outside a camera's range, in its view.
    """
    out = []
    if rng.random() < 0.5:
        i = int(rng.integers(len(cams)))
        h, f, r = hfr[i]
        a = np.radians(h + rng.uniform(-f / 2, f / 2))
        d = r + rng.uniform(-1e-3, 1e-3)
        corner = cams[i] + d * np.array([np.sin(a), np.cos(a)])
        w, ht = rng.uniform(3, 20, 2)
        b = shapely.affinity.rotate(shapely.box(0, 0, w, ht), float(rng.uniform(0, 360)), origin=(0, 0))
        out.append(shapely.affinity.translate(b, *corner))
    for _ in range(int(rng.integers(1, 8))):
        c = cams[int(rng.integers(len(cams)))] + rng.normal(0, 40, 2)
        w, h = rng.uniform(5, 40, 2)
        b = shapely.affinity.rotate(shapely.box(-w / 2, -h / 2, w / 2, h / 2), float(rng.uniform(0, 90)))
        b = shapely.affinity.translate(b, *c)
        if rng.random() < 0.2:
            b = b.difference(shapely.affinity.scale(b, 0.4, 0.4))
        out.append(b)
    return np.array(out, dtype=object)


def make_case(seed: int) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame | None, str]:
    """The grids, cameras and buildings (or None) of case ``seed``, and the generator's name."""
    rng = np.random.default_rng(seed)
    crs, x0, y0 = UTM_ZONES[int(rng.integers(len(UTM_ZONES)))]
    geoms, enc = make_grids(rng, x0 + rng.uniform(0, 5000), y0 + rng.uniform(0, 5000))
    xy, hfr, kinds = make_cameras(rng, geoms, int(rng.integers(1, 31)))
    blds = make_buildings(rng, geoms, xy, hfr) if rng.random() < 0.25 else None
    grids = gpd.GeoDataFrame({"grid_id": [f"g{i}" for i in range(len(geoms))]}, geometry=geoms, crs=crs)
    cams = gpd.GeoDataFrame(
        {"heading_deg": hfr[:, 0], "fov_deg": hfr[:, 1], "range_m": hfr[:, 2]},
        geometry=shapely.points(xy),
        crs=crs,
    )
    bl = None if blds is None else gpd.GeoDataFrame(geometry=blds, crs=crs)
    where = "utm"
    if rng.random() < 0.4:  # the same data stored in lon/lat: both sides measure in the same metric CRS
        grids, cams = grids.to_crs("EPSG:4326"), cams.to_crs("EPSG:4326")
        bl = None if bl is None else bl.to_crs("EPSG:4326")
        where = "lonlat"
    if rng.random() < 0.2:  # a status column: offline cameras see nothing
        cams["status"] = np.where(rng.random(len(cams)) < 0.3, "offline", "online")
        kinds += "+offline"
    # CRS / cameras / occlusion / encoding (the long lane counts by the CRS and the last two)
    gen = f"voronoi/{where}/{kinds}/{'buildings' if bl is not None else 'open'}/{enc}"
    return grids, cams, bl, gen


def compare(fast: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Positions where ``fast`` lies outside ``[low, high]`` widened by 0.1 % and ``ATOL_M2``."""
    return np.flatnonzero((fast < low * (1 - RTOL) - ATOL_M2) | (fast > high * (1 + RTOL) + ATOL_M2))


def run_case(seed: int) -> Outcome:
    """Grid coverage of one generated case against the reference."""
    from geogrid._reference_coverage import reference_covered_area
    from geogrid.coverage import grid_coverage

    grids, cams, blds, gen = make_case(seed)
    out = Outcome(FAMILY, seed, gen, dict.fromkeys(COLUMNS, 0))
    ref = reference_covered_area(grids, cams, buildings=blds)
    try:
        fast = grid_coverage(grids, cams, buildings=blds)["covered_m2"].to_numpy()
    except Exception as err:  # any exception is the finding
        out.fail("crash", f"{type(err).__name__}: {err}")
        return out
    low, high = ref["covered_m2_low"].to_numpy(), ref["covered_m2_high"].to_numpy()
    for i in compare(fast, low, high):
        out.fail(
            "off_by_more_than_0.1pct",
            f"grid {grids['grid_id'].iloc[i]}: {fast[i]:.6f} m², reference [{low[i]:.6f}, {high[i]:.6f}]",
        )
    return out
