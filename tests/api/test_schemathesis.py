"""schemathesis against the OpenAPI document, per role: no 5xx, responses match their schemas."""

from __future__ import annotations

from datetime import date

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from api import Settings, create_app
from api.features import LIMIT_MAX
from api.settings import Role

KEYS = {"st-viewer-0123456789": Role.VIEWER, "st-planner-0123456789": Role.PLANNER, "st-admin-0123456789": Role.ADMIN}
HEADERS = {
    "anonymous": {},
    "viewer": {"Authorization": "Bearer st-viewer-0123456789"},
    "planner": {"Authorization": "Bearer st-planner-0123456789"},
    "admin": {"Authorization": "Bearer st-admin-0123456789"},
}


# The formats the API document names for values a JSON Schema type cannot describe (api/openapi.py).
_deg = st.floats(-90, 90, allow_nan=False)


@st.composite
def _bbox(draw) -> str:
    # Valid in both axis orders (bbox-crs CRS84 is lon,lat; EPSG:4326 lat,lon): every number within
    # [-90, 90] and each minimum below its maximum.
    west, east = sorted((draw(_deg), draw(_deg)))
    south, north = sorted((draw(_deg), draw(_deg)))
    return ",".join(f"{v:.5f}" for v in (west, south, east, north))


_day = st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 12, 31))


@st.composite
def _datetime(draw) -> str:
    a, b = sorted((draw(_day), draw(_day)))
    start, end = a.isoformat(), f"{b.isoformat()}T23:59:59Z"
    return draw(st.sampled_from([start, end, f"{start}/{end}", f"../{end}", f"{start}/..", "../.."]))


schemathesis.openapi.format("ogc-bbox", _bbox())
schemathesis.openapi.format("ogc-datetime", _datetime())
schemathesis.openapi.format("cql2", st.sampled_from(["true", "false"]))  # valid as cql2-text and as cql2-json


def _app():
    # A small store built at import time would need fixtures; the schema does not depend on the data.
    return create_app(Settings(api_keys=dict(KEYS), store="/nonexistent/schemathesis.gpkg"))


schema = schemathesis.openapi.from_dict(_app().openapi())


@pytest.fixture
def st_app(full_store_path):
    return create_app(Settings(store=full_store_path, api_keys=dict(KEYS)))


@pytest.mark.parametrize("role", list(HEADERS))
@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_schema(case, role, st_app):
    # A schema-valid change may still be refused: 412 (stale If-Match), 428 (none), 409 (topology, network changed).
    changes = case.path.startswith("/plans/") and case.method.upper() in ("POST", "DELETE")
    excluded = [positive_data_acceptance] if changes else []
    if _limit_above_maximum(case):
        # OGC API – Features Part 1 (/req/core/fc-limit-response-1): a limit above the maximum the document
        # declares "SHALL NOT result in an error"; it is served as the maximum. QGIS and GDAL >= 3.8 read
        # that maximum to size their pages, so the document keeps it and the server keeps answering.
        excluded.append(negative_data_rejection)
    across = _across_parameters_or_data(case)
    if across:
        # OpenAPI 3.0 cannot say "until not before since" or "a column this store's grids have": such
        # requests are schema-valid and refused with a 400 that must name the reason.
        excluded.append(positive_data_acceptance)
    response = case.call_and_validate(app=st_app, headers=HEADERS[role], excluded_checks=excluded)
    if _limit_above_maximum(case) and response.status_code == 200:
        assert response.json()["numberReturned"] <= LIMIT_MAX
    if across and response.status_code == 400 and _positive(case):
        assert any(why in response.json()["description"] for why in across), response.text


def _positive(case) -> bool:
    """Whether schemathesis meant ``case`` to be schema-valid (its negative cases break the schema)."""
    meta = getattr(case, "meta", None)
    return meta is None or str(meta.generation.mode).lower().endswith("positive")


def _across_parameters_or_data(case) -> tuple[str, ...]:
    """The reasons a schema-valid /stats, /hotspots or /emerging request may be refused (none: it must be served)."""
    if case.path not in ("/stats", "/hotspots", "/emerging"):
        return ()
    q = case.query or {}
    why: tuple[str, ...] = ()
    if q.get("since") is not None and q.get("until") is not None:
        why += ("the window is empty",)
    if q.get("population") is not None:
        why += ("is not a column of the grids", "exposure must be")
    if case.path == "/emerging":
        # the cube's periods depend on the data's days: the tiny district spans two months
        why += ("emerging hot spots need at least 3", "holds no whole period", "no incident falls inside the grids")
    return why


def _limit_above_maximum(case) -> bool:
    try:
        return case.path.endswith("/items") and int((case.query or {}).get("limit")) > LIMIT_MAX
    except (TypeError, ValueError):
        return False
