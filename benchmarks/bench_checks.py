"""Checks: one call of ``check_grids`` against the single-purpose tools a user would chain.

The baseline is what a planner can run today on one flat layer:
``shapely.coverage_invalid_edges`` (bad edges, as lines) followed by
``geopandas.overlay(df, df)`` for self-overlaps. It reports no gap polygons (a gap
wider than the gap width shows up nowhere), cannot tell an enclave from a gap, knows
no parent level (no outside-parent, no untiled parent, no straddlers, no parent_id
checks), reports invalid polygons by raising, and measures nothing in m².
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import geopandas as gpd
import shapely

from benchmarks._runner import Case
from geogrid.hierarchy import check_grids

X0, Y0 = 117.0, 39.0
CELL_DEG = 0.001  # ~86 m x 111 m near Tianjin


def _lattice(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n+1, n+1, 2) jittered vertex lattice: shared vertices, irregular quadrilaterals."""
    i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    jit = rng.uniform(-0.3, 0.3, size=(n + 1, n + 1, 2)) * CELL_DEG
    return np.stack([X0 + i * CELL_DEG, Y0 + j * CELL_DEG], axis=-1) + jit


def _block_ring(v: np.ndarray, i0: int, j0: int, i1: int, j1: int) -> np.ndarray:
    """Ring along the lattice boundary of block [i0, i1] x [j0, j1] with every vertex on it."""
    return np.concatenate([v[i0:i1, j0], v[i1, j0:j1], v[i1:i0:-1, j1], v[i0, j1:j0:-1], v[i0 : i0 + 1, j0]])


