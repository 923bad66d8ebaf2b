"""Reusable awkward geometries for tests (like shapely's tests/common.py).

Everything sits near Tianjin (117.2E, 39.1N), in lon/lat degrees, unless the name
says otherwise. Builders of dangerous inputs (deep collections) return bytes or text
and never build a shapely object: GEOS crashes on them (GEOS #1487).
"""

from __future__ import annotations

import json
import struct

import numpy as np

import shapely

X0, Y0 = 117.20, 39.10
D = 0.01

SQUARE = shapely.box(X0, Y0, X0 + D, Y0 + D)
"""A plain valid square, ~860 m x 1.1 km."""

BOW_TIE = shapely.Polygon([(X0, Y0), (X0 + D, Y0 + D), (X0 + D, Y0), (X0, Y0 + D), (X0, Y0)])
"""Self-intersecting ring: invalid ("Self-intersection"), area 0 by the shoelace formula."""

POLYGON_WITH_HOLE = shapely.Polygon(
    SQUARE.exterior.coords,
    [shapely.box(X0 + D / 4, Y0 + D / 4, X0 + 3 * D / 4, Y0 + 3 * D / 4).exterior.coords[::-1]],
)
"""A square with a square hole (a courtyard): valid."""

MULTIPOLYGON = shapely.MultiPolygon(
    [shapely.box(X0, Y0, X0 + D / 3, Y0 + D), shapely.box(X0 + 2 * D / 3, Y0, X0 + D, Y0 + D)]
)
"""Two disjoint parts (an exclave): valid."""

SLIVER = shapely.box(X0, Y0, X0 + D, Y0 + 1e-7)
"""A 1 cm-wide strip: valid but nearly degenerate."""

EMPTY_POLYGON = shapely.Polygon()
EMPTY_POINT = shapely.Point()

NAN_POINT = shapely.points(np.nan, np.nan)
"""POINT (NaN NaN): not empty in GEOS 3.12+, but not a place either."""

INF_POINT = shapely.points(np.inf, Y0)

with np.errstate(invalid="ignore"):  # GEOS warns about the NaN vertex, which is the point
    NAN_POLYGON = shapely.polygons([(X0, Y0), (X0 + D, Y0), (np.nan, Y0 + D), (X0, Y0)])
"""A triangle with one NaN vertex."""

POINT = shapely.Point(X0 + D / 2, Y0 + D / 2)
MULTIPOINT = shapely.MultiPoint([(X0, Y0), (X0 + D, Y0 + D)])
LINESTRING = shapely.LineString([(X0, Y0), (X0 + D, Y0 + D)])

SWAPPED_SQUARE = shapely.box(Y0, X0, Y0 + D, X0 + D)
"""SQUARE with lon and lat swapped (y = 117 is not a latitude)."""

SWAPPED_POINT = shapely.Point(Y0, X0)


def noisy_polygon(n: int, *, seed: int = 0) -> shapely.Polygon:
    """A star-shaped polygon of ``n`` vertices around Tianjin (valid, radius ~1 km +- noise)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = 0.01 * (1 + 0.05 * rng.random(n))
    return shapely.Polygon(np.column_stack([X0 + r * np.cos(t), Y0 + r * np.sin(t)]))


def deep_collection_wkb(depth: int) -> bytes:
    """WKB of a GeometryCollection nested ``depth`` levels around one point, built by hand.

    Parsing it with shapely/GEOS crashes the process for depths around 15,000.
    """
    head = struct.pack("<BII", 1, 7, 1)  # little-endian, GeometryCollection, 1 member
    point = struct.pack("<BIdd", 1, 1, X0, Y0)
    return head * depth + point


def deep_collection_geojson(depth: int) -> str:
    """A FeatureCollection with one feature whose geometry nests ``depth`` GeometryCollections."""
    inner = json.dumps({"type": "Point", "coordinates": [X0, Y0]})
    geom = '{"type": "GeometryCollection", "geometries": [' * depth + inner + "]}" * depth
    return (
        '{"type": "FeatureCollection", "features": [{"type": "Feature", '
        '"properties": {"camera_id": "C1"}, "geometry": ' + geom + "}]}"
    )


def many_vertices_geojson(n: int, *, props: dict[str, object] | None = None) -> str:
    """A FeatureCollection with one polygon of ``n`` vertices (text only)."""
    poly = noisy_polygon(n)
    feature = {"type": "Feature", "properties": props or {}, "geometry": shapely.geometry.mapping(poly)}
    return json.dumps({"type": "FeatureCollection", "features": [feature]})
