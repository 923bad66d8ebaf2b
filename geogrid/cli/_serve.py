"""``geogrid serve``: run the web service on a store (or on the demo district)."""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import click
from tqdm import tqdm

from geogrid.cli._common import handle_errors, main

_URL_SCHEMES = ("postgresql://", "postgres://")


def _without_password(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (for printing).

    Examples
    --------
    >>> _without_password("postgresql://me:secret@db/city?schema=s")
    'postgresql://me:***@db/city?schema=s'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def warm_kernels() -> None:
    """Load (or, in a fresh install, compile) the numba kernels the pages use, on a tiny input.

    ``geogrid serve`` runs this in a background thread while the server starts, so the first
    map request does not pay the ~0.5 s cache load (or the seconds of a first compile).
    """
    import numpy as np

    import shapely

    from geogrid import _coverage_geom
    from geogrid.assignment import GridLocator

    box = np.array([shapely.box(0.0, 0.0, 10.0, 10.0)], dtype=object)
    GridLocator(box).locate(np.array([5.0, 0.0]), np.array([5.0, 0.0]))
    one = np.ones(1)
    views = _coverage_geom.sectors(one * 5, one * 5, one * 0, one * 90, one * 3)
    _coverage_geom.covered_area_per_grid(box, views)


def _warm_in_background() -> None:
    import logging
    import threading

    def run() -> None:
        try:
            warm_kernels()
        except Exception:  # a failed warm-up costs the first request time, nothing else: say so, go on
            logging.getLogger("geogrid.serve").warning("could not pre-load the compiled kernels", exc_info=True)

    threading.Thread(target=run, name="geogrid-warm-kernels", daemon=True).start()


_ROLES = ("viewer", "planner", "admin")
_MIN_KEY_LENGTH = 16  # as api.settings.MIN_KEY_LENGTH; tests/api/test_doors.py checks both agree


def _key_list_problems(text: str) -> list[str]:
    """Return what is wrong with an API key list (``"key1:viewer,key2:admin"``), as the app would refuse it.

    The app (``api.settings``) checks the list again when it starts; this check lets ``serve``
    refuse before deciding anything from the list (geogrid does not import the api package).

    Examples
    --------
    >>> _key_list_problems(" , ")[0]
    "entry 1 is empty (an unset variable in '$A,$B'?)"
    >>> _key_list_problems("0123456789abcdef:viewer")
    []
    """
    if not text.strip():
        return []
    problems: list[str] = []
    seen: set[str] = set()
    for n, item in enumerate(p.strip() for p in text.split(",")):
        where = f"entry {n + 1}"
        key, sep, role = item.rpartition(":")
        key, role = key.strip(), role.strip().lower()
        if not item:
            problems.append(f"{where} is empty (an unset variable in '$A,$B'?)")
        elif not sep or not key:
            problems.append(f"{where} has no 'key:role' form")
        elif role not in _ROLES:
            problems.append(f"{where} has role {role!r}; roles are {', '.join(_ROLES)}")
        elif len(key) < _MIN_KEY_LENGTH:
            problems.append(f"{where} has a key of {len(key)} characters; keys need at least {_MIN_KEY_LENGTH}")
        elif any(c.isspace() or c in ",:" for c in key):
            problems.append(f"{where} has a key with a space, ',' or ':' in it")
        elif key in seen:
            problems.append(f"{where} repeats a key")
        seen.add(key)
    return problems


def _is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@main.command()
@click.argument("store", required=False)
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind")
@click.option(
    "--port", envvar="GEOGRID_PORT", default=8000, show_default=True, type=int, help="port to listen on (GEOGRID_PORT)"
)
@click.option(
    "--api-keys",
    envvar="GEOGRID_API_KEYS",
    default="",
    metavar="KEY:ROLE,...",
    help="API keys and roles (viewer, planner, admin); default from GEOGRID_API_KEYS. "
    "Without keys the server reads anonymously and binds to loopback only.",
)
@click.option(
    "--public-url",
    envvar="GEOGRID_PUBLIC_URL",
    default=None,
    metavar="URL",
    help="the URL clients use (https://grid.example.gov); links are built on it, not on the Host header. "
    "Default from GEOGRID_PUBLIC_URL.",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="seconds a client has to send a request's headers before its connection is closed",
)
@click.option(
    "--max-connections",
    default=256,
    show_default=True,
    type=click.IntRange(min=1),
    help="connections served at once; more get 503",
)
@handle_errors
def serve(
    store: str | None,
    host: str,
    port: int,
    api_keys: str,
    public_url: str | None,
    header_timeout: float,
    max_connections: int,
) -> None:
    r"""Serve STORE (a GeoPackage, or a PostGIS URL) as maps and an API; with no STORE, the demo district.

    The demo district is built on first use into the user cache directory (a few
    seconds) and reused afterwards. Everything the pages need is served by geogrid
    itself: the maps work on networks with no internet.

    Without API keys anyone who reaches the server may read, so it only binds to
    loopback; an admin key is generated and printed for this run (as Jupyter
    prints its token).

    \b
    Examples:
      geogrid serve                      the demo district on http://127.0.0.1:8000/
      geogrid serve city.gpkg --port 9000
      geogrid serve "postgresql://geogrid@db.local/city?schema=hebei"
      GEOGRID_API_KEYS="k1:viewer,k2:admin" geogrid serve city.gpkg --host 0.0.0.0
    """
    import uvicorn

    from geogrid._serving import server_options
    from geogrid.demo import demo_store

    problems = _key_list_problems(api_keys)
    if problems:
        msg = (
            "GEOGRID_API_KEYS (or --api-keys): "
            + "; ".join(problems)
            + f". Write 'key1:viewer,key2:planner,key3:admin' with keys of at least {_MIN_KEY_LENGTH} characters "
            "(python -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )
        raise click.UsageError(msg)
    keyed = bool(api_keys.strip())
    if not keyed and not _is_loopback(host):
        msg = (
            f"refusing to serve on {host} without API keys: anyone on the network could read every layer. "
            "Set GEOGRID_API_KEYS='key1:viewer,key2:admin' (or --api-keys), or bind to 127.0.0.1"
        )
        raise click.UsageError(msg)
    if store is not None and store.startswith(_URL_SCHEMES):
        location, shown_store = store, _without_password(store)
    else:
        path = None if store is None else Path(store)
        if path is not None and not path.exists():
            msg = f"{path} does not exist: build one with `geogrid demo {path}`"
            raise click.BadParameter(msg, param_hint="STORE")
        if path is None:
            with tqdm(total=9, desc="demo district (first use)", unit="step", leave=False, disable=None) as bar:
                path = demo_store(progress=lambda _stage: bar.update(1))
        location = shown_store = str(path.resolve())
    # The app reads its settings (GEOGRID_*) from the environment of the server process.
    os.environ["GEOGRID_STORE"] = location
    if public_url:
        os.environ["GEOGRID_PUBLIC_URL"] = public_url
    if keyed:
        os.environ["GEOGRID_API_KEYS"] = api_keys
        os.environ.pop("GEOGRID_LOCAL_ADMIN_KEY", None)
    else:
        admin_key = secrets.token_urlsafe(24)
        os.environ["GEOGRID_LOCAL_ADMIN_KEY"] = admin_key
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"geogrid: serving {shown_store} on http://{shown}:{port}/ (maps: http://{shown}:{port}/maps/grids)", err=True
    )
    if not keyed:
        # The app itself warns once that reading is anonymous and answered to this machine only.
        click.echo(f"geogrid: admin key for this run:  Authorization: Bearer {admin_key}", err=True)
    _warm_in_background()
    uvicorn.run(
        # api.app, not api.main: importing api.main builds a module-level app (for plain
        # uvicorn), which would build the app twice and warn twice.
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_level="info",
        **server_options(header_timeout, max_connections),  # type: ignore[arg-type]
    )
