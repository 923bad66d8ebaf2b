"""Reading and writing layers: GeoPackage, GeoJSON, GeoParquet, Shapefile and CSV.

:func:`read_layer` is the door every file goes through:

1. guards on the bytes (file size, feature count, GeoJSON bracket depth, then the
   nesting depth and vertex count of every WKB geometry) before any geometry is
   built (see :mod:`layers._guards`);
2. the column mapping (``columns={"id": "编号", "x": "经度", ...}``);
3. every check of :mod:`layers.validate`, collected into one ValidationError;
4. datum conversion (GCJ-02 / BD-09 to WGS-84, :mod:`layers.datum`);
5. reprojection to the storage CRS, EPSG:4326 (EPSG:4490 is relabelled: the two
   differ by centimetres) and the canonical dtypes.

:func:`write_layer` writes GeoPackage, GeoJSON or GeoParquet, chosen by extension.
"""

from __future__ import annotations

import csv
import json
import mmap
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

import geopandas as gpd
import pyogrio
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError as _PyprojCRSError

from layers._guards import Limits, check_file_size, check_json_depth, check_wkb
from layers.datum import DATUMS, to_wgs84
from layers.errors import InputTooLargeError, Problem, StoreError, ValidationError
from layers.schema import SCHEMAS, LayerKind
from layers.validate import OPTION_FOR_COLUMN, check_frame, finish_frame

if TYPE_CHECKING:
    from layers._csv_stream import LayerChunks

__all__ = [
    "FORMATS",
    "MAPPING_KEYS",
    "Limits",
    "describe",
    "read_layer",
    "read_layer_chunks",
    "write_csv",
    "write_layer",
]

FORMATS: dict[str, str] = {
    ".gpkg": "gpkg",
    ".geojson": "geojson",
    ".json": "geojson",
    ".parquet": "parquet",
    ".geoparquet": "parquet",
    ".shp": "shapefile",
    ".zip": "shapefile",
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
}
"""File extension -> format read by :func:`read_layer`."""

MAPPING_KEYS = (*dict.fromkeys(OPTION_FOR_COLUMN.values()), "x", "y")
"""Keys of the column mapping (the CLI's ``--KEY-col`` options)."""

_X_NAMES = ("lon", "lng", "long", "longitude", "经度", "x")
_Y_NAMES = ("lat", "latitude", "纬度", "y")
_LONLAT_NAMES = {"lon", "lng", "long", "longitude", "lat", "latitude", "经度", "纬度"}


def _format_of(path: Path) -> str:
    if path.is_dir():
        return "shapefile"
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(FORMATS))
        msg = f"{path.name}: unknown file type {path.suffix!r}; geogrid reads {known}"
        raise ValidationError(path.name, [Problem("unknown_format", msg)])
    return fmt


def _target_of(key: str, kind: LayerKind) -> str | None:
    """Return the schema column a mapping key stands for in a layer kind (None: not for this kind)."""
    schema = SCHEMAS[kind]
    if key == "id":
        return schema.id_column
    for col, k in OPTION_FOR_COLUMN.items():
        if k == key and col in schema.names:
            return col
    return None


def _apply_mapping(
    frame: pd.DataFrame, columns: Mapping[str, str], kind: LayerKind, problems: list[Problem]
) -> pd.DataFrame:
    rename: dict[str, str] = {}
    has = ", ".join(repr(c) for c in frame.columns) or "none"
    for key, src in columns.items():
        if key in ("x", "y"):
            continue
        if key not in MAPPING_KEYS:
            msg = f"unknown mapping key {key!r}: use {', '.join(MAPPING_KEYS)}"
            problems.append(Problem("unknown_mapping_key", msg))
            continue
        target = _target_of(key, kind)
        if target is None:
            msg = f"--{key.replace('_', '-')}-col does not apply to a {kind.value} layer"
            problems.append(Problem("mapping_not_for_kind", msg))
            continue
        if src not in frame.columns:
            msg = f"--{key.replace('_', '-')}-col {src!r}: no such column; the file has {has}"
            problems.append(Problem("unknown_mapped_column", msg))
            continue
        rename[src] = target
    # An explicitly mapped column replaces a column that already has the target name.
    clash = [t for s, t in rename.items() if t in frame.columns and t != s and t not in rename]
    frame = frame.drop(columns=clash)
    return frame.rename(columns=rename)


def _pick_layer(path: Path, layer: str | None, kind: LayerKind) -> str | None:
    try:
        layers = pyogrio.list_layers(path)
    except pyogrio.errors.DataSourceError as err:
        msg = f"{path.name} cannot be opened as a vector file: {err}"
        raise ValidationError(path.name, [Problem("unreadable_file", msg)]) from err
    names = [str(n) for n in layers[:, 0]]
    if layer is not None:
        if layer not in names:
            msg = f"layer {layer!r} not found; the file has layers {', '.join(map(repr, names))}"
            raise ValidationError(path.name, [Problem("unknown_layer", msg)])
        return layer
    if len(names) <= 1:
        return names[0] if names else None
    if kind.value in names:
        return kind.value
    msg = (
        f"the file has several layers ({', '.join(map(repr, names))}): choose one with --layer NAME (Python: layer=...)"
    )
    raise ValidationError(path.name, [Problem("ambiguous_layer", msg)])


def _check_count(n: int, limits: Limits, source: str) -> None:
    if n > limits.max_features:
        msg = (
            f"{source} has {n:,} features, more than the limit of {limits.max_features:,}: split it, or raise "
            "the limit with Limits(max_features=...)"
        )
        raise InputTooLargeError(msg)


