"""``geogrid stats``: incident statistics per grid from a store."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

import geopandas as gpd

from geogrid.cli._common import (
    STORE_OR_PATH,
    fail,
    handle_errors,
    main,
    open_existing_store,
    progress_bar,
    source_name,
    time_window_options,
)
from geogrid.stats import STAT_COLUMNS, grid_stats
from layers.errors import StoreError
from layers.io import write_csv, write_layer
from layers.schema import INCIDENT_SOURCES
from layers.times import store_time_zone

__all__ = ["stats", "to_records"]

_OUT_SUFFIXES = (".gpkg", ".geojson", ".json", ".parquet", ".csv")
_TOP = 20


def to_records(result: gpd.GeoDataFrame, *, by: str | None = None) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: ``grid_id``, ``level``, the ``by`` column and the statistics (NaN → null)."""
    cols = ["grid_id", "level", *([by] if by else []), *STAT_COLUMNS]
    cols += [c for c in result.columns if c.endswith("_eb")]
    records = []
    for row in result[cols].itertuples(index=False, name=None):
        rec: dict[str, Any] = {}
        for k, v in zip(cols, row, strict=True):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                rec[k] = None
            elif hasattr(v, "item"):
                rec[k] = v.item()
            elif v is not None and str(v) == "<NA>":
                rec[k] = None
            else:
                rec[k] = v
        records.append(rec)
    return records


def _table(result: gpd.GeoDataFrame, source: str, top: int = _TOP) -> str:
    n = len(result)
    total = int(result["count"].sum())
    lines = [f"{source}: {n:,} grids, {total:,} incidents counted (over all rows)"]
    head = (
        f"{'grid_id':24} {'lvl':>3} {'count':>7} {'/km²':>9} {'closed %':>8} {'med h':>7} "
        f"{'p90 h':>7} {'open':>5} {'overdue':>7} {'hotline':>7} {'worker':>7} {'ratio':>6}"
    )
    lines += ["", f"top {min(top, n)} by count:", head, "-" * len(head)]

    def num(v: Any, fmt: str) -> str:
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    for r in result.sort_values("count", ascending=False, kind="stable").head(top).itertuples():
        rate = r.closing_rate * 100 if r.closing_rate == r.closing_rate else float("nan")
        lines.append(
            f"{r.grid_id!s:24.24} {r.level!s:>3} {r.count:>7,} {num(r.per_km2, '9.1f')} {num(rate, '8.1f')} "
            f"{num(r.close_hours_median, '7.1f')} {num(r.close_hours_p90, '7.1f')} {r.open:>5} {r.overdue:>7} "
            f"{r.hotline:>7} {r.grid_worker:>7} {num(r.hotline_ratio, '6.2f')}"
        )
    return "\n".join(lines)


@main.command("stats")
@click.argument("src", type=STORE_OR_PATH)
@click.option("--level", type=click.IntRange(min=0), default=None, help="only this level (default: all)")
@click.option("--category", "categories", multiple=True, metavar="C", help="only this category (repeatable)")
@click.option(
    "--source", "sources", type=click.Choice(INCIDENT_SOURCES), multiple=True, help="only this source (repeatable)"
)
@time_window_options
@click.option("--by", type=click.Choice(["category", "source"]), default=None, help="one row per grid and value")
@click.option("--overdue-after", default="72h", show_default=True, metavar="DURATION", help="open longer = overdue")
@click.option("--smooth", is_flag=True, help="add empirical-Bayes smoothed rates (*_eb)")
@click.option("--json", "as_json", is_flag=True, help="print a JSON list of {grid_id, level, count, ...}")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="write .gpkg/.geojson/.parquet/.csv")
@handle_errors
def stats(
    src: Path | str,
    level: int | None,
    categories: tuple[str, ...],
    sources: tuple[str, ...],
    since: str | None,
    until: str | None,
    time_field: str,
    by: str | None,
    overdue_after: str,
    smooth: bool,
    as_json: bool,
    out: Path | None,
) -> None:
    r"""Incident statistics per grid of the store SRC: counts, rates, closing times, sources.

    SRC is a GeoPackage or a PostGIS URL (postgresql://...?schema=NAME).

    Counts, rates per km² / 1,000 residents / household, closing rate, median and 90th
    percentile hours to close, open and overdue incidents at the end of the window (not
    today's status: closed_at missing or later), hotline next to grid-worker
    reports. Dates and times without a zone are in the store's time zone (metadata
    time_zone, else Asia/Shanghai); --until includes the whole day it names.
    Exit status: 0 done, 2 unusable input (the reason on stderr).

    \b
    Examples:
      geogrid stats demo.gpkg --level 3 --since 2025-06-01 --until 2025-07-01
      geogrid stats demo.gpkg --level 2 --source hotline --json
      geogrid stats demo.gpkg --by category --out stats.gpkg
    """
    if as_json and out is not None:
        fail("give either --json or --out, not both")
    if out is not None and out.suffix.lower() not in _OUT_SUFFIXES:
        fail(f"--out {out}: unknown format {out.suffix!r}; use one of {', '.join(_OUT_SUFFIXES)}")
    store = open_existing_store(src, ("grids", "incidents"))
    with progress_bar(3, "stats") as bar:
        bar.set_postfix_str("reading grids")
        grids = store.read("grids")
        bar.update(1)
        bar.set_postfix_str("reading incidents")
        incidents = store.read("incidents")
        bar.update(1)
        bar.set_postfix_str("assigning and counting")
        try:
            result = grid_stats(
                incidents,
                grids,
                level=level,
                since=since,
                until=until,
                category=list(categories) or None,
                source=list(sources) or None,
                by=by,
                overdue_after=overdue_after,
                smooth=smooth,
                tz=store_time_zone(store.metadata()),
                time_field=time_field,
            )
        except ValueError as err:
            fail(str(err))
        bar.update(1)
    if as_json:
        click.echo(json.dumps(to_records(result, by=by), ensure_ascii=False, allow_nan=False))
    elif out is not None:
        suffix = out.suffix.lower()
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            msg = f"cannot write {out}: {err.strerror or err}; name a file in a folder you can write"
            raise StoreError(msg) from err
        if suffix == ".csv":
            write_csv(result, out)  # citizens' text: formulas defused
        else:
            write_layer(result, out, layer="grid_stats" if suffix == ".gpkg" else None)
        click.echo(f"wrote {len(result):,} rows to {out}")
    else:
        click.echo(_table(result, source_name(src)))
