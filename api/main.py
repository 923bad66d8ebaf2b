"""``uvicorn api.main:app`` serves geogrid with settings from the environment."""

from api.app import create_app

app = create_app()
