"""``geogrid hotspots`` and ``geogrid emerging``: where incidents concentrate, and how that changes.

``hotspots`` is Gi* (:func:`geogrid.hotspots.incident_hotspots`) or, with ``--statistic
local-moran``, Local Moran clusters and outliers (:func:`geogrid.hotspots.incident_clusters`);
``emerging`` is the emerging hot-spot analysis (:func:`geogrid.hotspots.emerging_hotspots`).
All three read the store's grids and incidents, its ``time_zone`` for the dates, share the
inference options and print a report, ``--json`` or write ``--out``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

import geopandas as gpd

from geogrid.cli._common import (
    EXIT_OK,
    STORE_OR_PATH,
    fail,
    handle_errors,
    main,
    open_existing_store,
    reported_window_options,
    source_name,
    time_window_options,
)
from layers.times import store_time_zone

__all__ = ["emerging", "format_clusters", "format_emerging", "format_hotspots", "hotspots"]

F = TypeVar("F", bound=Callable[..., Any])

_GI_FIELDS: dict[str, type] = {
    "grid_id": str,
    "level": int,
    "count": int,
    "z": float,
    "p": float,
    "p_fdr": float,
    "bin": int,
    "withheld": str,
}
"""The fields of ``hotspots --json``; ``expected`` (incidents expected in the neighbourhood) follows with the binomial test."""
_MORAN_FIELDS: dict[str, type] = {
    "grid_id": str,
    "level": int,
    "count": int,
    "i": float,
    "z": float,
    "quadrant": str,
    "p": float,
    "p_fdr": float,
    "cluster": str,
    "withheld": str,
}
"""The fields of ``hotspots --statistic local-moran --json`` (and ``expected`` with the binomial test)."""
_EMERGING_FIELDS: dict[str, type] = {
    "grid_id": str,
    "level": int,
    "count": int,
    "pattern": str,
    "hot_periods": int,
    "cold_periods": int,
    "history": str,
    "withheld_periods": int,
    "withheld": str,
    "trend_z": float,
    "trend_p": float,
    "trend_tau": float,
    "count_trend_tau": float,
    "count_trend_p": float,
}
"""The fields of each grid in ``emerging --json``."""
_OUT_SUFFIXES = (".gpkg", ".geojson", ".json", ".parquet", ".geoparquet")
_SHOWN = 15


# -- shared by the commands ----------------------------------------------------------------------------
def _value(v: Any, kind: type) -> Any:
    """Return ``v`` as the JSON value of ``kind``: missing values and non-finite floats become None."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or str(v) == "<NA>":
        return None
    if kind is float:
        f = float(v)
        return f if math.isfinite(f) else None
    return kind(v)


def _records(result: gpd.GeoDataFrame, fields: dict[str, type]) -> list[dict[str, Any]]:
    """Return one JSON-ready dict per grid: ``fields``, then ``expected`` where the result has it."""
    kinds = {**fields, **({"expected": float} if "expected" in result.columns else {})}
    return [
        {k: _value(v, kind) for (k, kind), v in zip(kinds.items(), row, strict=True)}
        for row in result[list(kinds)].itertuples(index=False, name=None)
    ]


def _weights(weights: str) -> str | float:
    """Read ``--weights``: queen, rook or a distance band in metres."""
    from geogrid.hotspots import parse_weights

    try:
        return parse_weights(weights, name="--weights")
    except ValueError as err:
        fail(str(err))


def _check_output(as_json: bool, out: Path | None) -> None:
    """Refuse ``--json`` with ``--out``, and an ``--out`` file geogrid cannot write, before any work."""
    if as_json and out is not None:
        fail("--json and --out exclude each other: pick one")
    if out is not None and out.suffix.lower() not in _OUT_SUFFIXES:
        fail(f"--out {out.name}: geogrid writes {', '.join(_OUT_SUFFIXES)}; name the file with one of them")


def _read_store(src: str | Path) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, str]:
    """Return the store's grids, incidents and time zone (its ``time_zone`` metadata, else Asia/Shanghai)."""
    store = open_existing_store(src, ("grids", "incidents"))
    return store.read("grids"), store.read("incidents"), store_time_zone(store.metadata())


def _refused(err: ValueError | KeyError) -> NoReturn:
    """Exit 2 with the message of an input the engine refused (a level, a category, a window...)."""
    fail(str(err.args[0]) if err.args else str(err))


