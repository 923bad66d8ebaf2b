"""Shared pieces of the CLI: the root group, error handling, shared options, the progress bar."""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from layers.errors import GeogridError, GeogridWarning, StoreError
from layers.io import Limits

if TYPE_CHECKING:
    from tqdm import tqdm

    from layers.store import Store

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
      geogrid hotspots demo.gpkg          Getis-Ord Gi* with FDR control, or --statistic local-moran
      geogrid emerging demo.gpkg          new, intensifying, persistent... hot spots by month
      geogrid coverage demo.gpkg          what the cameras see, per grid
    \b
    Redraw and repair:
      geogrid plan new demo.gpkg --name "新规划"   edit a draft, diff, commit
      geogrid repair bad.gpkg --out fixed.gpkg     fix gaps and overlaps safely
    """


_STORE_URL_SCHEMES = ("postgresql://", "postgres://")


def is_store_url(src: str | Path) -> bool:
    """Tell whether ``src`` is a PostGIS URL rather than a file path."""
    return isinstance(src, str) and src.startswith(_STORE_URL_SCHEMES)


class _StoreOrPath(click.ParamType):
    """A PostGIS URL kept as text (a Path would fold its ``///``), anything else a Path."""

    name = "store"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str | Path:
        text = str(value)
        return text if is_store_url(text) else Path(text)


STORE_OR_PATH = _StoreOrPath()
"""Click type of a SRC argument that may be a GeoPackage (or other file) or a PostGIS URL."""


def source_name(src: str | Path) -> str:
    """Return how reports name SRC: a file by its name, a PostGIS store by its URL."""
    return src if isinstance(src, str) else src.name


def open_existing_store(src: str | Path, needed: tuple[str, ...]) -> Store:
    """Open the store SRC (a GeoPackage or a PostGIS URL) that must hold the layers ``needed``.

    Raises
    ------
    StoreError
        SRC does not exist or lacks a layer: the message names the command that makes it.
    """
    from layers.store import open_store

    if not is_store_url(src) and not Path(src).exists():
        msg = f"{src} does not exist: create a store with `geogrid demo {src}` or `geogrid import FILE --kind grids --into {src}`"
        raise StoreError(msg)
    store = open_store(src)
    for layer in needed:
        if not store.has(layer):
            msg = f"{source_name(src)} has no {layer!r} layer; import one with `geogrid import FILE --kind {layer} --into {src}`"
            if is_store_url(src):
                msg = (
                    f"{src} has no {layer!r} layer; write one with geogrid.open_store(URL).write({{{layer!r}: frame}})"
                )
            if layer in ("streets", "buildings"):
                msg = f"{source_name(src)} has no {layer!r} layer: geogrid demo writes a store that has it"
            raise StoreError(msg)
    return store


def fail(message: str) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit with status 2 (unusable input)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_UNUSABLE)


def login_name() -> str:
    """Return the login name of the user running the command (any platform), for the edit log."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):  # no passwd entry, no login name in the environment, no pwd module
        return "unknown user"


def handle_errors(func: F) -> F:
    """Turn geogrid errors into a clear message on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        caught: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                # geogrid's own warnings (the result stands, but look) become "warning: ..." lines
                warnings.simplefilter("always", GeogridWarning)
                return func(*args, **kwargs)
        except GeogridError as err:
            fail(str(err))
        finally:
            _show_warnings(caught)

    return wrapper  # type: ignore[return-value]


def _show_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Print geogrid's warnings once each on stderr; hand any other warning back to Python."""
    seen: set[str] = set()
    for w in caught:
        if issubclass(w.category, GeogridWarning):
            text = str(w.message)
            if text not in seen:
                seen.add(text)
                click.echo(f"warning: {text}", err=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)


