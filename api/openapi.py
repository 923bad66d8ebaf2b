"""The OpenAPI document, as OpenAPI 3.0 (FastAPI writes 3.1), with what OGC clients look for."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.features import COLLECTIONS, LIMIT_DEFAULT, LIMIT_MAX, CollectionSpec

__all__ = ["build_openapi", "to_openapi_30"]

_PAGE_ERRORS = frozenset({"/login"})
"""Paths a browser posts a form to: their refusals are pages (the form again), not JSON."""


def to_openapi_30(node: Any) -> Any:
    """Rewrite the JSON Schema 2020-12 parts FastAPI emits into OpenAPI 3.0 schema objects.

    ``anyOf: [X, {type: null}]`` becomes ``X`` with ``nullable: true``, ``const`` an
    ``enum`` of one, ``examples`` a single ``example``, and numeric
    ``exclusiveMinimum``/``exclusiveMaximum`` the 3.0 boolean form.

    Examples
    --------
    >>> to_openapi_30({"anyOf": [{"type": "integer"}, {"type": "null"}], "title": "Level"})
    {'type': 'integer', 'nullable': True, 'title': 'Level'}
    """
    if isinstance(node, list):
        return [to_openapi_30(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("anyOf", "oneOf") and isinstance(value, list):
            others = [v for v in value if v != {"type": "null"}]
            if len(others) < len(value):
                if len(others) == 1:
                    out.update(to_openapi_30(others[0]))
                else:
                    out[key] = to_openapi_30(others)
                out["nullable"] = True
                continue
        if key == "const":
            out["enum"] = [value]
        elif key == "prefixItems" and isinstance(value, list):
            # A tuple (a [lon, lat] position): 3.0 has no per-position items, so one item schema
            # that fits every position, and the length pinned.
            items = [to_openapi_30(v) for v in value]
            out["items"] = items[0] if all(i == items[0] for i in items) else {"anyOf": items}
            out["minItems"] = out["maxItems"] = len(items)
        elif key == "examples" and isinstance(value, list):
            if value:
                out["example"] = to_openapi_30(value[0])
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out[key.replace("exclusiveM", "m")] = value
            out[key] = True
        elif key == "type" and isinstance(value, list):
            kinds = [v for v in value if v != "null"]
            out["type"] = kinds[0] if len(kinds) == 1 else kinds
            if len(kinds) < len(value):
                out["nullable"] = True
        else:
            out[key] = to_openapi_30(value)
    if "prefixItems" in node:
        out.pop("additionalItems", None)
    if "$ref" in out and len(out) > 1:  # 3.0 ignores siblings of $ref
        ref = out.pop("$ref")
        out = {"allOf": [{"$ref": ref}], **out}
    return out


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """Return the app's OpenAPI 3.0 document (computed once per app).

    Adds ``components.parameters.limit`` with the largest and default page size,
    which QGIS's OGC API – Features provider reads to size its requests.
    """
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    doc = to_openapi_30(copy.deepcopy(doc))
    doc["openapi"] = "3.0.3"
    limit = {
        "name": "limit",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": False,
        "description": f"page size; above {LIMIT_MAX} served as {LIMIT_MAX}",
        "schema": {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX, "default": LIMIT_DEFAULT},
    }
    doc.setdefault("components", {}).setdefault("parameters", {})["limit"] = limit
    for path, ops in doc.get("paths", {}).items():
        for op in ops.values():
            for param in op.get("parameters", []):
                # An optional parameter is absent or has a value; "nullable" would invite ?crs=null.
                param.get("schema", {}).pop("nullable", None)
            for code, response in op.get("responses", {}).items():
                content = response.get("content")
                if code[:1] in ("4", "5") and content and path not in _PAGE_ERRORS:
                    # Errors are always JSON (api.errors), whatever the route's own media type.
                    response["content"] = {"application/json": next(iter(content.values()))}
    _per_collection_paths(doc)
    app.openapi_schema = doc
    return doc


_GENERIC = "/collections/{collection_id}"
_NUMBER = r"-?[0-9]+(\.[0-9]+)?"
_FORMATS: dict[str, dict[str, Any]] = {
    "bbox": {
        "format": "ogc-bbox",
        "pattern": rf"^{_NUMBER}(,{_NUMBER}){{3}}(,{_NUMBER},{_NUMBER})?$",
        "description": "minLon,minLat,maxLon,maxLat (or 6 numbers with heights); latitudes in [-90, 90], "
        "south not above north; minLon > maxLon crosses the antimeridian",
    },
    "datetime": {
        "format": "ogc-datetime",
        "description": "an RFC 3339 date or date-time with a zone, or an interval start/end with '..' for an open end",
    },
    "filter": {"format": "cql2", "minLength": 1, "description": "a Basic CQL2 predicate on the queryables"},
}
"""Formats of the parameters whose valid values a JSON Schema type alone does not describe.