def _emit(
    result: gpd.GeoDataFrame,
    *,
    as_json: bool,
    out: Path | None,
    layer: str,
    doc: Callable[[], Any],
    report: Callable[[], str],
) -> NoReturn:
    """Print ``doc()`` as JSON, write ``result`` to ``out``, or print ``report()``; then exit 0."""
    if as_json:
        click.echo(json.dumps(doc(), ensure_ascii=False, allow_nan=False))
    elif out is not None:
        from layers.io import write_layer

        write_layer(result, out, layer=layer)
        click.echo(f"wrote {len(result):,} grids to {out}")
    else:
        click.echo(report())
    sys.exit(EXIT_OK)


def _analysis_options(json_help: str, *, window: Callable[[F], F]) -> Callable[[F], F]:
    """Add the options every hot-spot command has: the grids, the incidents, the inference, the output."""
    options = (
        click.option("--level", type=click.IntRange(min=0), default=None, help="grid level (default: the finest)"),
        click.option("--category", multiple=True, help="only incidents of this category (repeatable)"),
        window,
        click.option(
            "--permutations",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="0: the --p-method test; N: two-sided permutation mid-p from N conditional permutations",
        ),
        click.option(
            "--p-method",
            type=click.Choice(["binomial", "normal"]),
            default="binomial",
            show_default=True,
            help="binomial: test of each neighbourhood's count given the total, scaled for overdispersion "
            "(calibrated at any count); "
            "normal: ArcGIS's normal p of the z-score",
        ),
        click.option(
            "--population",
            default=None,
            metavar="COLUMN",
            help="expect counts in proportion to this grid column (e.g. population): hot spots of risk, "
            "not of where people live (binomial test)",
        ),
        click.option(
            "--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True, help="seed of the permutations"
        ),
        click.option(
            "--weights",
            default="queen",
            show_default=True,
            help="neighbours: queen, rook, or a distance band in metres (e.g. 300)",
        ),
        click.option("--json", "as_json", is_flag=True, help=json_help),
        click.option(
            "--out",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help="write the result layer (.gpkg, .geojson, .parquet)",
        ),
    )

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


# -- reports -----------------------------------------------------------------------------------------------
def _dispersion(result: gpd.GeoDataFrame) -> str:
    phi = result.attrs.get("dispersion")
    if phi is None or not math.isfinite(phi):
        return ""
    return f" (counts scaled by their dispersion {phi:.2f})" if phi > 1 else " (counts no more variable than Poisson)"


def _header(result: gpd.GeoDataFrame, first: str, fdr_over: str | None, summary: str) -> list[str]:
    """Return the lines every report opens with: what, the inference, the population, the summary, the permutations."""
    adjusted = f"Benjamini–Hochberg FDR over {fdr_over}" if fdr_over else "no FDR adjustment"
    lines = [first, f"inference: {result.attrs.get('inference', 'normal')} p{_dispersion(result)}, {adjusted}"]
    if result.attrs.get("expected_from"):
        lines.append(f"expected counts proportional to the grids' {result.attrs['expected_from']!r}")
    lines.append(summary)
    needed = result.attrs.get("permutations_needed")
    if needed:
        lines.append(
            "permutations the FDR needs before a bin can be reached at all: "
            + ", ".join(f"{k} {v:,}" for k, v in needed.items())
        )
    return lines


def _withheld(held: Any, what: str = "withheld (no bin, not coloured)") -> list[str]:
    from geogrid.hotspots import WITHHELD_REASONS

    if not len(held):
        return []
    lines = [f"{what}: {len(held):,} grids"]
    for code, k in held.value_counts().items():
        lines.append(f"  {k:>6,} {code}: {WITHHELD_REASONS.get(str(code), '')}")
    return lines


def _grids_line(result: gpd.GeoDataFrame, source: str) -> str:
    level = int(result["level"].iloc[0]) if len(result) else -1
    return f"{source}: {len(result):,} grids on level {level}, {int(result['count'].sum()):,} incidents"


def format_hotspots(result: gpd.GeoDataFrame, *, source: str, shown: int = _SHOWN) -> str:
    """Format the readable report: bins per confidence level, then the strongest hot and cold spots."""
    held = result["withheld"].dropna()
    counts = result.loc[result["withheld"].isna(), "bin"].value_counts()
    lines = [
        *_header(
            result,
            _grids_line(result, source),
            f"the {len(result) - len(held):,} grids analysed",
            "Gi_Bin (FDR-adjusted): " + ", ".join(f"{b:+d}: {int(counts.get(b, 0))}" for b in (3, 2, 1, 0, -1, -2, -3)),
        ),
        *_withheld(held),
    ]
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


_CLUSTERS = {
    "HH": "HH clusters (high among high)",
    "LL": "LL clusters (low among low)",
    "HL": "HL outliers (high among low)",
    "LH": "LH outliers (low among high)",
}


