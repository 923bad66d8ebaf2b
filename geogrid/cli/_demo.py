"""``geogrid demo``: build the demo district into a GeoPackage."""

from __future__ import annotations

import time
from pathlib import Path

import click
from tqdm import tqdm

from geogrid._demo_samples import SAMPLE_FILES, write_samples
from geogrid.cli._common import handle_errors, main
from geogrid.demo import DEMO_VERSION, METRIC_EPSG, build_demo
from layers.store import GeoPackageStore

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
@click.argument("out", required=False, type=click.Path(dir_okay=False, path_type=Path))
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
@click.option(
    "--samples",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help=f"also write the README tour's sample inputs into DIR ({', '.join(SAMPLE_FILES)})",
)
@click.option("--force", is_flag=True, help="overwrite OUT if it exists")
@handle_errors
def demo(out: Path | None, seed: int, n_incidents: int, n_cameras: int, samples: Path | None, force: bool) -> None:
    r"""Build the demo district into OUT (a GeoPackage that QGIS opens).

    A realistic jurisdiction near Tianjin modelled on Hongqiao district: 23.76 km², a
    street network, 1 district, 9 streets, 114 communities and 990 basic grids that
    follow the streets and nest exactly, workloads per grid, cameras along the
    streets and a year of incidents with hot spots. Deterministic from --seed.

    With --samples DIR, also write the tour's sample inputs, cut from the same district:
    bad.gpkg (the network with planted defects: a grid moved 3 m, a grid deleted, a
    boundary that crosses itself), 网格.shp (the network as a GBK Shapefile with Chinese
    column names and no .cpg: import it with --encoding gbk) and 事件.csv (incidents with
    Chinese column names, GCJ-02 coordinates and local times: --datum gcj02 --tz
    Asia/Shanghai). OUT may then be left out.

    \b
    Examples:
      geogrid demo demo.gpkg
      geogrid demo small.gpkg --seed 7 --incidents 20000
      geogrid demo demo.gpkg --samples .
      geogrid demo --samples tour/
    """
    if out is None and samples is None:
        msg = "give OUT (the demo GeoPackage to write), --samples DIR, or both"
        raise click.UsageError(msg)
    if out is not None:
        _check_out(out, force)
    if samples is not None:
        taken = [samples / name for name in SAMPLE_FILES if (samples / name).exists()]
        if taken and not force:
            msg = f"{', '.join(map(str, taken))} exist(s): pass --force to overwrite, or choose another DIR"
            raise click.BadParameter(msg, param_hint="--samples")
    t0 = time.perf_counter()
    stages = _STAGES if out is not None else _STAGES[:-1]
    with tqdm(total=len(stages), desc="demo district", unit="step", leave=False, disable=None) as bar:

        def tick(stage: str) -> None:
            bar.set_postfix_str(stage)
            bar.update(1)

        # Without OUT only the grids and a sample of incidents are needed: a lighter build.
        built = build_demo(
            seed,
            n_incidents=n_incidents if out is not None else min(n_incidents, 20_000),
            n_cameras=n_cameras if out is not None else 0,
            progress=tick,
        )
        if out is not None:
            GeoPackageStore(out).write(built.layers(), metadata=built.metadata)
            tick("written")
    if out is not None:
        click.echo(
            f"wrote {out}: 1 district, 9 streets, 114 communities, 990 grids, {n_cameras:,} cameras, "
            f"{n_incidents:,} incidents, streets and buildings (seed {seed}, demo v{DEMO_VERSION}) in "
            f"{time.perf_counter() - t0:.1f} s"
        )
    if samples is not None:
        paths = write_samples(
            samples,
            built.grids,
            built.incidents,
            seed=seed,
            metric_epsg=METRIC_EPSG,
            tz=built.metadata["demo"]["timezone"],
        )
        click.echo(f"wrote the tour's samples: {', '.join(map(str, paths))}")
    if out is not None:
        click.echo(
            f"next: geogrid check {out}   |   geogrid serve {out}   |   open it in QGIS (Layer > Add Vector Layer)"
        )


def _check_out(out: Path, force: bool) -> None:
    if out.suffix.lower() != ".gpkg":
        msg = f"{out.name}: the demo is written as a GeoPackage; give a name ending in .gpkg"
        raise click.BadParameter(msg, param_hint="OUT")
    if out.exists() and not force:
        msg = f"{out} exists: pass --force to overwrite it, or choose another name"
        raise click.BadParameter(msg, param_hint="OUT")
