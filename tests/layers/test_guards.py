"""Pre-parse guards: JSON bracket depth, WKB nesting depth and vertex counts, limits."""

from __future__ import annotations

import json
import re
import struct
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shapely

from layers import _guards
from layers._guards import Limits, MalformedWKBError, check_json_depth, check_wkb, json_max_depth, wkb_stats
from layers.errors import InputTooLargeError
from tests.geometries import (
    BOW_TIE,
    MULTIPOLYGON,
    POINT,
    POLYGON_WITH_HOLE,
    SQUARE,
    X0,
    Y0,
    deep_collection_geojson,
    deep_collection_wkb,
)

# -- Limits -------------------------------------------------------------------------


def test_default_limits_leave_room_for_real_files():
    lim = Limits()
    assert lim.max_depth >= 8  # a FeatureCollection of MultiPolygons
    assert lim.max_vertices >= 100_000
    assert lim.max_features >= 5_000_000


@pytest.mark.parametrize("field", ["max_depth", "max_vertices", "max_features", "max_file_bytes"])
@pytest.mark.parametrize("value", [0, -1], ids=["zero", "negative"])
def test_limits_refuse_non_positive_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"Limits\.{field} must be a positive integer, got {value}"):
        Limits(**{field: value})


# -- JSON depth ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        pytest.param(b"", 0, id="empty"),
        pytest.param(b"42", 0, id="scalar"),
        pytest.param(b"[]", 1, id="empty-list"),
        pytest.param(b'{"a": [[1, 2]]}', 3, id="nested"),
        pytest.param(b'{"a": "[[[[{{{{"}', 1, id="brackets-in-string"),
        pytest.param(b'{"a": "\\"[[[["}', 1, id="escaped-quote-in-string"),
        pytest.param(b'{"a": "x\\\\", "b": [[1]]}', 3, id="escaped-backslash-ends-string"),
        pytest.param(b'{"a": "x\\\\\\"[[", "b": 1}', 1, id="backslash-pair-then-escaped-quote"),
        pytest.param('{"名称": "网格[一]", "b": [{"c": []}]}'.encode(), 4, id="utf8-chinese"),
        pytest.param(b"[" * 50_000 + b"]" * 50_000, 50_000, id="very-deep-no-recursion"),
    ],
)
def test_json_max_depth(text, depth):
    assert json_max_depth(text)[0] == depth


def test_json_max_depth_reports_where_the_deepest_bracket_is():
    text = b'{"a": 1, "b": [[[2]]]}'
    depth, at = json_max_depth(text)
    assert depth == 4
    assert text[at : at + 1] == b"["
    assert text[: at + 1].count(b"[") == 3


def _depth(obj: object) -> int:
    if isinstance(obj, dict):
        return 1 + max((_depth(v) for v in obj.values()), default=0)
    if isinstance(obj, list):
        return 1 + max((_depth(v) for v in obj), default=0)
    return 0


tricky_text = st.text(alphabet=st.sampled_from(list('[]{}"\\ ab网格,:')), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(tricky_text, children, max_size=4),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values, chunk=st.sampled_from([1, 2, 3, 7, 64, 1 << 24]))
def test_json_max_depth_matches_a_parser_whatever_the_chunking(value, chunk):
    # Strings full of brackets, quotes and backslashes; chunk boundaries anywhere
    # (the scan carries depth and quote parity from one chunk to the next).
    text = json.dumps(value, ensure_ascii=False).encode()
    with mock.patch.object(_guards, "_CHUNK", chunk):
        assert json_max_depth(text)[0] == _depth(value)


def test_check_json_depth_refuses_a_deep_file_before_parsing(tmp_path):
    p = tmp_path / "deep.geojson"
    p.write_text(deep_collection_geojson(50_000), encoding="utf-8")
    with pytest.raises(InputTooLargeError, match=r"deep\.geojson nests brackets 100005 deep \(first at byte [\d,]+\)"):
        check_json_depth(p, Limits())


@pytest.mark.parametrize(
    ("geom", "need"),
    [
        pytest.param(POINT, 5, id="point"),
        pytest.param(SQUARE, 7, id="polygon"),
        pytest.param(MULTIPOLYGON, 8, id="multipolygon"),
    ],
)
def test_check_json_depth_passes_ordinary_geojson_at_its_exact_depth(tmp_path, geom, need):
    fc = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {}, "geometry": geom.__geo_interface__}],
    }
    p = tmp_path / "ok.geojson"
    p.write_text(json.dumps(fc), encoding="utf-8")
    check_json_depth(p, Limits(max_depth=need))
    with pytest.raises(InputTooLargeError, match=rf"nests brackets {need} deep"):
        check_json_depth(p, Limits(max_depth=need - 1))


