"""``geogrid import``: read a layer file, check it at the door, write it into a store."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

import geopandas as gpd

from geogrid.cli._common import (
    STORE_OR_PATH,
    column_mapping_options,
    handle_errors,
    limit_options,
    login_name,
    main,
    progress_bar,
)
from layers.datum import DATUMS
from layers.errors import GeogridWarning, Problem, StoreError, ValidationError, format_ids
from layers.io import FORMATS, Limits, describe, read_layer, read_layer_chunks
from layers.schema import SCHEMAS, LayerKind
from layers.store import Store, open_store
from layers.validate import datum_shift_hint, validate_layer

__all__ = ["import_layer", "merge_into_store"]


def merge_into_store(
    store: Store, kind: LayerKind, new: gpd.GeoDataFrame, *, mode: str, source: str
) -> gpd.GeoDataFrame:
    """Return the layer to write: ``new`` (replace) or the store's layer plus ``new`` (append).

    Appending refuses ids that the store already holds, and re-checks a grid hierarchy
    as a whole (new grids may hang below stored ones).

    Raises
    ------
    ValidationError
        Naming the rows of ``new`` whose ids already exist, or the hierarchy problems.
    """
    if mode == "replace" or not store.has(kind.value):
        return new
    schema = SCHEMAS[kind]
    existing = store.read(kind.value)
    id_col = schema.id_column
    clash = new[id_col].isin(set(existing[id_col].dropna())).to_numpy(dtype=bool)
    if clash.any():
        rows = tuple(int(r) for r in clash.nonzero()[0])
        ids = tuple(str(v) for v in new[id_col].to_numpy()[clash])
        msg = (
            f"{id_col} {format_ids(ids)} already in the store at rows "
            f"{', '.join(map(str, rows[:10]))}{' ...' if len(rows) > 10 else ''}: give new ids, "
            "or use --mode replace to replace the whole layer"
        )
        raise ValidationError(source, [Problem("id_exists", msg, rows, ids)])
    if kind is LayerKind.GRIDS:
        # checked with the file's rows first, so a problem's rows are the file's; the stored grids follow
        checked = pd.concat([new, existing], ignore_index=True)
        checked = gpd.GeoDataFrame(checked, geometry="geometry", crs=new.crs)
        checked = validate_layer(checked, kind, source=f"{source} appended to the stored grids")
        n = len(new)
        return checked.iloc[np.r_[n : len(checked), 0:n]].reset_index(drop=True)
    combined = pd.concat([existing, new], ignore_index=True)
    return gpd.GeoDataFrame(combined, geometry="geometry", crs=new.crs)


@main.command("import")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--kind",
    required=True,
    type=click.Choice([k.value for k in LayerKind]),
    help="what the file holds",
)
@click.option(
    "--into",
    "into",
    required=True,
    type=STORE_OR_PATH,
    help="the store to write: a GeoPackage (created if missing) or a PostGIS URL (postgresql://...?schema=NAME)",
)
@column_mapping_options
@click.option("--layer", default=None, help="layer to read from a multi-layer file (GeoPackage)")
@click.option("--crs", default=None, help="the CRS of the file, if it does not say (e.g. EPSG:4326 or EPSG:4547)")
@click.option(
    "--datum",
    type=click.Choice(DATUMS),
    default="wgs84",
    show_default=True,
    help="datum of lon/lat: gcj02 (Gaode/AMap, Tencent) and bd09 (Baidu) are converted to WGS-84",
)
@click.option("--tz", default=None, help="timezone of times written without one, e.g. Asia/Shanghai")
@click.option("--encoding", default=None, help="text encoding of a CSV or Shapefile (default UTF-8), e.g. gbk")
@click.option(
    "--mode",
    type=click.Choice(["replace", "append"]),
    default="replace",
    show_default=True,
    help="replace the store's layer, or append to it (ids must be new)",
)
@click.option(
    "--allow-empty",
    is_flag=True,
    help="let a file with no rows replace a stored layer that has rows (deletes them all)",
)
@limit_options
@click.option(
    "--chunk-rows",
    type=click.IntRange(min=1),
    default=50_000,
    show_default=True,
    help="rows of a CSV of incidents or cameras read, checked and staged at a time (memory use)",
)
@handle_errors
def import_layer(
    src: Path,
    kind: str,
    into: Path | str,
    columns: dict[str, str],
    layer: str | None,
    crs: str | None,
    datum: str,
    tz: str | None,
    encoding: str | None,
    mode: str,
    allow_empty: bool,
    max_vertices: int,
    max_depth: int,
    max_file_bytes: int,
    chunk_rows: int,
) -> None:
    r"""Check SRC at the door and write it into the store as the KIND layer.

    SRC is a GeoPackage, GeoJSON, GeoParquet, Shapefile or CSV (lon/lat columns).
    Every problem of the file is listed at once, with its rows and the fix, and
    nothing is written (exit status 2). A file with no rows does not replace a
    stored layer that has rows (an export that went wrong) unless --allow-empty. Invalid polygons of grids are kept and
    counted: `geogrid check` reports them and `geogrid repair` fixes them.
    A CSV of incidents or cameras is read in parts of --chunk-rows rows, so its
    size does not bound memory; it is written in one transaction all the same.

    \b
    Examples:
      geogrid import grids.gpkg --kind grids --into city.gpkg
      geogrid import 事件.csv --kind incidents --into city.gpkg --id-col 编号 \
          --time-col 上报时间 --x-col 经度 --y-col 纬度 --datum gcj02 --tz Asia/Shanghai --mode append
    """
    lk = LayerKind(kind)
    limits = Limits(max_depth=max_depth, max_vertices=max_vertices, max_file_bytes=max_file_bytes)
    if isinstance(into, Path) and into.is_dir():
        msg = f"--into {into} is a folder: name the GeoPackage file to write, e.g. {into / 'city.gpkg'}"
        raise StoreError(msg)
    if lk is not LayerKind.GRIDS and src.is_file() and FORMATS.get(src.suffix.lower()) == "csv":
        _import_csv_in_parts(
            src,
            lk,
            into,
            columns=columns,
            crs=crs,
            datum=datum,
            limits=limits,
            tz=tz,
            encoding=encoding,
            mode=mode,
            allow_empty=allow_empty,
            chunk_rows=chunk_rows,
        )
        return
    store = open_store(into)
    # grids appended to stored ones may hang below them: their links are checked with the stored layer
    below_stored = lk is LayerKind.GRIDS and mode == "append" and store.has(lk.value)
    gdf = read_layer(
        src,
        lk,
        columns=columns,
        layer=layer,
        crs=crs,
        datum=datum,
        limits=limits,
        tz=tz,
        encoding=encoding,
        hierarchy=not below_stored,
    )
    info: dict[str, Any] = describe(gdf)
    based_on = store.network_version() if lk is LayerKind.GRIDS else None  # before reading what is appended to
    if lk is not LayerKind.GRIDS and info["datum"] == "wgs84" and store.has("grids"):
        hint = datum_shift_hint(gdf, store.read("grids"))
        if hint is not None:
            warnings.warn(hint, GeogridWarning, stacklevel=1)
    if len(gdf) == 0 and mode == "replace" and not allow_empty:
        _refuse_emptying(store, lk, src.name)
    out = merge_into_store(store, lk, gdf, mode=mode, source=src.name)
    store.write({lk.value: out}, metadata={f"{lk.value}_source": src.name}, author=login_name(), based_on=based_on)
    lines = _summary(lk, src, into, mode, info["rows"], len(out), info)
    if lk is LayerKind.GRIDS:
        n_bad = info["invalid_geometries"]
        if n_bad:
            lines.append(
                f"invalid geometries kept: {n_bad} (e.g. {format_ids(info['invalid_geometry_ids'], limit=5)}): "
                f"`geogrid check {into}` reports them, `geogrid repair` fixes them"
            )
        else:
            lines.append("invalid geometries kept: 0")
    click.echo("\n".join(lines))


def _summary(
    lk: LayerKind, src: Path, into: Path | str, mode: str, rows: int, now: int, info: dict[str, Any]
) -> list[str]:
    crs_note = " (assumed from the lon/lat column names; pass --crs to override)" if info["crs_assumed"] else ""
    return [
        f"imported {rows:,} {lk.value} from {src.name} into {into} ({mode}; the layer now has {now:,} rows)",
        f"CRS seen: {info['source_crs']}{crs_note}; stored as EPSG:4326",
        "datum: WGS-84, no conversion"
        if info["datum"] == "wgs84"
        else f"datum: {info['datum'].upper()} converted to WGS-84",
    ]


def _import_csv_in_parts(
    src: Path,
    lk: LayerKind,
    into: Path | str,
    *,
    columns: dict[str, str],
    crs: str | None,
    datum: str,
    limits: Limits,
    tz: str | None,
    encoding: str | None,
    mode: str,
    allow_empty: bool,
    chunk_rows: int,
) -> None:
    """Import a CSV of points part by part: read, check and stage each, then write them in one transaction."""
    store = open_store(into)
    into_name = into.name if isinstance(into, Path) else "the store"
    with progress_bar(src.stat().st_size, f"importing {src.name}", unit="B") as bar:

        def progress(done: int) -> None:
            bar.update(done - bar.n)
            if done >= bar.total:  # what is left: the last parts, then one transaction into the store
                bar.set_description(f"writing {src.name} into {into_name}")

        parts = read_layer_chunks(
            src,
            lk,
            columns=columns,
            crs=crs,
            datum=datum,
            limits=limits,
            tz=tz,
            encoding=encoding,
            chunk_rows=chunk_rows,
            progress=progress,
        )

        def guarded() -> Iterator[gpd.GeoDataFrame]:
            """Yield the parts; with none holding a row, replacing: refuse before the transaction commits."""
            rows = 0
            for part in parts:
                rows += len(part)
                yield part
            if rows == 0 and mode == "replace" and not allow_empty:
                _refuse_emptying(store, lk, src.name)

        now = store.write_chunks(
            lk.value, guarded(), mode=mode, metadata={f"{lk.value}_source": src.name}, source=src.name
        )
    if parts.datum == "wgs84" and store.has("grids") and len(parts.sample):
        sample = gpd.GeoDataFrame(geometry=gpd.points_from_xy(parts.sample[:, 0], parts.sample[:, 1]), crs="EPSG:4326")
        total = None if len(sample) == parts.rows else parts.rows
        hint = datum_shift_hint(sample, store.read("grids"), of_total=total)
        if hint is not None:
            warnings.warn(hint, GeogridWarning, stacklevel=1)
    info = {"source_crs": parts.source_crs, "crs_assumed": parts.crs_assumed, "datum": parts.datum}
    click.echo("\n".join(_summary(lk, src, into, mode, parts.rows, now, info)))


def _refuse_emptying(store: Store, lk: LayerKind, source: str) -> None:
    """Refuse a file with no rows replacing a stored layer that has rows (ValidationError naming both fixes)."""
    stored = store.count(lk.value)
    if stored:
        msg = (
            f"the file has no rows: --mode replace would delete the {stored:,} {lk.value} stored; check the file "
            "(an export that went wrong?), or pass --allow-empty to empty the layer on purpose"
        )
        raise ValidationError(source, [Problem("no_rows", msg, (), ())])
