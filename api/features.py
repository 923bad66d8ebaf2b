"""OGC API – Features on the store: collections, queries and their GeoJSON.

The routes in :mod:`api.routers.ogc` parse the request and call :func:`query_items`
and the ``*_document`` builders here; nothing here knows about HTTP.

A GeoPackage store is read whole once per layer and kept until the file
changes (writes replace the file atomically, so its inode, size and mtime
change); queries then filter in memory with a spatial index. Other stores get
the bounding box pushed down to :meth:`layers.store.Store.read` per request.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from api.filtering import FILTER_LANGS, FilterError, Queryable, compile_filter
from layers.errors import NotFoundError
from layers.schema import CAMERA_STATUSES, INCIDENT_SOURCES, INCIDENT_STATUSES, SCHEMAS, LayerKind
from layers.store import GeoPackageStore, Store
from layers.times import DEFAULT_TZ, in_window, parse_interval

__all__ = [
    "COLLECTIONS",
    "CONFORMANCE",
    "CRS84",
    "EPSG4326",
    "LIMIT_DEFAULT",
    "LIMIT_MAX",
    "CollectionSpec",
    "InvalidParameterError",
    "ItemsQuery",
    "LayerCache",
    "collection_document",
    "feature_collection",
    "feature_collection_text",
    "feature_texts",
    "json_text",
    "parse_bbox",
    "parse_datetime",
    "query_items",
    "queryables_document",
    "read_feature",
]

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
"""EPSG:4326 in its official axis order, latitude first (OGC API – Features Part 2)."""

_TRS = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"

LIMIT_DEFAULT = 100
LIMIT_MAX = 10_000
"""Largest page; a larger ``limit`` is served as this many (OGC: not an error)."""

CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
)


class InvalidParameterError(ValueError):
    """A query parameter has an invalid value or is not known (HTTP 400)."""


@dataclass(frozen=True)
class CollectionSpec:
    """How one store layer is offered as a collection."""

    id: str
    title: str
    description: str
    id_column: str
    filters: Mapping[str, tuple[str, tuple[str, ...] | None]]
    """Property filters: query name → (column dtype ``"str"``/``"int"``, allowed values or None)."""
    temporal: str | None = None
    """The column ``datetime`` filters on; None: the collection has no time."""

    @property
    def schema(self) -> Any:
        """The layer schema (:data:`layers.schema.SCHEMAS`) of this collection."""
        return SCHEMAS[LayerKind(self.id)]

    @property
    def queryables(self) -> dict[str, Queryable]:
        """The properties a CQL2 ``filter`` may name: every column of the layer schema."""
        return {c.name: Queryable(c.name, c.dtype) for c in self.schema.columns}


COLLECTIONS: Mapping[str, CollectionSpec] = {
    "grids": CollectionSpec(
        id="grids",
        title="Grids",
        description="The nested grids of every level (district, street, community, basic grid).",
        id_column="grid_id",
        filters={
            "grid_id": ("str", None),
            "level": ("int", None),
            "parent_id": ("str", None),
            "level_name": ("str", None),
            "name": ("str", None),
        },
    ),
    "incidents": CollectionSpec(
        id="incidents",
        title="Incidents",
        description="Reported events with time, category, source and status.",
        id_column="incident_id",
        filters={
            "incident_id": ("str", None),
            "category": ("str", None),
            "source": ("str", INCIDENT_SOURCES),
            "status": ("str", INCIDENT_STATUSES),
        },
        temporal="reported_at",
    ),
    "cameras": CollectionSpec(
        id="cameras",
        title="Cameras",
        description="Cameras with position, heading, field of view and range.",
        id_column="camera_id",
        filters={"camera_id": ("str", None), "status": ("str", CAMERA_STATUSES), "owner": ("str", None)},
    ),
}
"""The collections the API offers, when the store holds the layer."""


# -- reading, with a cache for GeoPackage files -----------------------------------------


@dataclass
class _Entry:
    stamp: Hashable
    frame: gpd.GeoDataFrame


@dataclass
class LayerCache:
    """Whole layers of GeoPackage stores, kept until the layer changes.

    A layer is keyed on :meth:`~layers.store.Store.layer_stamp`, which a plan edit does
    not touch, so editing never drops the served network. A rebuild is single-flight:
    requests arriving while a layer is being read wait for that read instead of
    starting their own.

    Parameters
    ----------
    max_layers
        How many layers to keep (least recently used ones go first).
    """

    max_layers: int = 8
    _entries: OrderedDict[tuple[str, str], _Entry] = field(default_factory=OrderedDict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _flights: dict[tuple[str, str], threading.Lock] = field(default_factory=dict, init=False, repr=False)

    def _hit(self, key: tuple[str, str], stamp: Hashable) -> gpd.GeoDataFrame | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit.stamp == stamp:
                self._entries.move_to_end(key)
                return hit.frame
        return None

    def get(self, store: Store, name: str) -> gpd.GeoDataFrame | None:
        """Return layer ``name`` of ``store`` from the cache, reading it if needed; None for uncachable stores."""
        if not isinstance(store, GeoPackageStore) or not store.path.exists():
            return None  # the store reports a missing file itself
        stamp = store.layer_stamp(name)
        if stamp is None:
            return None
        key = (str(store.path.resolve()), name)
        frame = self._hit(key, stamp)
        if frame is not None:
            return frame
        with self._lock:
            flight = self._flights.setdefault(key, threading.Lock())
        with flight:  # one reader per layer; the others wait for its result
            frame = self._hit(key, stamp)
            if frame is not None:
                return frame
            frame = store.read(name)
            frame.sindex  # noqa: B018  (built once here, not per request)
            with self._lock:
                self._entries[key] = _Entry(stamp, frame)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_layers:
                    self._entries.popitem(last=False)
        return frame


def available(store: Store) -> list[CollectionSpec]:
    """Return the collections of :data:`COLLECTIONS` that ``store`` holds."""
    names = set(store.layer_names())
    return [spec for cid, spec in COLLECTIONS.items() if cid in names]


def collection_spec(store: Store, collection_id: str) -> CollectionSpec:
    """Return the spec of ``collection_id``.

    Raises
    ------
    NotFoundError
        The API offers no such collection or the store lacks the layer.
    """
    specs = {s.id: s for s in available(store)}
    if collection_id not in specs:
        msg = f"no collection {collection_id!r}; the collections are: {', '.join(specs) or 'none'}"
        raise NotFoundError(msg)
    return specs[collection_id]


def _layer(
    store: Store, cache: LayerCache, spec: CollectionSpec, bbox: Sequence[shapely.Polygon] = ()
) -> gpd.GeoDataFrame:
    frame = cache.get(store, spec.id)
    if frame is None:
        if len(bbox) == 1:
            return store.read(spec.id, bbox=tuple(bbox[0].bounds))
        frame = store.read(spec.id)
    if not bbox:
        return frame
    hits = np.unique(np.concatenate([frame.sindex.query(b, predicate="intersects") for b in bbox]))
    return frame.iloc[hits]


# -- parameters -------------------------------------------------------------------------


def parse_bbox(value: str, crs: str | None = None) -> list[shapely.Polygon]:
    """Parse an OGC ``bbox`` into lon/lat boxes (two when it crosses the antimeridian).

    Parameters
    ----------
    value
        ``minx,miny,maxx,maxy`` (or 6 numbers with heights, which are ignored).
    crs
        ``bbox-crs``: :data:`CRS84` (default, lon/lat) or :data:`EPSG4326` (lat/lon).

    Raises
    ------
    InvalidParameterError
        Not 4 or 6 finite numbers, out of range, south above north, or an unknown CRS.

    Examples
    --------
    >>> [b.bounds for b in parse_bbox("117.1,39.1,117.2,39.2")]
    [(117.1, 39.1, 117.2, 39.2)]
    >>> [b.bounds for b in parse_bbox("39.1,117.1,39.2,117.2", EPSG4326)]
    [(117.1, 39.1, 117.2, 39.2)]
    """
    if crs not in (None, "", CRS84, EPSG4326):
        msg = f"bbox-crs {crs!r} is not supported: use {CRS84} (lon/lat) or {EPSG4326} (lat/lon)"
        raise InvalidParameterError(msg)
    try:
        nums = [float(v) for v in value.split(",")]
    except ValueError:
        nums = []
    if len(nums) not in (4, 6) or not all(math.isfinite(v) for v in nums):
        msg = f"bbox={value!r} is not 4 (or 6) comma-separated numbers: write minLon,minLat,maxLon,maxLat"
        raise InvalidParameterError(msg)
    if len(nums) == 6:
        nums = [nums[0], nums[1], nums[3], nums[4]]
    if crs == EPSG4326:
        nums = [nums[1], nums[0], nums[3], nums[2]]
    minx, miny, maxx, maxy = nums
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        msg = f"bbox={value!r} is out of range or has south above north: longitudes in [-180, 180], latitudes in [-90, 90]"
        raise InvalidParameterError(msg)
    if minx > maxx:  # crosses the antimeridian
        return [shapely.box(minx, miny, 180, maxy), shapely.box(-180, miny, maxx, maxy)]
    return [shapely.box(minx, miny, maxx, maxy)]


def parse_datetime(value: str, tz: str = DEFAULT_TZ) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Parse an OGC ``datetime`` into the half-open UTC window ``[start, end)`` it selects.

    An instant or an interval ``start/end`` with ``..`` for open ends, read by
    :func:`layers.times.parse_interval`: a date is the whole day and a time without a zone
    is a time in ``tz`` (the store's time zone), the forms GDAL (``2025-12-01T/..``) and
    QGIS send included; an end includes the day or instant it names.

    Raises
    ------
    InvalidParameterError
        Not a date-time, or an interval whose start is after its end.

    Examples
    --------
    >>> parse_datetime("2025-03-01T08:00:00Z/..")
    (Timestamp('2025-03-01 08:00:00+0000', tz='UTC'), None)
    """
    try:
        return parse_interval(value, tz)
    except ValueError as err:
        raise InvalidParameterError(str(err)) from err


