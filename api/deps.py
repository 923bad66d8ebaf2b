"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import anyio
from fastapi import Depends, Request

from api.auth import Principal, current_principal
from api.features import LayerCache
from api.middleware import WritesFirst
from api.settings import Settings, get_settings
from layers.store import Store, open_store

__all__ = [
    "WRITE_THREADS",
    "CacheDep",
    "PrincipalDep",
    "SettingsDep",
    "StoreDep",
    "get_layer_cache",
    "get_store",
    "on_write_threads",
    "writes_first",
]

WRITE_THREADS = 4
"""Worker threads a process runs changes on, apart from the reads' pool (writers queue for the store anyway)."""

_P = ParamSpec("_P")
_R = TypeVar("_R")
_WRITE_LIMITER: anyio.CapacityLimiter | None = None

SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_store(settings: SettingsDep) -> Store:
    """Open the configured store; with none configured, the demo district (built on first use).

    Opening names the store and reads nothing, so it runs on the event loop; only the
    demo's first build goes to a worker thread.
    """
    if settings.store is not None:
        return open_store(settings.store)
    from geogrid.demo import demo_store

    return open_store(await anyio.to_thread.run_sync(demo_store))


async def get_layer_cache(request: Request) -> LayerCache:
    """Return the app's cache of whole layers (one per app, see :class:`api.features.LayerCache`)."""
    cache = getattr(request.app.state, "layer_cache", None)
    if cache is None:
        cache = request.app.state.layer_cache = LayerCache()
    return cache


async def writes_first(request: Request) -> AsyncIterator[None]:
    """Hold new reads back while this change runs (see :class:`api.middleware.WritesFirst`).

    List it after the route's policy: only an authorised change, its body already read,
    gets ahead of the readers.
    """
    gate = getattr(request.app.state, "writes_first", None)
    if gate is None:
        gate = request.app.state.writes_first = WritesFirst()
    async with gate.change():
        yield


def on_write_threads(route: Callable[_P, _R]) -> Callable[_P, Any]:
    """Run a blocking change route on threads of its own, never waiting for a thread behind reads.

    FastAPI runs blocking routes on one pool shared by every request (40 threads): walls
    waiting for a page that is being built can hold all of them, and an edit would wait
    for the build. Changes get :data:`WRITE_THREADS` threads of their own instead.
    """

    @functools.wraps(route)
    async def on_writer(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        global _WRITE_LIMITER  # one pool per process, made on first use
        if _WRITE_LIMITER is None:
            _WRITE_LIMITER = anyio.CapacityLimiter(WRITE_THREADS)
        return await anyio.to_thread.run_sync(functools.partial(route, *args, **kwargs), limiter=_WRITE_LIMITER)

    return on_writer


StoreDep = Annotated[Store, Depends(get_store)]
CacheDep = Annotated[LayerCache, Depends(get_layer_cache)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