def fishnet_levels(
    n: int, blocks: tuple[int, ...] = (), *, seed: int = 0, perturbed: int = 0, shift_m: float = 3.0
) -> gpd.GeoDataFrame:
    """A jittered ``n`` x ``n`` fishnet (the last level) under coarser levels of ``blocks`` cells.

    ``blocks=(n, n // 4, 10)`` gives 1 district, 16 streets, (n/10)² communities, n² grids.
    ``perturbed`` basic cells get one corner moved by ``shift_m`` metres in that cell only.
    """
    rng = np.random.default_rng(seed)
    v = _lattice(n, rng)
    rows: list[tuple[str, str | None, int, shapely.Geometry]] = []
    parent_of_block: dict[tuple[int, int, int], str] = {}
    for lv, size in enumerate(blocks):
        for bi in range(0, n, size):
            for bj in range(0, n, size):
                gid = f"L{lv}_{bi // size}_{bj // size}"
                parent = None
                if lv:
                    up = blocks[lv - 1]
                    parent = parent_of_block[(lv - 1, bi // up, bj // up)]
                parent_of_block[(lv, bi // size, bj // size)] = gid
                ring = _block_ring(v, bi, bj, min(bi + size, n), min(bj + size, n))
                rows.append((gid, parent, lv, shapely.Polygon(ring)))
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    i, j = i.ravel(), j.ravel()
    corners = np.stack([v[i, j], v[i + 1, j], v[i + 1, j + 1], v[i, j + 1], v[i, j]], axis=1)
    if perturbed:
        cells = rng.choice(i.size, size=perturbed, replace=False)
        which = rng.integers(0, 4, size=perturbed)
        angle = rng.uniform(0, 2 * np.pi, size=perturbed)
        step = shift_m / np.array([111_320 * np.cos(np.radians(Y0)), 110_950])
        delta = np.column_stack([np.cos(angle), np.sin(angle)]) * step
        corners[cells, which] += delta
        corners[cells, 4] = corners[cells, 0]
    basic = shapely.polygons(corners)
    lv = len(blocks)
    if blocks:
        up = blocks[-1]
        parents = [parent_of_block[(lv - 1, a // up, b // up)] for a, b in zip(i, j, strict=True)]
    else:
        parents = [None] * i.size
    ids = [f"g{a}_{b}" for a, b in zip(i, j, strict=True)]
    return gpd.GeoDataFrame(
        {
            "grid_id": [r[0] for r in rows] + ids,
            "parent_id": [r[1] for r in rows] + parents,
            "level": [r[2] for r in rows] + [lv] * i.size,
        },
        geometry=[r[3] for r in rows] + list(basic),
        crs="EPSG:4326",
    )


def _baseline(g: gpd.GeoDataFrame) -> tuple[np.ndarray, gpd.GeoDataFrame]:
    edges = shapely.coverage_invalid_edges(g.geometry.to_numpy(), gap_width=1e-5)
    pieces = gpd.overlay(g[["grid_id", "geometry"]], g[["grid_id", "geometry"]], keep_geom_type=True)
    return edges, pieces[pieces["grid_id_1"] < pieces["grid_id_2"]]


def _basic_edges(g: gpd.GeoDataFrame) -> np.ndarray:
    basic = g[g["level"] == g["level"].max()]
    return shapely.coverage_invalid_edges(basic.geometry.to_numpy(), gap_width=1e-5)


def _basic_overlay(g: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    basic = g.loc[g["level"] == g["level"].max(), ["grid_id", "geometry"]]
    pieces = gpd.overlay(basic, basic, keep_geom_type=True)
    return pieces[pieces["grid_id_1"] < pieces["grid_id_2"]]


def as_multipolygons(g: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Every grid a MultiPolygon, as after a GeoPackage round trip."""
    out = g.copy()
    out.geometry = gpd.GeoSeries(shapely.multipolygons(shapely.get_parts(g.geometry.to_numpy())[:, None]), crs=g.crs)
    return out


def cases(scale: str) -> list[Case]:
    n = 100 if scale == "full" else 20
    n4 = 320 if scale == "full" else 40
    k = n * n // 100
    return [
        Case(
            name=f"check_level_{n * n}_perturbed",
            setup=lambda: fishnet_levels(n, seed=0, perturbed=k),
            ours=lambda g: check_grids(g, gap_width_m=1.0),
            baseline=_baseline,
            baseline_name="coverage_invalid_edges + geopandas.overlay(df, df)",
            notes=(
                f"one level: {n}x{n} jittered fishnet, seed 0, {k} cells with one corner moved 3 m; the "
                "baseline finds no gap polygons, no areas in m², no parent problems"
            ),
        ),
        *(
            case
            for tag, encode, encoded in (
                ("", lambda g: g, ""),
                ("_multipolygon", as_multipolygons, "; every grid a MultiPolygon (a GeoPackage round trip)"),
            )
            for case in _four_level_cases(n4, tag, encode, encoded, repeat=1 if scale == "full" else 3)
        ),
    ]


def _four_level_cases(
    n4: int, tag: str, encode: Callable[[gpd.GeoDataFrame], gpd.GeoDataFrame], encoded: str, repeat: int
) -> list[Case]:
    """The 4-level check against one flat edge validation and against overlay, on one encoding."""
    k = n4 * n4 // 1000

    def setup() -> gpd.GeoDataFrame:
        return encode(fishnet_levels(n4, (n4, n4 // 4, 10), seed=0, perturbed=k))

    what = f"4 levels 1/16/{(n4 // 10) ** 2}/{n4 * n4}, seed 0, {k} basic cells perturbed 3 m{encoded}"
    return [
        Case(
            name=f"check_4_levels_{n4 * n4}{tag}_basic",
            setup=setup,
            ours=lambda g: check_grids(g, gap_width_m=1.0),
            baseline=_basic_edges,
            baseline_name="coverage_invalid_edges on the basic level only",
            notes=f"{what}; target: ratio >= 0.5 (the full check within 2x of one flat edge validation)",
            repeat=repeat,
        ),
        Case(
            name=f"check_4_levels_{n4 * n4}{tag}_vs_overlay",
            setup=setup,
            ours=lambda g: check_grids(g, gap_width_m=1.0),
            baseline=_basic_overlay,
            baseline_name="geopandas.overlay(df, df) self-overlaps of the basic level only",
            notes=f"{what}; target: ratio >= 10 (every kind on 4 levels against one kind on one level)",
            repeat=repeat,
        ),
    ]