@dataclass(frozen=True)
class ItemsQuery:
    """A parsed ``/collections/{id}/items`` request."""

    bbox: tuple[shapely.Polygon, ...] = ()
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    timed: bool = False
    filters: Mapping[str, str] = field(default_factory=dict)
    offset: int = 0
    limit: int = LIMIT_DEFAULT
    where: Callable[[gpd.GeoDataFrame], np.ndarray] | None = None
    """The compiled CQL2 ``filter``, if any."""


def build_query(
    spec: CollectionSpec,
    *,
    bbox: str | None,
    bbox_crs: str | None,
    datetime_: str | None,
    filters: Mapping[str, str],
    offset: int,
    limit: int,
    tz: str = DEFAULT_TZ,
    filter_: str | None = None,
    filter_lang: str | None = None,
) -> ItemsQuery:
    """Check the parameters against ``spec`` and parse them.

    Raises
    ------
    InvalidParameterError
        A filter the collection does not have, a value outside its choices, a bad bbox/datetime,
        or a CQL2 ``filter`` that does not parse or is not supported.
    """
    where = None
    if filter_lang is not None and filter_lang not in FILTER_LANGS:
        msg = f"filter-lang={filter_lang!r} is not supported: use {' or '.join(FILTER_LANGS)}"
        raise InvalidParameterError(msg)
    if filter_ is not None:
        try:
            where = compile_filter(filter_, spec.queryables, lang=filter_lang or FILTER_LANGS[0])
        except FilterError as err:
            raise InvalidParameterError(str(err)) from err

    unknown = sorted(set(filters) - set(spec.filters))
    if unknown:
        msg = f"{spec.id} has no property filter {', '.join(unknown)}; it has: {', '.join(spec.filters) or 'none'}"
        raise InvalidParameterError(msg)
    for name, value in filters.items():
        dtype, choices = spec.filters[name]
        if choices is not None and value not in choices:
            msg = f"{name}={value!r} is not one of {', '.join(choices)}"
            raise InvalidParameterError(msg)
        if dtype == "int" and not re.fullmatch(r"\d{1,9}", value):
            msg = f"{name}={value!r} is not a whole number"
            raise InvalidParameterError(msg)
    start = end = None
    if datetime_ is not None:
        if spec.temporal is None:
            msg = f"{spec.id} has no time: datetime applies to incidents (reported_at)"
            raise InvalidParameterError(msg)
        start, end = parse_datetime(datetime_, tz)
    boxes = tuple(parse_bbox(bbox, bbox_crs)) if bbox is not None else ()
    if bbox is None and bbox_crs not in (None, "", CRS84, EPSG4326):
        parse_bbox("0,0,0,0", bbox_crs)  # reports the unsupported CRS
    return ItemsQuery(
        bbox=boxes,
        start=start,
        end=end,
        timed=datetime_ is not None,
        filters=dict(filters),
        offset=offset,
        limit=min(limit, LIMIT_MAX),
        where=where,
    )


