"""OGC API – Features: landing page, conformance, collections and their items.

Every route is readable by viewers (and by anyone when no API keys are configured).
Media types: JSON documents are ``application/json``, features ``application/geo+json``;
the landing page is also HTML for browsers (``Accept: text/html`` or ``?f=html``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from api.auth import require_viewer
from api.deps import CacheDep, SettingsDep, StoreDep
from api.errors import ErrorBody
from api.features import (
    COLLECTIONS,
    CONFORMANCE,
    CRS84,
    EPSG4326,
    LIMIT_DEFAULT,
    LIMIT_MAX,
    InvalidParameterError,
    available,
    build_query,
    collection_document,
    collection_spec,
    feature_collection,
    query_items,
    read_feature,
)
from api.home_page import home_data, home_html
from api.middleware import csp_nonce
from api.models import Collection, Collections, Conformance, Feature, FeatureCollection, LandingPage

__all__ = ["AUTH_ERRORS", "GEOJSON", "OPENAPI_JSON", "GeoJSONResponse", "router"]

GEOJSON = "application/geo+json"
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No or unknown API key"},
    403: {"model": ErrorBody, "description": "The key's role may not do this"},
}
"""The responses every route behind a policy may give."""

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Invalid or unknown query parameter"},
    401: {"model": ErrorBody, "description": "No or unknown API key"},
    403: {"model": ErrorBody, "description": "The key's role may not do this"},
    404: {"model": ErrorBody, "description": "No such collection or feature"},
    503: {"model": ErrorBody, "description": "The store is unavailable"},
}


class GeoJSONResponse(JSONResponse):
    """JSON with the GeoJSON media type."""

    media_type = GEOJSON


router = APIRouter(tags=["features"], dependencies=[Depends(require_viewer)], responses=_ERRORS)


def _base(request: Request) -> str:
    return str(request.base_url)


def _wants_html(request: Request, f: str | None) -> bool:
    if f is not None:
        return f == "html"
    best_html = best_json = -1.0
    for part in request.headers.get("accept", "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        if media == "text/html":
            best_html = max(best_html, q)
        elif media in ("application/json", "application/*"):
            best_json = max(best_json, q)
    return best_html > 0 and best_html > best_json


def _landing_links(request: Request, docs: bool) -> list[dict[str, str]]:
    base = _base(request)
    links = [
        {"href": f"{base}?f=json", "rel": "self", "type": "application/json", "title": "This document"},
        {"href": f"{base}?f=html", "rel": "alternate", "type": "text/html", "title": "This document as HTML"},
        {"href": f"{base}openapi.json", "rel": "service-desc", "type": OPENAPI_JSON, "title": "The API definition"},
        {"href": f"{base}conformance", "rel": "conformance", "type": "application/json", "title": "Conformance"},
        {"href": f"{base}collections", "rel": "data", "type": "application/json", "title": "Collections"},
        {"href": f"{base}maps/grids", "rel": "related", "type": "text/html", "title": "Map of the grid levels"},
    ]
    if docs:
        links.insert(3, {"href": f"{base}docs", "rel": "service-doc", "type": "text/html", "title": "API docs"})
    return links


@router.get(
    "/",
    summary="Landing page",
    response_model=LandingPage,
    responses={200: {"content": {"text/html": {}}, "description": "The landing page, JSON or HTML"}},
)
def landing(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    f: Annotated[Literal["json", "html"] | None, Query(description="json or html; default by Accept")] = None,
    lang: Annotated[Literal["zh", "en"], Query(description="language of the HTML page")] = "zh",
) -> Any:
    """Return the landing page: JSON for clients (QGIS), the application's home page for browsers."""
    links = _landing_links(request, settings.docs)
    doc = {
        "title": "geogrid",
        "description": "Grids, incidents and cameras of the district as OGC API – Features, and maps.",
        "links": links,
    }
    headers = {"Vary": "Accept"}
    if not _wants_html(request, f):
        return JSONResponse(doc, headers=headers)
    ids = [s.id for s in available(store)]
    data = home_data(request, settings, store, links, ids)
    return HTMLResponse(
        home_html(data, lang=lang, nonce=csp_nonce(request.scope), base=_base(request)), headers=headers
    )


@router.get("/conformance", summary="Conformance classes", response_model=Conformance)
def conformance() -> JSONResponse:
    """Return the conformance classes (Features Part 1 core, GeoJSON, OpenAPI 3.0; Part 2 CRS)."""
    return JSONResponse({"conformsTo": list(CONFORMANCE)})


@router.get("/collections", summary="The collections", response_model=Collections)
def collections(request: Request, store: StoreDep, cache: CacheDep) -> JSONResponse:
    """Return every collection the store holds, with extents and links."""
    base = _base(request)
    docs = [collection_document(store, cache, spec, base) for spec in available(store)]
    links = [{"href": f"{base}collections", "rel": "self", "type": "application/json", "title": "Collections"}]
    return JSONResponse({"links": links, "collections": docs})


@router.get("/collections/{collection_id}", summary="One collection", response_model=Collection)
def collection(request: Request, collection_id: str, store: StoreDep, cache: CacheDep) -> JSONResponse:
    """Return one collection: extents, CRSs, links to its items."""
    spec = collection_spec(store, collection_id)
    return JSONResponse(collection_document(store, cache, spec, _base(request)))


