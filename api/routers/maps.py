"""Map pages: the grid hierarchy of the store on a map that needs no internet."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from api.auth import require_viewer
from api.deps import CacheDep, SettingsDep, StoreDep
from api.errors import ErrorBody
from api.middleware import csp_nonce
from api.routers.ogc import AUTH_ERRORS
from geogrid.maps import grid_map, render_offline

__all__ = ["ASSET_URL", "router"]

ASSET_URL = "/static/vendor"
"""Where the app serves the vendored browser assets (``api/static/vendor``)."""

router = APIRouter(
    prefix="/maps",
    tags=["maps"],
    dependencies=[Depends(require_viewer)],
    responses={**AUTH_ERRORS, 503: {"model": ErrorBody, "description": "The store is unavailable"}},
)


@router.get("/grids", response_class=HTMLResponse, summary="Map of every grid level")
def grids_page(request: Request, store: StoreDep, cache: CacheDep, settings: SettingsDep) -> HTMLResponse:
    """Return an HTML page with every level of the store's grids, one overlay per level.

    Its inline scripts and styles carry the response's CSP nonce; nothing else runs.
    """
    grids = cache.get(store, "grids")
    if grids is None:
        grids = store.read("grids")
    m = grid_map(grids, tiles=settings.tiles, attribution=settings.tiles_attribution)
    return HTMLResponse(render_offline(m, asset_url=ASSET_URL, nonce=csp_nonce(request.scope)))
