"""Map pages: the grid hierarchy of the store on a map that needs no internet."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.deps import SettingsDep, StoreDep
from geogrid.maps import grid_map, render_offline

__all__ = ["ASSET_URL", "router"]

ASSET_URL = "/static/vendor"
"""Where the app serves the vendored browser assets (``api/static/vendor``)."""

router = APIRouter(tags=["maps"])


@router.get("/", response_class=HTMLResponse, summary="Map of every grid level")
def grids_page(store: StoreDep, settings: SettingsDep) -> HTMLResponse:
    """Return an HTML page with every level of the store's grids, one overlay per level."""
    grids = store.read("grids")
    m = grid_map(grids, tiles=settings.tiles, attribution=settings.tiles_attribution)
    return HTMLResponse(render_offline(m, asset_url=ASSET_URL))
