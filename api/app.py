"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from api.settings import Settings, get_settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the geogrid web service for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    app = FastAPI(title="geogrid", version="0.1.0")
    app.state.settings = settings

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