_FIXED = {"bbox", "bbox-crs", "crs", "datetime", "limit", "offset", "f"}
_FILTERS = sorted({name for spec in COLLECTIONS.values() for name in spec.filters})


@router.get(
    "/collections/{collection_id}/items",
    summary="Features of a collection",
    response_model=FeatureCollection,
    response_class=GeoJSONResponse,
)
def items(
    request: Request,
    collection_id: str,
    store: StoreDep,
    cache: CacheDep,
    limit: Annotated[
        int,
        Query(ge=1, description=f"page size (default {LIMIT_DEFAULT}; above {LIMIT_MAX} served as {LIMIT_MAX})"),
    ] = LIMIT_DEFAULT,
    offset: Annotated[int, Query(ge=0, le=2**31, description="features to skip (follow the next link)")] = 0,
    bbox: Annotated[str | None, Query(description="minLon,minLat,maxLon,maxLat (CRS84 unless bbox-crs)")] = None,
    bbox_crs: Annotated[Literal[CRS84, EPSG4326] | None, Query(alias="bbox-crs")] = None,  # type: ignore[valid-type]
    crs: Annotated[Literal[CRS84, EPSG4326] | None, Query(description="CRS of the response")] = None,  # type: ignore[valid-type]
    datetime_: Annotated[
        str | None, Query(alias="datetime", description="instant or interval start/end, '..' open (incidents)")
    ] = None,
    f: Annotated[Literal["json", "geojson"] | None, Query()] = None,
    level: Annotated[int | None, Query(ge=0, description="grids: level (0 = top)")] = None,
    parent_id: Annotated[str | None, Query(description="grids: parent grid_id")] = None,
    level_name: Annotated[str | None, Query(description="grids: level name")] = None,
    category: Annotated[str | None, Query(description="incidents: category")] = None,
    source: Annotated[str | None, Query(description="incidents: who reported it")] = None,
    status: Annotated[str | None, Query(description="incidents or cameras: status")] = None,
    owner: Annotated[str | None, Query(description="cameras: owning department")] = None,
) -> GeoJSONResponse:
    """Return one page of features, filtered by bbox, datetime and properties, with next/prev links."""
    unknown = sorted(set(request.query_params) - _FIXED - set(_FILTERS))
    if unknown:
        msg = f"unknown query parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIXED | set(_FILTERS)))}"
        raise InvalidParameterError(msg)
    spec = collection_spec(store, collection_id)
    given = {"level": level, "parent_id": parent_id, "level_name": level_name, "category": category}
    given |= {"source": source, "status": status, "owner": owner}
    filters = {k: str(v) for k, v in given.items() if v is not None}
    q = build_query(
        spec, bbox=bbox, bbox_crs=bbox_crs, datetime_=datetime_, filters=filters, offset=offset, limit=limit
    )
    page, matched = query_items(store, cache, spec, q)
    latitude_first = crs == EPSG4326
    doc = feature_collection(page, spec, latitude_first=latitude_first)
    doc["links"] = _page_links(request, spec.id, q.offset, q.limit, len(page), matched)
    doc["numberMatched"] = matched
    doc["numberReturned"] = len(page)
    doc["timeStamp"] = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return GeoJSONResponse(doc, headers={"Content-Crs": f"<{EPSG4326 if latitude_first else CRS84}>"})


def _page_links(
    request: Request, cid: str, offset: int, limit: int, returned: int, matched: int
) -> list[dict[str, str]]:
    url = request.url
    base = _base(request)
    links = [
        {"href": str(url), "rel": "self", "type": GEOJSON, "title": "This page"},
        {"href": f"{base}collections/{cid}", "rel": "collection", "type": "application/json", "title": cid},
    ]
    if offset + returned < matched:
        nxt = url.include_query_params(offset=offset + limit, limit=limit)
        links.append({"href": str(nxt), "rel": "next", "type": GEOJSON, "title": "Next page"})
    if offset > 0:
        prev = url.include_query_params(offset=max(0, offset - limit), limit=limit)
        links.append({"href": str(prev), "rel": "prev", "type": GEOJSON, "title": "Previous page"})
    return links


@router.get(
    "/collections/{collection_id}/items/{feature_id}",
    summary="One feature",
    response_model=Feature,
    response_class=GeoJSONResponse,
)
def item(
    request: Request,
    collection_id: str,
    feature_id: str,
    store: StoreDep,
    cache: CacheDep,
    crs: Annotated[Literal[CRS84, EPSG4326] | None, Query(description="CRS of the response")] = None,  # type: ignore[valid-type]
) -> GeoJSONResponse:
    """Return one feature by its id (``grid_id``, ``incident_id`` or ``camera_id``)."""
    spec = collection_spec(store, collection_id)
    row = read_feature(store, cache, spec, feature_id)
    latitude_first = crs == EPSG4326
    feature = feature_collection(row, spec, latitude_first=latitude_first)["features"][0]
    base = _base(request)
    feature["links"] = [
        {"href": str(request.url), "rel": "self", "type": GEOJSON, "title": "This feature"},
        {"href": f"{base}collections/{spec.id}", "rel": "collection", "type": "application/json", "title": spec.id},
    ]
    return GeoJSONResponse(feature, headers={"Content-Crs": f"<{EPSG4326 if latitude_first else CRS84}>"})
