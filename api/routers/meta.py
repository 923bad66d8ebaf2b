"""The service itself: health, the OpenAPI document and (when enabled) the interactive docs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api.auth import public, require_viewer
from api.errors import ErrorBody
from api.middleware import csp_nonce

__all__ = ["SWAGGER_UI", "OpenAPIResponse", "docs_router", "router"]

router = APIRouter(tags=["meta"])


class OpenAPIResponse(JSONResponse):
    """JSON with the OpenAPI 3.0 media type (the one QGIS looks for in ``service-desc`` links)."""

    media_type = "application/vnd.oai.openapi+json;version=3.0"


SWAGGER_UI = "/static/vendor/swagger-ui-dist-5.35.0"
"""The vendored Swagger UI (FastAPI's default page loads it from a CDN, which intranets cannot reach)."""


@router.get("/health", dependencies=[Depends(public)], summary="Liveness")
def health() -> dict[str, str]:
    """Return ``{"status": "ok"}``: the process is up (nothing else is checked)."""
    return {"status": "ok"}


_FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#111a2e"/>'
    '<path d="M1 5.5h14M1 10.5h14M5.5 1v14M10.5 1v14" stroke="#4cc9f0"/></svg>'
)


@router.get("/favicon.ico", dependencies=[Depends(public)], include_in_schema=False)
def favicon() -> Response:
    """Return the app's icon: browsers ask for it on every page that names none (a 404 logs a console error)."""
    return Response(_FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})


@router.get(
    "/openapi.json",
    dependencies=[Depends(require_viewer)],
    responses={
        401: {"model": ErrorBody, "description": "No or unknown API key"},
        403: {"model": ErrorBody, "description": "The key's role may not do this"},
    },
    summary="The API definition (OpenAPI 3.0)",
    response_model=dict[str, Any],
    response_class=OpenAPIResponse,
)
def openapi(request: Request) -> OpenAPIResponse:
    """Return the OpenAPI document: QGIS reads the largest ``limit`` from it."""
    return OpenAPIResponse(request.app.openapi())


docs_router = APIRouter(tags=["meta"], dependencies=[Depends(require_viewer)])


@docs_router.get("/docs", response_class=HTMLResponse, summary="Interactive API docs", include_in_schema=False)
def docs(request: Request) -> HTMLResponse:
    """Return Swagger UI for ``/openapi.json`` (only with ``GEOGRID_DOCS=true``), served by the app itself.

    The page's one inline script carries the response's CSP nonce, so the usual policy applies.
    """
    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="geogrid API",
        swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png",
    )
    body = bytes(page.body).decode().replace("<script>", f'<script nonce="{csp_nonce(request.scope)}">')
    return HTMLResponse(body)
