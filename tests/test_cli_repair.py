"""``geogrid repair``: exit status 0/1/2, the written file, the CSV log, SRC never overwritten."""

from __future__ import annotations

import getpass
import hashlib
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import geopandas as gpd
import shapely

from geogrid.hierarchy import check_grids
from layers.store import GeoPackageStore

ROOT = Path(__file__).resolve().parents[1]
X0, Y0, D = 117.20, 39.10, 0.01


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "geogrid", "repair", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def overlapping(tiny_grids: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    g = tiny_grids.copy()
    g.loc[g["grid_id"] == "G1", "geometry"] = shapely.box(X0, Y0, X0 + D, Y0 + D / 2 + D / 100)
    return g


def test_repairs_into_a_new_store_with_a_csv_log(tiny_grids, tmp_path):
    src = tmp_path / "city.gpkg"
    GeoPackageStore(src).write({"grids": overlapping(tiny_grids)})
    before = digest(src)
    out, log = tmp_path / "fixed.gpkg", tmp_path / "log.csv"
    res = run(src, "--out", out, "--log", log)
    assert res.returncode == 0, res.stderr
    assert "overlap_resolved" in res.stdout
    assert digest(src) == before
    fixed = GeoPackageStore(out).read("grids")
    assert check_grids(fixed).sound
    assert sorted(fixed["name"]) == sorted(tiny_grids["name"])  # attributes kept (UTF-8)
    rows = pd.read_csv(log)
    resolved = rows[rows["action"] == "overlap_resolved"]
    assert list(resolved["grid_id"]) == ["G1"] and list(resolved["other_ids"]) == ["G2"]  # a tie: first id
    assert resolved["area_m2"].iloc[0] > 0
    # G4 takes the vertex where G1's corner meets its edge (else a T-junction).
    assert set(rows["action"]) == {"overlap_resolved", "noded"}
    assert list(rows.loc[rows["action"] == "noded", "grid_id"]) == ["G4"]


def test_nothing_to_do_exits_0(tiny_grids, tmp_path):
    src = tmp_path / "g.geojson"
    tiny_grids.to_file(src)
    res = run(src, "--out", tmp_path / "same.gpkg")
    assert res.returncode == 0, res.stderr
    assert "nothing to repair" in res.stdout


def test_refusals_exit_1_and_the_rest_is_written(tiny_grids, tmp_path):
    g = overlapping(tiny_grids)
    g = g[g["grid_id"] != "G4"]  # a 0.48 km² hole in S2: too large to fill
    src = tmp_path / "g.gpkg"
    g.to_file(src, layer="grids")
    out = tmp_path / "fixed.gpkg"
    res = run(src, "--out", out, "--max-gap", "1000")
    assert res.returncode == 1, res.stderr
    assert "refused 1" in res.stdout and "max_gap_m2=1000" in res.stdout
    left = check_grids(GeoPackageStore(out).read("grids"))
    assert "overlap" not in set(left.findings["kind"])
    assert "gap" in set(left.findings["kind"])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(lambda p: (p / "g.gpkg", "--out", p / "g.gpkg"), "never overwrites", id="out-is-src"),
        pytest.param(lambda p: (p / "absent.gpkg", "--out", p / "x.gpkg"), "does not exist", id="missing-src"),
        pytest.param(lambda p: (p / "g.gpkg", "--out", p / "x.geojson"), "GeoPackage", id="out-not-gpkg"),
        pytest.param(lambda p: (p / "g.gpkg", "--out", p / "x.gpkg", "--log", p), "is a folder", id="log-is-a-folder"),
    ],
)
def test_unusable_exits_2(tiny_grids, tmp_path, args, words):
    src = tmp_path / "g.gpkg"
    tiny_grids.to_file(src, layer="grids")
    before = digest(src)
    res = run(*args(tmp_path))
    assert res.returncode == 2
    assert words in res.stderr
    assert digest(src) == before
    assert not (tmp_path / "x.gpkg").exists()  # refused before anything is written


def test_an_existing_out_store_is_kept_unless_forced(tiny_grids, tmp_path):
    """A typo in --out must not replace another store's grids and incidents."""
    src = tmp_path / "bad.gpkg"
    GeoPackageStore(src).write({"grids": overlapping(tiny_grids)})
    other = tmp_path / "city.gpkg"
    incidents = gpd.GeoDataFrame(
        {"incident_id": ["E1"], "reported_at": [pd.Timestamp("2025-03-01", tz="UTC")], "category": ["噪音扰民"]},
        geometry=[shapely.Point(X0 + D / 2, Y0 + D / 4)],
        crs="EPSG:4326",
    )
    GeoPackageStore(other).write({"grids": tiny_grids, "incidents": incidents})
    before = digest(other)
    res = run(src, "--out", other)
    assert res.returncode == 2
    assert "exists" in res.stderr and "--force" in res.stderr
    assert digest(other) == before
    forced = run(src, "--out", other, "--force")
    assert forced.returncode == 0, forced.stderr
    assert check_grids(GeoPackageStore(other).read("grids")).sound
    assert GeoPackageStore(other).versions()[-1].committed_by == getpass.getuser()  # the new version says whose


def test_exempt_areas_are_left_open_instead_of_refused(tiny_grids, tmp_path):
    src = tmp_path / "grids.gpkg"
    tiny_grids[tiny_grids["grid_id"] != "G4"].to_file(src, layer="grids")
    lake = tmp_path / "水域.geojson"
    tiny_grids.loc[tiny_grids["grid_id"] == "G4", ["geometry"]].to_file(lake)
    refused = run(src, "--out", tmp_path / "a.gpkg")
    assert refused.returncode == 1 and "refused" in refused.stdout  # a gap far above --max-gap
    done = run(src, "--out", tmp_path / "b.gpkg", "--exempt", lake)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "refused" not in done.stdout
