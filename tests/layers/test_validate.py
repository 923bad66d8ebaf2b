"""validate_layer: every bad input named with its row, id, problem and fix; one error for all."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

import geopandas as gpd
import shapely
from geopandas.testing import assert_geodataframe_equal

from layers.errors import InputTooLargeError, OutsideCRSAreaWarning, ValidationError
from layers.validate import Limits, count_invalid_at_door, invalid_rows_at_door, validate_layer
from tests import geometries as geo


@pytest.fixture
def incidents() -> gpd.GeoDataFrame:
    """Three valid incidents near Tianjin, one with hostile free text."""
    return gpd.GeoDataFrame(
        {
            "incident_id": ["E1", "E2", "E3"],
            "reported_at": ["2024-05-01T08:30:00+08:00", "2024-05-01T09:00:00+08:00", "2024-05-02T10:00:00Z"],
            "closed_at": ["2024-05-01T10:00:00+08:00", None, "2024-05-02T12:00:00+00:00"],
            "category": ["环境卫生", "占道经营", "噪音扰民"],
            "source": ["hotline", "grid_worker", "camera"],
            "status": ["closed", "reported", "closed"],
            "description": ["<script>alert('路灯')</script>", "", None],
        },
        geometry=[geo.POINT, shapely.Point(geo.X0 + 0.002, geo.Y0), shapely.Point(geo.X0, geo.Y0 + 0.003)],
        crs="EPSG:4326",
    )


@pytest.fixture
def cameras() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "camera_id": ["C1", "C2", "C3"],
            "heading_deg": [0.0, 90.0, 359.5],
            "fov_deg": [60.0, 90.0, 360.0],
            "range_m": [50.0, 80.0, 30.0],
            "status": ["online", "offline", "online"],
            "owner": ["公安", "教育", None],
        },
        geometry=[geo.POINT] * 3,
        crs="EPSG:4326",
    )


@pytest.fixture
def layers(tiny_grids, incidents, cameras) -> dict[str, gpd.GeoDataFrame]:
    return {"grids": tiny_grids, "incidents": incidents, "cameras": cameras}


def _set(col: str, row: int, value: object) -> Callable[[gpd.GeoDataFrame], gpd.GeoDataFrame]:
    def edit(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        gdf = gdf.copy()
        if col != "geometry":  # pandas refuses text in a float column, floats in an int one
            gdf[col] = gdf[col].astype(object)
        gdf.iloc[row, gdf.columns.get_loc(col)] = value
        return gdf

    return edit


def _crs(crs: object) -> Callable[[gpd.GeoDataFrame], gpd.GeoDataFrame]:
    return lambda gdf: gdf.set_crs(crs, allow_override=True)


def _drop(col: str) -> Callable[[gpd.GeoDataFrame], gpd.GeoDataFrame]:
    return lambda gdf: gdf.drop(columns=col)


def _many(*edits: Callable[[gpd.GeoDataFrame], gpd.GeoDataFrame]) -> Callable[[gpd.GeoDataFrame], gpd.GeoDataFrame]:
    def edit(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        for e in edits:
            gdf = e(gdf)
        return gdf

    return edit


# (layer, edit, problem kind, regex the message must match: the rows/ids and the fix)
BAD = [
    # CRS
    pytest.param(
        "grids",
        _crs(None),
        "missing_crs",
        r"has no CRS; geogrid will not guess: call gdf\.set_crs",
        id="grids-missing-crs",
    ),
    pytest.param(
        "incidents", _crs(None), "missing_crs", r"has no CRS.*set_crs\('EPSG:4326'\)", id="incidents-missing-crs"
    ),
    # geometry
    pytest.param(
        "grids",
        _set("geometry", 3, geo.POINT),
        "wrong_geometry_type",
        r"geometry type Point at row 3 \(id 'G1'\): grids layers hold Polygon or MultiPolygon",
        id="grids-point",
    ),
    pytest.param(
        "grids",
        _set("geometry", 4, geo.LINESTRING),
        "wrong_geometry_type",
        r"LineString at row 4 \(id 'G2'\)",
        id="grids-linestring",
    ),
    pytest.param(
        "grids",
        _set("geometry", 5, shapely.GeometryCollection([geo.SQUARE])),
        "wrong_geometry_type",
        r"GeometryCollection at row 5 \(id 'G3'\)",
        id="grids-collection",
    ),
    pytest.param(
        "incidents",
        _set("geometry", 1, geo.MULTIPOINT),
        "wrong_geometry_type",
        r"MultiPoint at row 1 \(id 'E2'\).*explode",
        id="incidents-multipoint",
    ),
    pytest.param(
        "cameras",
        _set("geometry", 2, geo.SQUARE),
        "wrong_geometry_type",
        r"Polygon at row 2 \(id 'C3'\): cameras layers hold Point",
        id="cameras-polygon",
    ),
    pytest.param(
        "grids",
        _set("geometry", 3, geo.EMPTY_POLYGON),
        "empty_geometry",
        r"empty geometry at row 3 \(id 'G1'\): drop those rows",
        id="grids-empty",
    ),
    pytest.param(
        "incidents",
        _set("geometry", 0, geo.EMPTY_POINT),
        "empty_geometry",
        r"empty geometry at row 0 \(id 'E1'\)",
        id="incidents-empty",
    ),
    pytest.param(
        "grids",
        _set("geometry", 6, None),
        "missing_geometry",
        r"no geometry at row 6 \(id 'G4'\)",
        id="grids-no-geometry",
    ),
    pytest.param(
        "grids",
        _set("geometry", 3, geo.NAN_POLYGON),
        "nonfinite_coordinates",
        r"NaN or infinite coordinates at row 3 \(id 'G1'\)",
        id="grids-nan-vertex",
    ),
    pytest.param(
        "incidents",
        _set("geometry", 2, geo.NAN_POINT),
        "nonfinite_coordinates",
        r"NaN or infinite coordinates at row 2 \(id 'E3'\)",
        id="incidents-nan-point",
    ),
    pytest.param(
        "cameras",
        _set("geometry", 1, geo.INF_POINT),
        "nonfinite_coordinates",
        r"NaN or infinite coordinates at row 1 \(id 'C2'\)",
        id="cameras-inf-point",
    ),
    pytest.param(
        "grids",
        _set("geometry", 3, geo.SWAPPED_SQUARE),
        "outside_crs_area",
        r"outside the area of use of EPSG:4326 at row 3 \(id 'G1'\): it looks like lon/lat \(x/y\) are swapped",
        id="grids-swapped",
    ),
    pytest.param(
        "incidents",
        _set("geometry", 1, geo.SWAPPED_POINT),
        "outside_crs_area",
        r"at row 1 \(id 'E2'\): it looks like lon/lat .*swapped",
        id="incidents-swapped",
    ),
    pytest.param(
        "cameras",
        _set("geometry", 0, shapely.Point(200, 95)),
        "outside_crs_area",
        r"EPSG:4326 at row 0 \(id 'C1'\): the CRS EPSG:4326 is used within lon -180\.\.180, lat -90\.\.90",
        id="cameras-off-the-globe",
    ),
    pytest.param(
        "incidents",
        _crs("EPSG:4547"),
        "outside_crs_area",
        r"EPSG:4547 at rows 0, 1, 2 \(ids 'E1', 'E2', 'E3'\).*check that the CRS is the one the data is in",
        id="degrees-labelled-gauss-kruger",
    ),
    # ids
    pytest.param(
        "grids",
        _set("grid_id", 4, "G1"),
        "duplicate_id",
        r"duplicate grid_id 'G1' at rows 3, 4 \(ids 'G1', 'G1'\): every grid_id must be unique",
        id="grids-duplicate-id",
    ),
    pytest.param(
        "incidents",
        _set("incident_id", 2, "E1"),
        "duplicate_id",
        r"duplicate incident_id 'E1' at rows 0, 2",
        id="incidents-duplicate-id",
    ),
    pytest.param(
        "cameras",
        _set("camera_id", 1, None),
        "missing_value",
        r"camera_id is missing at row 1: fill in camera_id on every row",
        id="cameras-missing-id",
    ),
    pytest.param(
        "cameras", _set("camera_id", 1, "   "), "missing_value", r"camera_id is missing at row 1", id="cameras-blank-id"
    ),
    # hierarchy
    pytest.param(
        "grids",
        _set("parent_id", 3, "S9"),
        "unknown_parent",
        r"parent_id 'S9' does not exist at row 3 \(id 'G1'\): parent_id must be the grid_id of a grid",
        id="unknown-parent",
    ),
    pytest.param(
        "grids",
        _set("parent_id", 3, "D"),
        "parent_wrong_level",
        r"not on the level just above at row 3 \(id 'G1'\): a grid on level L must have a parent on level L-1",
        id="parent-two-levels-up",
    ),
    pytest.param(
        "grids", _set("parent_id", 3, "G2"), "parent_wrong_level", r"at row 3 \(id 'G1'\)", id="parent-on-same-level"
    ),
    pytest.param(
        "grids",
        _set("parent_id", 0, "S1"),
        "top_level_with_parent",
        r"level-0 grid has a parent_id at row 0 \(id 'D'\)",
        id="top-level-with-parent",
    ),
    pytest.param(
        "grids",
        _set("parent_id", 5, None),
        "missing_parent",
        r"below level 0 has no parent_id at row 5 \(id 'G3'\)",
        id="missing-parent",
    ),
    pytest.param(
        "grids",
        _many(_set("parent_id", 1, "S2"), _set("parent_id", 2, "S1")),
        "parent_cycle",
        r"parent_id links form a cycle at rows 1, 2 \(ids 'S1', 'S2'\): every chain of parents must end at a level-0 grid",
        id="two-grid-cycle",
    ),
    pytest.param("grids", _set("parent_id", 3, "G1"), "parent_cycle", r"cycle at row 3 \(id 'G1'\)", id="own-parent"),
    pytest.param(
        "grids",
        _many(_set("level", 0, 3), _set("parent_id", 0, "G4")),
        "parent_cycle",
        r"cycle at rows 0, 2, 6 \(ids 'D', 'S2', 'G4'\)",
        id="district-below-its-own-grid",
    ),
    # columns
    pytest.param(
        "grids",
        _drop("level"),
        "missing_column",
        r"required column 'level' .* is missing: add or rename the column; the frame has columns 'grid_id', 'parent_id'",
        id="grids-missing-level",
    ),
    pytest.param(
        "grids",
        _set("level", 2, 1.5),
        "bad_value",
        r"level is not an integer at row 2 \(id 'S2'\)",
        id="fractional-level",
    ),
    pytest.param(
        "grids", _set("level", 2, "一"), "bad_value", r"level is not an integer at row 2 \(id 'S2'\)", id="text-level"
    ),
    pytest.param(
        "grids",
        _set("level", 0, -1),
        "out_of_range",
        r"level out of range \(-1\) at row 0 \(id 'D'\): level must be >= 0",
        id="negative-level",
    ),
    pytest.param(
        "grids",
        lambda g: g.assign(households=[100, 50, 50, 20, 30, -5, 55]),
        "out_of_range",
        r"households out of range \(-5\) at row 5 \(id 'G3'\)",
        id="negative-households",
    ),
    pytest.param(
        "cameras",
        _set("heading_deg", 1, 361.0),
        "out_of_range",
        r"heading_deg out of range \(361\) at row 1 \(id 'C2'\): heading_deg must be >= 0 and <= 360",
        id="heading-over-360",
    ),
    pytest.param(
        "cameras",
        _set("fov_deg", 0, 0.0),
        "out_of_range",
        r"fov_deg out of range \(0\) at row 0 \(id 'C1'\): fov_deg must be > 0",
        id="zero-field-of-view",
    ),
    pytest.param(
        "cameras",
        _set("range_m", 2, np.inf),
        "out_of_range",
        r"range_m out of range \(inf\) at row 2 \(id 'C3'\)",
        id="infinite-range",
    ),
    pytest.param(
        "cameras",
        _set("range_m", 2, "50米"),
        "bad_value",
        r"range_m is not a number at row 2 \(id 'C3'\)",
        id="range-with-unit",
    ),
    pytest.param(
        "cameras",
        _set("status", 1, "broken"),
        "unknown_value",
        r"status has unknown value\(s\) 'broken' at row 1 \(id 'C2'\): allowed: online, offline",
        id="camera-status-enum",
    ),
    pytest.param(
        "incidents",
        _set("source", 1, "热线"),
        "unknown_value",
        r"source has unknown value\(s\) '热线' at row 1 \(id 'E2'\): allowed: grid_worker, hotline",
        id="incident-source-enum",
    ),
    pytest.param(
        "incidents",
        _set("status", 2, "Closed"),
        "unknown_value",
        r"status has unknown value\(s\) 'Closed' at row 2 \(id 'E3'\)",
        id="incident-status-enum-case",
    ),
    pytest.param(
        "incidents",
        _set("category", 0, ""),
        "missing_value",
        r"category is missing at row 0 \(id 'E1'\)",
        id="blank-category",
    ),
    # times
    pytest.param(
        "incidents",
        _set("closed_at", 0, "2024-05-01T08:00:00+08:00"),
        "closed_before_reported",
        r"closed_at is before reported_at at row 0 \(id 'E1'\): fix the times",
        id="closed-before-reported",
    ),
    pytest.param(
        "incidents",
        _set("closed_at", 2, "2024-05-02T17:00:00+08:00"),
        "closed_before_reported",
        r"at row 2 \(id 'E3'\)",
        id="closed-before-reported-across-offsets",
    ),
    pytest.param(
        "incidents",
        _set("reported_at", 1, "2024-05-01 09:00"),
        "naive_datetime",
        r"reported_at has no timezone at row 1 \(id 'E2'\): say which timezone.*--tz Asia/Shanghai",
        id="naive-time",
    ),
    pytest.param(
        "incidents",
        _set("reported_at", 1, "2024-05-01"),
        "naive_datetime",
        r"reported_at has no timezone at row 1 \(id 'E2'\)",
        id="date-only-is-naive-not-utc",
    ),
    pytest.param(
        "incidents",
        _set("reported_at", 2, "昨天下午"),
        "bad_datetime",
        r"reported_at is not a date-time at row 2 \(id 'E3'\): write ISO 8601",
        id="unparsable-time",
    ),
    pytest.param(
        "incidents",
        _set("reported_at", 0, None),
        "missing_value",
        r"reported_at is missing at row 0 \(id 'E1'\)",
        id="missing-time",
    ),
]


@pytest.mark.parametrize(("kind", "edit", "problem", "match"), BAD)
def test_each_bad_input_is_named_with_its_row_and_fix(layers, kind, edit, problem, match):
    bad = edit(layers[kind])
    with pytest.raises(ValidationError, match=match) as err:
        validate_layer(bad, kind)
    assert problem in err.value.kinds
    assert isinstance(err.value, ValueError)  # callers may catch the built-in


@pytest.mark.parametrize("kind", ["grids", "incidents", "cameras"])
def test_valid_layers_pass_with_canonical_dtypes(layers, kind):
    out = validate_layer(layers[kind], kind)
    assert out.crs.to_epsg() == 4326
    id_col = {"grids": "grid_id", "incidents": "incident_id", "cameras": "camera_id"}[kind]
    assert out[id_col].dtype == "string"
    assert out.index.equals(layers[kind].index)
    assert out.attrs["invalid_geometries"] == 0


def test_every_problem_of_a_layer_comes_in_one_error(tiny_grids):
    bad = tiny_grids.copy()
    bad.loc[1, "geometry"] = geo.EMPTY_POLYGON
    bad.loc[2, "geometry"] = geo.SWAPPED_SQUARE
    bad.loc[3, "grid_id"] = "G2"
    bad.loc[5, "parent_id"] = "nowhere"
    bad["level"] = bad["level"].astype(object)
    bad.loc[6, "level"] = "x"
    with pytest.raises(ValidationError) as err:
        validate_layer(bad, "grids", source="区划.gpkg")
    e = err.value
    assert e.kinds == {"empty_geometry", "outside_crs_area", "duplicate_id", "unknown_parent", "bad_value"}
    assert str(e).startswith("区划.gpkg: 5 problem(s) found:")
    rows = {p.kind: p.rows for p in e.problems}
    assert rows == {
        "empty_geometry": (1,),
        "outside_crs_area": (2,),
        "duplicate_id": (3, 4),
        "unknown_parent": (5,),
        "bad_value": (6,),
    }
    assert {p.kind: p.ids for p in e.problems}["unknown_parent"] == ("G3",)


def test_rows_are_positions_even_with_a_custom_index(incidents):
    bad = incidents.set_axis(["x", "y", "z"])
    bad.loc["z", "source"] = "email"
    with pytest.raises(ValidationError, match=r"'email' at row 2 \(id 'E3'\)"):
        validate_layer(bad, "incidents")


def test_a_long_list_of_rows_is_elided(cameras):
    many = pd.concat([cameras] * 10, ignore_index=True)
    many["camera_id"] = [f"C{i}" for i in range(30)]
    many["status"] = "unknown"
    with pytest.raises(ValidationError, match=r"rows 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 \(\+20 more\)"):
        validate_layer(many, "cameras")


# -- what is kept, not rejected -----------------------------------------------------


def test_invalid_polygons_are_kept_and_counted(tiny_grids):
    g = tiny_grids.copy()
    g.loc[3, "geometry"] = geo.BOW_TIE
    g.loc[6, "geometry"] = geo.BOW_TIE
    out = validate_layer(g, "grids")
    assert len(out) == 7
    assert out.attrs["invalid_geometries"] == 2
    assert out.attrs["invalid_geometry_ids"] == ["G1", "G4"]
    assert all(r.startswith("Self-intersection") for r in out.attrs["invalid_geometry_reasons"])
    assert shapely.equals(out.geometry.iloc[3], geo.BOW_TIE)  # not repaired behind the user's back


def test_slivers_holes_and_multipolygons_are_valid_grids(tiny_grids):
    g = tiny_grids.copy()
    g.loc[3, "geometry"] = geo.POLYGON_WITH_HOLE
    g.loc[4, "geometry"] = geo.MULTIPOLYGON
    g.loc[5, "geometry"] = geo.SLIVER
    assert validate_layer(g, "grids").attrs["invalid_geometries"] == 0


def test_integer_ids_with_a_blank_parent_match(tiny_grids):
    # An integer parent column with a blank reads as float (1.0): it must still match grid 1.
    g = tiny_grids.copy()
    g["grid_id"] = list(range(1, 8))
    g["parent_id"] = [np.nan, 1, 1, 2, 2, 3, 3]
    out = validate_layer(g, "grids")
    assert out["parent_id"].tolist()[1:] == ["1", "1", "2", "2", "3", "3"]
    assert pd.isna(out["parent_id"].iloc[0])


def test_admin_codes_survive_as_exact_text(tiny_grids):
    g = tiny_grids.copy()
    codes = [120105000000, 120105001000, 120105002000, 120105001001, 120105001002, 120105002001, 120105002002]
    g["grid_id"] = codes
    g["parent_id"] = [
        np.nan,
        *(float(c) for c in codes[:1] * 2),
        *(float(c) for c in (codes[1], codes[1], codes[2], codes[2])),
    ]
    out = validate_layer(g, "grids")
    assert out["grid_id"].tolist() == [str(c) for c in codes]
    assert out["parent_id"].tolist()[3] == "120105001000"


def test_extra_columns_and_chinese_text_are_kept(tiny_grids):
    g = tiny_grids.assign(负责人=["张三", "李四", "王五", "赵六", "钱七", "孙八", "周九"])
    out = validate_layer(g, "grids")
    assert out["负责人"].tolist()[0] == "张三"
    assert out["name"].tolist()[0] == "河北区"
    assert list(out.columns[:3]) == ["grid_id", "parent_id", "level"]


# -- CRS handling -------------------------------------------------------------------


def test_cgcs2000_is_relabelled_not_reprojected(tiny_grids):
    out = validate_layer(tiny_grids.set_crs("EPSG:4490", allow_override=True), "grids")
    assert out.crs.to_epsg() == 4326
    assert out.attrs["source_crs"] == "EPSG:4490"
    assert_geodataframe_equal(
        out[["geometry"]], tiny_grids[["geometry"]], check_crs=False, check_geom_type=True, check_less_precise=False
    )


def test_a_metric_crs_is_reprojected_to_storage(tiny_grids):
    gk = tiny_grids.to_crs("EPSG:4548")  # CGCS2000 3-degree GK zone 39, CM 117E: Tianjin
    out = validate_layer(gk, "grids")
    assert out.crs.to_epsg() == 4326
    assert out.attrs["source_crs"] == "EPSG:4548"
    assert_geodataframe_equal(out[["geometry"]], tiny_grids[["geometry"]], check_less_precise=True)


@pytest.mark.parametrize("crs", ["EPSG:999999", "not a crs"])
def test_unknown_crs_is_named(tiny_grids, crs):
    # set_crs refuses nonsense, so go through a frame that carries the raw value
    from layers.validate import check_frame

    frame = pd.DataFrame(tiny_grids.drop(columns="geometry"))
    checked = check_frame(frame, np.asarray(tiny_grids.geometry.array), "grids", crs=crs)
    assert [p.kind for p in checked.problems] == ["unknown_crs"]
    assert repr(crs) in checked.problems[0].message


# -- times --------------------------------------------------------------------------


def test_times_become_utc_and_keep_the_instant(incidents):
    out = validate_layer(incidents, "incidents")
    assert str(out["reported_at"].dtype) == "datetime64[us, UTC]"
    assert out["reported_at"].iloc[0] == pd.Timestamp("2024-05-01T00:30:00Z")
    assert out["closed_at"].iloc[2] == pd.Timestamp("2024-05-02T12:00:00Z")
    assert pd.isna(out["closed_at"].iloc[1])


def test_naive_times_are_localised_with_tz(incidents):
    g = incidents.copy()
    g["reported_at"] = ["2024-05-01 08:30", "2024-05-01 09:00:00", "2024-05-02"]
    g["closed_at"] = [None, None, None]
    out = validate_layer(g, "incidents", tz="Asia/Shanghai")
    assert out["reported_at"].tolist() == [
        pd.Timestamp("2024-05-01T00:30:00Z"),
        pd.Timestamp("2024-05-01T01:00:00Z"),
        pd.Timestamp("2024-05-01T16:00:00Z"),
    ]


def test_naive_datetime64_column_needs_tz_too(incidents):
    g = incidents.copy()
    g["reported_at"] = pd.to_datetime(["2024-05-01 08:30", "2024-05-01 09:00", "2024-05-02 10:00"])
    g["closed_at"] = None
    with pytest.raises(ValidationError, match=r"reported_at has no timezone at rows 0, 1, 2"):
        validate_layer(g, "incidents")
    out = validate_layer(g, "incidents", tz="Asia/Shanghai")
    assert out["reported_at"].iloc[2] == pd.Timestamp("2024-05-02T02:00:00Z")


def test_aware_datetime64_column_is_converted(incidents):
    g = incidents.copy()
    g["reported_at"] = pd.to_datetime(["2024-05-01 08:30", "2024-05-01 09:00", "2024-05-02 10:00"]).tz_localize(
        "Asia/Shanghai"
    )
    g["closed_at"] = None
    out = validate_layer(g, "incidents")
    assert out["reported_at"].iloc[0] == pd.Timestamp("2024-05-01T00:30:00Z")


def test_nonexistent_local_time_is_named(incidents):
    g = incidents.copy()
    g.loc[1, "reported_at"] = "2024-03-10 02:30"  # skipped by the spring-forward change
    with pytest.raises(
        ValidationError, match=r"does not exist or is ambiguous in America/New_York .* at row 1 \(id 'E2'\)"
    ):
        validate_layer(g, "incidents", tz="America/New_York")


def test_a_column_whose_every_local_time_is_lost_to_daylight_saving_is_named_too(incidents):
    g = incidents.copy()
    g["reported_at"] = ["2024-11-03 01:30"] * len(g)  # the fall-back hour: every time ambiguous
    g["closed_at"] = None
    with pytest.raises(ValidationError, match=r"does not exist or is ambiguous in America/New_York .* at rows 0, 1, 2"):
        validate_layer(g, "incidents", tz="America/New_York")


def test_unknown_timezone_is_named(incidents):
    g = incidents.copy()
    g.loc[1, "reported_at"] = "2024-05-01 09:00"
    with pytest.raises(ValidationError, match=r"timezone 'Beijing' is not known.*Asia/Shanghai"):
        validate_layer(g, "incidents", tz="Beijing")


# -- limits and misuse --------------------------------------------------------------


def test_a_feature_with_too_many_vertices_is_refused(tiny_grids):
    g = tiny_grids.copy()
    g.loc[6, "geometry"] = geo.noisy_polygon(2_000)
    with pytest.raises(InputTooLargeError, match=r"more than 1,000 vertices at row 6 \(id 'G4'\)"):
        validate_layer(g, "grids", limits=Limits(max_vertices=1_000))


def test_unknown_kind_and_plain_dataframe_are_named(tiny_grids):
    with pytest.raises(ValidationError, match=r"unknown layer kind 'roads': use one of grids, incidents, cameras"):
        validate_layer(tiny_grids, "roads")
    with pytest.raises(ValidationError, match=r"expected a GeoDataFrame, got DataFrame"):
        validate_layer(pd.DataFrame(tiny_grids), "grids")


def test_the_input_is_not_modified(incidents):
    before = incidents.copy()
    validate_layer(incidents, "incidents")
    assert_geodataframe_equal(incidents, before)


def test_a_long_chain_into_a_cycle_names_only_the_cycle():
    # 40 grids in one chain whose top 3 loop back on each other: the 37 below lead into
    # the cycle but are not on it.
    n = 40
    ids = [f"c{i}" for i in range(n)]
    parents = [f"c{i + 1}" for i in range(n - 1)] + ["c37"]
    levels = list(range(n, 0, -1))
    g = gpd.GeoDataFrame(
        {"grid_id": ids, "parent_id": parents, "level": levels},
        geometry=[shapely.box(117, 39, 117.01, 39.01)] * n,
        crs="EPSG:4326",
    )
    with pytest.raises(ValidationError) as info:
        validate_layer(g, "grids")
    cycle = [p for p in info.value.problems if p.kind == "parent_cycle"]
    assert len(cycle) == 1
    assert cycle[0].rows == (37, 38, 39)
    assert cycle[0].ids == ("c37", "c38", "c39")


# -- coordinate ranges: refuse the impossible, warn beyond a projected CRS's area (issue 11, item 8) --
def _square_at(lon: float, lat: float, crs: str, grid_id: str = "G1") -> gpd.GeoDataFrame:
    """A 100 m grid whose south-west corner lies at (lon, lat), in ``crs``."""
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    return gpd.GeoDataFrame(
        {"grid_id": [grid_id], "parent_id": [None], "level": [0]},
        geometry=[shapely.box(x, y, x + 100, y + 100)],
        crs=crs,
    )


def test_utm_data_beyond_its_zone_is_kept_with_a_warning_naming_the_distance():
    from layers.errors import OutsideCRSAreaWarning

    # EPSG:32650 (UTM 50N) is meant for 114..120 E; these grids lie 3 degrees east of it (123 E, 39 N)
    grids = _square_at(123.0, 39.0, "EPSG:32650")
    with pytest.warns(OutsideCRSAreaWarning, match=r"up to 2\d\d km beyond the area of use of EPSG:32650 at row 0"):
        out = validate_layer(grids, "grids")
    assert out.crs.to_epsg() == 4326
    assert out.geometry.iloc[0].distance(shapely.Point(123.0, 39.0)) < 1e-9  # a corner stays where it was
    assert out.attrs["warnings"] and "km beyond" in out.attrs["warnings"][0]


def test_utm_data_inside_its_zone_gives_no_warning():
    out = validate_layer(_square_at(117.0, 39.0, "EPSG:32650"), "grids")  # filterwarnings=error: none may come
    assert "warnings" not in out.attrs


def test_a_latitude_of_117_is_refused():
    grids = gpd.GeoDataFrame(
        {"grid_id": ["G1"], "parent_id": [None], "level": [0]},
        geometry=[shapely.box(39.0, 117.0, 39.01, 117.01)],
        crs="EPSG:4326",
    )
    with pytest.raises(ValidationError, match=r"outside the area of use of EPSG:4326 at row 0") as err:
        validate_layer(grids, "grids")
    assert err.value.kinds == {"outside_crs_area"}


def test_swapped_lon_lat_is_refused_with_the_fix():
    grids = gpd.GeoDataFrame(
        {"grid_id": ["G1"], "parent_id": [None], "level": [0]},
        geometry=[shapely.box(39.1, 117.2, 39.11, 117.21)],  # (lat, lon) of Tianjin
        crs="EPSG:4326",
    )
    with pytest.raises(ValidationError, match=r"lon/lat \(x/y\) are swapped: swap the columns"):
        validate_layer(grids, "grids")


def test_degrees_labelled_utm_are_refused_not_warned():
    grids = gpd.GeoDataFrame(
        {"grid_id": ["G1"], "parent_id": [None], "level": [0]},
        geometry=[shapely.box(117.2, 39.1, 117.21, 39.11)],
        crs="EPSG:32650",
    )
    with pytest.raises(ValidationError, match=r"look like lon/lat degrees, outside the area of use of EPSG:32650"):
        validate_layer(grids, "grids")


def test_count_invalid_at_door_raises_what_validate_layer_raises_and_counts_invalid_polygons():
    bowtie = shapely.Polygon([(117.0, 39.0), (117.01, 39.01), (117.01, 39.0), (117.0, 39.01)])
    g = gpd.GeoDataFrame(
        {"grid_id": ["a", "b"], "parent_id": [None, "a"], "level": [0, 1]},
        geometry=[shapely.box(117, 39, 117.1, 39.1), bowtie],
        crs="EPSG:4326",
    )
    assert count_invalid_at_door(g, "grids") == 1 == validate_layer(g, "grids").attrs["invalid_geometries"]
    orphan = g.assign(parent_id=[None, "x"])
    with pytest.raises(ValidationError, match="unknown_parent"):
        count_invalid_at_door(orphan, "grids")
    # The topology check reports the hierarchy itself and skips that pass.
    assert count_invalid_at_door(orphan, "grids", hierarchy=False) == 1


def test_invalid_rows_at_door_names_the_rows_validate_layer_counts_and_raises_and_warns_alike():
    bowtie = shapely.Polygon([(117.0, 39.0), (117.01, 39.01), (117.01, 39.0), (117.0, 39.01)])
    g = gpd.GeoDataFrame(
        {"grid_id": ["a", "b", "c"], "parent_id": [None, "a", "a"], "level": [0, 1, 1]},
        geometry=[shapely.box(117, 39, 117.1, 39.1), shapely.box(117, 39, 117.05, 39.1), bowtie],
        crs="EPSG:4326",
    )
    assert invalid_rows_at_door(g, "grids").tolist() == [2]
    assert validate_layer(g, "grids").attrs["invalid_geometry_ids"] == ["c"]
    orphan = g.assign(parent_id=[None, "a", "x"])
    with pytest.raises(ValidationError, match="unknown_parent"):
        invalid_rows_at_door(orphan, "grids")
    assert invalid_rows_at_door(orphan, "grids", hierarchy=False).tolist() == [2]
    # Projected data beyond its CRS's area of use: the same warning as validate_layer gives.
    with pytest.warns(OutsideCRSAreaWarning, match=r"km beyond the area of use of EPSG:32650 at row 0"):
        assert invalid_rows_at_door(_square_at(123.0, 39.0, "EPSG:32650"), "grids").size == 0