def format_clusters(result: gpd.GeoDataFrame, *, source: str, shown: int = _SHOWN) -> str:
    """Format the Local Moran report: clusters and outliers per type, each with its strongest grids."""
    held = result["withheld"].dropna()
    counts = result["cluster"].value_counts()
    lines = [
        *_header(
            result,
            _grids_line(result, source),
            f"the {len(result) - len(held):,} grids analysed",
            "Local Moran (FDR-adjusted): "
            + ", ".join(f"{c}: {int(counts.get(c, 0))}" for c in (*_CLUSTERS, "not significant")),
        ),
        *_withheld(held, "withheld (no cluster, not coloured)"),
    ]
    for code, label in _CLUSTERS.items():
        part = result[result["cluster"] == code].sort_values(["p_fdr", "z"], ascending=[True, code in ("LL", "LH")])
        lines += ["", f"{label}: {len(part)}" + (f" (strongest {min(shown, len(part))})" if len(part) else "")]
        for r in part.head(shown).itertuples(index=False):
            lines.append(
                f"  {r.grid_id:24} count {int(r.count):>6}  I {r.i:>7.3f}  z {r.z:>7.2f}  p {r.p:.4f}  p_fdr {r.p_fdr:.4f}"
            )
    return "\n".join(lines)


def format_emerging(result: gpd.GeoDataFrame, *, source: str, fdr: bool = True, shown: int = _SHOWN) -> str:
    """Format the emerging hot-spot report: the periods, grids per category, each category's grids."""
    from geogrid.hotspots import EHSA_CATEGORIES

    periods = result.attrs.get("periods", [])
    bins = len(result) * len(periods)
    analysed = bins - int(result["withheld_periods"].sum())
    span = f"{periods[0]} … {periods[-1]}" if periods else "none"
    held = result["withheld"].dropna()
    counts = result["pattern"].value_counts()
    lines = [
        *_header(
            result,
            f"{_grids_line(result, source)}, {len(periods)} periods ({span})",
            f"the {analysed:,} of {bins:,} grid-periods analysed" if fdr else None,
            "history: one character per period, oldest first: H hot, C cold, - withheld (too sparse), . neither",
        ),
        *_withheld(held, "withheld in every period (no pattern, not coloured)"),
        "",
        "patterns (the others: none):",
        *(f"  {int(counts[c]):>6,} {c}" for c in EHSA_CATEGORIES if counts.get(c, 0)),
    ]
    for category in EHSA_CATEGORIES:
        part = result[result["pattern"] == category]
        if category == "no pattern" or not len(part):
            continue
        part = part.sort_values(["hot_periods", "cold_periods", "count"], ascending=False)
        lines += ["", f"{category}: {len(part)}" + (f" (first {shown})" if len(part) > shown else "")]
        for r in part.head(shown).itertuples(index=False):
            lines.append(
                f"  {r.grid_id:24} count {int(r.count):>6}  {r.history}  trend z {r.trend_z:+6.2f}  p {r.trend_p:.4f}"
            )
    return "\n".join(lines)


