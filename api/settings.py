"""Application settings: one ``BaseSettings`` with the ``GEOGRID_`` prefix."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """Settings of the web service, read from ``GEOGRID_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="GEOGRID_", extra="ignore")

    store: Path | None = None
    """The GeoPackage store to serve; None serves the demo district (built on first use)."""

    tiles: str | None = None
    """URL template of a local basemap tile server (``http://tiles.local/{z}/{x}/{y}.png``); None: no basemap."""

    tiles_attribution: str | None = None
    """Attribution shown for ``tiles``."""


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings (tests override the dependency instead)."""
    return Settings()
