"""OGC API – Features: landing page, conformance, collections and their items.

Every route is readable by viewers (and by anyone when no API keys are configured).
Media types: JSON documents are ``application/json``, features ``application/geo+json``;
the landing page is also HTML for browsers (``Accept: text/html`` or ``?f=html``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api.auth import require_viewer
from api.deps import CacheDep, SettingsDep, StoreDep
from api.errors import ErrorBody
from api.features import (
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
    feature_collection_text,
    query_items,
    queryables_document,
    read_feature,
)
from api.home_page import home_data, home_html
from api.middleware import csp_nonce
from api.models import Collection, Collections, Conformance, Feature, FeatureCollection, LandingPage
from layers.times import DEFAULT_TZ, store_time_zone

__all__ = ["AUTH_ERRORS", "GEOJSON", "OPENAPI_JSON", "GeoJSONResponse", "SchemaJSONResponse", "router"]

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


class SchemaJSONResponse(JSONResponse):
    """JSON Schema (queryables)."""

    media_type = "application/schema+json"


router = APIRouter(tags=["features"], dependencies=[Depends(require_viewer)], responses=_ERRORS)


_NO_HTML = (
    "f=html: this resource is JSON only; HTML views are the landing page (/?f=html) and the maps "
    "(/maps/command-centre, /maps/grids). Use f=json or leave f out"
)

JsonOnly = Annotated[Literal["json"] | None, Query(description="json (the only format; f=html is 400)")]


def _json_only(request: Request) -> None:
    """Refuse ``f`` other than json with a clear 400 (FastAPI's enum message does not say where HTML is)."""
    f = request.query_params.get("f")
    if f is not None and f not in ("json", "geojson"):
        msg = _NO_HTML if f == "html" else f"f={f!r} is not a format of this resource: use f=json"
        raise InvalidParameterError(msg)


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


@router.get(
    "/conformance",
    summary="Conformance classes",
    response_model=Conformance,
    dependencies=[Depends(_json_only)],
)
def conformance(f: JsonOnly = None) -> JSONResponse:
    """Return the conformance classes (Features Part 1 core, GeoJSON, OpenAPI 3.0; Part 2 CRS)."""
    return JSONResponse({"conformsTo": list(CONFORMANCE)})


@router.get("/collections", summary="The collections", response_model=Collections, dependencies=[Depends(_json_only)])
def collections(request: Request, store: StoreDep, cache: CacheDep, f: JsonOnly = None) -> JSONResponse:
    """Return every collection the store holds, with extents and links."""
    base = _base(request)
    docs = [collection_document(store, cache, spec, base) for spec in available(store)]
    links = [{"href": f"{base}collections", "rel": "self", "type": "application/json", "title": "Collections"}]
    return JSONResponse({"links": links, "collections": docs})


@router.get(
    "/collections/{collection_id}",
    summary="One collection",
    response_model=Collection,
    dependencies=[Depends(_json_only)],
)
def collection(
    request: Request, collection_id: str, store: StoreDep, cache: CacheDep, f: JsonOnly = None
) -> JSONResponse:
    """Return one collection: extents, CRSs, links to its items."""
    spec = collection_spec(store, collection_id)
    return JSONResponse(collection_document(store, cache, spec, _base(request)))


_FIXED = {"bbox", "bbox-crs", "crs", "datetime", "limit", "offset", "f", "filter", "filter-lang"}


@router.get(
    "/collections/{collection_id}/queryables",
    summary="Queryables of a collection",
    response_model=dict[str, Any],
    response_class=SchemaJSONResponse,
    dependencies=[Depends(_json_only)],
)
def queryables(request: Request, collection_id: str, store: StoreDep, f: JsonOnly = None) -> SchemaJSONResponse:
    """Return the JSON Schema of the properties filters may name (OGC API – Features Part 3)."""
    spec = collection_spec(store, collection_id)
    return SchemaJSONResponse(queryables_document(spec, _base(request)))


@router.get(
    "/collections/{collection_id}/items",
    summary="Features of a collection",
    response_model=FeatureCollection,
    response_class=GeoJSONResponse,
    dependencies=[Depends(_json_only)],
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
        str | None,
        Query(
            alias="datetime",
            description="instant or interval start/end, '..' open (incidents' reported_at); dates are whole days "
            "and times without a zone are in the store's time zone (Asia/Shanghai unless it names one)",
        ),
    ] = None,
    filter_: Annotated[
        str | None, Query(alias="filter", description="CQL2 (Basic CQL2) on the queryables, e.g. level = 3")
    ] = None,
    filter_lang: Annotated[Literal["cql2-text", "cql2-json"] | None, Query(alias="filter-lang")] = None,
    f: Annotated[Literal["json", "geojson"] | None, Query(description="json or geojson; f=html is 400")] = None,
) -> Response:
    """Return one page of features, filtered by bbox, datetime, properties and CQL2, with next/prev links.

    Each collection's own parameters (``level``, ``category``...) are listed on its own path
    in the API document (``/collections/grids/items``...); the API document is what GDAL and
    QGIS read to know which filters the server answers.
    """
    spec = collection_spec(store, collection_id)
    unknown = sorted(set(request.query_params) - _FIXED - set(spec.filters))
    if unknown:
        known = sorted(_FIXED | set(spec.filters))
        msg = f"unknown query parameter(s) {', '.join(unknown)} for {spec.id}; known: {', '.join(known)}"
        raise InvalidParameterError(msg)
    filters = {k: v for k, v in request.query_params.items() if k in spec.filters}
    tz = store_time_zone(store.metadata()) if datetime_ is not None else DEFAULT_TZ
    q = build_query(
        spec,
        bbox=bbox,
        bbox_crs=bbox_crs,
        datetime_=datetime_,
        filters=filters,
        offset=offset,
        limit=limit,
        tz=tz,
        filter_=filter_,
        filter_lang=filter_lang,
    )
    page, matched = query_items(store, cache, spec, q)
    latitude_first = crs == EPSG4326
    text = feature_collection_text(
        page,
        spec,
        latitude_first=latitude_first,
        links=_page_links(request, spec.id, q.offset, q.limit, len(page), matched),
        numberMatched=matched,
        numberReturned=len(page),
        timeStamp=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    )
    # Written once as text (no dictionary of every feature serialised again), as GeoJSONResponse types it.
    return Response(text, media_type=GEOJSON, headers={"Content-Crs": f"<{EPSG4326 if latitude_first else CRS84}>"})


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
    dependencies=[Depends(_json_only)],
)
def item(
    request: Request,
    collection_id: str,
    feature_id: str,
    store: StoreDep,
    cache: CacheDep,
    crs: Annotated[Literal[CRS84, EPSG4326] | None, Query(description="CRS of the response")] = None,  # type: ignore[valid-type]
    f: Annotated[Literal["json", "geojson"] | None, Query(description="json or geojson; f=html is 400")] = None,
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
