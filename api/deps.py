"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import Depends, Request

from api.auth import Principal, current_principal
from api.features import LayerCache
from api.middleware import WritesFirst
from api.settings import Settings, get_settings
from layers.store import Store, open_store

__all__ = ["CacheDep", "PrincipalDep", "SettingsDep", "StoreDep", "get_layer_cache", "get_store", "writes_first"]

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


StoreDep = Annotated[Store, Depends(get_store)]
CacheDep = Annotated[LayerCache, Depends(get_layer_cache)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
