"""``geogrid hotspots``: Gi* hot and cold spots of incident counts per grid."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import click

import geopandas as gpd

from geogrid.cli._common import EXIT_OK, fail, handle_errors, main, time_window_options
from layers.errors import StoreError
from layers.times import store_time_zone

__all__ = ["format_hotspots", "hotspots"]

_JSON_FIELDS = ("grid_id", "level", "count", "z", "p", "p_fdr", "bin", "withheld")
"""The fields of ``--json``; ``expected`` (incidents expected in the neighbourhood) follows with the binomial test."""
_SHOWN = 15


def _num(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _records(result: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    rows = []
    expected = result["expected"].to_numpy() if "expected" in result.columns else None
    for k, (grid_id, level, count, z, p, p_fdr, b, held) in enumerate(
        result[list(_JSON_FIELDS)].itertuples(index=False)
    ):
        row = {
            "grid_id": str(grid_id),
            "level": int(level),
            "count": int(count),
            "z": _num(float(z)),
            "p": _num(float(p)),
            "p_fdr": _num(float(p_fdr)),
            "bin": int(b),
            "withheld": None if held is None or held != held else str(held),
        }
        if expected is not None:
            row["expected"] = _num(float(expected[k]))
        rows.append(row)
    return rows


def _dispersion(result: gpd.GeoDataFrame) -> str:
    phi = result.attrs.get("dispersion")
    if phi is None or not math.isfinite(phi):
        return ""
    return f" (counts scaled by their dispersion {phi:.2f})" if phi > 1 else " (counts no more variable than Poisson)"


def format_hotspots(result: gpd.GeoDataFrame, *, source: str, shown: int = _SHOWN) -> str:
    """Format the readable report: bins per confidence level, then the strongest hot and cold spots."""
    from geogrid.hotspots import WITHHELD_REASONS

    level = int(result["level"].iloc[0]) if len(result) else -1
    held = result["withheld"].dropna()
    counts = result.loc[result["withheld"].isna(), "bin"].value_counts()
    inference = result.attrs.get("inference", "normal")
    lines = [
        f"{source}: {len(result):,} grids on level {level}, {int(result['count'].sum()):,} incidents",
        f"inference: {inference} p{_dispersion(result)}, Benjamini–Hochberg FDR over the "
        f"{len(result) - len(held):,} grids analysed",
        *(
            [f"expected counts proportional to the grids' {result.attrs['expected_from']!r}"]
            if result.attrs.get("expected_from")
            else []
        ),
        "Gi_Bin (FDR-adjusted): " + ", ".join(f"{b:+d}: {int(counts.get(b, 0))}" for b in (3, 2, 1, 0, -1, -2, -3)),
    ]
    needed = result.attrs.get("permutations_needed")
    if needed:
        lines.append(
            "permutations the FDR needs before a bin can be reached at all: "
            + ", ".join(f"{k} {v:,}" for k, v in needed.items())
        )
    if len(held):
        lines.append(f"withheld (no bin, not coloured): {len(held):,} grids")
        for code, k in held.value_counts().items():
            lines.append(f"  {k:>6,} {code}: {WITHHELD_REASONS.get(str(code), '')}")
    for label, part in (
        ("hot spots", result[result["bin"] > 0].sort_values("z", ascending=False)),
        ("cold spots", result[result["bin"] < 0].sort_values("z")),
    ):
        lines += ["", f"{label}: {len(part)}" + (f" (strongest {min(shown, len(part))})" if len(part) else "")]
        for r in part.head(shown).itertuples(index=False):
            lines.append(
                f"  {r.grid_id:24} count {int(r.count):>6}  z {r.z:>7.2f}  p {r.p:.4f}  p_fdr {r.p_fdr:.4f}  bin {int(r.bin):+d}"
            )
    return "\n".join(lines)


@main.command("hotspots")
@click.argument("src", type=str)
@click.option("--level", type=click.IntRange(min=0), default=None, help="grid level (default: the finest)")
@click.option("--category", multiple=True, help="only incidents of this category (repeatable)")
@time_window_options
@click.option(
    "--permutations",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="0: normal p of the z-score (ArcGIS); N: two-sided permutation mid-p from N conditional permutations",
)
@click.option(
    "--p-method",
    type=click.Choice(["binomial", "normal"]),
    default="binomial",
    show_default=True,
    help="binomial: test of each neighbourhood's count given the total, scaled for overdispersion "
    "(calibrated at any count); "
    "normal: ArcGIS's normal p of the z-score",
)
@click.option(
    "--population",
    default=None,
    metavar="COLUMN",
    help="expect counts in proportion to this grid column (e.g. population): hot spots of risk, "
    "not of where people live (binomial test)",
)
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the permutations")
@click.option(
    "--weights",
    default="queen",
    show_default=True,
    help="neighbours: queen, rook, or a distance band in metres (e.g. 300)",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="print a JSON list of {grid_id, level, count, z, p, p_fdr, bin, withheld, expected}",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="write the result layer (.gpkg, .geojson, .parquet)",
)
@handle_errors
def hotspots(
    src: str,
    level: int | None,
    category: tuple[str, ...],
    since: str | None,
    until: str | None,
    time_field: str,
    permutations: int,
    p_method: str,
    population: str | None,
    seed: int,
    weights: str,
    as_json: bool,
    out: Path | None,
) -> None:
    r"""Find Getis–Ord Gi* hot and cold spots of incident counts in the store SRC.

    Counts the incidents per grid of one level, computes Gi* with queen
    neighbours, tests each grid's neighbourhood count (binomial, given the window's
    total, scaled for overdispersion; with --population COLUMN the expected counts follow that column;
    --p-method normal: ArcGIS's normal p of the z-score; --permutations N: a
    permutation mid-p), adjusts the p-values for the false-discovery rate and bins
    them as ArcGIS's Gi_Bin (±3/±2/±1 at 99/95/90 %).
    Grids too sparse to judge are withheld with the reason, not binned: all of them
    with fewer than 30 incidents in the window or fewer than 5 expected in an average
    neighbourhood; a grid with fewer than 5 in itself and its neighbours. Dates are whole days in the
    store's time zone (Asia/Shanghai unless its metadata says time_zone); --until
    includes the day. Exit status: 0 done, 2 unusable input (the reason on stderr).

    \b
    Examples:
      geogrid hotspots demo.gpkg --level 3
      geogrid hotspots demo.gpkg --category 占道经营 --since 2025-06-01 --json
      geogrid hotspots demo.gpkg --level 2 --out hotspots.geojson
      geogrid hotspots demo.gpkg --level 3 --population population
    """
    from geogrid.hotspots import incident_hotspots
    from layers.store import open_store

    if as_json and out is not None:
        fail("--json and --out exclude each other: pick one")
    if not src.startswith(("postgresql://", "postgres://")) and not Path(src).exists():
        msg = f"{src} does not exist"
        raise StoreError(msg)
    w: str | float = weights
    if weights not in ("queen", "rook"):
        try:
            w = float(weights)
        except ValueError:
            fail(f"--weights {weights!r} is not understood: use queen, rook or a distance in metres")
    store = open_store(src)
    grids = store.read("grids")
    incidents = store.read("incidents")
    try:
        result = incident_hotspots(
            incidents,
            grids,
            level=level,
            category=list(category) or None,
            since=since,
            until=until,
            tz=store_time_zone(store.metadata()),
            time_field=time_field,
            weights=w,
            permutations=permutations,
            seed=seed,
            p_method=p_method,  # type: ignore[arg-type]
            population=population,
        )
    except (ValueError, KeyError) as err:
        fail(str(err.args[0]) if err.args else str(err))
    if as_json:
        click.echo(json.dumps(_records(result), ensure_ascii=False))
    elif out is not None:
        from layers.io import write_layer

        write_layer(result, out, layer="hotspots")
        click.echo(f"wrote {len(result):,} grids to {out}")
    else:
        click.echo(format_hotspots(result, source=Path(src).name))
    sys.exit(EXIT_OK)
