"""After an edit a parent's workload is still the sum of its children's (audit repro, fixed).

Reparenting a whole basic grid moves its community's households *by area share*, not by the
grid's own households: the old community keeps households that no longer live in any of its
children, and the new one is short. In the demo, D01-S01-C01-G08 (244 households) moves to
D01-S01-C02; C01 goes 1781 -> 1573 (should be 1537), C02 2008 -> 2216 (should be 2252).
"""

from __future__ import annotations

import geogrid

WORKLOADS = ["households", "population", "shops"]


def _parents_off(grids):
    """Per parent of a basic grid: whether a workload differs from its children's sum."""
    kids = grids[grids.level == 3].groupby("parent_id")[WORKLOADS].sum()
    own = grids.set_index("grid_id").loc[kids.index, WORKLOADS]
    return (kids != own).any(axis=1)


def test_reparent_keeps_each_parent_equal_to_the_sum_of_its_children(demo_grids):
    assert not _parents_off(demo_grids).any()  # the demo starts consistent
    new, _ = geogrid.reparent(demo_grids, "D01-S01-C01-G08", "D01-S01-C02")
    bad = _parents_off(new)
    assert not bad.any(), bad[bad].index.tolist()


def test_split_community_keeps_each_part_equal_to_the_sum_of_its_children(demo_grids):
    import shapely

    x0, y0, x1, y1 = demo_grids.set_index("grid_id").geometry["D01-S01-C01"].bounds
    line = shapely.LineString([((x0 + x1) / 2, y0 - 0.001), ((x0 + x1) / 2, y1 + 0.001)])
    new, _ = geogrid.split_grid(demo_grids, "D01-S01-C01", line)
    bad = _parents_off(new)
    assert not bad.any(), bad[bad].index.tolist()  # was: D01-S01-C01.1, D01-S01-C01.2
