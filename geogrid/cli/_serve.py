"""``geogrid serve``: run the web service on a store (or on the demo district)."""

from __future__ import annotations

import os
from pathlib import Path

import click
from tqdm import tqdm

from geogrid.cli._common import handle_errors, main


@main.command()
@click.argument("store", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind")
@click.option("--port", default=8000, show_default=True, type=int, help="port to listen on")
@handle_errors
def serve(store: Path | None, host: str, port: int) -> None:
    r"""Serve STORE (a GeoPackage) as maps and an API; with no STORE, the demo district.

    The demo district is built on first use into the user cache directory (a few
    seconds) and reused afterwards. Everything the pages need is served by geogrid
    itself: the maps work on networks with no internet.

    \b
    Examples:
      geogrid serve                      the demo district on http://127.0.0.1:8000/
      geogrid serve city.gpkg --port 9000
    """
    import uvicorn

    from geogrid.demo import demo_store

    if store is not None and not store.exists():
        msg = f"{store} does not exist: build one with `geogrid demo {store}`"
        raise click.BadParameter(msg, param_hint="STORE")
    if store is None:
        with tqdm(total=8, desc="demo district (first use)", unit="step", leave=False, disable=None) as bar:
            store = demo_store(progress=lambda _stage: bar.update(1))
    # The app reads its settings (GEOGRID_*) from the environment of the server process.
    os.environ["GEOGRID_STORE"] = str(store.resolve())
    click.echo(f"geogrid: serving {store} on http://{host}:{port}/", err=True)
    uvicorn.run("api.main:create_app", factory=True, host=host, port=port, log_level="info")
