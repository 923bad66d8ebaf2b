"""Browser sign-in: /login opens a revocable session kept in an HttpOnly cookie; pages redirect there;
the form needs its same-site token; cookie changes need the header."""

from __future__ import annotations

import re

import pytest

from api import Settings, create_app
from api.auth import CSRF_HEADER, SESSION_COOKIE
from api.routers.session import LOGIN_COOKIE
from tests.api._support import TestClient

VIEWER, PLANNER = "k-viewer-0123456789", "k-planner-0123456789"
HTML = {"Accept": "text/html,application/xhtml+xml"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def keyed(full_store_path):
    from geogrid.plans import new_plan
    from layers.store import GeoPackageStore

    new_plan(GeoPackageStore(full_store_path), "登录测试", author="test")
    app = create_app(Settings(store=full_store_path, api_keys=f"{VIEWER}:viewer,{PLANNER}:planner"))
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as c:
        yield c


def _form_token(c: TestClient) -> str:
    """Open the sign-in form (which sets its token cookie) and return the token it carries."""
    form = c.get("/login")
    assert form.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found, form.text
    return found.group(1)


def _sign_in(c: TestClient, key: str, next_path: str = "/maps/grids"):
    token = _form_token(c)
    return c.post("/login", content=f"key={key}&next={next_path}&csrf={token}", headers=FORM)


def test_a_page_without_a_key_redirects_a_browser_to_sign_in_and_back(keyed):
    r = keyed.get("/maps/grids?level=1", headers=HTML)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/maps/grids%3Flevel%3D1"
    # an API client (no text/html in Accept) still gets the 401 it can act on
    api = keyed.get("/maps/grids")
    assert api.status_code == 401 and api.headers["www-authenticate"] == "Bearer"


def test_the_form_escapes_next_and_sign_in_sets_a_strict_httponly_cookie(keyed):
    form = keyed.get("/login", params={"next": '/maps/grids"><script>alert(1)</script>'})
    assert form.status_code == 200 and "text/html" in form.headers["content-type"]
    assert "<script>alert(1)" not in form.text and "&lt;script&gt;" in form.text
    nonce = form.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    assert f'<style nonce="{nonce}">' in form.text and "<script" not in form.text

    r = _sign_in(keyed, VIEWER, "/maps/command-centre")
    assert r.status_code == 303 and r.headers["location"] == "/maps/command-centre"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(f"{SESSION_COOKIE}="))
    assert VIEWER not in cookie  # a session token, never the key itself
    assert len(cookie.split(";")[0].split("=", 1)[1]) >= 40
    for attr in ("HttpOnly", "SameSite=strict", "Path=/", "Max-Age=43200"):
        assert attr.lower() in cookie.lower(), cookie
    assert "secure" not in cookie.lower()  # plain http here; set over https
    page = keyed.get("/maps/grids", headers=HTML)
    assert page.status_code == 200 and "leaflet" in page.text.lower()


def test_an_unknown_key_shows_the_form_again_and_sets_nothing(keyed):
    r = _sign_in(keyed, "wrong-key")
    assert r.status_code == 401
    assert not any(c.startswith(f"{SESSION_COOKIE}=") for c in r.headers.get_list("set-cookie"))
    assert "unknown API key" in r.text
    assert keyed.get("/maps/grids", headers=HTML).status_code == 303


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"]
)
def test_next_never_leaves_the_server(keyed, target):
    r = keyed.post("/login", data={"key": VIEWER, "next": target, "csrf": _form_token(keyed)})
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_a_form_in_another_encoding_is_refused(keyed):
    r = keyed.post("/login", json={"key": VIEWER})
    assert r.status_code == 415
    assert not any(c.startswith(f"{SESSION_COOKIE}=") for c in r.headers.get_list("set-cookie"))


