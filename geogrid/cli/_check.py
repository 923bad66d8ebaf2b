"""``geogrid check``: check the grid hierarchy of a store or a vector file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

import geopandas as gpd
import pyogrio

from geogrid.cli._common import (
    EXEMPT_HELP,
    EXIT_FINDINGS,
    EXIT_OK,
    OUTLINE_HELP,
    STORE_OR_PATH,
    fail,
    grid_file_options,
    handle_errors,
    is_store_url,
    limit_options,
    main,
    measure_option,
    open_existing_store,
    polygon_file_option,
    progress_bar,
    source_name,
)
from geogrid.hierarchy import FINDING_KINDS, REPORTED_PROBLEM_KINDS, CheckResult, check_grids
from layers.errors import StoreError, ValidationError
from layers.io import Limits, read_layer
from layers.store import GeoPackageStore

__all__ = ["check", "format_report"]

_WORST = 10


def _is_store(src: Path | str) -> bool:
    """Tell whether ``src`` is a PostGIS URL or a GeoPackage with a ``grids`` layer (a geogrid store)."""
    if is_store_url(src):
        return True
    src = Path(src)
    if src.suffix.lower() != ".gpkg":
        return False
    try:
        names = [str(n) for n in pyogrio.list_layers(src)[:, 0]]
    except pyogrio.errors.DataSourceError:
        return False
    return "grids" in names


_MAPPED = {
    "id": "grid_id",
    "parent": "parent_id",
    "level": "level",
    "level_name": "level_name",
    "name": "name",
    "households": "households",
    "population": "population",
    "shops": "shops",
}


def _read_raw(
    src: Path, columns: dict[str, str], layer: str | None, crs: str | None, encoding: str | None = None
) -> gpd.GeoDataFrame:
    """Read a file that passed the door's guards but has hierarchy problems: check reports them."""
    if src.suffix.lower() in (".parquet", ".geoparquet"):
        gdf = gpd.read_parquet(src)
    else:
        if layer is None:
            names = [str(n) for n in pyogrio.list_layers(src)[:, 0]]
            layer = "grids" if "grids" in names else None
        gdf = pyogrio.read_dataframe(src, layer=layer, encoding=encoding)
    gdf = gdf.rename(columns={src_col: _MAPPED[key] for key, src_col in columns.items() if key in _MAPPED})
    if crs is not None and gdf.crs is None:
        gdf = gdf.set_crs(crs)
    return gdf


def _load(
    src: Path | str,
    columns: dict[str, str],
    layer: str | None,
    crs: str | None,
    encoding: str | None = None,
    limits: Limits | None = None,
) -> gpd.GeoDataFrame:
    if isinstance(src, str):  # a PostGIS URL: its grids layer, as stored
        if layer is not None or columns or crs is not None or encoding is not None:
            fail("--layer, --crs, --encoding and the column options are for files; a PostGIS store is read as it is")
        return open_existing_store(src, ("grids",)).read("grids")
    if not src.exists():
        msg = f"{src} does not exist"
        raise StoreError(msg)
    if layer is None and not columns and crs is None and encoding is None and _is_store(src):
        return GeoPackageStore(src).read("grids")
    try:
        return read_layer(src, "grids", columns=columns, layer=layer, crs=crs, encoding=encoding, limits=limits)
    except ValidationError as err:
        # Problems the checks report as findings (orphans, cycles, empty geometries) are not
        # a reason to refuse the file; CSV has no raw reader here, so it stays refused.
        if err.kinds <= REPORTED_PROBLEM_KINDS and src.suffix.lower() not in (".csv", ".txt", ".tsv"):
            return _read_raw(src, columns, layer, crs, encoding)
        raise


