"""Shared pieces of the CLI: the root group, error handling, column-mapping options."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from layers.errors import GeogridError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_UNUSABLE = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="geogrid", prog_name="geogrid")
def main() -> None:
    r"""Geogrid: nested urban grids, their topology, incidents and camera coverage.

    \b
    Start with the demo district (网格化管理示范区):
      geogrid demo demo.gpkg              build a realistic 4-level district
      geogrid check demo.gpkg             gaps, overlaps, slivers and nesting at every level
      geogrid serve demo.gpkg             maps and an OGC API in the browser (offline)
    \b
    Analyse:
      geogrid stats demo.gpkg --level 3   counts, rates, closing times per grid
      geogrid hotspots demo.gpkg          Getis-Ord Gi* with FDR control
      geogrid coverage demo.gpkg          what the cameras see, per grid
    \b
    Redraw and repair:
      geogrid plan new demo.gpkg --name "新规划"   edit a draft, diff, commit
      geogrid repair bad.gpkg --out fixed.gpkg     fix gaps and overlaps safely
    """


def handle_errors(func: F) -> F:
    """Turn geogrid errors into a clear message on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GeogridError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(EXIT_UNUSABLE)

    return wrapper  # type: ignore[return-value]


def column_mapping_options(func: F) -> F:
    """Add ``--id-col``, ``--parent-col``, ``--level-col``, ``--name-col`` ... to a command.

    The command receives them gathered in one ``columns`` dict (target name -> source
    column name), holding only the options the user gave.
    """
    options = [
        ("--id-col", "the id column (grid_id, incident_id or camera_id)"),
        ("--parent-col", "the parent id column of grids"),
        ("--level-col", "the level column of grids (0 = top)"),
        ("--level-name-col", "the level name column of grids"),
        ("--name-col", "the display name column"),
        ("--time-col", "the reported-at column of incidents"),
        ("--closed-col", "the closed-at column of incidents"),
        ("--category-col", "the category column of incidents"),
        ("--source-col", "the source column of incidents"),
        ("--status-col", "the status column of incidents or cameras"),
        ("--description-col", "the free-text description column of incidents"),
        ("--heading-col", "the heading column of cameras (degrees, 0 = north, clockwise)"),
        ("--fov-col", "the field-of-view column of cameras (degrees)"),
        ("--range-col", "the range column of cameras (metres)"),
        ("--x-col", "for CSV: the longitude / x column"),
        ("--y-col", "for CSV: the latitude / y column"),
    ]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        columns = {}
        for opt, _ in options:
            key = opt[2:].replace("-", "_")
            value = kwargs.pop(key, None)
            if value is not None:
                columns[key.removesuffix("_col")] = value
        kwargs["columns"] = columns
        return func(*args, **kwargs)

    for opt, help_text in reversed(options):
        wrapper = click.option(opt, default=None, metavar="NAME", help=help_text)(wrapper)
    return wrapper  # type: ignore[return-value]
