"""Assignment: points into grids with geogrid's owner raster against geopandas.sjoin(predicate="within").

Two cases at full scale: 10 million uniform points (seed 0) over the bounding box of the demo
district's 990 basic grids (seed 0), and over a seeded Voronoi coverage of 100,000 grids. Both
sides get the same point GeoDataFrame; the check compares every point's grid_id (sjoin's missing
rows, i.e. points outside, against our <NA>). Random float points do not fall on boundaries, where
the two differ by design (sjoin drops such points; we give them to the lowest grid_id).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from benchmarks._runner import Case
from geogrid.assignment import assign_points

BASELINE = "geopandas.sjoin(predicate='within')"


def _points(bounds: np.ndarray, n: int, seed: int, crs: Any) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = bounds
    x, y = rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)
    return gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=crs)


def voronoi_grids(n: int, seed: int, *, side_m: float = 30_000.0) -> gpd.GeoDataFrame:
    """A seeded Voronoi coverage of ``n`` grids in a square of ``side_m`` metres (EPSG:4548, Tianjin)."""
    rng = np.random.default_rng(seed)
    x0, y0 = 500_000.0, 4_320_000.0
    box = shapely.box(x0, y0, x0 + side_m, y0 + side_m)
    seeds = shapely.multipoints(np.column_stack([rng.uniform(x0, x0 + side_m, n), rng.uniform(y0, y0 + side_m, n)]))
    cells = shapely.intersection(shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=box)), box)
    return gpd.GeoDataFrame(
        {"grid_id": [f"V{i:06d}" for i in range(n)], "parent_id": [None] * n, "level": np.zeros(n, int)},
        geometry=cells,
        crs="EPSG:4548",
    )


def _demo_grids() -> gpd.GeoDataFrame:
    from geogrid.demo import build_demo

    grids = build_demo(0, n_incidents=10, n_cameras=10).grids  # the grids do not depend on the counts
    return grids[grids["level"] == 3].reset_index(drop=True)


def _as_multipolygons(grids: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Every grid a MultiPolygon, as a GeoPackage round trip leaves them."""
    parts = np.asarray(grids.geometry.array, dtype=object)
    return grids.set_geometry(gpd.GeoSeries(shapely.multipolygons(parts[:, None]), index=grids.index, crs=grids.crs))


def _case(name: str, make_grids: Any, n_points: int, repeat: int, notes: str) -> Case:
    def setup() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, int]:
        grids = make_grids()
        level = int(grids["level"].iloc[0])
        return _points(grids.total_bounds, n_points, 0, grids.crs), grids, level

    def ours(data: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, int]) -> pd.Series:
        pts, grids, level = data
        return assign_points(pts, grids, levels=[level])[f"grid_id_{level}"]

    def baseline(data: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, int]) -> pd.Series:
        pts, grids, _ = data
        joined = gpd.sjoin(pts, grids[["grid_id", "geometry"]], predicate="within")
        return joined["grid_id"]

    def check(got: pd.Series, joined: pd.Series) -> None:
        assert not joined.index.duplicated().any(), "sjoin matched a point twice"
        expected = joined.reindex(got.index)
        same = (got.isna() & expected.isna()) | (got.astype(object) == expected.astype(object)).fillna(False)
        bad = int((~same).sum())
        assert bad == 0, f"{bad} of {len(got):,} points differ from sjoin"

    return Case(
        name=name,
        setup=setup,
        ours=ours,
        baseline=baseline,
        baseline_name=BASELINE,
        check=check,
        repeat=repeat,
        notes=notes,
    )


def cases(scale: str) -> list[Case]:
    full = scale == "full"
    n_points = 10_000_000 if full else 100_000
    n_vor = 100_000 if full else 2_000
    repeat = 1 if full else 3
    return [
        _case(
            f"assign_{n_points // 1000}k_into_990",
            _demo_grids,
            n_points,
            repeat,
            f"{n_points:,} uniform points (seed 0) over the demo district's 990 basic grids (demo seed 0)",
        ),
        _case(
            f"assign_{n_points // 1000}k_into_990_multipolygon",
            lambda: _as_multipolygons(_demo_grids()),
            n_points,
            repeat,
            f"as assign_{n_points // 1000}k_into_990 with every grid a MultiPolygon (a GeoPackage round trip)",
        ),
        _case(
            f"assign_{n_points // 1000}k_into_{n_vor // 1000}k",
            lambda: voronoi_grids(n_vor, seed=0),
            n_points,
            repeat,
            f"{n_points:,} uniform points (seed 0) over a Voronoi coverage of {n_vor:,} grids (seed 0), EPSG:4548",
        ),
    ]