def test_check_json_depth_accepts_an_empty_file(tmp_path):
    p = tmp_path / "empty.geojson"
    p.write_bytes(b"")
    check_json_depth(p, Limits(max_depth=1))


# -- WKB walk -----------------------------------------------------------------------


def _nested(depth: int, inner: shapely.Geometry) -> shapely.Geometry:
    g = inner
    for _ in range(depth - 1):
        g = shapely.GeometryCollection([g])
    return g


SHAPES = [
    pytest.param(POINT, 1, id="point"),
    pytest.param(shapely.LineString([(0, 0), (1, 1), (2, 0)]), 1, id="linestring"),
    pytest.param(POLYGON_WITH_HOLE, 1, id="polygon-with-hole"),
    pytest.param(BOW_TIE, 1, id="bow-tie"),
    pytest.param(MULTIPOLYGON, 2, id="multipolygon"),
    pytest.param(shapely.MultiPoint([(0, 0), (1, 1)]), 2, id="multipoint"),
    pytest.param(_nested(5, SQUARE), 5, id="collection-depth-5"),
    pytest.param(shapely.GeometryCollection([POINT, MULTIPOLYGON, SQUARE]), 3, id="mixed-collection"),
    pytest.param(shapely.GeometryCollection(), 1, id="empty-collection"),
    pytest.param(shapely.Polygon(), 1, id="empty-polygon"),
    pytest.param(shapely.Polygon([(0, 0, 1), (1, 0, 2), (1, 1, 3), (0, 0, 1)]), 1, id="polygon-z"),
]
FLAVOURS = [
    pytest.param({}, id="extended-le"),
    pytest.param({"flavor": "iso"}, id="iso-le"),
    pytest.param({"byte_order": 0}, id="extended-be"),
    pytest.param({"flavor": "iso", "byte_order": 0}, id="iso-be"),
    pytest.param({"include_srid": True}, id="ewkb-srid"),
]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(("geom", "depth"), SHAPES)
def test_wkb_stats_counts_like_shapely(geom, depth, flavour):
    if flavour.get("include_srid"):
        geom = shapely.set_srid(geom, 4326)
    wkb = shapely.to_wkb(geom, **flavour)
    vertices, d = wkb_stats(wkb, max_depth=32, max_vertices=10**6)
    assert vertices == shapely.get_num_coordinates(geom)
    assert d == depth


@pytest.mark.parametrize(
    "wkt", ["POINT M (1 2 3)", "LINESTRING ZM (0 0 1 2, 1 1 3 4)", "POLYGON M ((0 0 1, 1 0 1, 1 1 1, 0 0 1))"]
)
@pytest.mark.parametrize("flavor", ["extended", "iso"])
def test_wkb_stats_understands_measures(wkt, flavor):
    geom = shapely.from_wkt(wkt)
    wkb = shapely.to_wkb(geom, flavor=flavor, output_dimension=4)
    assert wkb_stats(wkb, max_depth=32, max_vertices=100)[0] == shapely.get_num_coordinates(geom)


def test_wkb_stats_walks_curves_shapely_cannot_read():
    # CompoundCurve (ISO 9) of a CircularString (8) of 3 points and a LineString of 2.
    arc = struct.pack("<BII", 1, 8, 3) + struct.pack("<6d", 0, 0, 1, 1, 2, 0)
    line = struct.pack("<BII", 1, 2, 2) + struct.pack("<4d", 2, 0, 3, 0)
    compound = struct.pack("<BII", 1, 9, 2) + arc + line
    assert wkb_stats(compound, max_depth=32, max_vertices=100) == (5, 2)
    # CurvePolygon (10) whose ring is that compound curve; then a MultiSurface (12) of it.
    curvepoly = struct.pack("<BII", 1, 10, 1) + compound
    multi = struct.pack("<BII", 1, 12, 1) + curvepoly
    assert wkb_stats(multi, max_depth=32, max_vertices=100) == (5, 4)


def test_wkb_stats_stops_early_on_a_deep_collection():
    wkb = deep_collection_wkb(200_000)  # GEOS would segfault on this
    vertices, depth = wkb_stats(wkb, max_depth=32, max_vertices=200_000)
    assert depth == 33  # it stopped one level past the limit instead of walking 200,000
    assert vertices == 0


def test_wkb_stats_stops_early_on_too_many_vertices():
    poly = shapely.MultiPoint(np.column_stack([np.arange(1000.0), np.arange(1000.0)]))
    vertices, _ = wkb_stats(poly.wkb, max_depth=32, max_vertices=10)
    assert vertices == 11


