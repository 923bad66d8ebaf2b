"""Integer columns geogrid does not know (户数 kept under its own name) after a split or a merge.

geogrid cannot tell a count from a code or a year, so it does not apportion such a column: a
split copies it to both pieces and a merge keeps one grid's value. It warns instead, naming the
columns and the fix (import them as workloads); mapped to ``households``, the same count adds up.
"""

from __future__ import annotations

import pytest

import shapely

import geogrid

FIX = r"--households-col 户数.*columns=\{'households': '户数'\}"


@pytest.fixture
def with_counts(tiny_grids):
    g = tiny_grids.copy()
    g["户数"] = [40, 20, 20, 10, 10, 10, 10]
    return g


def _cut(g):
    x0, y0, x1, y1 = g.set_index("grid_id").geometry["G1"].bounds
    return shapely.LineString([((x0 + x1) / 2, y0 - 0.001), ((x0 + x1) / 2, y1 + 0.001)])


def test_a_split_warns_that_an_unmapped_count_was_copied(with_counts):
    with pytest.warns(geogrid.GeogridWarning, match=r"split_grid: grids column\(s\) '户数'.*copied unchanged.*" + FIX):
        new, _ = geogrid.split_grid(with_counts, "G1", _cut(with_counts))
    pieces = new[new["grid_id"].str.startswith("G1.")]
    assert pieces["户数"].tolist() == [10, 10]  # left as it is: its meaning is unknown


def test_a_split_does_not_double_a_mapped_count(with_counts):
    g = with_counts.rename(columns={"户数": "households"})
    new, _ = geogrid.split_grid(g, "G1", _cut(g))  # no warning (filterwarnings=error)
    assert new.loc[new["level"] == 2, "households"].sum() == 40


def test_a_merge_warns_that_an_unmapped_count_was_dropped(with_counts):
    with pytest.warns(geogrid.GeogridWarning, match=r"merge_grids: .*dropped with the removed grids 'G2'.*" + FIX):
        geogrid.merge_grids(with_counts, ["G1", "G2"])


def test_a_merge_does_not_drop_a_mapped_count(with_counts):
    g = with_counts.rename(columns={"户数": "households"})
    new, _ = geogrid.merge_grids(g, ["G1", "G2"])
    assert new.loc[new["level"] == 2, "households"].sum() == 40


def test_text_and_workload_columns_give_no_warning(tiny_grids):
    g = tiny_grids.copy()
    g["备注"] = "x"
    g["households"] = [40, 20, 20, 10, 10, 10, 10]
    new, _ = geogrid.merge_grids(g, ["G1", "G2"])
    assert new.loc[new["level"] == 2, "households"].sum() == 40