def _geoms_from_wkb(
    wkbs: list[bytes | None] | np.ndarray, limits: Limits, source: str, ids: np.ndarray | None, problems: list[Problem]
) -> np.ndarray:
    """Guard every WKB value, then parse the ones that passed (unreadable ones become problems)."""
    malformed = check_wkb(wkbs, limits, source=source, ids=None if ids is None else list(ids))
    arr = np.empty(len(wkbs), dtype=object)
    arr[:] = list(wkbs)
    arr[malformed] = None
    with np.errstate(invalid="ignore"):  # NaN coordinates are reported by the checks
        geoms = shapely.from_wkb(arr, on_invalid="ignore")
    unreadable = malformed | (np.array([w is not None for w in arr], dtype=bool) & shapely.is_missing(geoms))
    if unreadable.any():
        rows = tuple(int(r) for r in np.flatnonzero(unreadable))
        id_list = tuple(str(ids[r]) for r in rows) if ids is not None else ()
        shown = ", ".join(str(r) for r in rows[:10]) + (f" (+{len(rows) - 10} more)" if len(rows) > 10 else "")
        msg = (
            f"geometry cannot be read at rows {shown} (truncated or malformed, e.g. a ring with fewer than "
            "4 points): fix or drop those features"
        )
        problems.append(Problem("unreadable_geometry", msg, rows, id_list))
    return np.asarray(geoms, dtype=object)


def _id_values(frame: pd.DataFrame, columns: Mapping[str, str], kind: LayerKind) -> np.ndarray | None:
    name = columns.get("id", SCHEMAS[kind].id_column)
    return frame[name].to_numpy(dtype=object) if name in frame.columns else None


_CRS_MEMBER = re.compile(rb'"crs"\s*:')


def _top_level_offsets(buf: mmap.mmap, offsets: list[int]) -> list[int]:
    """Return those of ``offsets`` (sorted) that lie at bracket depth 1 of the JSON text ``buf``.

    Scanned in 16 MiB chunks (a few bytes of memory per byte of a chunk), strings masked out.
    """
    arr = np.frombuffer(buf, dtype=np.uint8)
    wanted = np.asarray(offsets, dtype=np.int64)
    found: list[int] = []
    depth_carry, parity_carry, step = 0, 0, 1 << 24
    for start in range(0, arr.size, step):
        chunk = arr[start : start + step]
        quote = chunk == ord('"')
        before = np.empty(chunk.size, dtype=np.uint8)
        before[1:] = chunk[:-1]
        before[:1] = arr[start - 1] if start else 0
        for q in np.flatnonzero(quote & (before == ord("\\"))):
            k = start + q - 1  # a quote after an odd run of backslashes is escaped (rare: one by one)
            run = 0
            while k >= 0 and arr[k] == ord("\\"):
                k, run = k - 1, run + 1
            if run % 2:
                quote[q] = False
        inside = ((np.cumsum(quote, dtype=np.uint8) + parity_carry) & 1).astype(bool)
        parity_carry = (parity_carry + int(quote.sum())) & 1
        delta = np.zeros(chunk.size, dtype=np.int8)
        delta[(chunk == ord("{")) | (chunk == ord("["))] = 1
        delta[(chunk == ord("}")) | (chunk == ord("]"))] = -1
        delta[inside] = 0
        depth = np.cumsum(delta, dtype=np.int32) + depth_carry
        here = wanted[(wanted >= start) & (wanted < start + chunk.size)]
        found += [int(o) for o in here if depth[o - start] == 1]
        if depth.size:
            depth_carry = int(depth[-1])
    return found


def _geojson_crs_problem(path: Path) -> Problem | None:
    """Return a problem if the GeoJSON's top-level ``crs`` member names a CRS pyproj does not know.

    GDAL reads such a file as WGS-84 without a word ("proj_create: crs not found" goes to its log only).
    """
    if path.stat().st_size == 0:
        return None
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        hits = [m.start() for m in _CRS_MEMBER.finditer(mm)]
        if not hits:
            return None
        top = _top_level_offsets(mm, hits)
        if not top:
            return None
        head = _CRS_MEMBER.match(mm, top[0])
        assert head is not None
        try:
            value, _ = json.JSONDecoder().raw_decode(mm[head.end() : head.end() + 65536].decode("utf-8").lstrip())
        except (ValueError, UnicodeDecodeError):
            value = None
    name = value.get("properties", {}).get("name") if isinstance(value, dict) else None
    if value is None:
        return None  # "crs": null is RFC 7946's "no CRS given": GDAL's WGS-84 is right
    if isinstance(name, str):
        try:
            CRS.from_user_input(name)
            return None
        except _PyprojCRSError:
            pass
    shown = json.dumps(value, ensure_ascii=False)[:200]
    msg = (
        f'the file\'s "crs" member is {shown}, a CRS geogrid does not know; it would be read as '
        "WGS-84 lon/lat without a word: give the CRS the coordinates are in with --crs "
        "(Python: crs=...), e.g. --crs EPSG:4547, or drop the member if they are lon/lat"
    )
    return Problem("unknown_crs", msg)


def _has_cpg(path: Path) -> bool:
    """Whether a shapefile (``.shp``, its folder or a zip of it) comes with a ``.cpg`` naming its encoding."""
    if path.is_dir():
        return any(p.suffix.lower() == ".cpg" for p in path.iterdir())
    if path.suffix.lower() == ".zip":
        import zipfile

        with zipfile.ZipFile(path) as zf:
            return any(n.lower().endswith(".cpg") for n in zf.namelist())
    return path.with_suffix(".cpg").exists() or path.with_suffix(".CPG").exists()


