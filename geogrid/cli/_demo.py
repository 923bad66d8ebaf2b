"""``geogrid demo``: build the demo district into a GeoPackage."""

from __future__ import annotations

import time
from pathlib import Path

import click
from tqdm import tqdm

from geogrid.cli._common import handle_errors, main
from geogrid.demo import DEMO_VERSION, write_demo

_STAGES = (
    "streets and blocks",
    "grids",
    "communities and streets",
    "grid geometry",
    "cameras",
    "incidents",
    "streets and buildings",
    "coordinates",
    "written",
)


@main.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, type=int, help="seed: the same seed builds the same district")
@click.option(
    "--incidents",
    "n_incidents",
    default=200_000,
    show_default=True,
    type=click.IntRange(min=0),
    help="incidents over one year",
)
@click.option(
    "--cameras", "n_cameras", default=7_500, show_default=True, type=click.IntRange(min=0), help="cameras along streets"
)
@click.option("--force", is_flag=True, help="overwrite OUT if it exists")
@handle_errors
def demo(out: Path, seed: int, n_incidents: int, n_cameras: int, force: bool) -> None:
    r"""Build the demo district into OUT (a GeoPackage that QGIS opens).

    A realistic jurisdiction near Tianjin modelled on Hongqiao district: 23.76 km², a
    street network, 1 district, 9 streets, 114 communities and 990 basic grids that
    follow the streets and nest exactly, workloads per grid, cameras along the
    streets and a year of incidents with hot spots. Deterministic from --seed.

    \b
    Examples:
      geogrid demo demo.gpkg
      geogrid demo small.gpkg --seed 7 --incidents 20000
    """
    if out.suffix.lower() != ".gpkg":
        msg = f"{out.name}: the demo is written as a GeoPackage; give a name ending in .gpkg"
        raise click.BadParameter(msg, param_hint="OUT")
    if out.exists() and not force:
        msg = f"{out} exists: pass --force to overwrite it, or choose another name"
        raise click.BadParameter(msg, param_hint="OUT")
    t0 = time.perf_counter()
    with tqdm(total=len(_STAGES), desc="demo district", unit="step", leave=False, disable=None) as bar:

        def tick(stage: str) -> None:
            bar.set_postfix_str(stage)
            bar.update(1)

        write_demo(out, seed, n_incidents=n_incidents, n_cameras=n_cameras, progress=tick)
    click.echo(
        f"wrote {out}: 1 district, 9 streets, 114 communities, 990 grids, {n_cameras:,} cameras, "
        f"{n_incidents:,} incidents, streets and buildings (seed {seed}, demo v{DEMO_VERSION}) in {time.perf_counter() - t0:.1f} s\n"
        f"next: geogrid check {out}   |   geogrid serve {out}   |   open it in QGIS (Layer > Add Vector Layer)"
    )
