"""geogrid web service: thin FastAPI routes over the engine."""

from api.app import create_app
from api.settings import Settings, get_settings

__all__ = ["Settings", "create_app", "get_settings"]
