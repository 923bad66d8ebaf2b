"""Private: building footprints of the demo district, inside the street blocks.

Footprints are rectangles on a lattice aligned with the first street family, kept only
where they lie wholly inside a block shrunk by the street's half width plus a setback
(local roads 4 m + 7 m, arterials 12 m + 10 m, from the centre line; dead ends too), so no
footprint touches a street and the cameras beside the streets stand outside them.
Three kinds, as in a Chinese residential district: slab blocks (板楼, 30–60 m × 11–14 m,
6–18 floors), point towers (塔楼, 20–30 m square, 18–33 floors) and low-rise shops and
facilities (12–25 m × 10–18 m, 2–5 floors). About a seventh of the lots stay open
(squares, parks, school yards). Floors are 3 m.
"""

from __future__ import annotations

import numpy as np

import geopandas as gpd
import shapely

from geogrid._demo_city import METRIC_EPSG

_KINDS = ("slab", "tower", "low_rise")
_KIND_P = np.array([0.6, 0.15, 0.25])
_OPEN_SHARE = 0.14
_FLOOR_M = 3.0


def _lots(blocks: np.ndarray) -> np.ndarray:
    """Blocks shrunk by the local setback: where footprints are laid out."""
    inner = shapely.buffer(blocks, -(4.0 + 7.0), quad_segs=2, join_style="mitre")
    parts = shapely.get_parts(inner)
    return parts[shapely.area(parts) > 200.0]


def _buildings(rng: np.random.Generator, blocks: np.ndarray, lines: np.ndarray, is_art: np.ndarray) -> gpd.GeoDataFrame:
    """Seeded building footprints inside ``blocks`` (local metric frame centred on 0, 0).

    Each lot (a block minus the street setbacks) gets one use: rows of slab blocks, point
    towers, low-rise buildings, or nothing (open space). Footprints are laid out in rows
    along the lot's oriented envelope and kept where they lie wholly inside the lot.
    """
    lots = _lots(blocks)
    env = shapely.oriented_envelope(lots)
    ring = shapely.get_coordinates(shapely.get_exterior_ring(env)).reshape(len(lots), 5, 2)
    use = rng.choice(len(_KINDS) + 1, size=len(lots), p=[*(_KIND_P * (1 - _OPEN_SHARE)), _OPEN_SHARE])
    rects: list[np.ndarray] = []
    kinds: list[np.ndarray] = []
    floors: list[np.ndarray] = []
    owner: list[np.ndarray] = []
    for i in range(len(lots)):
        kind = int(use[i])
        if kind == len(_KINDS):
            continue
        p0, e1, e2 = ring[i, 0], ring[i, 1] - ring[i, 0], ring[i, 3] - ring[i, 0]
        if np.hypot(*e1) < np.hypot(*e2):
            e1, e2 = e2, e1
        w1, w2 = float(np.hypot(*e1)), float(np.hypot(*e2))
        u1, u2 = e1 / max(w1, 1e-9), e2 / max(w2, 1e-9)
        if kind == 0:  # slabs: rows of 30-60 m x 11-14 m, 12-20 m apart
            length, depth, gap1, gap2 = (
                rng.uniform(30, 60),
                rng.uniform(11, 14),
                rng.uniform(6, 10),
                rng.uniform(12, 20),
            )
            fl = int(rng.choice([6, 7, 11, 18]))
        elif kind == 1:  # towers: 20-30 m squares, 15-25 m apart
            length = depth = rng.uniform(20, 30)
            gap1 = gap2 = rng.uniform(15, 25)
            fl = int(rng.integers(18, 34))
        else:  # low-rise: 12-25 m x 10-18 m, 4-8 m apart
            length, depth, gap1, gap2 = rng.uniform(12, 25), rng.uniform(10, 18), rng.uniform(4, 8), rng.uniform(4, 8)
            fl = int(rng.integers(2, 6))
        n1 = max(int((w1 + gap1) // (length + gap1)), 1)
        n2 = max(int((w2 + gap2) // (depth + gap2)), 1)
        s1 = (w1 - n1 * length - (n1 - 1) * gap1) / 2 + np.arange(n1) * (length + gap1)
        s2 = (w2 - n2 * depth - (n2 - 1) * gap2) / 2 + np.arange(n2) * (depth + gap2)
        a, b = (x.ravel() for x in np.meshgrid(s1, s2))
        corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], dtype=float)
        du = a[:, None] + corners[None, :, 0] * length
        dv = b[:, None] + corners[None, :, 1] * depth
        rects.append(p0 + du[..., None] * u1 + dv[..., None] * u2)
        kinds.append(np.full(a.size, kind))
        floors.append(np.clip(fl + rng.integers(-1, 2, a.size) * (kind != 1), 1, None))
        owner.append(np.full(a.size, i))
    geoms = shapely.polygons(np.concatenate(rects))
    lot = np.concatenate(owner)
    keep = shapely.within(geoms, lots[lot])
    # Off every street: dead ends run into blocks, and arterials want a wider setback.
    setback = shapely.buffer(lines, np.where(is_art, 12.0 + 10.0, 4.0 + 7.0), quad_segs=2)
    hit = shapely.STRtree(setback).query(geoms, predicate="intersects")[0]
    keep[hit] = False
    kind_k = np.concatenate(kinds)[keep]
    floors_k = np.concatenate(floors)[keep].astype(np.int64)
    return gpd.GeoDataFrame(
        {
            "building_id": [f"B{i + 1:05d}" for i in range(int(keep.sum()))],
            "kind": np.array(_KINDS, dtype=object)[kind_k],
            "floors": floors_k,
            "height_m": floors_k * _FLOOR_M,
        },
        geometry=geoms[keep],
        crs=f"EPSG:{METRIC_EPSG}",
    )
