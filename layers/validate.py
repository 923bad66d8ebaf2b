"""Validation at the door: every problem of an input, collected into one error.

:func:`validate_layer` checks a GeoDataFrame built in Python; :func:`layers.io.read_layer`
runs the same checks on files. Both raise one :class:`~layers.errors.ValidationError`
whose problems name the rows (0-based positions, and ids where known) and the fix:

- CRS: missing, unknown; lon/lat beyond -180..180 / -90..90 (swapped lon/lat is
  recognised and named); projected coordinates that cannot be turned into lon/lat, or that
  look like degrees and lie outside the CRS's area of use. Projected data merely beyond the
  nominal area of use (a transverse Mercator zone used a few degrees past its strip, as real
  data does) is accepted with an :class:`~layers.errors.OutsideCRSAreaWarning` giving the
  distance in km (also in ``gdf.attrs["warnings"]``);
- geometry: missing, wrong type, empty, NaN/inf coordinates;
- columns: missing required columns (with the ``--xxx-col`` option that maps them),
  missing values, values of the wrong type, out-of-range numbers, unknown enum values;
- ids: duplicates;
- grids: a ``parent_id`` that does not exist, sits on the wrong level (a parent's level
  is its child's level − 1), a level-0 grid with a parent, a lower grid without one, cycles;
- incidents: naive timestamps (give ``tz=`` / ``--tz``), ``closed_at`` before ``reported_at``.

Invalid polygons (self-intersections, bow-ties) in a grid layer are **not** rejected:
``geogrid check`` reports them and ``geogrid repair`` fixes them. The validated frame
carries their count in ``gdf.attrs["invalid_geometries"]`` (and the first ids in
``gdf.attrs["invalid_geometry_ids"]``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely
from pyproj import CRS, Transformer

from layers._guards import Limits
from layers.crs import to_crs_object
from layers.datum import bd09_to_wgs84, gcj02_to_wgs84, out_of_china
from layers.errors import (
    CRSError,
    InputTooLargeError,
    OutsideCRSAreaWarning,
    Problem,
    ValidationError,
    format_ids,
)
from layers.schema import SCHEMAS, STORAGE_CRS, Column, LayerKind, LayerSchema, coerce_dtypes

__all__ = [
    "OPTION_FOR_COLUMN",
    "Limits",
    "count_invalid_at_door",
    "datum_shift_hint",
    "invalid_rows_at_door",
    "validate_layer",
]

OPTION_FOR_COLUMN: dict[str, str] = {
    "grid_id": "id",
    "incident_id": "id",
    "camera_id": "id",
    "parent_id": "parent",
    "level": "level",
    "level_name": "level_name",
    "name": "name",
    "households": "households",
    "population": "population",
    "shops": "shops",
    "reported_at": "time",
    "closed_at": "closed",
    "category": "category",
    "source": "source",
    "status": "status",
    "description": "description",
    "heading_deg": "heading",
    "fov_deg": "fov",
    "range_m": "range",
}
"""Schema column -> key of the column mapping (``columns={key: source_name}``, CLI ``--key-col``)."""

_TYPE_NAMES = {
    0: "Point",
    1: "LineString",
    2: "LinearRing",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
    7: "GeometryCollection",
}
_TYPE_IDS = {v: k for k, v in _TYPE_NAMES.items()}
# An offset counts only after a time of day: "2024-05-01" ends in "-01", which is a day, not UTC-1.
_TZ_SUFFIX = r"\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?|UTC|GMT)$"


@dataclass
class _Checked:
    """What the checks found: problems, parsed columns, invalid polygon rows."""

    problems: list[Problem] = field(default_factory=list)
    parsed: dict[str, pd.Series] = field(default_factory=dict)
    invalid_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    crs: CRS | None = None
    warnings: list[str] = field(default_factory=list)  # the input is accepted; given once it is


_ROW_OFFSET: ContextVar[int] = ContextVar("_ROW_OFFSET", default=0)
"""Position of a checked part's first row in the whole input (check_frame's ``row_offset``)."""


def _rows_ids(mask: np.ndarray, ids: np.ndarray | None) -> tuple[tuple[int, ...], tuple[str, ...]]:
    rows = np.flatnonzero(mask)
    off = _ROW_OFFSET.get()
    if ids is None:
        return tuple(int(r) + off for r in rows), ()
    return tuple(int(r) + off for r in rows), tuple("" if pd.isna(ids[r]) else str(ids[r]) for r in rows)


def _where(rows: Sequence[int], ids: Sequence[str]) -> str:
    """'rows 3, 7 (ids 'a', 'b')' for a message."""
    shown = ", ".join(str(r) for r in rows[:10])
    more = f" (+{len(rows) - 10} more)" if len(rows) > 10 else ""
    text = f"row{'s' if len(rows) > 1 else ''} {shown}{more}"
    named = [i for i in ids if i]
    if named:
        text += f" (id{'s' if len(named) > 1 else ''} {format_ids(named)})"
    return text


def _problem(kind: str, what: str, mask: np.ndarray, ids: np.ndarray | None, fix: str) -> Problem:
    rows, id_list = _rows_ids(mask, ids)
    return Problem(kind, f"{what} at {_where(rows, id_list)}: {fix}", rows, id_list)


def _mapping_hint(column: str, available: Sequence[str], from_file: bool) -> str:
    key = OPTION_FOR_COLUMN.get(column)
    has = ", ".join(repr(c) for c in available) or "none"
    if from_file and key is not None:
        opt = "--" + key.replace("_", "-") + "-col"
        return f"map it with {opt} NAME (Python: columns={{{key!r}: NAME}}); the file has columns {has}"
    return f"add or rename the column; the frame has columns {has}"


# -- CRS and geometry -------------------------------------------------------------
def _check_crs(crs: object, problems: list[Problem], from_file: bool) -> CRS | None:
    if crs is None:
        fix = "pass --crs EPSG:4326 (or the CRS the file is in)" if from_file else "call gdf.set_crs('EPSG:4326')"
        problems.append(Problem("missing_crs", f"the layer has no CRS; geogrid will not guess: {fix}"))
        return None
    try:
        return to_crs_object(crs)
    except CRSError as err:
        problems.append(Problem("unknown_crs", str(err)))
        return None


_WORLD = (-180.0, -90.0, 180.0, 90.0)


def _area_of_use(crs: CRS) -> tuple[float, float, float, float]:
    """Return the nominal area of use (west, south, east, north; west > east across the antimeridian)."""
    aou = crs.area_of_use
    if aou is None or crs.is_geographic:
        return _WORLD
    return (aou.west, aou.south, aou.east, aou.north)


def _to_lonlat(crs: CRS, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if crs.is_geographic and crs.equals(CRS.from_epsg(4326), ignore_axis_order=True):
        return x, y
    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    with np.errstate(all="ignore"):
        lon, lat = tr.transform(x, y, errcheck=False)
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


def _inside(lon: np.ndarray, lat: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    w, s, e, n = box
    with np.errstate(invalid="ignore"):
        in_lon = (lon >= w) & (lon <= e) if w <= e else (lon >= w) | (lon <= e)
        return np.isfinite(lon) & np.isfinite(lat) & in_lon & (lat >= s) & (lat <= n)


def _km_beyond(lon: np.ndarray, lat: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Geodesic distance (km) from each lon/lat to the nearest point of the box, about (0 inside)."""
    from pyproj import Geod

    w, s, e, n = box
    if w > e:  # across the antimeridian: measure in a frame where the box is contiguous
        lon = np.where(lon < w, lon + 360.0, lon)
        e += 360.0
    near_lon, near_lat = np.clip(lon, w, e), np.clip(lat, s, n)
    _, _, metres = Geod(ellps="WGS84").inv(lon, lat, near_lon, near_lat)
    return np.asarray(metres, dtype=float) / 1000.0