def _guess_text(raw: bytes) -> str:
    for enc in ("utf-8", "gbk"):
        try:
            return f"{raw.decode(enc)!r} as {enc.upper()}"
        except UnicodeDecodeError:
            continue
    return "neither UTF-8 nor GBK"


def _undeclared_encoding_problem(path: Path, frame: pd.DataFrame) -> Problem | None:
    """Return a problem if a shapefile with no ``.cpg`` holds non-ASCII text (GDAL then reads Latin-1: mojibake).

    Chinese shapefiles are usually GBK; without a ``.cpg`` (or a language id in the ``.dbf``)
    GDAL decodes them as ISO-8859-1 and '河北区' arrives as 'ºÓ±±Çø'. geogrid does not guess.
    """
    for col in frame.columns:
        if not (frame[col].dtype == object or pd.api.types.is_string_dtype(frame[col].dtype)):
            continue
        for value in frame[col]:
            if isinstance(value, str) and any(ord(c) > 0x7F for c in value):
                try:
                    raw = value.encode("latin-1")
                except UnicodeEncodeError:
                    return None  # not what a Latin-1 reading gives: GDAL knew the encoding
                msg = (
                    f"the shapefile has no .cpg naming its text encoding, and column {col!r} holds non-ASCII text "
                    f"(read as Latin-1: {value[:20]!r}; the bytes read {_guess_text(raw[:60])}): name the encoding "
                    "with --encoding gbk (Python: encoding='gbk'), --encoding utf-8, or --encoding latin1 if it "
                    "really is Western European text; or add a .cpg file holding the encoding's name"
                )
                return Problem("unknown_encoding", msg)
    return None


def _read_ogr(
    path: Path,
    kind: LayerKind,
    fmt: str,
    layer: str | None,
    columns: Mapping[str, str],
    limits: Limits,
    encoding: str | None,
    problems: list[Problem],
    crs: object = None,
) -> tuple[pd.DataFrame, np.ndarray, object]:
    if fmt == "geojson":
        check_json_depth(path, limits)
        if crs is None and (problem := _geojson_crs_problem(path)) is not None:
            problems.append(problem)
    layer = _pick_layer(path, layer, kind)
    try:
        info = pyogrio.read_info(path, layer=layer, encoding=encoding)
        _check_count(int(info.get("features", 0) or 0), limits, path.name)
        meta, _, wkbs, field_data = pyogrio.raw.read(path, layer=layer, encoding=encoding, datetime_as_string=True)
    except pyogrio.errors.DataSourceError as err:
        msg = f"{path.name} cannot be read: {err}"
        raise ValidationError(path.name, [Problem("unreadable_file", msg)]) from err
    frame = pd.DataFrame({str(name): values for name, values in zip(meta["fields"], field_data, strict=True)})
    if (
        fmt == "shapefile"
        and encoding is None
        and str(info.get("encoding") or "").upper() in ("ISO-8859-1", "LATIN1")
        and not _has_cpg(path)
        and (problem := _undeclared_encoding_problem(path, frame)) is not None
    ):
        problems.append(problem)
    if wkbs is None:
        wkbs = np.full(len(frame), None, dtype=object)
    geoms = _geoms_from_wkb(wkbs, limits, path.name, _id_values(frame, columns, kind), problems)
    return frame, geoms, meta.get("crs")


def _read_parquet(
    path: Path, kind: LayerKind, columns: Mapping[str, str], limits: Limits, problems: list[Problem]
) -> tuple[pd.DataFrame, np.ndarray, object]:
    import json

    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (OSError, ValueError) as err:
        msg = f"{path.name} is not a readable Parquet file: {err}"
        raise ValidationError(path.name, [Problem("unreadable_file", msg)]) from err
    _check_count(pf.metadata.num_rows, limits, path.name)
    raw_geo = (pf.schema_arrow.metadata or {}).get(b"geo")
    if raw_geo is None:
        msg = "the Parquet file has no GeoParquet 'geo' metadata: write it with geopandas .to_parquet() or GDAL"
        raise ValidationError(path.name, [Problem("not_geoparquet", msg)])
    try:
        geo = json.loads(raw_geo)
        gcol = str(geo.get("primary_column", "geometry"))
        gmeta = geo.get("columns", {}).get(gcol, {})
    except (ValueError, AttributeError) as err:
        msg = f"the GeoParquet 'geo' metadata is not valid ({err}): write the file with geopandas .to_parquet() or GDAL"
        raise ValidationError(path.name, [Problem("bad_geoparquet_metadata", msg)]) from err
    if gcol not in pf.schema_arrow.names:
        msg = (
            f"the GeoParquet metadata names the geometry column {gcol!r}, but the file has columns "
            f"{', '.join(map(repr, pf.schema_arrow.names))}: fix the 'geo' metadata"
        )
        raise ValidationError(path.name, [Problem("bad_geoparquet_metadata", msg)])
    # GeoParquet: an absent "crs" means OGC:CRS84; an explicit null means unknown. PROJJSON
    # (a dict) is parsed by the CRS check, which reports it if pyproj does not understand it.
    crs: object = gmeta.get("crs", "OGC:CRS84") if isinstance(gmeta, dict) else None
    table = pf.read()
    frame = table.drop([gcol]).to_pandas()
    if not isinstance(gmeta, dict) or str(gmeta.get("encoding", "WKB")).upper() == "WKB":
        wkbs = table.column(gcol).to_pylist()
        geoms = _geoms_from_wkb(wkbs, limits, path.name, _id_values(frame, columns, kind), problems)
    else:
        # GeoArrow native encodings hold no collections (nothing to nest); vertices are checked later.
        geoms = np.asarray(gpd.read_parquet(path, columns=[gcol]).geometry.array, dtype=object)
    return frame, geoms, crs


