"""Roles on every route, body limit, CORS, security headers, the error map and safe error messages."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi import Request

from api import Settings, create_app
from api.auth import check_route_policies
from api.errors import ERROR_STATUS, status_of
from api.settings import Role
from layers import errors as layer_errors
from tests.api._support import TestClient

KEYS = {"k-viewer-0123456789": Role.VIEWER, "k-planner-0123456789": Role.PLANNER, "k-admin-0123456789": Role.ADMIN}
BEARER = {role: {"Authorization": f"Bearer {key}"} for key, role in KEYS.items()}
ROLES = {"anonymous": {}, "viewer": BEARER[Role.VIEWER], "planner": BEARER[Role.PLANNER], "admin": BEARER[Role.ADMIN]}

# Every route and its policy. A new route must be added here, with the policy it should have.
EXPECTED_POLICIES = {
    ("GET", "/health"): "public",
    ("GET", "/favicon.ico"): "public",
    ("GET", "/static"): "public",
    ("GET", "/openapi.json"): "viewer",
    ("GET", "/docs"): "viewer",
    ("GET", "/"): "viewer",
    ("GET", "/conformance"): "viewer",
    ("GET", "/collections"): "viewer",
    ("GET", "/collections/{collection_id}"): "viewer",
    ("GET", "/collections/{collection_id}/items"): "viewer",
    ("GET", "/collections/{collection_id}/queryables"): "viewer",
    ("GET", "/collections/{collection_id}/items/{feature_id}"): "viewer",
    ("GET", "/maps/grids"): "viewer",
    ("GET", "/maps/command-centre"): "viewer",
    ("GET", "/checks"): "viewer",
    ("GET", "/stats"): "viewer",
    ("GET", "/hotspots"): "viewer",
    ("GET", "/emerging"): "viewer",
    ("GET", "/coverage"): "viewer",
    ("GET", "/coverage/blind-spots"): "viewer",
    ("GET", "/plans"): "viewer",
    ("POST", "/plans"): "planner",
    ("GET", "/plans/{plan_id}"): "viewer",
    ("GET", "/plans/{plan_id}/diff"): "viewer",
    ("POST", "/plans/{plan_id}/edits"): "planner",
    ("POST", "/plans/{plan_id}/commit"): "admin",
    ("DELETE", "/plans/{plan_id}"): "planner",
    ("GET", "/maps/planner/{plan_id}"): "viewer",
    ("GET", "/login"): "public",
    ("POST", "/login"): "public",
    ("POST", "/logout"): "public",
}
EXAMPLE_PATHS = {
    "/static": "/static/vendor/leaflet-1.9.3/leaflet.js",
    "/emerging": "/emerging?period=D",  # the tiny district's incidents span two months: too few for months
}
RANK = {"public": 0, "viewer": 1, "planner": 2, "admin": 3}


def _url(path: str) -> str:
    path = path.replace("{collection_id}", "grids").replace("{feature_id}", "G1").replace("{plan_id}", "p1")
    return EXAMPLE_PATHS.get(path, path)


def _allowed(method: str, status: int) -> bool:
    """A read the role may do answers 200; a change it may do gets past the policy (here: 201, 415, 422 or 428)."""
    return status == 200 if method == "GET" else status in (200, 201, 415, 422, 428)


@pytest.fixture
def planned_store(full_store_path):
    """The full store with an open plan ``p1`` (the walk below sends no If-Match: it stays open)."""
    from geogrid.plans import new_plan
    from layers.store import GeoPackageStore

    assert new_plan(GeoPackageStore(full_store_path), "walk", author="test").plan_id == "p1"
    return full_store_path


@pytest.fixture
def keyed_app(planned_store):
    return create_app(Settings(store=planned_store, api_keys=dict(KEYS), docs=True))


@pytest.fixture
def open_app(planned_store):
    return create_app(Settings(store=planned_store, docs=True, local_admin_key="local-admin-key-0123"))


def test_every_route_declares_the_expected_policy(keyed_app):
    assert check_route_policies(keyed_app) == EXPECTED_POLICIES


def test_an_app_with_a_route_without_policy_is_refused(keyed_app):
    @keyed_app.get("/oops")
    def oops() -> dict[str, str]:
        return {}

    with pytest.raises(LookupError, match=r"/oops declares no policy"):
        check_route_policies(keyed_app)


@pytest.mark.parametrize("role", list(ROLES))
def test_route_by_role_with_keys(keyed_app, role):
    rank = 0 if role == "anonymous" else RANK[role]
    with TestClient(keyed_app) as c:
        for (method, path), policy in check_route_policies(keyed_app).items():
            r = c.request(method, _url(path), headers=ROLES[role])
            where = f"{role} {method} {path}: {r.status_code} {r.text[:200]}"
            if RANK[policy] <= rank:
                assert _allowed(method, r.status_code), where
            elif role == "anonymous":
                assert r.status_code == 401, where
                assert r.headers["www-authenticate"] == "Bearer"
            else:
                assert r.status_code == 403, where


@pytest.mark.parametrize("role", ["anonymous", "local-admin"])
def test_without_keys_anyone_reads(open_app, role):
    headers = {"Authorization": "Bearer local-admin-key-0123"} if role == "local-admin" else {}
    with TestClient(open_app) as c:
        for (method, path), policy in check_route_policies(open_app).items():
            status = c.request(method, _url(path), headers=headers).status_code
            if role == "local-admin" or policy in ("public", "viewer"):
                assert _allowed(method, status), (method, path, status)
            else:
                assert status == 403, (method, path, status)  # anonymous reading only: changes need a key


@pytest.mark.parametrize(
    "header",
    ["Bearer wrong-key", "Basic dXNlcjpwYXNz", "Bearer", "k-viewer-0123456789"],
    ids=["unknown", "basic", "empty", "no-scheme"],
)
def test_a_bad_key_is_401_even_where_anonymous_may_read(open_app, keyed_app, header):
    for app in (open_app, keyed_app):
        with TestClient(app) as c:
            r = c.get("/collections", headers={"Authorization": header})
            assert r.status_code == 401
            assert "k-viewer" not in r.text


def test_keys_in_settings_are_parsed_and_checked():
    a, b, c = "a1-0123456789abcdef", "b2-0123456789abcdef", "c3-0123456789abcdef"
    s = Settings(api_keys=f"{a}:viewer, {b}:Planner ,{c}:admin")
    assert s.api_keys == {a: Role.VIEWER, b: Role.PLANNER, c: Role.ADMIN}
    assert not s.anonymous_read and Settings().anonymous_read
    with pytest.raises(ValueError, match="role 'root'") as err:
        Settings(api_keys="secret-key-0123456789:root")
    assert "secret-key" not in str(err.value)  # keys never reach logs
    with pytest.raises(ValueError, match="repeats a key"):
        Settings(api_keys=f"{a}:viewer,{a}:admin")
    assert "secret" not in repr(Settings(api_keys="secret-0123456789abcdef:admin"))


# -- body limit ------------------------------------------------------------------------------


@pytest.fixture
def echo_app(full_store_path):
    app = create_app(Settings(store=full_store_path, max_body_bytes=1000))
    app.state.seen = []

    @app.post("/test/echo")
    async def echo(request: Request) -> dict[str, int]:
        body = await request.body()
        app.state.seen.append(len(body))
        return {"bytes": len(body)}

    return app


def _chunks(total: int, size: int = 100):
    for _ in range(total // size):
        yield b"x" * size


def test_a_declared_body_over_the_limit_is_413_before_the_app_runs(echo_app):
    with TestClient(echo_app) as c:
        r = c.post("/test/echo", content=b"x" * 1001)
        assert r.status_code == 413
        assert r.json()["code"] == "ContentTooLarge"
        assert c.post("/collections", content=b"x" * 5000).status_code == 413  # before routing (else 405)
        assert c.post("/test/echo", content=b"x" * 1000).json() == {"bytes": 1000}
    assert echo_app.state.seen == [1000]


def test_a_chunked_body_is_counted_as_it_arrives(echo_app):
    with TestClient(echo_app) as c:
        r = c.post("/test/echo", content=_chunks(5000))
        assert "content-length" not in r.request.headers
        assert r.status_code == 413
        assert r.headers["x-content-type-options"] == "nosniff"
        ok = c.post("/test/echo", content=_chunks(900))
        assert ok.status_code == 200 and ok.json() == {"bytes": 900}
    assert echo_app.state.seen == [900]


def test_the_default_limit_is_5_mb():
    assert Settings().max_body_bytes == 5 * 1024 * 1024


# -- CORS and headers ------------------------------------------------------------------------


def test_no_cors_by_default(full_client):
    r = full_client.get("/collections", headers={"Origin": "https://evil.example"})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers


def test_cors_allows_only_the_listed_origins_without_credentials(full_store_path):
    app = create_app(Settings(store=full_store_path, cors_origins=["https://cc.example.gov"]))
    with TestClient(app) as c:
        pre = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
        ok = c.options("/collections", headers={"Origin": "https://cc.example.gov", **pre})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://cc.example.gov"
        assert "access-control-allow-credentials" not in ok.headers
        bad = c.options("/collections", headers={"Origin": "https://evil.example", **pre})
        assert bad.headers.get("access-control-allow-origin") is None
        get = c.get("/collections", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in get.headers


@pytest.mark.parametrize("origins", ["*", "https://*.example.gov", "https://a.example/path", "a.example"])
def test_cors_wildcards_and_non_origins_are_refused(origins):
    with pytest.raises(ValueError, match="GEOGRID_CORS_ORIGINS"):
        Settings(cors_origins=origins)


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("GET", "/collections", 200),
        ("GET", "/maps/grids", 200),
        ("GET", "/", 200),
        ("GET", "/nowhere", 404),
        ("GET", "/collections/grids/items?bbox=x", 400),
        ("POST", "/collections", 405),
        ("GET", "/static/vendor/leaflet-1.9.3/leaflet.css", 200),
    ],
)
def test_security_headers_on_every_response(full_client, method, url, status):
    r = full_client.request(method, url)
    assert r.status_code == status
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert "'unsafe-inline'" not in csp and "*" not in csp


def test_the_nonce_is_fresh_per_response_and_on_every_inline_tag(full_client):
    pages = [full_client.get("/maps/grids") for _ in range(2)]
    nonces = [r.headers["content-security-policy"].split("'nonce-")[1].split("'")[0] for r in pages]
    assert nonces[0] != nonces[1]
    page = pages[0].text
    assert page.count("<script") == page.count(f'<script nonce="{nonces[0]}"') > 0
    assert page.count("<style") == page.count(f'<style nonce="{nonces[0]}"') > 0


def test_a_tile_server_is_allowed_for_images_only(full_store_path):
    app = create_app(Settings(store=full_store_path, tiles="http://{s}.tiles.intranet:8080/{z}/{x}/{y}.png"))
    with TestClient(app) as c:
        csp = c.get("/maps/grids").headers["content-security-policy"]
    assert "img-src 'self' data: http://*.tiles.intranet:8080;" in csp
    assert csp.count("tiles.intranet") == 1


def test_docs_are_off_unless_enabled(full_client, full_store_path):
    assert full_client.get("/docs").status_code == 404
    assert full_client.get("/redoc").status_code == 404
    assert full_client.get("/openapi.json").status_code == 200  # QGIS needs the API document
    with TestClient(create_app(Settings(store=full_store_path, docs=True))) as c:
        page = c.get("/docs")
        assert page.status_code == 200
        # Swagger UI comes from the app, not a CDN, under the usual nonce policy.
        assert "https://" not in page.text
        nonce = re.search(r"'nonce-([^']+)'", page.headers["content-security-policy"]).group(1)
        assert f'<script nonce="{nonce}">' in page.text
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
            assert c.get(asset).status_code == 200, asset


# -- errors ----------------------------------------------------------------------------------


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def test_every_geogrid_error_class_has_one_status():
    expected = {
        "ValidationError": 422,
        "SchemaError": 422,
        "CRSError": 422,
        "InputTooLargeError": 413,
        "TopologyError": 409,
        "EditConflict": 412,
        "NetworkChanged": 409,
        "NotFoundError": 404,
        "StoreError": 503,
    }
    classes = {c.__name__: c for c in _all_subclasses(layer_errors.GeogridError) if c.__module__ == "layers.errors"}
    assert set(classes) == set(expected)
    for name, cls in classes.items():
        err = cls("s", []) if issubclass(cls, layer_errors.ValidationError) else cls("m")
        assert status_of(err)[0] == expected[name], name
    assert set(ERROR_STATUS) >= set(classes.values()) - {layer_errors.SchemaError}


@pytest.mark.parametrize(
    ("error", "status", "shown"),
    [
        (layer_errors.NotFoundError("no grid 'G9'"), 404, "no grid 'G9'"),
        (layer_errors.CRSError("grids has EPSG:3857; pass crs=..."), 422, "EPSG:3857"),
        (layer_errors.TopologyError("the edit would leave a gap"), 409, "gap"),
        (layer_errors.EditConflict("plan is at version 3, not 2"), 412, "version 3"),
        (layer_errors.NetworkChanged("plan was copied from network version 1, now 2"), 409, "network version 1"),
        (layer_errors.InputTooLargeError("geometry has 2000000 vertices"), 413, "vertices"),
        (layer_errors.StoreError("/srv/secret/path/city.gpkg is locked"), 503, "unavailable"),
        (RuntimeError("password=hunter2 in /srv/secret"), 500, "internal error"),
    ],
    ids=["not-found", "crs", "topology", "conflict", "network-changed", "too-large", "store", "unexpected"],
)
def test_errors_map_to_one_status_with_a_safe_message(full_store_path, caplog, error, status, shown):
    app = create_app(Settings(store=full_store_path))

    @app.get("/test/raise")
    def boom() -> None:
        raise error

    with caplog.at_level(logging.INFO, logger="geogrid.api"), TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/test/raise")
    assert r.status_code == status
    body = r.json()
    assert shown in body["description"]
    if status >= 500:
        assert "secret" not in r.text and "hunter2" not in r.text
        assert body["error_id"] in caplog.text and "secret" in caplog.text  # the log has the detail


def test_a_broken_store_is_503_without_its_path(tmp_path):
    path = tmp_path / "private-dir" / "broken.gpkg"
    path.parent.mkdir()
    path.write_bytes(b"not a geopackage at all" * 100)
    with TestClient(create_app(Settings(store=path))) as c:
        r = c.get("/collections")
    assert r.status_code == 503
    assert "private-dir" not in r.text and r.json()["code"] == "StoreUnavailable"