def _geographic_ranges(
    crs: CRS, b: np.ndarray, idx: np.ndarray, n: int, ids: np.ndarray | None, problems: list[Problem]
) -> np.ndarray:
    """Refuse lon/lat beyond -180..180 / -90..90, naming swapped columns; return the rows refused."""
    corners_ok = np.ones(idx.size, dtype=bool)
    swapped_ok = np.ones(idx.size, dtype=bool)
    for xi, yi in ((0, 1), (2, 3), (0, 3), (2, 1)):
        lon, lat = _to_lonlat(crs, b[:, xi], b[:, yi])
        corners_ok &= _inside(lon, lat, _WORLD)
        slon, slat = _to_lonlat(crs, b[:, yi], b[:, xi])
        swapped_ok &= _inside(slon, slat, _WORLD)
    outside = np.zeros(n, dtype=bool)
    outside[idx[~corners_ok]] = True
    if outside.any():
        name = crs.to_string()
        if swapped_ok[~corners_ok].all():
            fix = (
                "it looks like lon/lat (x/y) are swapped: swap the columns (for CSV: --x-col is the "
                "longitude) or fix the file"
            )
        else:
            fix = (
                f"the CRS {name} is used within lon -180..180, lat -90..90; "
                "check that the CRS is the one the data is in (--crs) and that lon/lat are not swapped"
            )
        problems.append(
            _problem("outside_crs_area", f"coordinates outside the area of use of {name}", outside, ids, fix)
        )
    return outside