def _find_column(names: list[str], candidates: tuple[str, ...]) -> str | None:
    lower = {n.strip().lower(): n for n in names}
    for c in candidates:
        if c in lower:
            return lower[c]
    return None


_CSV_CHUNK_ROWS = 200_000
# The cells pandas' CSV reader takes as missing (its default ``na_values``): the Arrow path matches it.
_PANDAS_NA_TEXT = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
]  # fmt: skip


def _read_csv_text(path: Path, encoding: str, sep: str, limits: Limits) -> pd.DataFrame:
    """Read a CSV as text columns, streamed in blocks straight into Arrow strings.

    pandas' parser builds a Python object per cell (~60 bytes): read whole, a 10 M-row file
    held every cell that way at once. Arrow's streaming reader parses 16 MiB blocks into
    compact string arrays (about the file's size in all) with no Python object per cell;
    reading stops past ``limits.max_features``. Other encodings than UTF-8, and files Arrow's
    parser refuses, go through pandas in chunks of 200,000 rows, each kept as Arrow strings.
    """
    if encoding.replace("_", "-").lower() in ("utf-8-sig", "utf-8", "utf8"):
        try:
            return _read_csv_arrow(path, sep, limits)
        except pa.ArrowInvalid:
            pass  # pandas reports what is wrong, with the row
    parts: list[pd.DataFrame] = []
    rows = 0
    compact = pd.StringDtype("pyarrow")
    with pd.read_csv(path, dtype="string", encoding=encoding, sep=sep, chunksize=_CSV_CHUNK_ROWS) as reader:
        for chunk in reader:
            rows += len(chunk)
            _check_count(rows, limits, path.name)
            parts.append(chunk.astype(compact))
    if not parts:  # a header and no rows
        return pd.read_csv(path, dtype="string", encoding=encoding, sep=sep).astype(compact)
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _csv_names(path: Path, sep: str) -> list[str]:
    header = pd.read_csv(path, dtype="string", encoding="utf-8-sig", sep=sep, nrows=0)
    names = [str(c) for c in header.columns]
    if len(set(names)) != len(names):
        msg = "duplicate column names"
        raise pa.ArrowInvalid(msg)  # pandas renames them ("a.1"); keep its behaviour
    return names


def _arrow_csv_options(names: list[str], sep: str, block_size: int = 1 << 24, threads: bool = True) -> dict[str, Any]:
    import pyarrow.csv as pacsv

    return {
        "read_options": pacsv.ReadOptions(block_size=block_size, use_threads=threads, encoding="utf8"),
        "parse_options": pacsv.ParseOptions(delimiter=sep, newlines_in_values=True),
        "convert_options": pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            null_values=_PANDAS_NA_TEXT,
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    }


def _read_csv_arrow(path: Path, sep: str, limits: Limits) -> pd.DataFrame:
    import pyarrow.csv as pacsv

    names = _csv_names(path, sep)
    reader = pacsv.open_csv(path, **_arrow_csv_options(names, sep))
    batches = []
    rows = 0
    for batch in reader:
        rows += batch.num_rows
        _check_count(rows, limits, path.name)
        batches.append(batch)
    table = pa.Table.from_batches(batches, schema=reader.schema)
    frame = table.to_pandas(types_mapper=lambda _t: pd.StringDtype("pyarrow"))
    frame.columns = names
    return frame


def _iter_csv_text(
    path: Path, encoding: str, sep: str, limits: Limits, chunk_rows: int, progress: Callable[[int], None] | None
) -> Iterator[pd.DataFrame]:
    """Yield the CSV's rows as text columns, ``chunk_rows`` at a time (a file with no rows: one empty part).

    The streamed form of :func:`_read_csv_text`: Arrow's reader for UTF-8, pandas for other
    encodings and for files Arrow refuses (pandas then starts again and skips the rows
    already given). ``progress`` is called with the bytes read so far.
    """
    done = 0
    if encoding.replace("_", "-").lower() in ("utf-8-sig", "utf-8", "utf8"):
        try:
            for part in _iter_csv_arrow(path, sep, limits, chunk_rows, progress):
                done += len(part)
                yield part
            return
        except pa.ArrowInvalid:
            pass  # pandas reports what is wrong, with the row
    compact = pd.StringDtype("pyarrow")
    given = done > 0
    with (
        open(path, "rb") as fh,
        pd.read_csv(fh, dtype="string", encoding=encoding, sep=sep, chunksize=chunk_rows) as reader,
    ):
        rows = 0
        for chunk in reader:
            start, rows = rows, rows + len(chunk)
            _check_count(rows, limits, path.name)
            if rows <= done:
                continue
            if progress is not None:
                progress(fh.tell())
            given = True
            yield chunk.iloc[max(done - start, 0) :].astype(compact).reset_index(drop=True)
    if not given:  # a header and no rows
        yield pd.read_csv(path, dtype="string", encoding=encoding, sep=sep).astype(compact)


