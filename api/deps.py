"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.auth import Principal, current_principal
from api.features import LayerCache
from api.settings import Settings, get_settings
from layers.store import Store, open_store

__all__ = ["CacheDep", "PrincipalDep", "SettingsDep", "StoreDep", "get_layer_cache", "get_store"]

SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_store(settings: SettingsDep) -> Store:
    """Open the configured store; with none configured, the demo district (built on first use)."""
    if settings.store is not None:
        return open_store(settings.store)
    from geogrid.demo import demo_store

    return open_store(demo_store())


def get_layer_cache(request: Request) -> LayerCache:
    """Return the app's cache of whole layers (one per app, see :class:`api.features.LayerCache`)."""
    cache = getattr(request.app.state, "layer_cache", None)
    if cache is None:
        cache = request.app.state.layer_cache = LayerCache()
    return cache


StoreDep = Annotated[Store, Depends(get_store)]
CacheDep = Annotated[LayerCache, Depends(get_layer_cache)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