# -- queries ----------------------------------------------------------------------------


def query_items(store: Store, cache: LayerCache, spec: CollectionSpec, q: ItemsQuery) -> tuple[gpd.GeoDataFrame, int]:
    """Return the page of features ``q`` asks for and how many features match in all."""
    frame = _layer(store, cache, spec, q.bbox)
    mask = np.ones(len(frame), dtype=bool)
    if q.timed and spec.temporal is not None:
        times = frame[spec.temporal]
        mask &= times.notna().to_numpy() & in_window(times, q.start, q.end)
    for name, value in q.filters.items():
        dtype, _ = spec.filters[name]
        column = frame[name] if name in frame.columns else pd.Series(pd.NA, index=frame.index)
        wanted: object = int(value) if dtype == "int" else value
        mask &= (column == wanted).fillna(False).to_numpy(dtype=bool)
    if q.where is not None:
        mask &= q.where(frame)
    matched = frame[mask] if not mask.all() else frame
    return matched.iloc[q.offset : q.offset + q.limit], len(matched)


def read_feature(store: Store, cache: LayerCache, spec: CollectionSpec, feature_id: str) -> gpd.GeoDataFrame:
    """Return the one-row frame of feature ``feature_id``.

    Raises
    ------
    NotFoundError
        No feature has that id.
    """
    frame = _layer(store, cache, spec)
    row = frame[(frame[spec.id_column] == feature_id).fillna(False).to_numpy(dtype=bool)]
    if row.empty:
        msg = f"{spec.id} has no feature {feature_id!r}"
        raise NotFoundError(msg)
    return row.iloc[:1]