# -- the commands ----------------------------------------------------------------------------------------
@main.command("hotspots")
@click.argument("src", type=STORE_OR_PATH)
@click.option(
    "--statistic",
    type=click.Choice(["gi", "local-moran"]),
    default="gi",
    show_default=True,
    help="gi: Getis–Ord Gi* hot and cold spots; local-moran: Local Moran clusters (HH, LL) and outliers (HL, LH)",
)
@_analysis_options(
    "print a JSON list of {grid_id, level, count, z, p, p_fdr, bin, withheld, expected}; with --statistic "
    "local-moran {grid_id, level, count, i, z, quadrant, p, p_fdr, cluster, withheld, expected}",
    window=time_window_options,
)
@handle_errors
def hotspots(
    src: str | Path,
    statistic: str,
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
    With --statistic local-moran: Local Moran's I on the same counts, the same tests
    of the neighbours' sum given each grid's own count, and each grid's cluster where
    p_fdr <= 0.05: HH (high among high), LL, HL or LH (outliers), else "not significant".
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
      geogrid hotspots demo.gpkg --level 3 --statistic local-moran
    """
    from geogrid.hotspots import incident_clusters, incident_hotspots

    _check_output(as_json, out)
    w = _weights(weights)
    grids, incidents, tz = _read_store(src)
    run = incident_clusters if statistic == "local-moran" else incident_hotspots
    try:
        result = run(
            incidents,
            grids,
            level=level,
            category=list(category) or None,
            since=since,
            until=until,
            tz=tz,
            time_field=time_field,
            weights=w,
            permutations=permutations,
            seed=seed,
            p_method=p_method,  # type: ignore[arg-type]
            population=population,
        )
    except (ValueError, KeyError) as err:
        _refused(err)
    moran = statistic == "local-moran"
    _emit(
        result,
        as_json=as_json,
        out=out,
        layer="clusters" if moran else "hotspots",
        doc=lambda: _records(result, _MORAN_FIELDS if moran else _GI_FIELDS),
        report=lambda: (format_clusters if moran else format_hotspots)(result, source=source_name(src)),
    )


@main.command("emerging")
@click.argument("src", type=STORE_OR_PATH)
@click.option(
    "--period",
    type=click.Choice(["M", "W", "Q", "D"]),
    default="M",
    show_default=True,
    help="the time step: M month, W week, Q quarter, D day (in the store's time zone)",
)
@click.option(
    "--time-lag",
    type=click.IntRange(min=0, max=366),
    default=1,
    show_default=True,
    help="preceding periods in a bin's neighbourhood (0: each period on its own)",
)
@click.option(
    "--alpha",
    type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="significance level of the hot and cold bins and of the trend",
)
@click.option("--fdr/--no-fdr", default=True, show_default=True, help="adjust the bins' p for the false-discovery rate")
@click.option(
    "--min-share",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=0.9,
    show_default=True,
    help="ArcGIS's 90 %: the share of hot periods that makes a hot spot persistent, intensifying, diminishing "
    "or historical",
)
@click.option("--strict", is_flag=True, help="ArcGIS's rules only (no 'historical' for a hot spot that ended)")
@_analysis_options(
    "print a JSON object {periods: [...], grids: [{grid_id, level, count, pattern, hot_periods, cold_periods, "
    "history, withheld_periods, withheld, trend_z, trend_p, trend_tau, count_trend_tau, count_trend_p}]}",
    window=reported_window_options,
)
@handle_errors
def emerging(
    src: str | Path,
    level: int | None,
    category: tuple[str, ...],
    since: str | None,
    until: str | None,
    permutations: int,
    p_method: str,
    population: str | None,
    seed: int,
    weights: str,
    as_json: bool,
    out: Path | None,
    period: str,
    time_lag: int,
    alpha: float,
    fdr: bool,
    min_share: float,
    strict: bool,
) -> None:
    r"""Find emerging hot spots in the store SRC: new, intensifying, persistent, diminishing...

    Counts the incidents per grid and period (month by default) of one level: a
    space-time cube of the periods the window covers whole. Each grid-period gets a
    Gi* bin over its neighbours in space and the --time-lag preceding periods, tested
    as `geogrid hotspots` tests (binomial by default, FDR), and each grid a category
    from its hot and cold periods and the Mann–Kendall trend of its z-scores, as
    ArcGIS's Emerging Hot Spot Analysis: new, consecutive, intensifying, persistent,
    diminishing, sporadic, oscillating, historical (hot or cold), or no pattern.
    Grid-periods too sparse to judge are withheld ('-' in the history). Dates are
    whole days in the store's time zone (Asia/Shanghai unless its metadata says
    time_zone); --until includes the day; the cube needs at least 3 periods.
    Exit status: 0 done, 2 unusable input (the reason on stderr).

    \b
    Examples:
      geogrid emerging demo.gpkg --level 3
      geogrid emerging demo.gpkg --level 2 --category 占道经营 --period W --since 2025-09-01 --json
      geogrid emerging demo.gpkg --level 3 --out emerging.geojson
    """
    from geogrid.hotspots import emerging_hotspots

    _check_output(as_json, out)
    w = _weights(weights)
    grids, incidents, tz = _read_store(src)
    try:
        result = emerging_hotspots(
            incidents,
            grids,
            level=level,
            period=period,
            time_lag=time_lag,
            weights=w,
            alpha=alpha,
            fdr=fdr,
            min_share=min_share,
            strict=strict,
            category=list(category) or None,
            since=since,
            until=until,
            tz=tz,
            p_method=p_method,  # type: ignore[arg-type]
            population=population,
            permutations=permutations,
            seed=seed,
        )
    except (ValueError, KeyError) as err:
        _refused(err)
    _emit(
        result,
        as_json=as_json,
        out=out,
        layer="emerging",
        doc=lambda: {"periods": result.attrs["periods"], "grids": _records(result, _EMERGING_FIELDS)},
        report=lambda: format_emerging(result, source=source_name(src), fdr=fdr),
    )
