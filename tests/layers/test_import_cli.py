"""`geogrid import`: the door from the command line. Clear errors, exit 2, nothing written, no crash."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from geogrid.cli import main
from layers.store import GeoPackageStore
from tests import geometries as geo

ROOT = Path(__file__).resolve().parents[2]

CAMERA_OPTIONS = [
    "--id-col",
    "编号",
    "--heading-col",
    "朝向",
    "--fov-col",
    "视角",
    "--range-col",
    "距离",
    "--status-col",
    "状态",
]
CAMERA_CSV = (
    "编号,经度,纬度,朝向,视角,距离,状态\nC1,117.2050,39.1050,90,60,50,online\nC2,117.2100,39.1020,180,360,30,offline\n"
)


def invoke(*args: str | Path):
    return CliRunner().invoke(main, ["import", *map(str, args)], catch_exceptions=False)


def test_grids_with_chinese_columns_and_a_bow_tie_are_imported_and_counted(tmp_path, tiny_grids):
    g = tiny_grids.copy()
    g.loc[3, "geometry"] = geo.BOW_TIE
    src = tmp_path / "网格.gpkg"
    g.rename(columns={"grid_id": "编号", "parent_id": "上级", "level": "层级"}).to_file(src)
    store = tmp_path / "city.gpkg"
    r = invoke(
        src, "--kind", "grids", "--into", store, "--id-col", "编号", "--parent-col", "上级", "--level-col", "层级"
    )
    assert r.exit_code == 0, r.output
    assert "imported 7 grids from 网格.gpkg" in r.stdout
    assert "invalid geometries kept: 1 (e.g. 'G1')" in r.stdout
    assert "geogrid repair" in r.stdout
    stored = GeoPackageStore(store).read("grids")
    assert len(stored) == 7
    assert stored["name"].tolist()[1] == "望海楼街道"


def test_gbk_csv_in_gcj02_is_converted(tmp_path):
    src = tmp_path / "摄像头.csv"
    src.write_bytes(CAMERA_CSV.encode("gbk"))
    store = tmp_path / "city.gpkg"
    r = invoke(src, "--kind", "cameras", "--into", store, *CAMERA_OPTIONS, "--encoding", "gbk", "--datum", "gcj02")
    assert r.exit_code == 0, r.output
    assert "datum: GCJ02 converted to WGS-84" in r.stdout
    assert "assumed from the lon/lat column names" in r.stdout
    cams = GeoPackageStore(store).read("cameras")
    assert cams["camera_id"].tolist() == ["C1", "C2"]
    assert cams.geometry.x.iloc[0] < 117.2050 - 0.003  # moved back west by hundreds of metres


def test_every_problem_is_listed_and_nothing_is_written(tmp_path):
    src = tmp_path / "摄像头.csv"
    src.write_text(
        CAMERA_CSV + "C2,39.1,117.2,90,60,50,online\nC4,117.2,39.1,400,60,50,坏了\n",
        encoding="utf-8",
    )
    store = tmp_path / "city.gpkg"
    r = invoke(src, "--kind", "cameras", "--into", store, *CAMERA_OPTIONS)
    assert r.exit_code == 2
    assert r.stdout == ""
    err = r.stderr
    assert err.startswith("error: 摄像头.csv: 4 problem(s) found:")
    assert "at row 2 (id 'C2'): it looks like lon/lat (x/y) are swapped" in err
    assert "duplicate camera_id 'C2' at rows 1, 2" in err
    assert "heading_deg out of range (400) at row 3 (id 'C4')" in err
    assert "status has unknown value(s) '坏了' at row 3 (id 'C4')" in err
    assert "Traceback" not in err
    assert not store.exists()


def test_missing_mapping_names_the_cli_option(tmp_path):
    src = tmp_path / "摄像头.csv"
    src.write_text(CAMERA_CSV, encoding="utf-8")
    r = invoke(src, "--kind", "cameras", "--into", tmp_path / "s.gpkg", "--id-col", "编号")
    assert r.exit_code == 2
    assert "map it with --heading-col NAME" in r.stderr
    assert "map it with --fov-col NAME" in r.stderr


def test_append_refuses_ids_already_in_the_store(tmp_path, tiny_grids):
    src = tmp_path / "g.gpkg"
    tiny_grids.to_file(src)
    store = tmp_path / "city.gpkg"
    assert invoke(src, "--kind", "grids", "--into", store).exit_code == 0
    r = invoke(src, "--kind", "grids", "--into", store, "--mode", "append")
    assert r.exit_code == 2
    assert "grid_id 'D', 'S1'" in r.stderr
    assert "already in the store at rows 0, 1" in r.stderr
    assert "--mode replace" in r.stderr


def test_append_grids_below_the_stored_ones(tmp_path, tiny_grids):
    # A planner imports districts and streets first, then each street's basic grids as they are
    # drawn: the appended grids' parents are in the store, not in their file.
    top, basic = tiny_grids[tiny_grids.level < 2], tiny_grids[tiny_grids.level == 2]
    store = tmp_path / "city.gpkg"
    top.to_file(tmp_path / "top.gpkg")
    assert invoke(tmp_path / "top.gpkg", "--kind", "grids", "--into", store).exit_code == 0
    basic.to_file(tmp_path / "basic.gpkg")
    r = invoke(tmp_path / "basic.gpkg", "--kind", "grids", "--into", store, "--mode", "append")
    assert r.exit_code == 0, r.output
    stored = GeoPackageStore(store).read("grids")
    assert list(stored["grid_id"]) == ["D", "S1", "S2", "G1", "G2", "G3", "G4"]  # stored rows first
    assert stored.set_index("grid_id").loc["G3", "parent_id"] == "S2"
    # a parent neither in the file nor in the store is named with the file's row; nothing is written
    orphan = basic.iloc[[1]].assign(grid_id="G9", parent_id="S7")
    orphan.to_file(tmp_path / "orphan.gpkg")
    r = invoke(tmp_path / "orphan.gpkg", "--kind", "grids", "--into", store, "--mode", "append")
    assert r.exit_code == 2
    assert "parent_id 'S7' does not exist at row 0 (id 'G9')" in r.stderr
    assert len(GeoPackageStore(store).read("grids")) == 7
    # into a store without grids, append is a replace and the file's own links are checked
    r = invoke(tmp_path / "basic.gpkg", "--kind", "grids", "--into", tmp_path / "new.gpkg", "--mode", "append")
    assert r.exit_code == 2
    assert "unknown_parent" in r.stderr
    assert not (tmp_path / "new.gpkg").exists()


def test_vertex_limit_option(tmp_path):
    import geopandas as gpd

    src = tmp_path / "noisy.geojson"
    gpd.GeoDataFrame(
        {"grid_id": ["D"], "parent_id": [None], "level": [0]}, geometry=[geo.noisy_polygon(3_000)], crs="EPSG:4326"
    ).to_file(src)
    r = invoke(src, "--kind", "grids", "--into", tmp_path / "s.gpkg", "--max-vertices", "1000")
    assert r.exit_code == 2
    assert "more than 1,000 vertices (up to 3,001+) at row 0 (id 'D')" in r.stderr


@pytest.mark.parametrize("option", ["--max-depth", "--max-vertices", "--max-file-bytes"])
def test_a_non_positive_limit_is_a_usage_error(tmp_path, option):
    src = tmp_path / "c.csv"
    src.write_text(CAMERA_CSV, encoding="utf-8")
    r = invoke(src, "--kind", "cameras", "--into", tmp_path / "s.gpkg", *CAMERA_OPTIONS, option, "0")
    assert r.exit_code == 2
    assert option in r.output
    assert not (tmp_path / "s.gpkg").exists()


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The real console path in a child process: a segfault fails the test instead of killing pytest."""
    return subprocess.run(
        [sys.executable, "-m", "geogrid", "import", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _write_geoparquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` as GeoParquet, its WKB ``geometry`` column declared as such and nothing checked."""
    meta = {"version": "1.0.0", "primary_column": "geometry", "columns": {"geometry": {"encoding": "WKB"}}}
    pq.write_table(table.replace_schema_metadata({b"geo": json.dumps(meta).encode()}), path)


def test_deep_collection_is_refused_cleanly_by_the_console(tmp_path):
    src = tmp_path / "deep.parquet"
    table = pa.table(
        {
            "camera_id": ["C1", "C2"],
            "heading_deg": [0.0, 0.0],
            "fov_deg": [60.0, 60.0],
            "range_m": [50.0, 50.0],
            "status": ["online", "online"],
            "geometry": pa.array([geo.POINT.wkb, geo.deep_collection_wkb(20_000)], pa.binary()),
        }
    )
    _write_geoparquet(table, src)
    out = run_cli(src, "--kind", "cameras", "--into", tmp_path / "s.gpkg")
    assert out.returncode == 2, f"exit {out.returncode}: {out.stderr[-2000:]}"
    assert "nested more than 32 deep at row 1 (id 'C2')" in out.stderr
    assert "--max-depth" in out.stderr


def test_deep_geojson_is_refused_cleanly_by_the_console(tmp_path):
    src = tmp_path / "deep.geojson"
    src.write_text(geo.deep_collection_geojson(30_000), encoding="utf-8")
    out = run_cli(src, "--kind", "cameras", "--into", tmp_path / "s.gpkg")
    assert out.returncode == 2, f"exit {out.returncode}: {out.stderr[-2000:]}"
    assert "deep.geojson nests brackets 60005 deep" in out.stderr
    assert not (tmp_path / "s.gpkg").exists()


def test_million_vertex_feature_is_refused_cleanly_by_the_console(tmp_path):
    import struct

    n = 1_000_000
    t = np.linspace(0, 2 * np.pi, n)
    xy = np.column_stack([geo.X0 + 0.01 * np.cos(t), geo.Y0 + 0.01 * np.sin(t)])
    xy[-1] = xy[0]
    wkb = struct.pack("<BIII", 1, 3, 1, n) + xy.astype("<f8").tobytes()
    src = tmp_path / "big.parquet"
    table = pa.table(
        {
            "grid_id": ["BIG"],
            "parent_id": pa.array([None], pa.string()),
            "level": [0],
            "geometry": pa.array([wkb], pa.binary()),
        }
    )
    _write_geoparquet(table, src)
    out = run_cli(src, "--kind", "grids", "--into", tmp_path / "s.gpkg")
    assert out.returncode == 2, f"exit {out.returncode}: {out.stderr[-2000:]}"
    assert "more than 200,000 vertices" in out.stderr
    assert "at row 0 (id 'BIG')" in out.stderr


def test_utm_grids_beyond_their_zone_are_imported_with_a_warning_line(tmp_path):
    import geopandas as gpd
    import shapely
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32650", always_xy=True).transform(123.0, 39.0)  # 3 deg east
    src = tmp_path / "grids.gpkg"
    gpd.GeoDataFrame(
        {"grid_id": ["G1"], "parent_id": [None], "level": [0]},
        geometry=[shapely.box(x, y, x + 100, y + 100)],
        crs="EPSG:32650",
    ).to_file(src)
    r = invoke(src, "--kind", "grids", "--into", tmp_path / "city.gpkg")
    assert r.exit_code == 0, r.output
    assert "imported 1 grids" in r.stdout
    assert r.stderr.count("warning: coordinates up to") == 1
    assert "km beyond the area of use of EPSG:32650" in r.stderr


@pytest.mark.parametrize("declared", ["wgs84", "gcj02"])
def test_gcj02_points_declared_wgs84_get_a_warning_naming_the_datum(tmp_path, tiny_grids, declared):
    """2,000 points from a Gaode map (GCJ-02) imported as WGS-84 sit ~560 m off the store's own grids."""
    from layers import datum

    store = tmp_path / "city.gpkg"
    GeoPackageStore(store).write({"grids": tiny_grids})
    rng = np.random.default_rng(7)
    lon = rng.uniform(117.2005, 117.2195, 2000)
    lat = rng.uniform(39.1005, 39.1095, 2000)
    glon, glat = datum.wgs84_to_gcj02(lon, lat)
    rows = [f"C{i},{x:.6f},{y:.6f},0,360,30,online" for i, (x, y) in enumerate(zip(glon, glat, strict=True))]
    src = tmp_path / "高德.csv"
    src.write_text("编号,经度,纬度,朝向,视角,距离,状态\n" + "\n".join(rows) + "\n", encoding="utf-8")
    r = CliRunner().invoke(
        main, ["import", str(src), "--kind", "cameras", "--into", str(store), "--datum", declared, *CAMERA_OPTIONS]
    )
    assert r.exit_code == 0, r.output
    if declared == "wgs84":
        assert "warning:" in r.stderr and "--datum gcj02" in r.stderr, r.stderr
    else:
        assert "warning:" not in r.stderr, r.stderr


def test_wgs84_points_get_no_datum_warning(tmp_path, tiny_grids):
    store = tmp_path / "city.gpkg"
    GeoPackageStore(store).write({"grids": tiny_grids})
    rng = np.random.default_rng(8)
    lon, lat = rng.uniform(117.2005, 117.2195, 500), rng.uniform(39.1005, 39.1095, 500)
    rows = [f"C{i},{x:.6f},{y:.6f},0,360,30,online" for i, (x, y) in enumerate(zip(lon, lat, strict=True))]
    src = tmp_path / "gps.csv"
    src.write_text("编号,经度,纬度,朝向,视角,距离,状态\n" + "\n".join(rows) + "\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["import", str(src), "--kind", "cameras", "--into", str(store), *CAMERA_OPTIONS])
    assert r.exit_code == 0, r.output
    assert "warning:" not in r.stderr, r.stderr


def test_workload_columns_under_their_own_names_are_mapped_and_split_with_the_area(tmp_path, tiny_grids):
    """The README's 网格.shp holds 户数 and 人口: mapped, they are workloads a redraw apportions (not copies)."""
    import shapely

    import geogrid

    g = tiny_grids.copy()
    g["户数"] = [40, 20, 20, 10, 10, 10, 10]
    g["人口"] = [100, 50, 50, 25, 25, 25, 25]
    src = tmp_path / "网格.geojson"
    g.to_file(src)
    store = tmp_path / "city.gpkg"
    r = invoke(src, "--kind", "grids", "--into", store, "--households-col", "户数", "--population-col", "人口")
    assert r.exit_code == 0, r.output
    stored = GeoPackageStore(store).read("grids")
    assert stored.set_index("grid_id")["households"].to_dict() == dict(zip(g["grid_id"], g["户数"], strict=True))
    x0, y0, x1, y1 = stored.set_index("grid_id").geometry["G1"].bounds
    cut = shapely.LineString([((x0 + x1) / 2, y0 - 0.001), ((x0 + x1) / 2, y1 + 0.001)])
    new, _ = geogrid.split_grid(stored, "G1", cut)
    assert new.loc[new["level"] == 2, "households"].sum() == 40  # conserved, not 10 copied to each piece
    g.loc[g["grid_id"] == "G2", "户数"] = -3
    g.to_file(src)
    r = invoke(src, "--kind", "grids", "--into", store, "--households-col", "户数")
    assert r.exit_code == 2
    assert "households" in r.stderr and "-3" in r.stderr
