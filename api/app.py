"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.routers import maps
from api.settings import Settings, get_settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the geogrid web service for ``settings`` (default: from the environment).

    Explicit ``settings`` replace :func:`~api.settings.get_settings` for this app only;
    tests may swap them again through ``app.dependency_overrides``.
    """
    app = FastAPI(title="geogrid", version="0.1.0")
    if settings is not None:
        app.dependency_overrides[get_settings] = lambda: settings
    app.state.settings = settings or get_settings()

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    # Served from the installed package (works from a wheel): the Leaflet build the maps use.
    app.mount("/static", StaticFiles(packages=[("api", "static")]), name="static")
    app.include_router(maps.router)
    return app