def _swapped_into_china(
    crs: CRS, b: np.ndarray, idx: np.ndarray, n: int, ids: np.ndarray | None, problems: list[Problem]
) -> np.ndarray:
    """Refuse rows whose lon/lat lie outside China but inside it when swapped; return them.

    West of 90°E (Urumqi at 87.6°E, 43.8°N) swapped coordinates are still valid degrees, so the
    range check cannot see them; swapped, they land in the Arctic (latitude above 72°), where no
    grid of a Chinese city lies.
    """
    refused = np.zeros(n, dtype=bool)
    if not idx.size:
        return refused
    lon, lat = _to_lonlat(crs, (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2)
    slon, slat = _to_lonlat(crs, (b[:, 1] + b[:, 3]) / 2, (b[:, 0] + b[:, 2]) / 2)
    hit = out_of_china(lon, lat) & ~out_of_china(slon, slat)
    if hit.any():
        refused[idx[hit]] = True
        k = int(np.flatnonzero(hit)[0])
        fix = (
            f"they lie at lat {lat[k]:.2f}, lon {lon[k]:.2f} (the Arctic) but would lie in China swapped: "
            "lon/lat (x/y) look swapped; swap the columns (for CSV: --x-col is the longitude) or fix the file"
        )
        problems.append(_problem("swapped_lonlat", "coordinates that look swapped", refused, ids, fix))
    return refused


def _across_antimeridian(
    geoms: np.ndarray, idx: np.ndarray, ids: np.ndarray | None, problems: list[Problem]
) -> np.ndarray:
    """Refuse lon/lat polygons with an edge spanning more than 180° of longitude; return them.

    Such an edge crosses the antimeridian: read as written it runs the long way round the
    globe, so inside and outside of the polygon are swapped (RFC 7946 §3.1.9).
    """
    refused = np.zeros(len(geoms), dtype=bool)
    if not idx.size:
        return refused
    parts, part_of = shapely.get_parts(geoms[idx], return_index=True)
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    coords, coord_of = shapely.get_coordinates(rings, return_index=True)
    if len(coords) < 2:
        return refused
    same_ring = coord_of[1:] == coord_of[:-1]
    jump = same_ring & (np.abs(np.diff(coords[:, 0])) > 180.0)
    if jump.any():
        rows = np.unique(idx[part_of[ring_of[coord_of[1:][jump]]]])
        refused[rows] = True
        fix = (
            "an edge jumps across longitude ±180° (the antimeridian), so the polygon would run the long way "
            "round the globe with inside and outside swapped: split it at 180° into a MultiPolygon "
            "(RFC 7946 §3.1.9; ogr2ogr -wrapdateline), or give it in a projected CRS"
        )
        problems.append(_problem("crosses_antimeridian", "polygons across the antimeridian", refused, ids, fix))
    return refused


def _projected_ranges(
    crs: CRS, b: np.ndarray, idx: np.ndarray, n: int, ids: np.ndarray | None, checked: _Checked
) -> np.ndarray:
    """Projected coordinates: refuse what cannot be right, warn about the rest beyond the area of use.

    Refused: coordinates the inverse projection cannot take (no lon/lat comes back), and rows
    outside the area of use whose coordinates all look like degrees (lon/lat labelled with a
    projected CRS). Rows merely beyond the nominal area of use, as real data uses a zone a few
    degrees past its strip, are kept: the distance goes into ``checked.warnings``.
    """
    box = _area_of_use(crs)
    name = crs.to_string()
    corners_ok = np.ones(idx.size, dtype=bool)
    finite = np.ones(idx.size, dtype=bool)
    km = np.zeros(idx.size)
    for xi, yi in ((0, 1), (2, 3), (0, 3), (2, 1)):
        lon, lat = _to_lonlat(crs, b[:, xi], b[:, yi])
        ok = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90.0)
        finite &= ok
        corners_ok &= _inside(lon, lat, box)
        km = np.maximum(km, np.where(ok, _km_beyond(np.where(ok, lon, 0.0), np.where(ok, lat, 0.0), box), 0.0))
    degrees = (np.abs(b[:, [0, 2]]) <= 180.0).all(axis=1) & (np.abs(b[:, [1, 3]]) <= 90.0).all(axis=1)
    w, s, e, nn = box
    within = f"the CRS {name} is used within lon {w:g}..{e:g}, lat {s:g}..{nn:g}"
    impossible = np.zeros(n, dtype=bool)
    impossible[idx[~finite]] = True
    if impossible.any():
        checked.problems.append(
            _problem(
                "outside_crs_area",
                f"coordinates {name} cannot turn into lon/lat",
                impossible,
                ids,
                f"{within}; check that the CRS is the one the data is in (--crs)",
            )
        )
    like_degrees = np.zeros(n, dtype=bool)
    like_degrees[idx[finite & ~corners_ok & degrees]] = True
    if like_degrees.any():
        checked.problems.append(
            _problem(
                "outside_crs_area",
                f"coordinates that look like lon/lat degrees, outside the area of use of {name}",
                like_degrees,
                ids,
                f"{within}; check that the CRS is the one the data is in (--crs): lon/lat data is "
                "EPSG:4326 (or EPSG:4490 for CGCS2000)",
            )
        )
    refused = impossible | like_degrees
    beyond = np.zeros(n, dtype=bool)
    far = finite & ~corners_ok & ~degrees
    beyond[idx[far]] = True
    if beyond.any():
        rows, id_list = _rows_ids(beyond, ids)
        checked.warnings.append(
            f"coordinates up to {km[far].max():,.0f} km beyond the area of use of {name} at "
            f"{_where(rows, id_list)}: kept ({within}; the projection's scale error grows out there). "
            "If the data is not meant to lie there, check the CRS (--crs)"
        )
    return refused


