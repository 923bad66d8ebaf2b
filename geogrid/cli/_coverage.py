"""``geogrid coverage`` and ``geogrid place-cameras``: camera coverage of a store's grids."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import pandas as pd

import geopandas as gpd

from geogrid.cli._common import EXIT_OK, STORE_OR_PATH, fail, handle_errors, main, open_existing_store, source_name
from geogrid.coverage import grid_coverage
from geogrid.placement import candidate_sites, demand_points, place_cameras
from layers.store import Store

__all__ = ["coverage", "place_cameras_command"]


def _open(src: Path | str, needed: tuple[str, ...]) -> Store:
    return open_existing_store(src, needed)


def _bar(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", file=sys.stderr, disable=not sys.stderr.isatty(), leave=False)


@main.command("coverage")
@click.argument("src", type=STORE_OR_PATH)
@click.option("--level", type=click.IntRange(min=0), default=None, help="only this grid level (default: all)")
@click.option("--occlusion", is_flag=True, help="cut the views by the store's `buildings` layer")
@click.option("--include-offline", is_flag=True, help="count offline cameras as seeing")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object per grid in a list")
@handle_errors
def coverage(src: Path | str, level: int | None, occlusion: bool, include_offline: bool, as_json: bool) -> None:
    r"""Report the share of each grid in SRC that some camera sees.

    SRC is a geogrid store (a GeoPackage or a PostGIS URL) with `grids` and `cameras` layers (and `buildings` for
    --occlusion). JSON: a list of {grid_id, level, area_m2, covered_m2, ratio, cameras}.

    \b
    Examples:
      geogrid coverage demo.gpkg --level 3
      geogrid coverage demo.gpkg --occlusion --json
    """
    needed = ("grids", "cameras", "buildings") if occlusion else ("grids", "cameras")
    store = _open(src, needed)
    with _bar(2, "coverage") as bar:
        grids, cameras = store.read("grids"), store.read("cameras")
        present = sorted(int(v) for v in pd.unique(grids["level"].dropna()))
        if level is not None and level not in present:
            fail(f"level {level} does not occur in the grids of {source_name(src)}; they have levels {present}")
        buildings = store.read("buildings") if occlusion else None
        bar.update(1)
        cov = grid_coverage(grids, cameras, level=level, buildings=buildings, include_offline=include_offline)
        bar.update(1)
    cols = ["grid_id", "level", "area_m2", "covered_m2", "ratio", "cameras"]
    df = pd.DataFrame(cov[cols])
    if as_json:
        rows = [
            {
                "grid_id": str(r.grid_id),
                "level": int(r.level),
                "area_m2": round(float(r.area_m2), 3),
                "covered_m2": round(float(r.covered_m2), 3),
                "ratio": round(float(r.ratio), 6),
                "cameras": int(r.cameras),
            }
            for r in df.itertuples(index=False)
        ]
        click.echo(json.dumps(rows, ensure_ascii=False))
    else:
        by = df.groupby("level").agg(
            grids=("grid_id", "size"), area_m2=("area_m2", "sum"), covered_m2=("covered_m2", "sum")
        )
        click.echo(f"{source_name(src)}: camera coverage{' with occlusion' if occlusion else ''}")
        click.echo(f"{'level':>5} {'grids':>7} {'area km²':>10} {'seen km²':>10} {'ratio':>7}")
        for lv, r in by.iterrows():
            click.echo(
                f"{lv:>5} {r.grids:>7,} {r.area_m2 / 1e6:>10.3f} {r.covered_m2 / 1e6:>10.3f} "
                f"{r.covered_m2 / r.area_m2:>7.1%}"
            )
        worst = df.sort_values("ratio", kind="stable").head(10)
        click.echo("\nleast seen grids:")
        for r in worst.itertuples(index=False):
            click.echo(f"  {r.grid_id} (level {r.level}): {r.ratio:.1%} of {r.area_m2:,.0f} m², {r.cameras} cameras")
    sys.exit(EXIT_OK)


@main.command("place-cameras")
@click.argument("src", type=STORE_OR_PATH)
@click.option("-k", "k", type=click.IntRange(min=1), required=True, help="how many new cameras")
@click.option(
    "--weight",
    type=click.Choice(["incidents", "area", "hotspots"]),
    default="incidents",
    show_default=True,
    help="what to see: incidents, area, or area weighted by incidents per basic grid",
)
@click.option("--spacing", type=click.FloatRange(min=1), default=50.0, show_default=True, help="candidate spacing (m)")
@click.option("--cell", type=click.FloatRange(min=1), default=20.0, show_default=True, help="demand cell size (m)")
@click.option("--occlusion", is_flag=True, help="cut the views by the store's `buildings` layer")
@click.option("--method", type=click.Choice(["auto", "ilp", "greedy"]), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the chosen sites and totals as JSON")
@handle_errors
def place_cameras_command(
    src: Path | str,
    k: int,
    weight: str,
    spacing: float,
    cell: float,
    occlusion: bool,
    method: str,
    as_json: bool,
) -> None:
    r"""Choose K new camera sites along the streets of SRC that see the most that is unseen.

    Candidates: poles every --spacing metres along the `streets` layer looking both ways,
    and domes at intersections. Existing cameras stay. Exact (HiGHS) when small, else
    greedy (within 1 - 1/e of the optimum; an upper bound is printed).

    \b
    Examples:
      geogrid place-cameras demo.gpkg -k 50
      geogrid place-cameras demo.gpkg -k 20 --weight hotspots --json
    """
    needed = ["grids", "cameras", "streets"]
    if weight in ("incidents", "hotspots"):
        needed.append("incidents")
    if occlusion:
        needed.append("buildings")
    store = _open(src, tuple(needed))
    with _bar(3, "placement") as bar:
        grids, cameras, streets = store.read("grids"), store.read("cameras"), store.read("streets")
        incidents = store.read("incidents") if "incidents" in needed else None
        buildings = store.read("buildings") if occlusion else None
        bar.update(1)
        hot = None
        if weight == "hotspots":
            finest = grids[grids["level"] == grids["level"].max()]
            pts = demand_points(finest, weight="incidents", incidents=incidents)
            hot = pts.groupby("grid_id")["weight"].sum()
        dem = demand_points(grids, weight=weight, incidents=incidents, hotspot_weight=hot, cell_m=cell)  # type: ignore[arg-type]
        cand = candidate_sites(streets, spacing_m=spacing)
        bar.update(1)
        res = place_cameras(cand, dem, k=k, existing=cameras, buildings=buildings, method=method)  # type: ignore[arg-type]
        bar.update(1)
    sites = gpd.GeoDataFrame(res.sites).to_crs("EPSG:4326")
    if as_json:
        out = {
            "k": k,
            "weight": weight,
            "method": res.method,
            "seen": res.seen,
            "total_unseen": res.total,
            "upper_bound": res.upper_bound,
            "sites": [
                {
                    "candidate_id": str(r.candidate_id),
                    "lon": round(float(r.geometry.x), 7),
                    "lat": round(float(r.geometry.y), 7),
                    "heading_deg": float(r.heading_deg),
                    "fov_deg": float(r.fov_deg),
                    "range_m": float(r.range_m),
                    "gain": float(r.gain),
                }
                for r in sites.itertuples(index=False)
            ],
        }
        click.echo(json.dumps(out, ensure_ascii=False))
    else:
        share = res.seen / res.total if res.total > 0 else 0.0
        click.echo(
            f"{source_name(src)}: {len(sites)} new cameras ({res.method}) see {res.seen:,.0f} of {res.total:,.0f} "
            f"unseen {weight} weight ({share:.1%}); optimum at most {res.upper_bound:,.0f}"
        )
        for r in sites.itertuples(index=False):
            click.echo(
                f"  {r.candidate_id}  {r.geometry.y:.6f}, {r.geometry.x:.6f}  heading {r.heading_deg:5.1f}°  "
                f"fov {r.fov_deg:.0f}°  +{r.gain:,.0f}"
            )
    sys.exit(EXIT_OK)