@pytest.mark.parametrize(
    ("wkb", "match"),
    [
        pytest.param(SQUARE.wkb[:30], "truncated", id="truncated-polygon"),
        pytest.param(POINT.wkb[:12], "truncated", id="truncated-point"),
        pytest.param(b"", "truncated", id="empty-bytes"),
        pytest.param(struct.pack("<BII", 1, 7, 3) + POINT.wkb, "truncated", id="collection-missing-members"),
        pytest.param(struct.pack("<BI", 1, 99) + b"\0" * 16, "unknown WKB geometry type 99", id="unknown-type"),
        pytest.param(b"\x07" + POINT.wkb[1:], "bad byte-order mark 7", id="bad-byte-order"),
        pytest.param(
            struct.pack("<BII", 1, 3, 1) + struct.pack("<I", 2**31) + b"\0" * 32, "truncated", id="huge-count"
        ),
    ],
)
def test_wkb_stats_names_malformed_values(wkb, match):
    with pytest.raises(MalformedWKBError, match=match):
        wkb_stats(wkb, max_depth=32, max_vertices=10**6)


# -- check_wkb ----------------------------------------------------------------------


def test_check_wkb_names_every_offending_row_and_id_in_one_error():
    wkbs = [
        SQUARE.wkb,
        deep_collection_wkb(40),
        SQUARE.wkb,
        shapely.LineString(np.column_stack([np.linspace(X0, X0 + 1, 50), np.full(50, Y0)])).wkb,
    ]
    with pytest.raises(InputTooLargeError) as err:
        check_wkb(wkbs, Limits(max_vertices=20), source="grids.gpkg", ids=["A", "B", "C", "D"])
    msg = str(err.value)
    assert msg.startswith("grids.gpkg: ")
    assert "nested more than 32 deep at row 1 (id 'B')" in msg
    assert re.search(r"more than 20 vertices \(up to 50\+?\) at row 3 \(id 'D'\)", msg)
    assert "row 0" not in msg
    assert "row 2" not in msg
    assert "--max-vertices" in msg
    assert "--max-depth" in msg


def test_check_wkb_elides_after_ten_rows():
    wkbs = [deep_collection_wkb(40)] * 13
    with pytest.raises(InputTooLargeError, match=r"row 0, row 1, .*row 9 \(\+3 more\)"):
        check_wkb(wkbs, Limits(), source="x")


def test_check_wkb_returns_malformed_rows_instead_of_raising():
    long_line = shapely.LineString(np.arange(400.0).reshape(-1, 2)).wkb
    wkbs = [SQUARE.wkb, None, b"\x01\x07", long_line[:-3], POINT.wkb, long_line]
    # (short values are not walked: shapely's reader refuses those itself, see test_io)
    assert check_wkb(wkbs, Limits(), source="x").tolist() == [False, False, True, True, False, False]


@pytest.mark.parametrize("max_vertices", [1, 2, 5, 17, 100])
def test_check_wkb_vertex_limit_is_exact(max_vertices):
    # The shortcut that skips short values must never skip one that breaks the limit.
    at_limit = shapely.MultiPoint(np.arange(2.0 * max_vertices).reshape(-1, 2)) if max_vertices > 1 else POINT
    over = shapely.MultiPoint(np.arange(2.0 * (max_vertices + 1)).reshape(-1, 2))
    lim = Limits(max_vertices=max_vertices)
    check_wkb([at_limit.wkb], lim, source="x")
    with pytest.raises(
        InputTooLargeError,
        match=rf"more than {max_vertices:,} vertices at row 0|more than {max_vertices:,} vertices \(up to",
    ):
        check_wkb([over.wkb], lim, source="x")


@pytest.mark.parametrize("max_depth", [1, 2, 3, 8])
@pytest.mark.parametrize(
    "inner", [pytest.param(POINT, id="point"), pytest.param(shapely.GeometryCollection(), id="empty")]
)
def test_check_wkb_depth_limit_is_exact(max_depth, inner):
    lim = Limits(max_depth=max_depth)
    check_wkb([_nested(max_depth, inner).wkb], lim, source="x")
    with pytest.raises(InputTooLargeError, match=rf"nested more than {max_depth} deep at row 0"):
        check_wkb([_nested(max_depth + 1, inner).wkb], lim, source="x")


def test_check_wkb_on_a_crashing_depth_builds_no_geometry():
    # In-process is safe: only bytes are read. (Parsing these bytes segfaults GEOS.)
    with pytest.raises(InputTooLargeError, match=r"nested more than 32 deep at row 0 \(id 'C1'\)"):
        check_wkb([deep_collection_wkb(20_000)], Limits(), source="cams.parquet", ids=["C1"])