def _check_geometry(
    geoms: np.ndarray,
    schema: LayerSchema,
    crs: CRS | None,
    ids: np.ndarray | None,
    limits: Limits,
    checked: _Checked,
    *,
    count_vertices: bool,
) -> None:
    problems = checked.problems
    n = len(geoms)
    type_ids = shapely.get_type_id(geoms)
    missing = type_ids < 0
    if missing.any():
        problems.append(
            _problem("missing_geometry", "no geometry", missing, ids, "give every row a geometry or drop those rows")
        )
    allowed_ids = [_TYPE_IDS[t] for t in schema.geometry_types]
    right_type = np.isin(type_ids, allowed_ids)
    wrong = ~right_type & ~missing
    if wrong.any():
        seen = sorted({_TYPE_NAMES.get(int(t), str(t)) for t in type_ids[wrong]})
        fix = f"{schema.kind.value} layers hold {' or '.join(schema.geometry_types)}"
        if "Point" in schema.geometry_types and "MultiPoint" in seen:
            fix += " (split multi-points with gdf.explode())"
        problems.append(_problem("wrong_geometry_type", f"geometry type {', '.join(seen)}", wrong, ids, fix))
    # Only geometries of the allowed (flat) types go any further into GEOS.
    ok = np.flatnonzero(right_type)
    sub = geoms[ok]
    if count_vertices and ok.size:
        nverts = shapely.get_num_coordinates(sub)
        big = np.zeros(n, dtype=bool)
        big[ok[nverts > limits.max_vertices]] = True
        if big.any():
            rows, id_list = _rows_ids(big, ids)
            msg = (
                f"features with more than {limits.max_vertices:,} vertices at {_where(rows, id_list)}: simplify "
                "them first, or raise the limit with Limits(max_vertices=...)"
            )
            raise InputTooLargeError(msg)
    empty = np.zeros(n, dtype=bool)
    empty[ok[shapely.is_empty(sub)]] = True
    if empty.any():
        fix = "drop those rows or give them a geometry"
        if "Point" in schema.geometry_types:
            fix += " (a point with NaN coordinates reads back as empty)"
        problems.append(_problem("empty_geometry", "empty geometry", empty, ids, fix))
    coords, where = shapely.get_coordinates(sub, include_z=False, return_index=True)
    nonfinite = np.zeros(n, dtype=bool)
    if coords.size:
        bad = ~np.isfinite(coords).all(axis=1)
        nonfinite[ok[np.unique(where[bad])]] = True
    if nonfinite.any():
        problems.append(
            _problem(
                "nonfinite_coordinates",
                "NaN or infinite coordinates",
                nonfinite,
                ids,
                "fix or drop those rows (for CSV: check the x/y columns for blanks and text)",
            )
        )
    usable = right_type & ~empty & ~nonfinite
    if crs is not None and usable.any():
        idx = np.flatnonzero(usable)
        b = shapely.bounds(geoms[idx])
        if crs.is_geographic:
            outside = _geographic_ranges(crs, b, idx, n, ids, problems)
            keep = ~outside[idx]
            outside |= _swapped_into_china(crs, b[keep], idx[keep], n, ids, problems)
            if "Polygon" in schema.geometry_types:
                # No edge of a polygon spans more longitude than its bounds: only those wider
                # than 180° can have one that does (and reading their rings is the cost).
                wide = idx[(b[:, 2] - b[:, 0]) > 180.0]
                outside |= _across_antimeridian(geoms, wide[~outside[wide]], ids, problems)
        else:
            outside = _projected_ranges(crs, b, idx, n, ids, checked)
        if "Polygon" in schema.geometry_types:
            good = np.flatnonzero(usable & ~outside)
            if good.size:
                valid = shapely.is_valid(geoms[good])
                checked.invalid_rows = good[~valid]


# -- attributes -------------------------------------------------------------------
def _to_str(s: pd.Series) -> pd.Series:
    """Text of a column; whole floats print as integers.

    An integer column with blanks reads as float64 (a ``parent_id`` of 1 becomes 1.0),
    and "1.0" would not match the grid_id "1".
    """
    if pd.api.types.is_float_dtype(s):
        vals = s.to_numpy(dtype="float64", na_value=np.nan)
        present = ~np.isnan(vals)
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(vals[present]).all() and (np.abs(vals[present]) < 2.0**53).all()
            whole = bool(whole and (vals[present] == np.floor(vals[present])).all())
        if whole:
            return s.astype("Int64").astype("string")
    return s.astype("string")


