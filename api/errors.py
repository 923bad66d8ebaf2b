"""One table from geogrid's error classes to HTTP statuses, and the handlers that use it.

The client gets a safe message and a short error id; the log gets the detail
(with the same id). Messages of client errors (4xx) describe the client's own
input and are returned as they are; server-side failures (5xx) are not.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.auth import login_url
from api.features import InvalidParameterError
from layers.errors import (
    CRSError,
    EditConflict,
    GeogridError,
    InputTooLargeError,
    NetworkChanged,
    NotFoundError,
    StoreError,
    TopologyError,
    ValidationError,
)

__all__ = [
    "ERROR_STATUS",
    "ErrorBody",
    "PreconditionRequired",
    "error_response",
    "install_error_handlers",
    "status_of",
]

log = logging.getLogger("geogrid.api")

ERROR_STATUS: Mapping[type[GeogridError], tuple[int, str]] = {
    ValidationError: (422, "InvalidInput"),  # SchemaError is a ValidationError
    CRSError: (422, "InvalidCRS"),
    InputTooLargeError: (413, "InputTooLarge"),
    TopologyError: (409, "TopologyConflict"),
    NetworkChanged: (409, "NetworkChanged"),  # If-Match held; the network the plan was drawn on did not
    EditConflict: (412, "EditConflict"),
    NotFoundError: (404, "NotFound"),
    StoreError: (503, "StoreUnavailable"),
    GeogridError: (500, "ServerError"),
}
"""Each geogrid error class → (HTTP status, error code); the most specific class in the MRO wins."""

_SAFE_5XX = {
    503: "the data store is unavailable; try again later or ask the operator (quote the error id)",
    500: "internal error; ask the operator (quote the error id)",
}

_HTTP_CODES = {
    400: "InvalidParameterValue",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    412: "PreconditionFailed",
    413: "ContentTooLarge",
    415: "UnsupportedMediaType",
    422: "InvalidInput",
    428: "PreconditionRequired",
}


class PreconditionRequired(Exception):  # noqa: N818  (named for its HTTP status)
    """A change to a versioned resource came without ``If-Match`` (428: nothing was changed)."""


class ErrorBody(BaseModel):
    """The body of every error response (the OGC API exception shape, plus an id)."""

    code: str
    description: str
    error_id: str | None = None
    findings: dict[str, Any] | None = None


def status_of(err: GeogridError) -> tuple[int, str]:
    """Return ``(status, code)`` for ``err`` from :data:`ERROR_STATUS`.

    Examples
    --------
    >>> status_of(NotFoundError("no grid 'G9'"))
    (404, 'NotFound')
    """
    for cls in type(err).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return ERROR_STATUS[GeogridError]  # pragma: no cover  (every GeogridError has GeogridError in its MRO)


def error_response(status: int, code: str, description: str, **extra: Any) -> JSONResponse:
    """Build the JSON error response every handler returns."""
    body = ErrorBody(code=code, description=description, **extra)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status)


def _findings(err: GeogridError) -> dict[str, Any] | None:
    findings = getattr(err, "findings", None)
    to_geo_dict = getattr(findings, "to_geo_dict", None)
    if to_geo_dict is None:
        return None
    import json

    return json.loads(findings.to_json(na="null", show_bbox=False, drop_id=True))  # type: ignore[union-attr]


async def _geogrid_error(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, GeogridError)
    status, code = status_of(err)
    error_id = secrets.token_hex(6)
    if status >= 500:
        log.error("%s %s failed [%s]: %s", request.method, request.url.path, error_id, err, exc_info=err)
        return error_response(status, code, _SAFE_5XX[status], error_id=error_id)
    log.info("%s %s: %d [%s]: %s", request.method, request.url.path, status, error_id, err)
    return error_response(status, code, str(err), error_id=error_id, findings=_findings(err))


async def _invalid_parameter(request: Request, err: Exception) -> JSONResponse:
    return error_response(400, "InvalidParameterValue", str(err))


async def _precondition_required(request: Request, err: Exception) -> JSONResponse:
    return error_response(428, "PreconditionRequired", str(err))


async def _unexpected(request: Request, err: Exception) -> JSONResponse:
    error_id = secrets.token_hex(6)
    log.error("%s %s failed [%s]", request.method, request.url.path, error_id, exc_info=err)
    return error_response(500, "ServerError", _SAFE_5XX[500], error_id=error_id)


def _allowed_methods(request: Request) -> str | None:
    """Return every method some route serves at this path (Starlette's 405 names only the first route's)."""
    from starlette.routing import compile_path

    from api.auth import iter_routes

    methods: set[str] = set()
    for info in iter_routes(request.app):
        if info.methods and compile_path(info.path)[0].match(request.url.path):
            methods |= info.methods
    return ", ".join(sorted(methods)) or None


async def _http_error(request: Request, err: Exception) -> Response:
    assert isinstance(err, StarletteHTTPException)
    if err.status_code == 401 and request.method == "GET" and "text/html" in request.headers.get("accept", ""):
        # A browser opening a page without a key: to the sign-in form, and back here afterwards.
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(login_url(target), status_code=303)
    detail = err.detail if isinstance(err.detail, str) else "request refused"
    response = error_response(err.status_code, _HTTP_CODES.get(err.status_code, "HTTPError"), detail)
    for name, value in (err.headers or {}).items():
        response.headers[name] = value
    if err.status_code == 405:
        allow = _allowed_methods(request)
        if allow:
            response.headers["Allow"] = allow
    return response


async def _invalid_request(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, RequestValidationError)
    parts = []
    in_body = False
    for e in err.errors():
        loc = [str(p) for p in e.get("loc", ())]
        in_body = in_body or (bool(loc) and loc[0] == "body")
        if len(loc) == 3 and loc[0] == "query" and loc[2].isdigit():  # one value of a repeated parameter
            where = f"{loc[1]} (query, value {int(loc[2]) + 1})"
        else:
            where = f"{'.'.join(loc[1:]) or '.'.join(loc)} ({loc[0] if loc else '?'})"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    # OGC API – Features: an invalid query parameter is a 400; an invalid body keeps FastAPI's 422.
    status = 422 if in_body else 400
    return error_response(status, _HTTP_CODES[status], "; ".join(parts) or "invalid request")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers: geogrid errors by :data:`ERROR_STATUS`; bad parameters 400; HTTP errors as JSON."""
    app.add_exception_handler(GeogridError, _geogrid_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(InvalidParameterError, _invalid_parameter)
    app.add_exception_handler(PreconditionRequired, _precondition_required)
    app.add_exception_handler(Exception, _unexpected)