def _iter_csv_arrow(
    path: Path, sep: str, limits: Limits, chunk_rows: int, progress: Callable[[int], None] | None
) -> Iterator[pd.DataFrame]:
    import pyarrow.csv as pacsv

    names = _csv_names(path, sep)
    with open(path, "rb") as fh:
        # 1 MiB blocks, read when asked for: a threaded reader reads and parses ahead (its memory grows
        # with the block size, and the file position no longer says how far the parts have got)
        reader = pacsv.open_csv(fh, **_arrow_csv_options(names, sep, block_size=1 << 20, threads=False))

        def frame_of(batches: list[pa.RecordBatch]) -> pd.DataFrame:
            frame = pa.Table.from_batches(batches, schema=reader.schema).to_pandas(
                types_mapper=lambda _t: pd.StringDtype("pyarrow")
            )
            frame.columns = names
            return frame

        pending: list[pa.RecordBatch] = []
        held = rows = 0
        for batch in reader:
            rows += batch.num_rows
            _check_count(rows, limits, path.name)
            pending.append(batch)
            held += batch.num_rows
            if progress is not None:
                progress(fh.tell())
            while held >= chunk_rows:
                table = pa.Table.from_batches(pending, schema=reader.schema)
                yield frame_of(table.slice(0, chunk_rows).to_batches())
                rest = table.slice(chunk_rows)
                pending, held = rest.to_batches(), rest.num_rows
        if held or not rows:
            yield frame_of(pending)


def _iter_csv_parts(
    path: Path, encoding: str, sep: str, limits: Limits, chunk_rows: int, progress: Callable[[int], None] | None
) -> Iterator[pd.DataFrame]:
    """:func:`_iter_csv_text`, with text that cannot be decoded or parsed reported as :func:`_read_csv` does."""
    try:
        yield from _iter_csv_text(path, encoding, sep, limits, chunk_rows, progress)
    except UnicodeDecodeError as err:
        msg = (
            f"{path.name} is not valid {encoding} text at byte {err.start:,}: save it as UTF-8, or name its "
            "encoding with --encoding gbk (Python: encoding='gbk')"
        )
        raise ValidationError(path.name, [Problem("bad_encoding", msg)]) from err
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        msg = f"{path.name} cannot be parsed as CSV: {err}"
        raise ValidationError(path.name, [Problem("unreadable_file", msg)]) from err


def _read_csv(
    path: Path,
    kind: LayerKind,
    columns: Mapping[str, str],
    crs: object,
    limits: Limits,
    encoding: str | None,
    problems: list[Problem],
) -> tuple[pd.DataFrame, np.ndarray, object, bool]:
    if kind is LayerKind.GRIDS:
        msg = "a CSV holds points; grids need polygons: give a GeoPackage, GeoJSON, GeoParquet or Shapefile"
        raise ValidationError(path.name, [Problem("wrong_format", msg)])
    enc = encoding or "utf-8-sig"
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        frame = _read_csv_text(path, enc, sep, limits)
    except UnicodeDecodeError as err:
        msg = (
            f"{path.name} is not valid {enc} text at byte {err.start:,}: save it as UTF-8, or name its "
            "encoding with --encoding gbk (Python: encoding='gbk')"
        )
        raise ValidationError(path.name, [Problem("bad_encoding", msg)]) from err
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        msg = f"{path.name} cannot be parsed as CSV: {err}"
        raise ValidationError(path.name, [Problem("unreadable_file", msg)]) from err
    xy = _csv_xy_columns([str(c) for c in frame.columns], columns, problems)
    geoms = _csv_points(frame, xy, problems)
    crs, assumed = _csv_crs(xy, crs)
    used = [c for c in (xy["x"], xy["y"]) if c is not None]
    return frame.drop(columns=used), geoms, crs, assumed


def _csv_xy_columns(names: list[str], columns: Mapping[str, str], problems: list[Problem]) -> dict[str, str | None]:
    """Return the CSV's x and y columns (mapped, or found by name); missing ones become problems."""
    has = ", ".join(repr(c) for c in names) or "none"
    xy: dict[str, str | None] = {}
    for key, candidates in (("x", _X_NAMES), ("y", _Y_NAMES)):
        if key in columns:
            if columns[key] not in names:
                msg = f"--{key}-col {columns[key]!r}: no such column; the file has {has}"
                problems.append(Problem("unknown_mapped_column", msg))
                xy[key] = None
            else:
                xy[key] = columns[key]
        else:
            xy[key] = _find_column(names, candidates)
            if xy[key] is None:
                what = "longitude / x" if key == "x" else "latitude / y"
                msg = f"no {what} column found: name it with --{key}-col NAME (Python: columns={{{key!r}: NAME}}); the file has {has}"
                problems.append(Problem("missing_column", msg))
    return xy


def _csv_points(
    frame: pd.DataFrame, xy: Mapping[str, str | None], problems: list[Problem], row_offset: int = 0
) -> np.ndarray:
    """Points from the x/y text columns; text that is not a number becomes a problem naming its rows."""
    n = len(frame)
    coords = {}
    for key in ("x", "y"):
        name = xy[key]
        if name is None:
            coords[key] = np.full(n, np.nan)
            continue
        text = frame[name].str.strip()
        num = pd.to_numeric(text, errors="coerce").astype("float64")
        bad = (text.notna() & (text != "") & num.isna()).to_numpy(dtype=bool)
        if bad.any():
            rows = tuple(int(r) + row_offset for r in np.flatnonzero(bad))
            sample = ", ".join(repr(str(v)) for v in text[bad].unique()[:3])
            shown = ", ".join(str(r) for r in rows[:10]) + (f" (+{len(rows) - 10} more)" if len(rows) > 10 else "")
            msg = f"column {name!r} is not a number ({sample}) at rows {shown}: write decimal degrees such as 117.2"
            problems.append(Problem("bad_coordinate", msg, rows))
        coords[key] = num.to_numpy()
    return np.asarray(shapely.points(coords["x"], coords["y"]), dtype=object)


