"""read_layer / write_layer on real files in every format: mapping, checks, guards, datums, round trips."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import geopandas as gpd
import pyogrio
import shapely
from geopandas.testing import assert_geodataframe_equal

from layers import datum
from layers.errors import InputTooLargeError, StoreError, ValidationError
from layers.io import Limits, describe, read_layer, write_layer
from layers.validate import validate_layer
from tests import geometries as geo

ROOT = Path(__file__).resolve().parents[2]

# Chinese column names, as such files arrive from district offices.
GRID_COLUMNS_CN = {"grid_id": "编号", "parent_id": "上级", "level": "层级", "name": "名称"}
GRID_MAPPING_CN = {"id": "编号", "parent": "上级", "level": "层级", "name": "名称"}
CAMERA_MAPPING_CN = {"id": "编号", "heading": "朝向", "fov": "视角", "range": "距离", "status": "状态"}
INCIDENT_MAPPING_CN = {
    "id": "编号",
    "time": "上报时间",
    "closed": "结案时间",
    "category": "类别",
    "source": "来源",
    "status": "状态",
    "description": "描述",
}


def write(gdf: gpd.GeoDataFrame, path: Path) -> Path:
    """Write a test file with the plain libraries (not with the code under test)."""
    if path.suffix == ".parquet":
        gdf.to_parquet(path)
    elif path.suffix == ".shp":
        gdf.to_file(path, encoding="utf-8")
    else:
        gdf.to_file(path)
    return path


def plain(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    out = gdf.copy()
    out.attrs = {}
    return out


def camera_csv(rows: list[str], header: str = "编号,经度,纬度,朝向,视角,距离,状态") -> str:
    return "\n".join([header, *rows]) + "\n"


GOOD_CAMERA_ROWS = ["C1,117.2050,39.1050,90,60,50,online", "C2,117.2100,39.1020,180,360,30,offline"]

GRID_FORMATS = [
    pytest.param("gpkg", id="geopackage"),
    pytest.param("geojson", id="geojson"),
    pytest.param("parquet", id="geoparquet"),
    pytest.param("shp", id="shapefile"),
]


# -- readers ------------------------------------------------------------------------


@pytest.mark.parametrize("ext", GRID_FORMATS)
def test_each_format_reads_back_the_validated_layer(tmp_path, tiny_grids, ext):
    p = write(tiny_grids, tmp_path / f"grids.{ext}")
    out = read_layer(p, "grids")
    expected = validate_layer(tiny_grids, "grids")
    assert_geodataframe_equal(plain(out), plain(expected), check_less_precise=ext == "geojson")
    assert out["name"].tolist()[:2] == ["河北区", "望海楼街道"]
    assert describe(out) == {
        "rows": 7,
        "source_crs": "EPSG:4326",
        "crs_assumed": False,
        "datum": "wgs84",
        "invalid_geometries": 0,
        "invalid_geometry_ids": [],
        "warnings": [],
    }


@pytest.mark.parametrize("ext", GRID_FORMATS)
def test_chinese_column_names_are_mapped(tmp_path, tiny_grids, ext):
    p = write(tiny_grids.rename(columns=GRID_COLUMNS_CN), tmp_path / f"网格.{ext}")
    out = read_layer(p, "grids", columns=GRID_MAPPING_CN)
    assert list(out.columns[:4]) == ["grid_id", "parent_id", "level", "level_name"]
    assert out["grid_id"].tolist() == tiny_grids["grid_id"].tolist()
    assert out["name"].tolist()[-1] == "网格四"


@pytest.mark.parametrize("ext", GRID_FORMATS)
def test_unmapped_columns_name_the_option_to_use(tmp_path, tiny_grids, ext):
    p = write(tiny_grids.rename(columns=GRID_COLUMNS_CN), tmp_path / f"网格.{ext}")
    with pytest.raises(ValidationError) as err:
        read_layer(p, "grids")
    msg = str(err.value)
    assert "required column 'grid_id' (unique id of the grid) is missing: map it with --id-col NAME" in msg
    assert "map it with --parent-col NAME (Python: columns={'parent': NAME})" in msg
    assert "map it with --level-col NAME" in msg
    assert "'编号', '上级', '层级'" in msg  # and shows what the file has


def test_mapping_mistakes_are_all_named(tmp_path, tiny_grids):
    p = write(tiny_grids.rename(columns=GRID_COLUMNS_CN), tmp_path / "网格.gpkg")
    with pytest.raises(ValidationError) as err:
        read_layer(
            p, "grids", columns={**GRID_MAPPING_CN, "id": "代码", "heading": "朝向", "colour": "颜色", "x": "经度"}
        )
    e = err.value
    assert {"unknown_mapped_column", "mapping_not_for_kind", "unknown_mapping_key", "mapping_not_for_format"} <= e.kinds
    msg = str(e)
    assert "--id-col '代码': no such column; the file has '编号'" in msg
    assert "--heading-col does not apply to a grids layer" in msg
    assert "unknown mapping key 'colour'" in msg
    assert "--x-col applies to CSV files only" in msg


def test_a_mapped_column_replaces_one_with_the_target_name(tmp_path, tiny_grids):
    g = tiny_grids.assign(name="旧名", 新名称=tiny_grids["name"])
    out = read_layer(write(g, tmp_path / "g.gpkg"), "grids", columns={"name": "新名称"})
    assert out["name"].tolist()[0] == "河北区"


@pytest.mark.parametrize(
    "container",
    [pytest.param("folder", id="folder"), pytest.param("zip", id="zip")],
)
def test_shapefile_in_a_folder_or_zip_with_gbk_attributes(tmp_path, tiny_grids, container):
    folder = tmp_path / "shp"
    folder.mkdir()
    tiny_grids.to_file(folder / "grids.shp", encoding="gbk")
    (folder / "grids.cpg").unlink()  # as often delivered: GBK bytes and nothing saying so
    src: Path = folder
    if container == "zip":
        src = tmp_path / "grids.zip"
        with zipfile.ZipFile(src, "w") as zf:
            for f in folder.iterdir():
                zf.write(f, f.name)
    out = read_layer(src, "grids", encoding="gbk")
    assert out["name"].tolist() == tiny_grids["name"].tolist()


def test_shapefile_without_prj_needs_crs(tmp_path, tiny_grids):
    p = write(tiny_grids, tmp_path / "grids.shp")
    p.with_suffix(".prj").unlink()
    with pytest.raises(
        ValidationError, match=r"missing_crs: the layer has no CRS; geogrid will not guess: pass --crs EPSG:4326"
    ):
        read_layer(p, "grids")
    assert read_layer(p, "grids", crs="EPSG:4490").crs.to_epsg() == 4326


def test_a_projected_file_is_reprojected(tmp_path, tiny_grids):
    p = write(tiny_grids.to_crs("EPSG:4548"), tmp_path / "gk.gpkg")
    out = read_layer(p, "grids")
    assert out.attrs["source_crs"] == "EPSG:4548"
    assert_geodataframe_equal(out[["geometry"]], tiny_grids[["geometry"]], check_less_precise=True)


def test_multi_layer_geopackage_picks_the_layer_named_like_the_kind(tmp_path, tiny_grids):
    p = tmp_path / "city.gpkg"
    tiny_grids.to_file(p, layer="grids")
    tiny_grids.iloc[:1].to_file(p, layer="roads")
    assert len(read_layer(p, "grids")) == 7
    assert len(read_layer(p, "grids", layer="roads")) == 1
    with pytest.raises(ValidationError, match=r"layer 'parks' not found; the file has layers 'grids', 'roads'"):
        read_layer(p, "grids", layer="parks")
    with pytest.raises(ValidationError, match=r"several layers \('grids', 'roads'\): choose one with --layer NAME"):
        read_layer(p, "cameras")


# -- CSV ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "arg"),
    [
        pytest.param("utf-8", None, id="utf8"),
        pytest.param("utf-8-sig", None, id="utf8-bom-excel"),
        pytest.param("gbk", "gbk", id="gbk"),
        pytest.param("gb18030", "gb18030", id="gb18030"),
    ],
)
def test_csv_with_chinese_headers_in_any_encoding(tmp_path, encoding, arg):
    p = tmp_path / "摄像头.csv"
    p.write_bytes(camera_csv([*GOOD_CAMERA_ROWS, "C3,117.2,39.1,0,90,40,online"]).encode(encoding))
    out = read_layer(p, "cameras", columns=CAMERA_MAPPING_CN, encoding=arg)
    assert out["camera_id"].tolist() == ["C1", "C2", "C3"]
    assert out.geometry.iloc[0].equals(shapely.Point(117.205, 39.105))
    assert out.attrs["crs_assumed"] is True  # 经度/纬度 say lon/lat
    assert out.crs.to_epsg() == 4326


def test_gbk_csv_read_as_utf8_names_the_fix(tmp_path):
    p = tmp_path / "cams.csv"
    p.write_bytes(camera_csv(GOOD_CAMERA_ROWS).encode("gbk"))
    with pytest.raises(
        ValidationError, match=r"bad_encoding: cams\.csv is not valid utf-8-sig text at byte 0: .*--encoding gbk"
    ):
        read_layer(p, "cameras", columns=CAMERA_MAPPING_CN)


def test_tsv_and_english_lon_lat_headers(tmp_path):
    p = tmp_path / "cams.tsv"
    p.write_text(
        "camera_id\tLongitude\tLatitude\theading_deg\tfov_deg\trange_m\tstatus\nC1\t117.2\t39.1\t0\t60\t50\tonline\n",
        encoding="utf-8",
    )
    out = read_layer(p, "cameras")
    assert out.geometry.iloc[0].equals(shapely.Point(117.2, 39.1))


def test_csv_x_y_columns_need_a_crs(tmp_path):
    p = tmp_path / "gk.csv"
    p.write_text("camera_id,x,y,heading_deg,fov_deg,range_m,status\nC1,500000,4330000,0,60,50,online\n")
    with pytest.raises(ValidationError, match=r"missing_crs: .*pass --crs EPSG:4326"):
        read_layer(p, "cameras")
    out = read_layer(p, "cameras", crs="EPSG:4548")
    assert out.geometry.iloc[0].x == pytest.approx(117.0)
    assert out.attrs["crs_assumed"] is False


@pytest.mark.parametrize("crs", ["EPSG:999999", "nonsense"])
def test_csv_with_an_unknown_crs_names_only_that(tmp_path, crs):
    # A CSV declares no CRS, so a bad crs= is one problem, not also a "conflict" with itself.
    p = tmp_path / "c.csv"
    p.write_text("camera_id,x,y,heading_deg,fov_deg,range_m,status\nC1,117.2,39.1,0,60,50,online\n")
    with pytest.raises(
        ValidationError, match=r"1 problem\(s\) found:\n  - unknown_crs: crs '" + crs + "' is not a CRS"
    ):
        read_layer(p, "cameras", crs=crs)


def test_csv_coordinate_problems_name_rows_and_ids(tmp_path):
    p = tmp_path / "cams.csv"
    p.write_text(
        camera_csv(
            [
                *GOOD_CAMERA_ROWS,
                "C3,,39.1,0,60,50,online",  # blank lon
                "C4,117°12',39.1,0,60,50,online",  # degrees-minutes text
                "C5,39.1,117.2,0,60,50,online",  # swapped
            ]
        ),
        encoding="utf-8",
    )
    with pytest.raises(ValidationError) as err:
        read_layer(p, "cameras", columns=CAMERA_MAPPING_CN)
    msg = str(err.value)
    assert "column '经度' is not a number (\"117°12'\") at rows 3: write decimal degrees" in msg
    assert "NaN or infinite coordinates at rows 2, 3 (ids 'C3', 'C4')" in msg
    assert "at row 4 (id 'C5'): it looks like lon/lat (x/y) are swapped" in msg


def test_csv_without_coordinate_columns_names_the_options(tmp_path):
    p = tmp_path / "cams.csv"
    p.write_text("camera_id,东,北,heading_deg,fov_deg,range_m,status\nC1,117.2,39.1,0,60,50,online\n")
    with pytest.raises(ValidationError) as err:
        read_layer(p, "cameras")
    assert "no longitude / x column found: name it with --x-col NAME" in str(err.value)
    assert "no latitude / y column found: name it with --y-col NAME" in str(err.value)
    out = read_layer(p, "cameras", columns={"x": "东", "y": "北"}, crs="EPSG:4326")
    assert out.geometry.iloc[0].equals(shapely.Point(117.2, 39.1))


def test_csv_cannot_hold_grids(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("grid_id,lon,lat\nG1,117.2,39.1\n")
    with pytest.raises(ValidationError, match=r"wrong_format: a CSV holds points; grids need polygons"):
        read_layer(p, "grids")


def test_incident_csv_with_every_kind_of_problem_in_one_error(tmp_path):
    header = "编号,经度,纬度,上报时间,结案时间,类别,来源,状态,描述"
    rows = [
        "E1,117.2,39.1,2024-05-01 08:30,2024-05-01 10:00,环境卫生,hotline,closed,<b>路灯</b>",
        "E2,117.2,39.1,2024-05-01 09:00,2024-05-01 08:00,占道经营,grid_worker,closed,",  # closed before reported
        "E3,117.2,39.1,2024-05-01 09:00,,噪音,热线,reported,",  # source not an enum value
        "E3,117.2,39.1,2024-05-01 09:00,,噪音,hotline,finished,",  # duplicate id, bad status
        'E5,117.2,39.1,下午三点,,噪音,hotline,reported,"含,逗号"',  # unparsable time
    ]
    p = tmp_path / "事件.csv"
    p.write_bytes(("\n".join([header, *rows]) + "\n").encode("gbk"))
    with pytest.raises(ValidationError) as err:
        read_layer(p, "incidents", columns=INCIDENT_MAPPING_CN, tz="Asia/Shanghai", encoding="gbk")
    e = err.value
    assert e.kinds == {"closed_before_reported", "unknown_value", "duplicate_id", "bad_datetime"}
    msg = str(e)
    assert "closed_at is before reported_at at row 1 (id 'E2')" in msg
    assert "source has unknown value(s) '热线' at row 2 (id 'E3')" in msg
    assert "status has unknown value(s) 'finished' at row 3 (id 'E3')" in msg
    assert "duplicate incident_id 'E3' at rows 2, 3" in msg
    assert "reported_at is not a date-time at row 4 (id 'E5')" in msg


def test_incident_csv_times_need_a_timezone(tmp_path):
    p = tmp_path / "事件.csv"
    p.write_text(
        "编号,经度,纬度,上报时间,类别,来源,状态\nE1,117.2,39.1,2024-05-01 08:30,环境卫生,hotline,reported\n"
        "E2,117.2,39.1,2024-05-01,环境卫生,hotline,reported\n",
        encoding="utf-8",
    )
    mapping = {k: v for k, v in INCIDENT_MAPPING_CN.items() if k not in ("closed", "description")}
    with pytest.raises(ValidationError, match=r"reported_at has no timezone at rows 0, 1 \(ids 'E1', 'E2'\)"):
        read_layer(p, "incidents", columns=mapping)
    out = read_layer(p, "incidents", columns=mapping, tz="Asia/Shanghai")
    assert out["reported_at"].tolist() == [pd.Timestamp("2024-05-01T00:30Z"), pd.Timestamp("2024-04-30T16:00Z")]


# -- the checks, through files ------------------------------------------------------


def _grid_edit(col: str, row: int, value: object):
    def edit(g: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        g = g.copy()
        g[col] = g[col].astype(object) if col != "geometry" else g[col]
        g.iloc[row, g.columns.get_loc(col)] = value
        return g

    return edit


FILE_PROBLEMS = [
    pytest.param(
        _grid_edit("geometry", 3, geo.LINESTRING),
        r"wrong_geometry_type: geometry type LineString at row 3 \(id 'G1'\)",
        id="wrong-type",
    ),
    pytest.param(
        _grid_edit("geometry", 4, geo.SWAPPED_SQUARE),
        r"outside_crs_area: .* at row 4 \(id 'G2'\): it looks like lon/lat",
        id="swapped",
    ),
    pytest.param(
        _grid_edit("grid_id", 4, "G1"), r"duplicate_id: duplicate grid_id 'G1' at rows 3, 4", id="duplicate-id"
    ),
    pytest.param(
        _grid_edit("parent_id", 5, "S7"),
        r"unknown_parent: parent_id 'S7' does not exist at row 5 \(id 'G3'\)",
        id="unknown-parent",
    ),
    pytest.param(_grid_edit("parent_id", 5, "D"), r"parent_wrong_level: .* at row 5 \(id 'G3'\)", id="wrong-level"),
    pytest.param(
        _grid_edit("parent_id", 1, "G1"),
        r"parent_cycle: parent_id links form a cycle at rows 1, 3 \(ids 'S1', 'G1'\)",
        id="cycle",
    ),
]


# A shapefile holds one geometry type (GDAL refuses to write the mix), so it has no wrong-type case.
FILE_CASES = [
    pytest.param(fmt.values[0], *case.values, id=f"{case.id}-{fmt.id}")
    for case in FILE_PROBLEMS
    for fmt in GRID_FORMATS
    if not (fmt.values[0] == "shp" and case.id == "wrong-type")
]


@pytest.mark.parametrize(("ext", "edit", "match"), FILE_CASES)
def test_bad_grid_files_name_the_row_and_problem(tmp_path, tiny_grids, ext, edit, match):
    p = write(edit(tiny_grids), tmp_path / f"grids.{ext}")
    with pytest.raises(ValidationError, match=match):
        read_layer(p, "grids")


@pytest.mark.parametrize("ext", ["gpkg", "parquet"])
def test_empty_and_nan_geometries_in_files(tmp_path, tiny_grids, ext):
    g = tiny_grids.copy()
    g.loc[2, "geometry"] = geo.EMPTY_POLYGON
    g.loc[5, "geometry"] = geo.NAN_POLYGON
    p = write(g, tmp_path / f"grids.{ext}")
    with pytest.raises(ValidationError) as err:
        read_layer(p, "grids")
    msg = str(err.value)
    assert "empty_geometry: empty geometry at row 2 (id 'S2')" in msg
    assert "nonfinite_coordinates: NaN or infinite coordinates at row 5 (id 'G3')" in msg


def test_empty_polygon_in_a_shapefile_reads_as_no_geometry(tmp_path, tiny_grids):
    g = tiny_grids.copy()
    g.loc[2, "geometry"] = geo.EMPTY_POLYGON
    with pytest.raises(ValidationError, match=r"missing_geometry: no geometry at row 2 \(id 'S2'\)"):
        read_layer(write(g, tmp_path / "grids.shp"), "grids")


@pytest.mark.parametrize("ext", GRID_FORMATS)
def test_invalid_polygons_are_kept_and_counted_from_files(tmp_path, tiny_grids, ext):
    g = tiny_grids.copy()
    g.loc[4, "geometry"] = geo.BOW_TIE
    out = read_layer(write(g, tmp_path / f"grids.{ext}"), "grids")
    assert len(out) == 7
    assert describe(out)["invalid_geometries"] == 1
    assert describe(out)["invalid_geometry_ids"] == ["G2"]
    assert not out.geometry.iloc[4].is_valid


def test_integer_codes_from_a_geopackage_keep_their_hierarchy(tmp_path, tiny_grids):
    # Integer parent ids with a blank at the top read back as floats (1.0): must still match.
    g = tiny_grids.copy()
    g["grid_id"] = [1, 2, 3, 4, 5, 6, 7]
    g["parent_id"] = [None, 1, 1, 2, 2, 3, 3]
    out = read_layer(write(g, tmp_path / "codes.gpkg"), "grids")
    assert out["parent_id"].tolist()[1:] == ["1", "1", "2", "2", "3", "3"]


def test_crs_conflict_between_file_and_argument(tmp_path, tiny_grids):
    p = write(tiny_grids, tmp_path / "g.gpkg")
    with pytest.raises(
        ValidationError, match=r"crs_conflict: the file declares CRS EPSG:4326 but crs=EPSG:4548 was given"
    ):
        read_layer(p, "grids", crs="EPSG:4548")
    assert len(read_layer(p, "grids", crs="EPSG:4326")) == 7  # the same CRS is no conflict


def _geoparquet(path: Path, wkbs: list[bytes | None], geo_meta: dict | bytes, n: int | None = None) -> Path:
    n = len(wkbs) if n is None else n
    table = pa.table(
        {
            "camera_id": [f"C{i + 1}" for i in range(n)],
            "heading_deg": [0.0] * n,
            "fov_deg": [60.0] * n,
            "range_m": [50.0] * n,
            "status": ["online"] * n,
            "geometry": pa.array(wkbs, pa.binary()),
        }
    )
    raw = geo_meta if isinstance(geo_meta, bytes) else json.dumps(geo_meta).encode()
    pq.write_table(table.replace_schema_metadata({b"geo": raw}), path)
    return path


def _geo(**column: object) -> dict:
    return {
        "version": "1.0.0",
        "primary_column": "geometry",
        "columns": {"geometry": {"encoding": "WKB", "geometry_types": [], **column}},
    }


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        pytest.param(_geo(crs=None), r"missing_crs: the layer has no CRS.*--crs", id="explicit-null-crs"),
        pytest.param(
            _geo(crs={"type": "NoSuchCRS"}),
            r"unknown_crs: crs \{'type': 'NoSuchCRS'\} is not a CRS pyproj understands",
            id="bad-projjson",
        ),
        pytest.param(
            b"{not json", r"bad_geoparquet_metadata: the GeoParquet 'geo' metadata is not valid", id="geo-not-json"
        ),
        pytest.param(
            {**_geo(), "primary_column": "geom"},
            r"names the geometry column 'geom', but the file has columns",
            id="geometry-column-missing",
        ),
    ],
)
def test_geoparquet_metadata_problems_are_named(tmp_path, meta, match):
    p = _geoparquet(tmp_path / "c.parquet", [geo.POINT.wkb], meta)
    with pytest.raises(ValidationError, match=match):
        read_layer(p, "cameras")


def test_geoparquet_without_crs_key_is_crs84(tmp_path):
    p = _geoparquet(tmp_path / "c.parquet", [geo.POINT.wkb], _geo())
    assert read_layer(p, "cameras").crs.to_epsg() == 4326


def test_unreadable_wkb_is_named_by_row(tmp_path):
    wkbs = [geo.POINT.wkb, geo.POINT.wkb[:15], b"\x01\x63\x00\x00\x00", geo.POINT.wkb]
    p = _geoparquet(tmp_path / "c.parquet", wkbs, _geo())
    with pytest.raises(
        ValidationError, match=r"unreadable_geometry: geometry cannot be read at rows 1, 2 \(truncated or malformed"
    ):
        read_layer(p, "cameras")


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        pytest.param("x.kml", b"<kml/>", r"unknown file type '\.kml'; geogrid reads", id="unknown-extension"),
        pytest.param(
            "x.geojson",
            b'{"type": "FeatureCollection", "features": [{"type": "Fea',
            r"unreadable_file: x\.geojson cannot be opened",
            id="truncated-geojson",
        ),
        pytest.param("x.geojson", b"", r"unreadable_file", id="empty-geojson"),
        pytest.param(
            "x.parquet",
            b"PAR1 not really",
            r"unreadable_file: x\.parquet is not a readable Parquet file",
            id="garbage-parquet",
        ),
        pytest.param("x.csv", b"", r"unreadable_file: x\.csv cannot be parsed as CSV", id="empty-csv"),
    ],
)
def test_unreadable_files_are_named_not_crashed_on(tmp_path, name, content, match):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(ValidationError, match=match):
        read_layer(p, "cameras")


def test_plain_parquet_is_not_geoparquet(tmp_path):
    p = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"camera_id": ["C1"]}), p)
    with pytest.raises(ValidationError, match=r"not_geoparquet: the Parquet file has no GeoParquet 'geo' metadata"):
        read_layer(p, "cameras")


def test_argument_mistakes(tmp_path, tiny_grids):
    p = write(tiny_grids, tmp_path / "g.gpkg")
    with pytest.raises(StoreError, match=r"does not exist"):
        read_layer(tmp_path / "nope.gpkg", "grids")
    with pytest.raises(ValidationError, match=r"unknown layer kind 'roads'"):
        read_layer(p, "roads")
    with pytest.raises(ValidationError, match=r"unknown datum 'mars': use one of wgs84, gcj02, bd09"):
        read_layer(p, "grids", datum="mars")


# -- datums at the door -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "inverse"),
    [pytest.param("gcj02", datum.gcj02_to_wgs84, id="gcj02"), pytest.param("bd09", datum.bd09_to_wgs84, id="bd09")],
)
def test_csv_in_a_chinese_datum_is_converted_to_wgs84(tmp_path, name, inverse):
    p = tmp_path / "cams.csv"
    p.write_text(camera_csv(GOOD_CAMERA_ROWS), encoding="utf-8")
    out = read_layer(p, "cameras", columns=CAMERA_MAPPING_CN, datum=name)
    x, y = inverse([117.2050, 117.2100], [39.1050, 39.1020])
    np.testing.assert_allclose(out.geometry.x, x, atol=1e-12)
    np.testing.assert_allclose(out.geometry.y, y, atol=1e-12)
    assert out.attrs["datum"] == name
    assert abs(out.geometry.x.iloc[0] - 117.2050) > 0.003  # really moved (hundreds of metres)


def test_polygons_in_gcj02_are_converted_vertex_by_vertex(tmp_path, tiny_grids):
    gx, gy = datum.wgs84_to_gcj02(*shapely.get_coordinates(tiny_grids.geometry).T)
    shifted = tiny_grids.copy()
    shifted["geometry"] = shapely.set_coordinates(tiny_grids.geometry.array.copy(), np.column_stack([gx, gy]))
    out = read_layer(write(shifted, tmp_path / "gaode.gpkg"), "grids", datum="gcj02")
    assert_geodataframe_equal(out[["geometry"]], tiny_grids[["geometry"]], check_less_precise=True)
    err = np.abs(shapely.get_coordinates(out.geometry) - shapely.get_coordinates(tiny_grids.geometry)).max()
    assert err < 1e-8  # well under a millimetre


def test_datum_needs_lon_lat(tmp_path, tiny_grids):
    p = write(tiny_grids.to_crs("EPSG:4548"), tmp_path / "gk.gpkg")
    with pytest.raises(
        ValidationError, match=r"--datum gcj02 converts lon/lat, but the data is in the projected CRS EPSG:4548"
    ):
        read_layer(p, "grids", datum="gcj02")


# -- guards at the door: refused before any geometry is built ------------------------


def _polygon_wkb(n: int) -> bytes:
    """WKB of a noisy ring of ``n`` vertices near Tianjin, built with numpy (no shapely)."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 2 * np.pi, n)
    r = 0.01 * (1 + 0.05 * rng.random(n))
    xy = np.column_stack([geo.X0 + r * np.cos(t), geo.Y0 + r * np.sin(t)])
    xy[-1] = xy[0]
    return struct.pack("<BIII", 1, 3, 1, n) + xy.astype("<f8").tobytes()


