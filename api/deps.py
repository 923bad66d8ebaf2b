"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from api.settings import Settings, get_settings
from layers.store import Store, open_store

__all__ = ["SettingsDep", "StoreDep", "get_store"]

SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_store(settings: SettingsDep) -> Store:
    """Open the configured store; with none configured, the demo district (built on first use)."""
    if settings.store is not None:
        return open_store(settings.store)
    from geogrid.demo import demo_store

    return open_store(demo_store())


StoreDep = Annotated[Store, Depends(get_store)]
