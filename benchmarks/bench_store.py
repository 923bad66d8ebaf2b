"""Store: atomic GeoPackage write of a grid layer against a plain pyogrio write."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

import geopandas as gpd
import pyogrio
import shapely

from benchmarks._runner import Case
from layers.store import GeoPackageStore


def _fishnet(n_side: int, seed: int) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(n_side), np.arange(n_side))
    d = 0.001
    boxes = shapely.box(
        117 + xs.ravel() * d, 39 + ys.ravel() * d, 117 + (xs.ravel() + 1) * d, 39 + (ys.ravel() + 1) * d
    )
    n = boxes.size
    return gpd.GeoDataFrame(
        {
            "grid_id": [f"g{i}" for i in range(n)],
            "parent_id": [None] * n,
            "level": np.zeros(n, int),
            "households": rng.integers(0, 500, n),
        },
        geometry=boxes,
        crs="EPSG:4326",
    )


def cases(scale: str) -> list[Case]:
    n_side = 100 if scale == "full" else 20
    tmp = Path(tempfile.mkdtemp())

    def ours(g: gpd.GeoDataFrame) -> None:
        GeoPackageStore(tmp / "ours.gpkg").write({"grids": g})

    def baseline(g: gpd.GeoDataFrame) -> None:
        pyogrio.write_dataframe(g, tmp / "plain.gpkg", layer="grids", driver="GPKG")

    return [
        Case(
            name=f"store_write_{n_side * n_side}_grids",
            setup=lambda: _fishnet(n_side, seed=0),
            ours=ours,
            baseline=baseline,
            baseline_name="pyogrio.write_dataframe (not atomic)",
            notes=f"{n_side}x{n_side} fishnet, seed 0; ours copies, writes, fsyncs and renames",
        )
    ]