def format_report(result: CheckResult, *, source: str, worst: int = _WORST) -> str:
    """Format the human-readable report: counts per kind and level, then the worst items."""
    s = result.summary
    levels = sorted(s["levels"])
    lines = [
        f"{source}: {s['grids']:,} grids on levels "
        + ", ".join(f"{lv} ({s['levels'][lv]:,})" for lv in levels)
        + f"; measured in {s['metric_crs']}, gap width {s['gap_width_m']:g} m",
    ]
    if result.sound:
        lines.append("sound: no findings")
        return "\n".join(lines)
    counts: dict[str, dict[int, int]] = s["counts"]
    areas: dict[str, dict[int, float]] = s["area_m2"]
    shown_levels = sorted({lv for per in counts.values() for lv in per})
    head = f"{'kind':18}" + "".join(f"{'level ' + str(lv):>10}" for lv in shown_levels) + f"{'area m²':>14}"
    lines += ["", head, "-" * len(head)]
    for kind in FINDING_KINDS:
        if kind not in counts:
            continue
        row = f"{kind:18}" + "".join(f"{counts[kind].get(lv, 0):>10,}" for lv in shown_levels)
        total = sum(areas.get(kind, {}).values())
        row += f"{total:>14,.1f}" if kind in areas else f"{'':>14}"
        lines.append(row)
    f = result.findings
    size = f["area_m2"].fillna(f["length_m"]).fillna(0.0)
    top = f.assign(_size=size).sort_values("_size", ascending=False, kind="stable").head(worst)
    lines += ["", f"worst {len(top)} of {len(f):,} findings (by area or length):"]
    for _, r in top.iterrows():
        lines.append(f"  [{r['kind']}, level {r['level']}] {r['message']}")
    return "\n".join(lines)


@main.command("check")
@click.argument("src", type=STORE_OR_PATH)
@click.option("--json", "as_json", is_flag=True, help="print the findings as JSON (geometry as GeoJSON, WGS-84)")
@grid_file_options
@limit_options
@measure_option("--gap-width", 1.0, "M", "edges closer than this (metres) without coinciding are edge mismatches")
@measure_option("--min-area", 0.01, "M2", "ignore overlaps, gaps and leaks smaller than this (m²)")
@polygon_file_option("outline", OUTLINE_HELP)
@polygon_file_option("exempt", EXEMPT_HELP)
@click.option(
    "--level", "levels", type=click.IntRange(min=0), multiple=True, help="report only this level (repeatable)"
)
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    default=None,
    metavar="HTML",
    help="also write a QA report: one self-contained page (map + table) that opens offline",
)
@click.option(
    "--reference",
    is_flag=True,
    help="compute overlaps, gaps and nesting with the slow reference (plain pairwise GEOS) to double-check a verdict",
)
@handle_errors
def check(
    src: Path | str,
    as_json: bool,
    columns: dict[str, str],
    layer: str | None,
    crs: str | None,
    encoding: str | None,
    max_vertices: int,
    max_depth: int,
    max_file_bytes: int,
    gap_width: float,
    min_area: float,
    outline: gpd.GeoDataFrame | None,
    exempt: gpd.GeoDataFrame | None,
    levels: tuple[int, ...],
    report: Path | None,
    reference: bool,
) -> None:
    r"""Check the grid hierarchy in SRC: gaps, overlaps, edges, nesting, parent links.

    SRC is a geogrid store (its `grids` layer; a GeoPackage or a PostGIS URL) or any vector file of grids
    (GeoPackage, GeoJSON, GeoParquet, Shapefile) read with the column mapping.
    Exit status: 0 sound, 1 findings, 2 unusable input (the reason on stderr).

    \b
    Examples:
      geogrid check demo.gpkg
      geogrid check 网格.geojson --id-col 编号 --parent-col 上级 --level-col 层级 --json
      geogrid check demo.gpkg --report qa.html
      geogrid check demo.gpkg --outline 辖区.geojson --exempt 水域.gpkg
      geogrid check demo.gpkg --reference      # slow, obviously correct; for a second opinion
    """
    limits = Limits(max_depth=max_depth, max_vertices=max_vertices, max_file_bytes=max_file_bytes)
    grids = _load(src, columns, layer, crs, encoding, limits)
    n_steps = 2 + 2 * len(set(grids["level"].dropna().astype(int)))
    with progress_bar(n_steps, "checking") as bar:

        def step(label: str) -> None:
            bar.set_postfix_str(label)
            bar.update(1)

        result = check_grids(
            grids,
            gap_width_m=gap_width,
            min_area_m2=min_area,
            outline=outline,
            exempt=exempt,
            levels=levels or None,
            progress=step,
            method="reference" if reference else "fast",
        )
    if report is not None:
        from geogrid._qa_report import report_html

        page = report_html(grids, result, title=f"{source_name(src)}: grid QA report")
        try:
            report.write_text(page, encoding="utf-8")
        except OSError as err:
            msg = f"cannot write the report {report}: {err}"
            raise StoreError(msg) from err
    if as_json:
        out: dict[str, Any] = result.to_dict()
        click.echo(json.dumps(out, ensure_ascii=False))
    else:
        click.echo(format_report(result, source=source_name(src)))
    sys.exit(EXIT_OK if result.sound else EXIT_FINDINGS)
