"""Edits: one topology-safe edit plus the full validity check, against what a planner would chain.

Ours: :func:`geogrid.edits.transfer_area` (noded arrangement, every level rebuilt and
re-nested, workloads re-apportioned) including its post-condition ``check_grids`` on the
whole layer. Baseline: the same region moved with plain shapely overlay on the two basic
grids and their parents (``difference`` / ``union``, no snapping, no neighbour noding, no
workloads), then ``shapely.coverage_is_valid`` per level and ``geopandas.overlay(df, df)``
per level for overlaps. The baseline does less (no nesting, gap or sliver checks, no
parents moved, no new vertices put into neighbours): it is the floor, not a match.
"""

from __future__ import annotations

import numpy as np

import geopandas as gpd
import shapely

from benchmarks._runner import Case
from benchmarks.bench_checks import fishnet_levels
from geogrid.edits import transfer_area


def _setup_demo() -> tuple[gpd.GeoDataFrame, shapely.Geometry, str]:
    from geogrid.demo import build_demo

    grids = build_demo(seed=0, n_incidents=10, n_cameras=10).grids
    return _pick(grids)


def _pick(grids: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, shapely.Geometry, str]:
    """A region around a point on the edge between two sibling basic grids (deterministic)."""
    fin = grids[grids["level"] == grids["level"].max()].sort_values("grid_id").reset_index(drop=True)
    a = fin.iloc[len(fin) // 2]
    sib = fin[
        (fin["parent_id"] == a["parent_id"]) & fin.geometry.touches(a.geometry) & (fin["grid_id"] != a["grid_id"])
    ]
    b = sib.iloc[0]
    edge = shapely.intersection(a.geometry.boundary, b.geometry.boundary)
    c = shapely.line_interpolate_point(shapely.line_merge(edge), 0.5, normalized=True)
    x0, y0, x1, y1 = b.geometry.bounds
    r = min(x1 - x0, y1 - y0) / 4
    return grids, shapely.buffer(c, r, quad_segs=4), str(a["grid_id"])


def _ours(data: tuple[gpd.GeoDataFrame, shapely.Geometry, str]) -> gpd.GeoDataFrame:
    grids, region, target = data
    return transfer_area(grids, region, target, clip=True)[0]


def _baseline(data: tuple[gpd.GeoDataFrame, shapely.Geometry, str]) -> list[bool]:
    grids, region, target = data
    g = grids.copy()
    tgt = g.index[g["grid_id"] == target][0]
    parent = g.loc[g["grid_id"] == g.at[tgt, "parent_id"]].geometry.iloc[0]
    moved = shapely.intersection(region, parent)
    fin = g["level"] == g["level"].max()
    losers = g.index[fin & g.geometry.intersects(moved) & (g.index != tgt)]
    for i in losers:
        g.at[i, "geometry"] = shapely.difference(g.at[i, "geometry"], moved)
    g.at[tgt, "geometry"] = shapely.union(g.at[tgt, "geometry"], moved)
    ok = []
    for lv in sorted(g["level"].unique()):
        layer = g[g["level"] == lv][["grid_id", "geometry"]]
        ok.append(bool(shapely.coverage_is_valid(layer.geometry.to_numpy(), gap_width=1e-5)))
        pieces = gpd.overlay(layer, layer, keep_geom_type=True)
        ok.append(bool((pieces["grid_id_1"] == pieces["grid_id_2"]).all()))
    return ok


def cases(scale: str) -> list[Case]:
    n = 320 if scale == "full" else 40
    out = [
        Case(
            name="edit_transfer_demo_990",
            setup=_setup_demo,
            ours=_ours,
            baseline=_baseline,
            baseline_name="shapely difference/union + coverage_is_valid + overlay(df, df) per level",
            notes="demo district seed 0 (1/9/114/990); a 1/4-cell disc on a basic-grid edge moves to one neighbour",
        ),
        Case(
            name=f"edit_transfer_{n * n}_basic",
            setup=lambda: _pick(fishnet_levels(n, (n, n // 4, 10), seed=0)),
            ours=_ours,
            baseline=_baseline,
            baseline_name="shapely difference/union + coverage_is_valid + overlay(df, df) per level",
            notes=f"jittered fishnet seed 0, 4 levels 1/16/{(n // 10) ** 2}/{n * n}; same edit",
            repeat=1 if scale == "full" else 3,
        ),
    ]
    return out


if __name__ == "__main__":  # pragma: no cover
    for case in cases("small"):
        data = case.setup()
        print(case.name, np.asarray(_baseline(data)))