@pytest.fixture
def no_geometry_built(monkeypatch):
    """Fail the test if read_layer hands any WKB to shapely."""

    def refuse(*args, **kwargs):
        pytest.fail("shapely.from_wkb was called before the guard refused the input")

    monkeypatch.setattr("layers.io.shapely.from_wkb", refuse)


def test_million_vertex_polygon_in_geoparquet_is_refused_before_parsing(tmp_path, no_geometry_built):
    p = _geoparquet(tmp_path / "big.parquet", [geo.POINT.wkb, _polygon_wkb(1_000_000)], _geo())
    with pytest.raises(
        InputTooLargeError, match=r"more than 200,000 vertices \(up to 1,000,000\+?\) at row 1 \(id 'C2'\): simplify"
    ):
        read_layer(p, "cameras")


def test_million_vertex_polygon_in_geopackage_is_refused_before_parsing(tmp_path, no_geometry_built):
    p = tmp_path / "big.gpkg"
    pyogrio.raw.write(
        p,
        geometry=np.array([_polygon_wkb(1_000_000)], dtype=object),
        field_data=[np.array(["BIG"], dtype=object), np.array([None], dtype=object), np.array([0])],
        fields=["grid_id", "parent_id", "level"],
        crs="EPSG:4326",
        geometry_type="Polygon",
        driver="GPKG",
    )
    with pytest.raises(InputTooLargeError, match=r"more than 200,000 vertices .* at row 0 \(id 'BIG'\)"):
        read_layer(p, "grids")