def progress_bar(total: int, desc: str, *, unit: str = "step") -> tqdm:
    """Return a transient progress bar on stderr, shown only when stderr is a terminal (``unit="B"``: bytes)."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=unit == "B",
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
        leave=False,
    )


def measure_option(name: str, default: float, unit: str, help_text: str) -> Callable[[F], F]:
    """Return a click option for a non-negative length or area, its default shown, ``unit`` as metavar."""
    return click.option(
        name, type=click.FloatRange(min=0), default=default, show_default=True, metavar=unit, help=help_text
    )


_GRIDS, _INCIDENTS, _CAMERAS, _CSV = "grids", "incidents", "cameras", "csv"
_MAPPING_OPTIONS = (
    ("--id-col", "the id column (grid_id, incident_id or camera_id)", {_GRIDS, _INCIDENTS, _CAMERAS}),
    ("--parent-col", "the parent id column of grids", {_GRIDS}),
    ("--level-col", "the level column of grids (0 = top)", {_GRIDS}),
    ("--level-name-col", "the level name column of grids", {_GRIDS}),
    ("--name-col", "the display name column", {_GRIDS}),
    ("--households-col", "the households column of grids (a workload: split and merged with the area)", {_GRIDS}),
    ("--population-col", "the residents column of grids (a workload)", {_GRIDS}),
    ("--shops-col", "the shops column of grids (a workload)", {_GRIDS}),
    ("--time-col", "the reported-at column of incidents", {_INCIDENTS}),
    ("--closed-col", "the closed-at column of incidents", {_INCIDENTS}),
    ("--category-col", "the category column of incidents", {_INCIDENTS}),
    ("--source-col", "the source column of incidents", {_INCIDENTS}),
    ("--status-col", "the status column of incidents or cameras", {_INCIDENTS, _CAMERAS}),
    ("--description-col", "the free-text description column of incidents", {_INCIDENTS}),
    ("--heading-col", "the heading column of cameras (degrees, 0 = north, clockwise)", {_CAMERAS}),
    ("--fov-col", "the field-of-view column of cameras (degrees)", {_CAMERAS}),
    ("--range-col", "the range column of cameras (metres)", {_CAMERAS}),
    ("--x-col", "for CSV: the longitude / x column", {_CSV}),
    ("--y-col", "for CSV: the latitude / y column", {_CSV}),
)
"""The column mapping options and what they serve: a layer kind, or CSV point files (x / y)."""


def column_mapping_options(func: F, *, serves: frozenset[str] | None = None) -> F:
    """Add ``--id-col``, ``--parent-col``, ``--level-col``, ``--name-col`` ... to a command.

    The command receives them gathered in one ``columns`` dict (target name -> source
    column name), holding only the options the user gave. ``serves`` keeps only the
    options for those layer kinds (``"grids"``, ``"incidents"``, ``"cameras"``) and
    ``"csv"`` (the x / y columns); default: all of them.
    """
    options = [(opt, text) for opt, text, kinds in _MAPPING_OPTIONS if serves is None or kinds & serves]
    if serves == {_GRIDS}:
        options = [(opt, "the grid id column" if opt == "--id-col" else text) for opt, text in options]

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


def time_window_options(func: F) -> F:
    """``--since``, ``--until`` and ``--time-field``: one time window, read as :mod:`layers.times` reads it."""
    func = click.option(
        "--time-field",
        type=click.Choice(["reported_at", "closed_at"]),
        default="reported_at",
        show_default=True,
        help="the time --since/--until filter",
    )(func)
    return reported_window_options(func)


def reported_window_options(func: F) -> F:
    """``--since`` and ``--until`` on the time reported: :func:`time_window_options` without ``--time-field``."""
    for decorator in reversed(
        (
            click.option(
                "--since", default=None, metavar="DATE", help="from DATE (a whole day, or a time; store time zone)"
            ),
            click.option(
                "--until", default=None, metavar="DATE", help="to DATE, the whole day included (store time zone)"
            ),
        )
    ):
        func = decorator(func)
    return func


def limit_options(func: F) -> F:
    """Add the door's size limits, ``--max-vertices``, ``--max-depth``, ``--max-file-bytes``.

    Every command that reads a file through the door (``import``, ``check``, ``repair``) has
    them, so the door's "raise the limit with --max-..." names an option of the command run.
    The command builds :class:`layers.io.Limits` from them.
    """
    for name, default, help_text in reversed(
        (
            ("--max-vertices", Limits.max_vertices, "most vertices per feature"),
            ("--max-depth", Limits.max_depth, "deepest nesting (GeoJSON brackets, geometry collections)"),
            ("--max-file-bytes", Limits.max_file_bytes, "largest input file"),
        )
    ):
        func = click.option(name, type=click.IntRange(min=1), default=default, show_default=True, help=help_text)(func)
    return func


def grid_file_options(func: F) -> F:
    """Add the options that say how to read a grid file: the grid column mapping, ``--layer``, ``--crs``, ``--encoding``.

    Only the columns of grids: incident and camera columns, and a CSV's x / y (points,
    never grid polygons), do not apply to a grid file.
    """
    func = click.option(
        "--encoding", default=None, help="text encoding of a Shapefile without .cpg (default UTF-8), e.g. gbk"
    )(func)
    func = click.option("--crs", default=None, help="the CRS of the file, if it does not say (e.g. EPSG:4326)")(func)
    func = click.option("--layer", default=None, help="layer to read from a multi-layer file (default: 'grids')")(func)
    return column_mapping_options(func, serves=frozenset({_GRIDS}))


def _polygon_file(path: Path | None, what: str) -> Any:
    """Read a vector file of polygons for ``--outline`` / ``--exempt`` (None when not given)."""
    if path is None:
        return None
    import pyogrio

    try:
        frame = pyogrio.read_dataframe(path)
    except (OSError, pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as err:
        fail(f"--{what} {path}: cannot read it ({err})")
    if frame.crs is None:
        fail(f"--{what} {path} has no CRS: save it with one (e.g. EPSG:4326)")
    kinds = set(frame.geom_type.dropna())
    if not kinds <= {"Polygon", "MultiPolygon"}:
        fail(f"--{what} {path} must hold polygons; it has {', '.join(sorted(kinds)) or 'no geometry'}")
    return frame


def polygon_file_option(name: str, help_text: str) -> Callable[[F], F]:
    """Return an option ``--<name> FILE`` that hands the command the file's polygons (GeoDataFrame or None)."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs[name] = _polygon_file(kwargs[name], name)
            return func(*args, **kwargs)

        return click.option(  # type: ignore[return-value]
            f"--{name}", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE", help=help_text
        )(wrapper)

    return decorate


EXEMPT_HELP = "a vector file of areas no grid needs to cover (a lake, a closed site): never gaps"
OUTLINE_HELP = "a vector file of the jurisdiction, if it is not the union of level 0 (its holes are enclaves)"