The formats are named (``ogc-bbox``, ``ogc-datetime``, ``cql2``) so that tools generating requests
from the document (schemathesis in the tests) can be told what a valid value looks like."""
_INT_MAX = 999_999_999
"""Largest whole number a property filter takes (:func:`api.features.build_query` reads up to 9 digits)."""


def _filter_parameter(spec: CollectionSpec, name: str) -> dict[str, Any]:
    dtype, choices = spec.filters[name]
    column = spec.schema.column(name)
    schema: dict[str, Any] = {"type": "integer" if dtype == "int" else "string"}
    if dtype == "int":
        schema |= {"minimum": int(column.min or 0), "maximum": _INT_MAX}
    if choices is not None:
        schema["enum"] = list(choices)
    return {
        "name": name,
        "in": "query",
        "required": False,
        "style": "form",
        "explode": False,
        "description": f"features whose {name} equals this ({column.description})",
        "schema": schema,
    }


def _specialise(op: dict[str, Any], spec: CollectionSpec) -> dict[str, Any]:
    """Return a copy of the generic operation ``op`` for ``spec``: no path parameter, its own filters."""
    out = copy.deepcopy(op)
    params = []
    for p in out.get("parameters", []):
        name = p.get("name")
        if name == "collection_id":
            continue
        if name == "limit":
            p = {"$ref": "#/components/parameters/limit"}
        if name == "datetime" and spec.temporal is None:
            continue  # a collection without time does not take datetime (400)
        if name == "datetime":
            p["description"] = f"instant or interval start/end ('..' open) on {spec.temporal}"
        if name in _FORMATS:
            p["schema"] = {**p.get("schema", {}), **_FORMATS[name]}
        params.append(p)
    if "/items" in out.get("operationId", "") or any(p.get("name") == "bbox" for p in params):
        params += [_filter_parameter(spec, name) for name in spec.filters]
    out["parameters"] = params
    out["operationId"] = f"{out.get('operationId', 'op')}_{spec.id}"
    out["summary"] = f"{spec.title}: {out.get('summary', '')}"
    out["tags"] = [*out.get("tags", []), spec.id]
    return out


def _per_collection_paths(doc: dict[str, Any]) -> None:
    """Replace the ``/collections/{collection_id}...`` paths with one set per collection.

    GDAL and pygeoapi look for a collection's query parameters on its own path
    (``/collections/grids/items``): there each collection lists the property filters it
    answers (``level``, ``category``...) and leaves out ``datetime`` when it has no time.
    """
    paths = doc["paths"]
    generic = {p: paths.pop(p) for p in list(paths) if p.startswith(_GENERIC)}
    out: dict[str, Any] = {}
    for path, ops in paths.items():
        out[path] = ops
        if path != "/collections":
            continue
        for spec in COLLECTIONS.values():
            for gpath, gops in generic.items():
                concrete = gpath.replace("{collection_id}", spec.id)
                out[concrete] = {m: _specialise(op, spec) for m, op in gops.items()}
    paths.clear()
    paths.update(out)