@pytest.mark.parametrize("ext", ["geojson", "shp"])
def test_vertex_limit_is_configurable(tmp_path, ext, no_geometry_built):
    g = gpd.GeoDataFrame(
        {"grid_id": ["D"], "parent_id": [None], "level": [0]}, geometry=[geo.noisy_polygon(5_000)], crs="EPSG:4326"
    )
    p = write(g, tmp_path / f"noisy.{ext}")
    with pytest.raises(InputTooLargeError, match=r"more than 1,000 vertices .* at row 0 \(id 'D'\).*--max-vertices"):
        read_layer(p, "grids", limits=Limits(max_vertices=1_000))


def test_deep_geojson_is_refused_before_gdal_parses_it(tmp_path, monkeypatch):
    p = tmp_path / "deep.geojson"
    p.write_text(geo.deep_collection_geojson(200), encoding="utf-8")
    monkeypatch.setattr("layers.io.pyogrio.list_layers", lambda *a, **k: pytest.fail("GDAL opened the file"))
    with pytest.raises(InputTooLargeError, match=r"deep\.geojson nests brackets 405 deep .*flatten the collections"):
        read_layer(p, "cameras")


def test_feature_and_file_size_limits(tmp_path):
    p = tmp_path / "cams.csv"
    p.write_text(camera_csv([*GOOD_CAMERA_ROWS, "C3,117.2,39.1,0,60,50,online"]), encoding="utf-8")
    with pytest.raises(InputTooLargeError, match=r"cams\.csv has 3 features, more than the limit of 2"):
        read_layer(p, "cameras", columns=CAMERA_MAPPING_CN, limits=Limits(max_features=2))
    with pytest.raises(InputTooLargeError, match=r"more than the limit of 10: .*--max-file-bytes"):
        read_layer(p, "cameras", columns=CAMERA_MAPPING_CN, limits=Limits(max_file_bytes=10))


