"""The FastAPI application factory."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.staticfiles import StaticFiles

from api.auth import check_route_policies
from api.errors import install_error_handlers
from api.features import LayerCache
from api.middleware import (
    BodyLimitMiddleware,
    ClientMiddleware,
    HeadMiddleware,
    SecurityHeadersMiddleware,
    WritesFirst,
    WritesFirstMiddleware,
)
from api.openapi import build_openapi
from api.routers import analyses, maps, meta, ogc, plans, session
from api.sessions import SessionStore
from api.settings import Settings, get_settings

__all__ = ["create_app"]

log = logging.getLogger("geogrid.api")


def _tile_origin(template: str | None) -> list[str]:
    """Return the origin of the basemap tile server, for ``img-src`` (``{s}`` subdomains as ``*``)."""
    if not template:
        return []
    parts = urlsplit(template.replace("{s}", "*"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return []
    return [f"{parts.scheme}://{parts.netloc}"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the geogrid web service for ``settings`` (default: from the environment).

    Explicit ``settings`` replace :func:`~api.settings.get_settings` for this app only;
    tests may swap them again through ``app.dependency_overrides``. Middleware, CORS
    and the docs switch are fixed when the app is built.

    Raises
    ------
    LookupError
        A route declares no access policy (see :mod:`api.auth`).
    """
    settings = settings or get_settings()
    app = FastAPI(
        title="geogrid",
        version="0.1.0",
        description="Grids, incidents and cameras as OGC API – Features; offline maps.",
        openapi_url=None,  # served by api.routers.meta under the viewer policy
        docs_url=None,
        redoc_url=None,
    )

    async def app_settings() -> Settings:  # asynchronous: no worker thread just to return them
        return settings

    app.dependency_overrides[get_settings] = app_settings
    app.state.settings = settings
    app.state.layer_cache = LayerCache()
    app.state.sessions = SessionStore()
    app.state.writes_first = WritesFirst()

    install_error_handlers(app)
    app.include_router(meta.router)
    app.include_router(session.router)
    if settings.docs:
        app.include_router(meta.docs_router)
    app.include_router(ogc.router)
    app.include_router(analyses.router)
    app.include_router(plans.router)
    app.include_router(maps.router)
    # Served from the installed package (works from a wheel): the Leaflet build the maps use.
    app.mount("/static", StaticFiles(packages=[("api", "static")]), name="static")
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]

    # Outermost last: headers go on every answer, including a 413 and a CORS preflight.
    # Bodies above 1 KB are gzipped for clients that accept it (1,000 demo grids: 1.43 MB -> 334 KB);
    # HEAD runs as GET outside the compression, so its Content-Length is the GET's.
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)
    app.add_middleware(HeadMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_credentials=False,  # keys travel in the Authorization header, never in cookies
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match"],
            expose_headers=["ETag", "Content-Crs", "Location"],
            max_age=600,
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware, img_sources=_tile_origin(settings.tiles))
    # Reads wait while a change (plan edit, commit) runs: it never queues behind a crowd of walls.
    app.add_middleware(WritesFirstMiddleware, gate=app.state.writes_first)
    # Outermost of all: who the client is (and whether it may be served at all) comes first.
    app.add_middleware(
        ClientMiddleware,
        trusted_proxies=settings.trusted_proxies,
        public_url=settings.public_url,
        loopback_only=not settings.api_keys,
    )

    check_route_policies(app)
    if not settings.api_keys:
        log.warning("no API keys configured: anonymous reading, answered to clients on this machine only")
    return app