def _csv_crs(xy: Mapping[str, str | None], crs: object) -> tuple[object, bool]:
    """Return the CRS of a CSV and whether it was assumed (EPSG:4326 for lon/lat column names)."""
    xname, yname = xy["x"], xy["y"]
    if (
        crs is None
        and xname is not None
        and yname is not None
        and xname.strip().lower() in _LONLAT_NAMES
        and yname.strip().lower() in _LONLAT_NAMES
    ):
        return "EPSG:4326", True
    return crs, False


def read_layer(
    src: str | os.PathLike[str],
    kind: LayerKind | str,
    *,
    columns: Mapping[str, str] | None = None,
    layer: str | None = None,
    crs: object = None,
    datum: str = "wgs84",
    limits: Limits | None = None,
    tz: str | None = None,
    encoding: str | None = None,
    hierarchy: bool = True,
) -> gpd.GeoDataFrame:
    r"""Read a grid, incident or camera layer from a file, checked at the door.

    Parameters
    ----------
    src
        A GeoPackage, GeoJSON, GeoParquet, Shapefile (``.shp``, a zipped one, or a
        folder) or CSV file.
    kind
        ``"grids"``, ``"incidents"`` or ``"cameras"``.
    columns
        Schema name -> source column, for files that use other names, e.g.
        ``{"id": "编号", "parent": "上级", "x": "经度", "y": "纬度"}`` (keys:
        :data:`MAPPING_KEYS`). A mapped column replaces a column that already has
        the target name. Without ``x``/``y``, CSV readers look for lon/lng/longitude/经度
        and lat/latitude/纬度 (or x/y).
    layer
        Layer of a multi-layer file (GeoPackage). Defaults to the only layer, or to the
        layer named like ``kind``.
    crs
        The CRS the data is in, for files that do not say (CSV, Shapefile without
        ``.prj``). If the file declares a different CRS, that is a problem. A CSV whose
        coordinate columns are named lon/lat (经度/纬度) is taken as EPSG:4326 (reported
        in ``attrs["crs_assumed"]``); one with x/y columns needs ``crs``.
    datum
        ``"wgs84"`` (default), ``"gcj02"`` (Gaode/AMap, Tencent) or ``"bd09"`` (Baidu):
        coordinates are converted to WGS-84. Needs lon/lat coordinates.
    limits
        Safety limits (depth, vertices, features, bytes); defaults to :class:`Limits`.
    tz
        Timezone of naive timestamps, e.g. ``"Asia/Shanghai"``.
    encoding
        Text encoding of CSV / Shapefile attributes (e.g. ``"gbk"``); CSV defaults to UTF-8.
    hierarchy
        Check the grids' parent links within the file (default). ``False`` for grids
        appended below a stored layer: their parents may be stored ones, so the caller
        checks the combined layer.

    Returns
    -------
    geopandas.GeoDataFrame
        In EPSG:4326 with the schema's dtypes, schema columns first (extra columns
        kept). ``attrs`` holds ``invalid_geometries`` (count of invalid polygons kept),
        ``invalid_geometry_ids``, ``source_crs``, ``crs_assumed``, ``datum``, ``source``.

    Raises
    ------
    ValidationError
        Listing every problem of the file, each with its rows and the fix.
    InputTooLargeError
        If the file breaks a limit (size, features, nesting depth, vertices).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "cams.csv"
    >>> _ = p.write_text("编号,经度,纬度,朝向,视角,距离,状态\nC1,117.2,39.1,90,60,50,online\n", encoding="utf-8")
    >>> cams = read_layer(p, "cameras", columns={"id": "编号", "heading": "朝向", "fov": "视角",
    ...                                           "range": "距离", "status": "状态"})
    >>> cams[["camera_id", "fov_deg"]].values.tolist(), cams.crs.to_epsg()
    ([['C1', 60.0]], 4326)
    """
    path = Path(src)
    source = path.name
    try:
        kind = LayerKind(kind)
    except ValueError as err:
        msg = f"unknown layer kind {kind!r}: use one of {', '.join(k.value for k in LayerKind)}"
        raise ValidationError(source, [Problem("unknown_kind", msg)]) from err
    d = str(datum).lower().replace("-", "").replace("_", "")
    if d not in DATUMS:
        msg = f"unknown datum {datum!r}: use one of {', '.join(DATUMS)}"
        raise ValidationError(source, [Problem("unknown_datum", msg)])
    limits = limits or Limits()
    columns = dict(columns or {})
    if not path.exists():
        msg = f"{path} does not exist"
        raise StoreError(msg)
    fmt = _format_of(path)
    if path.is_file():
        check_file_size(path, limits)
    problems: list[Problem] = []
    assumed = False
    if fmt == "csv":
        frame, geoms, file_crs, assumed = _read_csv(path, kind, columns, crs, limits, encoding, problems)
        if assumed:
            crs = None
    else:
        for key in ("x", "y"):
            if key in columns:
                problems.append(Problem("mapping_not_for_format", f"--{key}-col applies to CSV files only"))
        if fmt == "parquet":
            frame, geoms, file_crs = _read_parquet(path, kind, columns, limits, problems)
        else:
            frame, geoms, file_crs = _read_ogr(path, kind, fmt, layer, columns, limits, encoding, problems, crs)
    use_crs: object = file_crs
    if crs is not None:
        # A CSV declares no CRS (file_crs is crs itself). A CRS that does not parse is not a
        # conflict: the given one is reported by the CRS check, and a file's unreadable CRS
        # is exactly what crs= overrides.
        if fmt != "csv" and file_crs is not None:
            try:
                same = CRS.from_user_input(file_crs).equals(CRS.from_user_input(crs), ignore_axis_order=True)
            except _PyprojCRSError:
                same = True
            if not same:
                msg = f"the file declares CRS {file_crs} but crs={crs} was given: drop --crs, or fix the file's CRS"
                problems.append(Problem("crs_conflict", msg))
        use_crs = crs
    frame = _apply_mapping(frame, columns, kind, problems)
    frame = frame.reset_index(drop=True)
    checked = check_frame(
        frame,
        geoms,
        kind,
        crs=use_crs,
        tz=tz,
        limits=limits,
        from_file=True,
        count_vertices=fmt == "parquet",
        extra=problems,
        hierarchy=hierarchy,
    )
    if d != "wgs84" and checked.crs is not None and not checked.crs.is_geographic:
        checked.problems.append(
            Problem(
                "datum_needs_lonlat",
                f"--datum {d} converts lon/lat, but the data is in the projected CRS {checked.crs.to_string()}: "
                "give the lon/lat file",
            )
        )
    if checked.problems:
        raise ValidationError(source, checked.problems)

    transform = None
    if d != "wgs84":

        def transform(xy: np.ndarray) -> np.ndarray:
            lon, lat = to_wgs84(xy[:, 0], xy[:, 1], d)
            return np.column_stack([lon, lat])

    return finish_frame(
        frame,
        geoms,
        kind,
        checked,
        transform=transform,
        attrs={"source": str(path), "datum": d, "crs_assumed": assumed},
    )