# -- documents ----------------------------------------------------------------------------


def _iso(t: Any) -> str | None:
    if t is None or pd.isna(t):
        return None
    return pd.Timestamp(t).tz_convert("UTC").isoformat().replace("+00:00", "Z")


def json_text(doc: Mapping[str, Any], **raw: str) -> str:
    """Return the JSON text of object ``doc`` with members ``raw`` that are JSON text already.

    Compact and UTF-8 as :class:`starlette.responses.JSONResponse` writes it (NaN refused);
    the ``raw`` texts are spliced in as they are, never parsed and written again.

    Examples
    --------
    >>> json_text({"type": "FeatureCollection"}, features="[]")
    '{"type":"FeatureCollection","features":[]}'
    """
    head = json.dumps(dict(doc), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    tail = ",".join(f"{json.dumps(name)}:{text}" for name, text in raw.items())
    if not tail:
        return head
    return head[:-1] + ("," if len(head) > 2 else "") + tail + "}"


def feature_texts(frame: gpd.GeoDataFrame, *, ids: Sequence[str] | None = None) -> list[str]:
    """Return each row of ``frame`` as the text of a GeoJSON Feature (with ``ids``, each its ``id``).

    The same features as geopandas' ``to_json(na="null", show_bbox=False)``: properties
    converted the way geopandas converts them (Python scalars, missing values null),
    an empty or missing geometry null. Geometries are written by GEOS
    (``shapely.to_geojson``, coordinates that read back bit for bit) and properties in
    one pass over an object array: no per-row pandas work and no float formatting in
    Python, a sixth of the time for a thousand grids. Datetime columns must have been
    turned into text first (JSON has no datetime).

    Examples
    --------
    >>> g = gpd.GeoDataFrame({"n": [1, None]}, geometry=[shapely.Point(1, 2), None], crs=4326)
    >>> feature_texts(g, ids=["a", "b"])[1]
    '{"id":"b","type":"Feature","properties":{"n":null},"geometry":null}'
    """
    geoms = np.array(frame.geometry.array, dtype=object)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    geoms[missing] = None
    shapes = shapely.to_geojson(geoms)
    names = [str(c) for c in frame.columns if c != frame.geometry.name]
    if names:
        plain = pd.DataFrame(frame, copy=False)[names]  # plain pandas: a GeoDataFrame's selection costs more
        values = plain.astype(object).to_numpy(dtype=object, copy=True)
        values[pd.isna(plain).to_numpy()] = None
        rows = values.tolist()
    else:
        rows = [[] for _ in range(len(frame))]
    dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
    heads = ['{"id":' + dumps(str(i)) + "," for i in ids] if ids is not None else ["{"] * len(frame)
    return [
        f'{head}"type":"Feature","properties":{dumps(dict(zip(names, row, strict=True)))},'
        f'"geometry":{"null" if gone else shape}}}'
        for head, row, shape, gone in zip(heads, rows, shapes, missing, strict=True)
    ]


def _iso_column(times: pd.Series) -> pd.Series:
    """Return :func:`_iso` of every value of a zoned datetime column, vectorised where the resolution allows."""
    utc = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    if utc.dtype not in (np.dtype("datetime64[s]"), np.dtype("datetime64[ms]"), np.dtype("datetime64[us]")):
        return pd.Series([_iso(t) for t in times], index=times.index, dtype=object)
    whole = utc.astype("datetime64[s]")
    text = np.where(
        utc == whole, np.datetime_as_string(whole, unit="s"), np.datetime_as_string(utc.astype("datetime64[us]"))
    )
    out = np.char.add(text.astype(str), "Z").astype(object)
    out[np.isnat(utc)] = None
    return pd.Series(out, index=times.index, dtype=object)


def _feature_page(page: gpd.GeoDataFrame, spec: CollectionSpec, *, latitude_first: bool) -> list[str]:
    out = page.copy()
    for col in out.columns:
        if col != out.geometry.name and isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = _iso_column(out[col])
    if latitude_first and len(out):
        out = out.set_geometry(shapely.transform(out.geometry.to_numpy(), lambda xy: xy[:, ::-1]), crs=out.crs)
    return feature_texts(out, ids=out[spec.id_column].astype(str).tolist())


def feature_collection(page: gpd.GeoDataFrame, spec: CollectionSpec, *, latitude_first: bool = False) -> dict[str, Any]:
    """GeoJSON of ``page`` with the id column as each feature's ``id`` (lon/lat unless ``latitude_first``)."""
    return json.loads(feature_collection_text(page, spec, latitude_first=latitude_first))


def feature_collection_text(
    page: gpd.GeoDataFrame, spec: CollectionSpec, *, latitude_first: bool = False, **members: Any
) -> str:
    """Return :func:`feature_collection` as JSON text, with further top-level ``members`` (links, counts).

    Built from :func:`feature_texts` without a round trip through Python objects: the
    items of a large page cost a fraction of serialising the dictionary.
    """
    features = _feature_page(page, spec, latitude_first=latitude_first)
    return json_text({"type": "FeatureCollection", **members}, features="[" + ",".join(features) + "]")


def collection_document(store: Store, cache: LayerCache, spec: CollectionSpec, base: str) -> dict[str, Any]:
    """Build the ``/collections/{id}`` document: extents from the data, links with media types."""
    frame = _layer(store, cache, spec)
    extent: dict[str, Any] = {}
    if len(frame) and not frame.geometry.is_empty.all():
        extent["spatial"] = {"bbox": [[float(v) for v in frame.total_bounds]], "crs": CRS84}
    if spec.temporal is not None and spec.temporal in frame.columns and frame[spec.temporal].notna().any():
        times = frame[spec.temporal]
        extent["temporal"] = {"interval": [[_iso(times.min()), _iso(times.max())]], "trs": _TRS}
    url = f"{base}collections/{spec.id}"
    doc: dict[str, Any] = {
        "id": spec.id,
        "title": spec.title,
        "description": spec.description,
        "itemType": "feature",
        "crs": [CRS84, EPSG4326],
        "storageCrs": CRS84,
        "links": [
            {"href": url, "rel": "self", "type": "application/json", "title": spec.title},
            {
                "href": f"{url}/items",
                "rel": "items",
                "type": "application/geo+json",
                "title": f"{spec.title} (GeoJSON)",
            },
            {
                "href": f"{url}/queryables",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "type": "application/schema+json",
                "title": f"Queryables of {spec.id}",
            },
        ],
    }
    if extent:
        doc["extent"] = extent
    return doc


_JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "datetime": "string"}


def queryables_document(spec: CollectionSpec, base: str) -> dict[str, Any]:
    """Build ``/collections/{id}/queryables``: a JSON Schema of the properties filters may name (Features Part 3).

    Every property listed may be used in a CQL2 ``filter``; those in ``spec.filters`` are also
    query parameters of the items path (``?level=3``).
    """
    props: dict[str, Any] = {}
    for col in spec.schema.columns:
        prop: dict[str, Any] = {"title": col.name, "type": _JSON_TYPES[col.dtype]}
        if col.description:
            prop["description"] = col.description
        if col.dtype == "datetime":
            prop["format"] = "date-time"
        if col.choices is not None:
            prop["enum"] = list(col.choices)
        if col.min is not None:
            prop["exclusiveMinimum" if col.min_exclusive else "minimum"] = col.min
        if col.max is not None:
            prop["maximum"] = col.max
        props[col.name] = prop
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{base}collections/{spec.id}/queryables",
        "type": "object",
        "title": spec.title,
        "description": f"Queryables of {spec.id}: filter with ?name=value or ?filter=<CQL2 text>",
        "properties": props,
        "additionalProperties": False,
    }
