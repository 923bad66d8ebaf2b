"""Audit repro (owner: geogrid/_edits_impl.py): numeric columns geogrid does not know are copied on a split
and the first grid's value kept on a merge, so a count column kept under its own name (户数,
人口, 门店数 - typical of Chinese shapefiles) no longer adds up after a redraw: split G1
(10 households) gives two grids of 10 each; merging G1 (10) and G2 (10) gives 10.
Since 96b44c2 import can map 户数 -> households (apportioned); unmapped columns still are not.
Options: refuse/warn on numeric extra columns, or apportion integer columns too.
"""

from __future__ import annotations

import shapely

import geogrid
from tests.conftest import tiny_grids  # noqa: F401  (fixture)


def test_a_split_does_not_double_an_unmapped_count(tiny_grids):
    g = tiny_grids.copy()
    g["户数"] = [40, 20, 20, 10, 10, 10, 10]
    x0, y0, x1, y1 = g.set_index("grid_id").geometry["G1"].bounds
    cut = shapely.LineString([((x0 + x1) / 2, y0 - 0.001), ((x0 + x1) / 2, y1 + 0.001)])
    new, _ = geogrid.split_grid(g, "G1", cut)
    assert new.loc[new["level"] == 2, "户数"].sum() == 40


def test_a_merge_does_not_drop_an_unmapped_count(tiny_grids):
    g = tiny_grids.copy()
    g["户数"] = [40, 20, 20, 10, 10, 10, 10]
    new, _ = geogrid.merge_grids(g, ["G1", "G2"])
    assert new.loc[new["level"] == 2, "户数"].sum() == 40