def test_cookie_rights_follow_the_role_and_changes_need_the_header(keyed):
    # a viewer's cookie reads but may not change
    _sign_in(keyed, VIEWER)
    assert keyed.get("/plans").status_code == 200
    assert keyed.post("/plans", json={"name": "x"}, headers={CSRF_HEADER: "geogrid"}).status_code == 403
    # a planner's cookie changes, but only with the header a cross-site form cannot send
    _sign_in(keyed, PLANNER)
    refused = keyed.post("/plans", json={"name": "跨站"})
    assert refused.status_code == 403 and CSRF_HEADER in refused.json()["description"]
    made = keyed.post("/plans", json={"name": "本站"}, headers={CSRF_HEADER: "geogrid"})
    assert made.status_code == 201, made.text
    # a header key still wins over the cookie, and an unknown header key is still a loud 401
    assert keyed.get("/plans", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_a_cookie_whose_key_was_withdrawn_counts_as_no_key(full_store_path):
    app = create_app(Settings(store=full_store_path, api_keys=f"{PLANNER}:planner"))
    with TestClient(app, follow_redirects=False) as c:
        c.cookies.set(SESSION_COOKIE, VIEWER)  # no longer configured
        assert c.get("/plans").status_code == 401
        assert c.get("/maps/grids", headers=HTML).status_code == 303


def test_sign_out_drops_the_cookie(keyed):
    _sign_in(keyed, VIEWER)
    assert keyed.get("/plans").status_code == 200
    token = keyed.cookies[SESSION_COOKIE]
    r = keyed.post("/logout")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert f'{SESSION_COOKIE}=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    assert keyed.get("/plans").status_code == 401
    # the server ended the session: a copy of the cookie kept elsewhere is worth nothing now
    keyed.cookies.set(SESSION_COOKIE, token)
    assert keyed.get("/plans").status_code == 401


def test_a_session_expires_on_the_server(full_store_path):
    app = create_app(Settings(store=full_store_path, api_keys=f"{VIEWER}:viewer", session_hours=1))
    now = [1_000_000.0]
    app.state.sessions._clock = lambda: now[0]
    with TestClient(app, follow_redirects=False) as c:
        assert _sign_in(c, VIEWER).status_code == 303
        now[0] += 3599
        assert c.get("/plans").status_code == 200
        now[0] += 2  # past the hour, whatever the browser does with Max-Age
        assert c.get("/plans").status_code == 401
        assert c.get("/maps/grids", headers=HTML).status_code == 303


def test_a_withdrawn_or_demoted_key_changes_its_live_sessions(full_store_path, store_path):
    """Sessions follow the key list the server has now, not the one at sign-in."""
    from api.settings import get_settings

    app = create_app(Settings(store=full_store_path, api_keys=f"{VIEWER}:viewer,{PLANNER}:planner"))
    with TestClient(app, follow_redirects=False) as c:
        _sign_in(c, PLANNER)
        write = {CSRF_HEADER: "geogrid"}
        assert c.post("/plans", json={"name": "a"}, headers=write).status_code == 201
        app.dependency_overrides[get_settings] = lambda: Settings(
            store=full_store_path, api_keys=f"{VIEWER}:viewer,{PLANNER}:viewer"
        )
        assert c.post("/plans", json={"name": "b"}, headers=write).status_code == 403
        app.dependency_overrides[get_settings] = lambda: Settings(store=full_store_path, api_keys=f"{VIEWER}:viewer")
        assert c.get("/plans").status_code == 401


def test_sign_in_needs_the_forms_same_site_token(keyed):
    """A cross-site form post (login CSRF) cannot sign the browser in: no token, wrong token, other Origin."""
    no_token = keyed.post("/login", content=f"key={VIEWER}&next=/", headers=FORM)
    assert no_token.status_code == 403 and "token" in no_token.text
    assert not any(c.startswith(f"{SESSION_COOKIE}=") for c in no_token.headers.get_list("set-cookie"))
    token = _form_token(keyed)
    wrong = keyed.post("/login", content=f"key={VIEWER}&csrf=x{token}", headers=FORM)
    assert wrong.status_code == 403
    token = _form_token(keyed)
    other_site = keyed.post(
        "/login", content=f"key={VIEWER}&csrf={token}", headers={**FORM, "Origin": "https://evil.example"}
    )
    assert other_site.status_code == 403 and "evil.example" in other_site.text
    token = _form_token(keyed)
    fetch_meta = keyed.post(
        "/login", content=f"key={VIEWER}&csrf={token}", headers={**FORM, "Sec-Fetch-Site": "cross-site"}
    )
    assert fetch_meta.status_code == 403
    assert keyed.get("/plans").status_code == 401  # none of them signed in
    token = _form_token(keyed)
    same = keyed.post("/login", content=f"key={VIEWER}&csrf={token}", headers={**FORM, "Origin": "http://testserver"})
    assert same.status_code == 303
    form_cookie = keyed.get("/login").headers["set-cookie"]
    for attr in (f"{LOGIN_COOKIE}=", "HttpOnly", "SameSite=strict", "Path=/login"):
        assert attr.lower() in form_cookie.lower(), form_cookie