def read_layer_chunks(
    src: str | os.PathLike[str],
    kind: LayerKind | str,
    *,
    columns: Mapping[str, str] | None = None,
    crs: object = None,
    datum: str = "wgs84",
    limits: Limits | None = None,
    tz: str | None = None,
    encoding: str | None = None,
    chunk_rows: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> LayerChunks:
    r"""Read a CSV layer of points in parts of ``chunk_rows`` rows, each checked at the door.

    The streamed form of :func:`read_layer` for CSV files of incidents or cameras, in
    memory bounded by the part size (plus 12 bytes a row to find duplicate ids): every
    check of :func:`read_layer` runs on every row, problems name rows of the whole file
    (0-based) and its line numbers, and the parts are what :func:`read_layer` would
    return, cut into pieces (same rows, order, dtypes and geometry).

    Parameters
    ----------
    src, kind, columns, crs, datum, limits, tz, encoding
        As for :func:`read_layer`; ``src`` is a CSV (``.csv``, ``.txt``, ``.tsv``).
    chunk_rows
        Rows per part (default 50,000).
    progress
        Called with the number of bytes of the file read so far (for a progress bar).

    Returns
    -------
    LayerChunks
        Iterate over it once for the GeoDataFrame parts. The iteration raises
        :class:`~layers.errors.ValidationError` at its end if any row had a problem (no
        part is yielded after the first problem), so a consumer that writes the parts in
        one transaction writes nothing. Afterwards, its ``rows``, ``source_crs``,
        ``crs_assumed``, ``datum``, ``warnings`` and ``sample`` (up to 100,000 of the
        points, drawn uniformly) describe the whole file.

    Raises
    ------
    ValidationError
        If the file is not a CSV or the kind is ``grids`` (before any part is read).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "cams.csv"
    >>> _ = p.write_text("camera_id,lon,lat,heading_deg,fov_deg,range_m,status\n"
    ...                  "C1,117.2,39.1,90,60,50,online\nC2,117.3,39.2,0,360,30,online\n"
    ...                  "C3,117.4,39.3,45,90,40,offline\n", encoding="utf-8")
    >>> parts = read_layer_chunks(p, "cameras", chunk_rows=2)
    >>> [len(part) for part in parts], parts.rows
    ([2, 1], 3)
    """
    from layers._csv_stream import DEFAULT_CHUNK_ROWS, LayerChunks

    path = Path(src)
    try:
        kind = LayerKind(kind)
    except ValueError as err:
        msg = f"unknown layer kind {kind!r}: use one of {', '.join(k.value for k in LayerKind)}"
        raise ValidationError(path.name, [Problem("unknown_kind", msg)]) from err
    d = str(datum).lower().replace("-", "").replace("_", "")
    if d not in DATUMS:
        msg = f"unknown datum {datum!r}: use one of {', '.join(DATUMS)}"
        raise ValidationError(path.name, [Problem("unknown_datum", msg)])
    if not path.exists():
        msg = f"{path} does not exist"
        raise StoreError(msg)
    if _format_of(path) != "csv":
        msg = f"{path.name}: read_layer_chunks reads CSV files; use read_layer for this file"
        raise ValidationError(path.name, [Problem("wrong_format", msg)])
    if kind is LayerKind.GRIDS:
        msg = "a CSV holds points; grids need polygons: give a GeoPackage, GeoJSON, GeoParquet or Shapefile"
        raise ValidationError(path.name, [Problem("wrong_format", msg)])
    limits = limits or Limits()
    if path.is_file():
        check_file_size(path, limits)
    return LayerChunks(
        path,
        kind,
        columns=dict(columns or {}),
        crs=crs,
        datum=d,
        limits=limits,
        tz=tz,
        encoding=encoding,
        chunk_rows=int(chunk_rows or DEFAULT_CHUNK_ROWS),
        progress=progress,
    )


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _defuse(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_csv(frame: pd.DataFrame, dst: str | os.PathLike[str]) -> Path:
    """Write ``frame`` as UTF-8 CSV (no index, no geometry) that a spreadsheet opens as data, never as formulas.

    The file starts with a UTF-8 byte-order mark: Excel and WPS read a CSV without one in the
    system's ANSI code page (GBK on Chinese Windows) and would show every Chinese name garbled;
    pandas, GDAL, QGIS and ``geogrid import`` skip the mark.

    Text cells starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return are
    prefixed with ``'`` (OWASP, "CSV injection"): names and categories come from citizens'
    reports and must not run as formulas (``=HYPERLINK(...)``, ``=cmd|...``) in Excel or WPS.
    Numbers (negative ones included) are written as numbers; every text cell is quoted, so a
    line break inside a text stays inside its cell.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = write_csv(pd.DataFrame({"category": ["=1+2", "噪音"], "count": [-1, 2]}), p)
    >>> print(p.read_text(encoding="utf-8-sig"), end="")
    "category","count"
    "'=1+2",-1
    "噪音",2
    """
    out = pd.DataFrame(frame).copy()
    if isinstance(out, gpd.GeoDataFrame) or "geometry" in out.columns:
        out = pd.DataFrame(
            out.drop(columns=[c for c in out.columns if isinstance(out[c].dtype, gpd.array.GeometryDtype)])
        )
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col].dtype):
            out[col] = out[col].map(_defuse, na_action="ignore")
    out.columns = [str(_defuse(str(c))) for c in out.columns]
    path = Path(dst)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Every text cell quoted: a CR or LF inside a citizen's text stays inside its cell.
        out.to_csv(path, index=False, encoding="utf-8-sig", quoting=csv.QUOTE_NONNUMERIC)
    except OSError as err:
        msg = f"cannot write {path}: {err.strerror or err}; name a file in a folder you can write"
        raise StoreError(msg) from err
    return path