def _read_in_subprocess(path: Path, kind: str, limits: str = "None") -> subprocess.CompletedProcess[str]:
    """read_layer in a child process: a segfault fails the test instead of killing pytest."""
    code = textwrap.dedent(
        f"""
        from layers.io import Limits, read_layer
        try:
            read_layer({str(path)!r}, {kind!r}, limits={limits})
        except Exception as err:
            print(type(err).__name__)
            print(err)
        else:
            print("accepted")
        """
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("depth", [100, 20_000], ids=["depth-100", "depth-20000-segfaults-geos"])
def test_deep_collection_in_geoparquet_does_not_crash_the_process(tmp_path, depth):
    p = _geoparquet(tmp_path / "deep.parquet", [geo.POINT.wkb, geo.deep_collection_wkb(depth)], _geo())
    out = _read_in_subprocess(p, "cameras")
    assert out.returncode == 0, f"child died with {out.returncode}: {out.stderr[-2000:]}"
    assert out.stdout.splitlines()[0] == "InputTooLargeError"
    assert "nested more than 32 deep at row 1 (id 'C2')" in out.stdout


def test_deep_collection_in_geopackage_does_not_crash_the_process(tmp_path):
    # GDAL itself refuses deep WKB in a GeoPackage blob and hands back no geometry.
    import sqlite3

    p = tmp_path / "deep.gpkg"
    gpd.GeoDataFrame(
        {"camera_id": ["C1"], "heading_deg": [0.0], "fov_deg": [60.0], "range_m": [50.0], "status": ["online"]},
        geometry=[geo.POINT],
        crs="EPSG:4326",
    ).to_file(p, layer="cameras")
    blob = b"GP\x00\x01" + struct.pack("<i", 4326) + geo.deep_collection_wkb(20_000)
    with sqlite3.connect(p) as con:
        for (trigger,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            con.execute(f'DROP TRIGGER "{trigger}"')
        con.execute("UPDATE cameras SET geom = ?", (blob,))
    con.close()
    out = _read_in_subprocess(p, "cameras")
    assert out.returncode == 0, f"child died with {out.returncode}: {out.stderr[-2000:]}"
    assert out.stdout.splitlines()[0] in ("ValidationError", "InputTooLargeError")
    assert "row 0 (id 'C1')" in out.stdout


def test_deep_geojson_does_not_crash_the_process_even_with_a_raised_limit(tmp_path):
    p = tmp_path / "deep.geojson"
    p.write_text(geo.deep_collection_geojson(50_000), encoding="utf-8")
    out = _read_in_subprocess(p, "cameras", limits="Limits(max_depth=10**6)")
    assert out.returncode == 0, f"child died with {out.returncode}: {out.stderr[-2000:]}"
    assert out.stdout.splitlines()[0] in ("ValidationError", "InputTooLargeError")


# -- writers ------------------------------------------------------------------------

WRITE_FORMATS = [
    pytest.param("gpkg", id="geopackage"),
    pytest.param("geojson", id="geojson"),
    pytest.param("parquet", id="geoparquet"),
]


@pytest.fixture
def incidents() -> gpd.GeoDataFrame:
    raw = gpd.GeoDataFrame(
        {
            "incident_id": ["E1", "E2", "E3"],
            "reported_at": ["2024-05-01T08:30:00.250+08:00", "2024-12-31T23:59:59+08:00", "2024-05-02T10:00:00Z"],
            "closed_at": ["2024-05-01T10:00:00+08:00", None, "2024-05-03T00:00:00+09:00"],
            "category": ["环境卫生", "占道经营", "噪音扰民"],
            "source": ["hotline", "grid_worker", "camera"],
            "status": ["closed", "reported", "closed"],
            "description": ["<script>alert('路灯')</script>", "井盖缺失，“请尽快处理”", None],
        },
        geometry=[geo.POINT, shapely.Point(geo.X0 + 0.002, geo.Y0), shapely.Point(geo.X0, geo.Y0 + 0.003)],
        crs="EPSG:4326",
    )
    return validate_layer(raw, "incidents")


@pytest.mark.parametrize("ext", WRITE_FORMATS)
def test_incidents_round_trip_with_chinese_text_and_aware_times(tmp_path, incidents, ext):
    p = write_layer(incidents, tmp_path / f"事件.{ext}")
    back = read_layer(p, "incidents")
    assert_geodataframe_equal(plain(back), plain(incidents), check_less_precise=ext == "geojson")
    assert back["reported_at"].iloc[0] == pd.Timestamp("2024-05-01T00:30:00.250Z")
    assert back["description"].iloc[1] == "井盖缺失，“请尽快处理”"


@pytest.mark.parametrize("ext", WRITE_FORMATS)
def test_grids_round_trip(tmp_path, tiny_grids, ext):
    expected = validate_layer(tiny_grids, "grids")
    back = read_layer(write_layer(expected, tmp_path / f"grids.{ext}"), "grids")
    assert_geodataframe_equal(plain(back), plain(expected), check_less_precise=ext == "geojson")


def test_geojson_is_utf8_text_not_escapes(tmp_path, tiny_grids):
    p = write_layer(validate_layer(tiny_grids, "grids"), tmp_path / "g.geojson")
    assert "望海楼街道" in p.read_text(encoding="utf-8")


def test_geopackage_write_keeps_other_layers_and_replaces_its_own(tmp_path, tiny_grids, incidents):
    p = tmp_path / "city.gpkg"
    write_layer(validate_layer(tiny_grids, "grids"), p, layer="grids")
    write_layer(incidents, p, layer="incidents")
    write_layer(incidents.iloc[:1], p, layer="incidents")
    assert sorted(pyogrio.list_layers(p)[:, 0].tolist()) == ["grids", "incidents"]
    assert len(read_layer(p, "incidents", layer="incidents")) == 1
    assert len(read_layer(p, "grids", layer="grids")) == 7


def test_failed_write_keeps_the_previous_file(tmp_path, tiny_grids, monkeypatch):
    g = validate_layer(tiny_grids, "grids")
    p = write_layer(g, tmp_path / "g.geojson")
    before = p.read_bytes()

    def broken(*args, **kwargs):
        Path(args[1]).write_text('{"type": "Feat')  # a half-written file, then the failure
        msg = "disk full"
        raise pyogrio.errors.DataSourceError(msg)

    monkeypatch.setattr("layers.io.pyogrio.write_dataframe", broken)
    with pytest.raises(StoreError, match=r"cannot write .*g\.geojson: disk full"):
        write_layer(g.iloc[:1], p)
    assert p.read_bytes() == before
    assert sorted(f.name for f in tmp_path.iterdir()) == ["g.geojson"]  # no temporary left behind


@pytest.mark.parametrize(
    ("name", "crs", "match"),
    [
        pytest.param("g.shp", "EPSG:4326", r"cannot write g\.shp: geogrid writes \.gpkg, \.geojson", id="shapefile"),
        pytest.param("g.csv", "EPSG:4326", r"cannot write g\.csv", id="csv"),
        pytest.param("g.gpkg", None, r"cannot write g\.gpkg: the layer has no CRS", id="no-crs"),
    ],
)
def test_writer_refusals(tmp_path, tiny_grids, name, crs, match):
    with pytest.raises(StoreError, match=match):
        write_layer(tiny_grids.set_crs(crs, allow_override=True), tmp_path / name)


# -- silent wrong imports, made loud -------------------------------------------------------


def _grid_feature(ring: list[list[float]], gid: str = "G") -> dict[str, object]:
    return {
        "type": "Feature",
        "properties": {"grid_id": gid, "parent_id": None, "level": 0},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def _geojson(tmp_path: Path, features: list[dict[str, object]], **top: object) -> Path:
    p = tmp_path / "in.geojson"
    p.write_text(json.dumps({"type": "FeatureCollection", **top, "features": features}), encoding="utf-8")
    return p


def test_a_polygon_across_the_antimeridian_is_refused(tmp_path):
    """Fiji-style ring 179.5°E → 179.5°W: read as written it spans 359° with inside and outside swapped."""
    ring = [[179.5, -16.0], [-179.5, -16.0], [-179.5, -17.0], [179.5, -17.0], [179.5, -16.0]]
    with pytest.raises(ValidationError, match=r"crosses_antimeridian.*split it at 180°") as err:
        read_layer(_geojson(tmp_path, [_grid_feature(ring)]), "grids")
    assert err.value.problems[0].ids == ("G",)
    # the same area split at 180° (RFC 7946) is read as it is
    split = {
        "type": "MultiPolygon",
        "coordinates": [
            [[[179.5, -16.0], [180.0, -16.0], [180.0, -17.0], [179.5, -17.0], [179.5, -16.0]]],
            [[[-180.0, -16.0], [-179.5, -16.0], [-179.5, -17.0], [-180.0, -17.0], [-180.0, -16.0]]],
        ],
    }
    feature = {**_grid_feature(ring), "geometry": split}
    out = read_layer(_geojson(tmp_path, [feature]), "grids")
    assert out.geometry.iloc[0].area == pytest.approx(1.0)


@pytest.mark.parametrize(
    "name", ["urn:ogc:def:crs:EPSG::999999", "EPSG:0", "not a crs"], ids=["unknown-epsg", "epsg-0", "text"]
)
def test_a_geojson_crs_member_naming_an_unknown_crs_is_refused(tmp_path, name):
    """GDAL reads such a file as WGS-84 without a word; geogrid asks for --crs."""
    ring = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]
    p = _geojson(tmp_path, [_grid_feature(ring)], crs={"type": "name", "properties": {"name": name}})
    with pytest.raises(ValidationError, match=r"unknown_crs: the file's \"crs\" member .* --crs") as err:
        read_layer(p, "grids")
    assert name in str(err.value)


def test_a_geojson_crs_member_that_is_known_or_overridden_is_used(tmp_path):
    x0, y0 = 117.2, 39.1
    ring = [[x0, y0], [x0 + 0.01, y0], [x0 + 0.01, y0 + 0.01], [x0, y0 + 0.01], [x0, y0]]
    known = {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}
    assert len(read_layer(_geojson(tmp_path, [_grid_feature(ring)], crs=known), "grids")) == 1
    unknown = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::999999"}}
    out = read_layer(_geojson(tmp_path, [_grid_feature(ring)], crs=unknown), "grids", crs="EPSG:4326")
    assert len(out) == 1
    # a property called "crs" inside a feature is no CRS of the file
    feature = _grid_feature(ring)
    feature["properties"] = {**feature["properties"], "crs": {"type": "name", "properties": {"name": "bogus"}}}
    assert len(read_layer(_geojson(tmp_path, [feature]), "grids")) == 1


def test_swapped_lonlat_west_of_90e_is_refused(tmp_path):
    """Urumqi (87.6°E, 43.8°N) swapped is still valid degrees: lat 87.6 in the Arctic."""
    p = tmp_path / "cams.csv"
    p.write_text(camera_csv(["C1,43.80,87.60,0,360,50,online"], header="编号,经度,纬度,朝向,视角,距离,状态"))
    with pytest.raises(ValidationError, match=r"swapped_lonlat.*swap the columns"):
        read_layer(p, "cameras", columns=CAMERA_MAPPING_CN)
    x, y = 43.80, 87.60
    grid = _grid_feature([[x, y], [x + 0.01, y], [x + 0.01, y + 0.01], [x, y + 0.01], [x, y]])
    with pytest.raises(ValidationError, match="swapped_lonlat"):
        read_layer(_geojson(tmp_path, [grid]), "grids")
    # the right way round, it is read
    p.write_text(camera_csv(["C1,87.60,43.80,0,360,50,online"]))
    assert read_layer(p, "cameras", columns=CAMERA_MAPPING_CN).geometry.iloc[0].x == pytest.approx(87.6)


def test_a_gbk_shapefile_without_cpg_is_refused_naming_the_encoding(tmp_path, tiny_grids):
    folder = tmp_path / "shp"
    folder.mkdir()
    tiny_grids.to_file(folder / "grids.shp", encoding="gbk")
    (folder / "grids.cpg").unlink()
    with pytest.raises(ValidationError, match=r"unknown_encoding: .*no \.cpg.*'河北区' as GBK.*--encoding gbk"):
        read_layer(folder / "grids.shp", "grids")
    assert read_layer(folder / "grids.shp", "grids", encoding="gbk")["name"].tolist() == tiny_grids["name"].tolist()
    (folder / "grids.cpg").write_text("936")  # a .cpg naming the code page: read without --encoding
    assert read_layer(folder / "grids.shp", "grids")["name"].tolist() == tiny_grids["name"].tolist()


def test_an_ascii_shapefile_without_cpg_is_read(tmp_path, tiny_grids):
    folder = tmp_path / "shp"
    folder.mkdir()
    g = tiny_grids.assign(name=[f"grid {i}" for i in range(len(tiny_grids))])
    g.to_file(folder / "grids.shp", encoding="latin1")
    (folder / "grids.cpg").unlink(missing_ok=True)
    assert read_layer(folder / "grids.shp", "grids")["name"].tolist() == g["name"].tolist()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_csv_reads_the_same_through_the_streamed_arrow_path_and_pandas(tmp_path, encoding):
    """UTF-8 streams through Arrow's block reader, other encodings through pandas: same cells, same blanks."""
    rows = [
        'E1,117.201,39.101,2025-03-01T08:00:00Z,"环境,卫生",hotline,closed,"第一行\n第二行"',
        "E2,117.202,39.102,2025-03-01T09:00:00Z,噪音,hotline,reported,None",
        'E3,117.203,39.103,2025-03-01T10:00:00Z,噪音,grid_worker,reported,""',
        "E4,117.204,39.104,2025-03-01T11:00:00Z,噪音,grid_worker,reported,  空格  ",
    ]
    p = tmp_path / "events.csv"
    text = "incident_id,lon,lat,reported_at,category,source,status,description\n" + "\n".join(rows) + "\n"
    p.write_bytes(text.encode(encoding))
    out = read_layer(p, "incidents", encoding=None if encoding == "utf-8" else encoding)
    assert out["incident_id"].tolist() == ["E1", "E2", "E3", "E4"]
    assert out["category"].tolist() == ["环境,卫生", "噪音", "噪音", "噪音"]
    assert out["description"].iloc[0] == "第一行\n第二行" and out["description"].iloc[1:3].isna().all()
    assert out["description"].iloc[3] == "  空格  "
    assert out.geometry.x.tolist() == [117.201, 117.202, 117.203, 117.204]


def test_csv_reading_stops_past_the_feature_limit(tmp_path):
    p = tmp_path / "many.csv"
    p.write_text("incident_id,lon,lat,reported_at\n" + "".join(f"E{i},117.2,39.1,2025-03-01\n" for i in range(50)))
    with pytest.raises(InputTooLargeError, match="more than the limit of 20"):
        read_layer(p, "incidents", limits=Limits(max_features=20))
