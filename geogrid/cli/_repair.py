"""``geogrid repair``: repair the grid hierarchy of a store or a vector file into a new file."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import pandas as pd

import geopandas as gpd

from geogrid.cli._check import _is_store, _load
from geogrid.cli._common import (
    EXEMPT_HELP,
    EXIT_FINDINGS,
    EXIT_OK,
    STORE_OR_PATH,
    fail,
    grid_file_options,
    handle_errors,
    is_store_url,
    limit_options,
    login_name,
    main,
    measure_option,
    polygon_file_option,
    source_name,
)
from geogrid.repair import RepairResult, repair_grids
from layers.errors import StoreError
from layers.io import Limits, write_csv
from layers.store import GeoPackageStore, open_store

__all__ = ["format_repair", "repair"]


def format_repair(result: RepairResult, *, source: str, out: str) -> str:
    """Format what a repair did: counts and areas per action, then every refusal."""
    s = result.summary
    lines = [f"{source} -> {out}: {s['changed']:,} grid(s) changed; measured in {s['metric_crs']}"]
    for action, count in s["counts"].items():
        area = s["area_m2"].get(action)
        lines.append(f"  {action:18}{count:>8,}" + (f"{area:>16,.1f} m²" if area is not None else ""))
    if not s["counts"]:
        lines.append("  nothing to repair")
    if len(result.refused):
        lines.append(f"refused {len(result.refused):,} (left as they were):")
        lines += [
            f"  [{k}, level {lv}] {m}"
            for k, lv, m in result.refused[["kind", "level", "message"]].itertuples(index=False)
        ]
    return "\n".join(lines)


@main.command("repair")
@click.argument("src", type=STORE_OR_PATH)
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="the repaired GeoPackage to write")
@measure_option("--snap", 0.5, "M", "snap vertices closer than this (m)")
@measure_option("--max-gap", 5000.0, "M2", "refuse to fill a gap larger than this (m²)")
@polygon_file_option("exempt", EXEMPT_HELP)
@click.option(
    "--log", "log_path", type=click.Path(path_type=Path), default=None, help="write the change log as CSV here"
)
@grid_file_options
@limit_options
@click.option(
    "--force", is_flag=True, help="write into --out even if it exists (its layers of the same names are replaced)"
)
@handle_errors
def repair(
    src: Path | str,
    out: Path,
    snap: float,
    max_gap: float,
    exempt: gpd.GeoDataFrame | None,
    log_path: Path | None,
    columns: dict[str, str],
    layer: str | None,
    crs: str | None,
    encoding: str | None,
    max_vertices: int,
    max_depth: int,
    max_file_bytes: int,
    force: bool,
) -> None:
    r"""Repair the grid hierarchy in SRC and write the result to --out (SRC is never changed).

    SRC is a geogrid store (a GeoPackage or a PostGIS URL) or any vector file of grids.

    Snaps near-coincident vertices, gives each gap and overlap piece to the sibling
    under the same parent with the longest shared edge, clips children to their parent,
    keeps ids and attributes. Gaps larger than --max-gap, grids with no parent and grids
    lying mostly outside their parent are refused and left as they are.
    Exit status: 0 repaired (or nothing to do), 1 some problems refused (the rest
    repaired and written), 2 unusable input (the reason on stderr).

    \b
    Examples:
      geogrid repair demo.gpkg --out fixed.gpkg --log changes.csv
      geogrid repair 网格.geojson --out fixed.gpkg --snap 1 --max-gap 2000
      geogrid repair demo.gpkg --out fixed.gpkg --exempt 水域.gpkg
    """
    if not is_store_url(src) and out.resolve() == Path(src).resolve():
        fail(f"--out {out} is SRC: repair never overwrites its input; name another file")
    if out.suffix.lower() != ".gpkg":
        fail(f"--out {out} must be a GeoPackage (.gpkg)")
    if log_path is not None and log_path.is_dir():
        fail(f"--log {log_path} is a folder: name the CSV file to write, e.g. {log_path / 'changes.csv'}")
    if out.exists() and not force:
        fail(f"--out {out} exists: name a new file, or pass --force to replace its layers with the repaired ones")
    limits = Limits(max_depth=max_depth, max_vertices=max_vertices, max_file_bytes=max_file_bytes)
    grids = _load(src, columns, layer, crs, encoding, limits)
    result = repair_grids(grids, snap_m=snap, max_gap_m2=max_gap, exempt=exempt, errors="skip")
    layers = {"grids": result.grids}
    if layer is None and not columns and crs is None and encoding is None and _is_store(src):
        source = open_store(src)
        layers = {name: source.read(name) for name in source.layer_names()} | layers
    try:
        GeoPackageStore(out).write(layers, author=login_name())  # with --force, a version of out: say whose
    except OSError as err:
        msg = f"cannot write {out}: {err}"
        raise StoreError(msg) from err
    if log_path is not None:
        log = pd.DataFrame(result.log.drop(columns="geometry"))
        log["other_ids"] = log["other_ids"].map(lambda t: ";".join(t))
        log["geometry_wkt"] = result.log.geometry.to_wkt()
        write_csv(log, log_path)  # ids and names are users' text: formulas defused
    click.echo(format_repair(result, source=source_name(src), out=out.name))
    sys.exit(EXIT_FINDINGS if len(result.refused) else EXIT_OK)