def _parse_numbers(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Numbers from any column; the mask marks present values that are not numbers."""
    if pd.api.types.is_bool_dtype(s):
        s = s.astype("Int64")
    if pd.api.types.is_numeric_dtype(s):
        num = pd.to_numeric(s, errors="coerce").astype("float64")
        return num, np.zeros(len(s), dtype=bool)
    text = s.astype("string").str.strip()
    num = pd.to_numeric(text, errors="coerce").astype("float64")
    bad = (text.notna() & (text != "") & num.isna()).to_numpy(dtype=bool)
    return num, bad


def _parse_datetimes(
    s: pd.Series, tz: str | None, col: Column, ids: np.ndarray | None, problems: list[Problem]
) -> pd.Series:
    """Timezone-aware UTC datetimes; naive values are localised with ``tz`` or reported."""
    n = len(s)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(s):
        naive_mask = s.notna().to_numpy(dtype=bool)
        text = None
        parsed_naive = s
    else:
        text = s.astype("string").str.strip()
        text = text.mask(text == "")
        present = text.notna().to_numpy(dtype=bool)
        has_tz = text.str.contains(_TZ_SUFFIX, regex=True, na=False).to_numpy(dtype=bool)
        naive_mask = present & ~has_tz
        parsed_naive = None
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[us, UTC]")
    bad = np.zeros(n, dtype=bool)
    if text is not None:
        aware_mask = text.notna().to_numpy(dtype=bool) & ~naive_mask
        if aware_mask.any():
            sub = text[aware_mask]
            vals = pd.to_datetime(sub, utc=True, format="ISO8601", errors="coerce")
            retry = vals.isna()
            if retry.any():
                vals[retry] = pd.to_datetime(sub[retry], utc=True, format="mixed", errors="coerce")
            out[aware_mask] = vals
            bad[np.flatnonzero(aware_mask)[vals.isna().to_numpy()]] = True
        if naive_mask.any():
            sub = text[naive_mask]
            vals = pd.to_datetime(sub, format="ISO8601", errors="coerce")
            retry = vals.isna()
            if retry.any():
                vals[retry] = pd.to_datetime(sub[retry], format="mixed", errors="coerce")
            unparsable = vals.isna().to_numpy()
            bad[np.flatnonzero(naive_mask)[unparsable]] = True
            parsed_naive = vals
            naive_mask = naive_mask.copy()
            naive_mask[np.flatnonzero(naive_mask)[unparsable]] = False
            parsed_naive = parsed_naive[~unparsable]
    if bad.any():
        problems.append(
            _problem(
                "bad_datetime",
                f"{col.name} is not a date-time",
                bad,
                ids,
                "write ISO 8601 with an offset, e.g. 2024-05-01T08:30:00+08:00",
            )
        )
    if naive_mask.any():
        assert parsed_naive is not None
        if tz is None:
            problems.append(
                _problem(
                    "naive_datetime",
                    f"{col.name} has no timezone",
                    naive_mask,
                    ids,
                    "say which timezone the times are in: --tz Asia/Shanghai (Python: tz='Asia/Shanghai'), "
                    "or write offsets such as 2024-05-01T08:30:00+08:00",
                ),
            )
        else:
            naive_vals = pd.to_datetime(parsed_naive[naive_mask] if text is None else parsed_naive)
            try:
                local = naive_vals.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
            except (KeyError, ValueError, TypeError) as err:
                problems.append(
                    Problem(
                        "unknown_timezone",
                        f"timezone {tz!r} is not known ({err}): give an IANA name such as Asia/Shanghai",
                    )
                )
                return out
            # .array, not .to_numpy(): when every time is lost to a daylight-saving change, to_numpy()
            # gives naive NaT that a UTC column refuses (a traceback instead of the problem below).
            out[naive_mask] = local.dt.tz_convert("UTC").array
            lost = np.zeros(n, dtype=bool)
            lost[np.flatnonzero(naive_mask)[local.isna().to_numpy()]] = True
            if lost.any():
                problems.append(
                    _problem(
                        "ambiguous_datetime",
                        f"{col.name} does not exist or is ambiguous in {tz} (daylight-saving change)",
                        lost,
                        ids,
                        "write those times with an explicit offset",
                    )
                )
    return out


def _check_columns(
    frame: pd.DataFrame,
    schema: LayerSchema,
    ids: np.ndarray | None,
    tz: str | None,
    from_file: bool,
    checked: _Checked,
) -> None:
    problems = checked.problems
    available = [c for c in frame.columns if c != "geometry"]
    for col in schema.columns:
        if col.name not in frame.columns:
            if col.required:
                problems.append(
                    Problem(
                        "missing_column",
                        f"required column {col.name!r} ({col.description}) is missing: "
                        + _mapping_hint(col.name, available, from_file),
                    )
                )
            continue
        s = frame[col.name]
        present = np.array(s.notna().to_numpy(dtype=bool), dtype=bool)
        if col.dtype == "str":
            text = s.astype("string")
            present &= (text.str.strip() != "").fillna(False).to_numpy(dtype=bool)
        if not col.nullable and (~present).any():
            problems.append(
                _problem(
                    "missing_value",
                    f"{col.name} is missing",
                    ~present,
                    ids,
                    f"fill in {col.name} on every row ({col.description})",
                )
            )
        if col.dtype == "str":
            text = _to_str(s)
            text = text.mask(~present)
            checked.parsed[col.name] = text
            if col.choices is not None:
                unknown = (present & ~text.isin(col.choices).fillna(False).to_numpy(dtype=bool)).astype(bool)
                if unknown.any():
                    seen = sorted({str(v) for v in text[unknown].unique()})[:5]
                    problems.append(
                        _problem(
                            "unknown_value",
                            f"{col.name} has unknown value(s) {', '.join(repr(v) for v in seen)}",
                            unknown,
                            ids,
                            f"allowed: {', '.join(col.choices)}",
                        )
                    )
        elif col.dtype in ("int", "float"):
            num, bad = _parse_numbers(s)
            if col.dtype == "int":
                with np.errstate(invalid="ignore"):
                    frac = num.notna().to_numpy(dtype=bool) & (np.floor(num.to_numpy()) != num.to_numpy())
                bad = bad | frac
            if bad.any():
                problems.append(
                    _problem(
                        "bad_value",
                        f"{col.name} is not {'an integer' if col.dtype == 'int' else 'a number'}",
                        bad,
                        ids,
                        f"write plain numbers ({col.description})",
                    )
                )
            vals = num.to_numpy()
            out_of_range = np.zeros(len(s), dtype=bool)
            with np.errstate(invalid="ignore"):
                if col.min is not None:
                    out_of_range |= (vals <= col.min) if col.min_exclusive else (vals < col.min)
                if col.max is not None:
                    out_of_range |= vals > col.max
                out_of_range |= np.isinf(vals)
            if out_of_range.any():
                lo = "" if col.min is None else (f"> {col.min:g}" if col.min_exclusive else f">= {col.min:g}")
                hi = "" if col.max is None else f"<= {col.max:g}"
                rule = " and ".join(r for r in (lo, hi) if r)
                shown = ", ".join(f"{v:g}" for v in pd.unique(vals[out_of_range])[:5])
                problems.append(
                    _problem(
                        "out_of_range",
                        f"{col.name} out of range ({shown})",
                        out_of_range,
                        ids,
                        f"{col.name} must be {rule} ({col.description})",
                    )
                )
            checked.parsed[col.name] = num.mask(bad | out_of_range)
        elif col.dtype == "datetime":
            checked.parsed[col.name] = _parse_datetimes(s, tz, col, ids, problems)


def _check_ids(frame: pd.DataFrame, schema: LayerSchema, ids: np.ndarray | None, checked: _Checked) -> None:
    if ids is None:
        return
    s = pd.Series(ids)
    dup = (s.duplicated(keep=False) & s.notna()).to_numpy(dtype=bool)
    if dup.any():
        values = sorted({str(v) for v in s[dup]})
        checked.problems.append(
            _problem(
                "duplicate_id",
                f"duplicate {schema.id_column} {format_ids(values)}",
                dup,
                ids,
                f"every {schema.id_column} must be unique",
            )
        )


def _cycle_nodes(up: np.ndarray) -> np.ndarray:
    """Nodes on a cycle of the functional graph ``i -> up[i]`` (``-1``: no successor).

    Pointer jumping: after ``k`` squarings ``jump[i]`` is the node ``2**k`` links above
    ``i`` (or the sink ``n`` once a chain has ended). Once ``2**k >= n`` every surviving
    image lies on a cycle, and as the jump permutes each cycle, the images are exactly
    the cycle nodes. Chains that all end stop the loop early (log(depth) steps).
    """
    n = len(up)
    jump = np.append(np.where(up >= 0, up, n), n)
    steps = 1
    while steps < n:
        jump = jump[jump]
        steps *= 2
        if (jump[:n] == n).all():
            return np.zeros(n, dtype=bool)
    out = np.zeros(n + 1, dtype=bool)
    out[jump[:n]] = True
    return out[:n]


def _check_hierarchy(ids: np.ndarray | None, checked: _Checked) -> None:
    parsed = checked.parsed
    if ids is None or "parent_id" not in parsed or "level" not in parsed:
        return
    problems = checked.problems
    parent = parsed["parent_id"].to_numpy(dtype=object, na_value=None)
    level = parsed["level"].to_numpy(dtype=float, na_value=np.nan)
    # Integer codes of the ids (-1: no id); the level of an id is that of its first row,
    # its parent link that of its last row.
    code, uniques = pd.factorize(pd.Series(ids, dtype=object), use_na_sentinel=True)
    code = np.asarray(code, dtype=np.int64)
    # Codes count up in order of first appearance: a row is an id's first when its code
    # exceeds every code before it.
    seen = np.maximum.accumulate(np.concatenate([[-1], code]))[:-1]
    first_row = np.flatnonzero(code > seen)
    if len(first_row) == int((code >= 0).sum()):  # no duplicate ids
        last_row = first_row
    else:
        named = np.flatnonzero(code >= 0)
        _, last_rev = np.unique(code[named][::-1], return_index=True)
        last_row = named[::-1][last_rev]
    has_parent = pd.notna(parsed["parent_id"]).to_numpy(dtype=bool)
    pcode = np.full(len(parent), -1, dtype=np.int64)
    if has_parent.any():
        pcode[has_parent] = pd.Index(uniques, dtype=object).get_indexer(parent[has_parent])
    top = level == 0
    top_with_parent = top & has_parent
    if top_with_parent.any():
        problems.append(
            _problem(
                "top_level_with_parent",
                "a level-0 grid has a parent_id",
                top_with_parent,
                ids,
                "level 0 is the top: leave parent_id empty, or fix the level",
            )
        )
    orphan = ~top & ~has_parent & np.isfinite(level)
    if orphan.any():
        problems.append(
            _problem(
                "missing_parent",
                "a grid below level 0 has no parent_id",
                orphan,
                ids,
                "give it the grid_id of the grid of the level above that contains it",
            )
        )
    unknown = has_parent & (pcode < 0)
    if unknown.any():
        missing = sorted({str(p) for p in parent[unknown]})
        problems.append(
            _problem(
                "unknown_parent",
                f"parent_id {format_ids(missing)} does not exist",
                unknown,
                ids,
                "parent_id must be the grid_id of a grid in the same layer",
            )
        )
    plevel = np.full(len(parent), np.nan)
    known = pcode >= 0
    plevel[known] = level[first_row[pcode[known]]]
    with np.errstate(invalid="ignore"):
        wrong_level = has_parent & ~unknown & ~top & np.isfinite(plevel) & np.isfinite(level) & (plevel != level - 1)
    if wrong_level.any():
        problems.append(
            _problem(
                "parent_wrong_level",
                "the parent is not on the level just above",
                wrong_level,
                ids,
                "a grid on level L must have a parent on level L-1: fix level or parent_id",
            )
        )
    # Cycles: the ids on a cycle of the links id -> parent id.
    in_cycle = _cycle_nodes(pcode[last_row])
    if in_cycle.any():
        mask = (code >= 0) & in_cycle[np.maximum(code, 0)]
        problems.append(
            _problem(
                "parent_cycle",
                "parent_id links form a cycle",
                mask,
                ids,
                "every chain of parents must end at a level-0 grid",
            )
        )


def _check_incident_times(ids: np.ndarray | None, checked: _Checked) -> None:
    parsed = checked.parsed
    if "reported_at" not in parsed or "closed_at" not in parsed:
        return
    rep, clo = parsed["reported_at"], parsed["closed_at"]
    before = (clo < rep).fillna(False).to_numpy(dtype=bool)
    if before.any():
        checked.problems.append(
            _problem(
                "closed_before_reported",
                "closed_at is before reported_at",
                before,
                ids,
                "fix the times (or their timezones)",
            )
        )


def check_frame(
    frame: pd.DataFrame,
    geoms: np.ndarray,
    kind: LayerKind,
    *,
    crs: object,
    tz: str | None = None,
    limits: Limits | None = None,
    from_file: bool = False,
    count_vertices: bool = True,
    extra: Sequence[Problem] = (),
    hierarchy: bool = True,
    row_offset: int = 0,
    unique_ids: bool = True,
) -> _Checked:
    """Run every door check; return the problems and the parsed columns (private to layers).

    For one part of a larger input (:func:`layers.io.read_layer_chunks`): ``row_offset`` is
    the position of the part's first row, so problems name rows of the whole input, and
    ``unique_ids=False`` leaves duplicate ids to the caller, who sees every part.
    """
    schema = SCHEMAS[LayerKind(kind)]
    limits = limits or Limits()
    checked = _Checked(problems=list(extra))
    token = _ROW_OFFSET.set(int(row_offset))
    try:
        checked.crs = _check_crs(crs, checked.problems, from_file)
        ids = (
            _to_str(frame[schema.id_column]).to_numpy(dtype=object, na_value=None)
            if schema.id_column in frame.columns
            else None
        )
        _check_geometry(geoms, schema, checked.crs, ids, limits, checked, count_vertices=count_vertices)
        _check_columns(frame, schema, ids, tz, from_file, checked)
        if unique_ids:
            _check_ids(frame, schema, ids, checked)
        if schema.kind is LayerKind.GRIDS and hierarchy:
            _check_hierarchy(ids, checked)
        if schema.kind is LayerKind.INCIDENTS:
            _check_incident_times(ids, checked)
    finally:
        _ROW_OFFSET.reset(token)
    return checked


def finish_frame(
    frame: pd.DataFrame,
    geoms: np.ndarray,
    kind: LayerKind,
    checked: _Checked,
    *,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    attrs: Mapping[str, Any] | None = None,
    warn: bool = True,
) -> gpd.GeoDataFrame:
    """Build the canonical frame from checked parts (schema columns first, storage CRS).

    ``warn=False`` leaves the warnings in ``attrs["warnings"]`` for a caller that gives them once
    for a whole input read in parts.
    """
    schema = SCHEMAS[LayerKind(kind)]
    data = frame.drop(columns=[c for c in frame.columns if c == "geometry"]).copy()
    for name, values in checked.parsed.items():
        data[name] = values.to_numpy() if not isinstance(values.dtype, pd.DatetimeTZDtype) else values.array
    order = [c for c in schema.names if c in data.columns] + [c for c in data.columns if c not in schema.names]
    data = data[order]
    crs = checked.crs
    assert crs is not None
    g = geoms if transform is None else shapely.transform(geoms, transform)
    gdf = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(g, index=data.index), crs=crs)
    if crs.equals(CRS.from_epsg(4490), ignore_axis_order=True) or crs.equals(
        CRS.from_epsg(4326), ignore_axis_order=True
    ):
        gdf = gdf.set_crs(STORAGE_CRS, allow_override=True)
    else:
        gdf = gdf.to_crs(STORAGE_CRS)
    coerce_dtypes(gdf, schema)
    invalid = checked.invalid_rows
    gdf.attrs["invalid_geometries"] = int(invalid.size)
    if invalid.size:
        col = gdf[schema.id_column] if schema.id_column in gdf.columns else None
        gdf.attrs["invalid_geometry_ids"] = (
            [str(col.iloc[i]) for i in invalid[:20]] if col is not None else [int(i) for i in invalid[:20]]
        )
        gdf.attrs["invalid_geometry_reasons"] = [
            str(r) for r in shapely.is_valid_reason(gdf.geometry.to_numpy()[invalid[:20]])
        ]
    gdf.attrs["source_crs"] = crs.to_string()
    if checked.warnings:
        gdf.attrs["warnings"] = list(checked.warnings)
    for text in checked.warnings if warn else ():  # the caller of validate_layer / read_layer is 3 frames up
        warnings.warn(text, OutsideCRSAreaWarning, stacklevel=3)
    for k, v in (attrs or {}).items():
        gdf.attrs[k] = v
    return gdf


def validate_layer(
    gdf: gpd.GeoDataFrame,
    kind: LayerKind | str,
    *,
    source: str = "<frame>",
    limits: Limits | None = None,
    tz: str | None = None,
) -> gpd.GeoDataFrame:
    """Check a layer built in Python at the door and return its canonical form.

    Runs the same checks as :func:`layers.io.read_layer` and collects every problem.
    The result has the schema's dtypes (ids as ``string``, levels ``Int64``, times
    timezone-aware UTC), keeps the input's index and extra columns, and is in the
    storage CRS (EPSG:4326; EPSG:4490 is relabelled, other CRSs are reprojected).
    Invalid polygons of a grid layer are kept and counted in
    ``attrs["invalid_geometries"]``.

    Parameters
    ----------
    gdf
        The layer.
    kind
        ``"grids"``, ``"incidents"`` or ``"cameras"``.
    source
        How to name the input in messages.
    limits
        Safety limits (vertices per feature); defaults to :class:`Limits`.
    tz
        Timezone of naive timestamps (e.g. ``"Asia/Shanghai"``); without it naive
        timestamps are a problem.

    Returns
    -------
    geopandas.GeoDataFrame

    Raises
    ------
    ValidationError
        Listing every problem with its rows (0-based positions) and ids.
    InputTooLargeError
        If a feature has more vertices than ``limits.max_vertices``.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame({"grid_id": ["a", "b"], "parent_id": [None, "x"], "level": [0, 1]},
    ...                      geometry=[shapely.box(117, 39, 117.1, 39.1)] * 2, crs="EPSG:4326")
    >>> validate_layer(g, "grids")
    Traceback (most recent call last):
    ...
    layers.errors.ValidationError: <frame>: 1 problem(s) found:
      - unknown_parent: parent_id 'x' does not exist at row 1 (id 'b'): parent_id must be the grid_id of a grid in the same layer
    >>> validate_layer(g.iloc[:1], "grids")["level"].dtype
    Int64Dtype()
    """
    frame, geoms, checked = _door(gdf, kind, source=source, limits=limits, tz=tz)
    return finish_frame(frame, geoms, LayerKind(kind), checked)


def count_invalid_at_door(
    gdf: gpd.GeoDataFrame,
    kind: LayerKind | str,
    *,
    source: str = "<frame>",
    hierarchy: bool = True,
) -> int:
    """Run :func:`validate_layer`'s checks without building the canonical frame.

    For callers that keep their own frame (the topology check): returns the number of
    invalid polygons and raises the same :class:`ValidationError`. ``hierarchy=False``
    skips the grid hierarchy pass, for a caller that reports those problems itself.
    """
    return int(_door(gdf, kind, source=source, hierarchy=hierarchy)[2].invalid_rows.size)


def invalid_rows_at_door(
    gdf: gpd.GeoDataFrame, kind: LayerKind | str, *, source: str = "<frame>", hierarchy: bool = True
) -> np.ndarray:
    """Run :func:`validate_layer`'s checks without building the canonical frame.

    For callers that keep their own frame (repair): returns the positions of the invalid
    polygons, raises the same :class:`ValidationError` and gives the same warnings.
    ``hierarchy=False`` skips the grid hierarchy pass, for a caller that reports those
    problems itself.
    """
    _, _, checked = _door(gdf, kind, source=source, hierarchy=hierarchy)
    for text in checked.warnings:
        warnings.warn(text, OutsideCRSAreaWarning, stacklevel=2)  # at the caller, as validate_layer
    return checked.invalid_rows


def _door(
    gdf: gpd.GeoDataFrame,
    kind: LayerKind | str,
    *,
    source: str,
    limits: Limits | None = None,
    tz: str | None = None,
    hierarchy: bool = True,
) -> tuple[pd.DataFrame, np.ndarray, _Checked]:
    try:
        kind = LayerKind(kind)
    except ValueError as err:
        msg = f"unknown layer kind {kind!r}: use one of {', '.join(k.value for k in LayerKind)}"
        raise ValidationError(source, [Problem("unknown_kind", msg)]) from err
    if not isinstance(gdf, gpd.GeoDataFrame):
        msg = f"expected a GeoDataFrame, got {type(gdf).__name__}: build one with geopandas.GeoDataFrame(..., geometry=..., crs=...)"
        raise ValidationError(source, [Problem("not_a_geodataframe", msg)])
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    geoms = np.asarray(gdf.geometry.array, dtype=object)
    checked = check_frame(frame, geoms, kind, crs=gdf.crs, tz=tz, limits=limits, hierarchy=hierarchy)
    if checked.problems:
        raise ValidationError(source, checked.problems)
    return frame, geoms, checked


def datum_shift_hint(points: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, *, of_total: int | None = None) -> str | None:
    """Say whether WGS-84 ``points`` fit the ``grids`` far better read as GCJ-02 or BD-09 (None: no sign of it).

    Points copied from a Chinese web map (Gaode/AMap, Tencent: GCJ-02; Baidu: BD-09) but
    declared WGS-84 sit 300–600 m off, consistently in one direction. Against the store's own
    grids that shows: many points fall outside the grids' outline as given, and far fewer
    would once converted. A hint, not a proof (a layer may rightly reach beyond the grids),
    so callers warn.

    Parameters
    ----------
    points
        Points in EPSG:4326, as imported (no datum conversion applied).
    grids
        The grids they belong to, in EPSG:4326 (the top level gives the outline).
    of_total
        If ``points`` is a sample, the number of points it was drawn from (named in the message).

    Returns
    -------
    str or None
        The warning to give, naming the ``--datum`` to use.
    """
    if points.empty or grids.empty:
        return None
    xy = shapely.get_coordinates(points.geometry.to_numpy())
    if len(xy) < 20 or out_of_china(xy[:, 0], xy[:, 1]).all():
        return None
    top = grids[grids["level"] == grids["level"].min()] if "level" in grids.columns else grids
    outline = shapely.union_all(shapely.make_valid(top.geometry.to_numpy()))
    shapely.prepare(outline)
    n = len(xy)
    outside = int(n - shapely.contains_xy(outline, xy[:, 0], xy[:, 1]).sum())
    best: tuple[int, str] | None = None
    for name, convert in (("gcj02", gcj02_to_wgs84), ("bd09", bd09_to_wgs84)):
        lon, lat = convert(xy[:, 0], xy[:, 1])
        out_conv = int(n - shapely.contains_xy(outline, lon, lat).sum())
        if best is None or out_conv < best[0]:
            best = (out_conv, name)
    assert best is not None
    out_conv, name = best
    if outside < max(10, 0.05 * n) or out_conv * 3 > outside:
        return None
    label = {"gcj02": "GCJ-02 (Gaode/AMap, Tencent)", "bd09": "BD-09 (Baidu)"}[name]
    of = f"{n:,} points" if of_total is None else f"{n:,} points sampled from {of_total:,}"
    return (
        f"{outside:,} of {of} lie outside the grids, but read as {label} only {out_conv:,} would: "
        f"coordinates from a Chinese web map are {label}, shifted 300-600 m from WGS-84. If the data comes "
        f"from such a map, import it again with --datum {name} (Python: datum={name!r})"
    )