_WRITE_DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON"}


def write_layer(gdf: gpd.GeoDataFrame, dst: str | os.PathLike[str], *, layer: str | None = None) -> Path:
    """Write a layer to a GeoPackage, GeoJSON or GeoParquet file, chosen by extension.

    A GeoPackage keeps its other layers (``layer`` is replaced, default: the file stem).
    GeoJSON and GeoParquet files are written to a temporary file and renamed over
    ``dst``, so a failed write leaves any previous file intact. Text is UTF-8.

    Parameters
    ----------
    gdf
        The layer (its CRS is kept).
    dst
        ``.gpkg``, ``.geojson`` / ``.json`` or ``.parquet`` / ``.geoparquet``.
    layer
        Layer name inside a GeoPackage.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    StoreError
        If the extension is not one of those, the frame has no CRS, or writing fails.

    Examples
    --------
    >>> import pathlib, tempfile, geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame({"name": ["网格一"]}, geometry=[shapely.Point(117.2, 39.1)], crs="EPSG:4326")
    >>> out = write_layer(g, pathlib.Path(tempfile.mkdtemp()) / "g.geojson")
    >>> gpd.read_file(out)["name"].tolist()
    ['网格一']
    """
    path = Path(dst)
    ext = path.suffix.lower()
    if gdf.crs is None:
        msg = f"cannot write {path.name}: the layer has no CRS; set it with gdf.set_crs(...)"
        raise StoreError(msg)
    if ext not in (*_WRITE_DRIVERS, ".parquet", ".geoparquet"):
        msg = f"cannot write {path.name}: geogrid writes .gpkg, .geojson, .json, .parquet and .geoparquet"
        raise StoreError(msg)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if ext == ".gpkg":
            pyogrio.write_dataframe(
                gdf,
                path,
                layer=layer or path.stem,
                driver="GPKG",
                use_arrow=False,
                layer_options={"OVERWRITE": "YES"},
            )
            return path
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=ext, dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            if ext in (".parquet", ".geoparquet"):
                gdf.to_parquet(tmp)
            else:
                tmp.unlink()
                pyogrio.write_dataframe(gdf, tmp, driver="GeoJSON", use_arrow=False)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    except (pyogrio.errors.DataSourceError, pyogrio.errors.FieldError, OSError, ValueError) as err:
        msg = f"cannot write {path}: {err}"
        raise StoreError(msg) from err
    return path


def describe(gdf: gpd.GeoDataFrame) -> dict[str, Any]:
    """Summarise what :func:`read_layer` did, from ``gdf.attrs`` (for CLI output)."""
    return {
        "rows": len(gdf),
        "source_crs": gdf.attrs.get("source_crs"),
        "crs_assumed": bool(gdf.attrs.get("crs_assumed", False)),
        "datum": gdf.attrs.get("datum", "wgs84"),
        "invalid_geometries": int(gdf.attrs.get("invalid_geometries", 0)),
        "invalid_geometry_ids": list(gdf.attrs.get("invalid_geometry_ids", [])),
        "warnings": list(gdf.attrs.get("warnings", [])),
    }
