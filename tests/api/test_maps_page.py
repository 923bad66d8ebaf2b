"""GET /maps/grids serves the store's grids as a map page whose every asset the app itself serves."""

from __future__ import annotations

import json
import re
import sys
import types

from api import Settings, create_app, get_settings
from layers.store import GeoPackageStore
from tests.api._support import HOSTILE_LEVEL_NAME, HOSTILE_NAMES, TestClient


def _refs(page: str) -> list[str]:
    return re.findall(r"<(?:script|link)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", page)


def test_index_is_an_html_map_of_every_grid(client, grids):
    r = client.get("/maps/grids")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "L.map(" in page
    for name in ("河北区", "望海楼街道", "鸿顺里街道", "网格四"):
        assert json.dumps(name)[1:-1] in page  # folium embeds the data as ASCII-escaped JSON
    for gid in grids["grid_id"]:
        assert f'"grid_id": "{gid}"' in page


def test_index_does_not_echo_hostile_names(client):
    page = client.get("/maps/grids").text
    for name in [*HOSTILE_NAMES.values(), HOSTILE_LEVEL_NAME]:
        assert name not in page
        assert json.dumps(name)[1:-1] not in page
    assert "window.__xss" in page  # the text is there, only escaped


def test_every_asset_of_the_page_is_served_locally(client):
    page = client.get("/maps/grids").text
    refs = [u for u in _refs(page) if not u.startswith("data:")]
    assert refs, "the page links Leaflet"
    assert all(u.startswith("/static/vendor/") for u in refs), refs
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page)
    for url in refs:
        r = client.get(url)
        assert r.status_code == 200, url
        if url.endswith(".css"):  # the images the stylesheet points to
            for img in re.findall(r"url\((images/[^)]+)\)", r.text):
                assert client.get(url.rsplit("/", 1)[0] + "/" + img).status_code == 200, img


def test_dependency_override_swaps_the_store(tmp_path, store_path, tiny_grids):
    other = tmp_path / "other.gpkg"
    GeoPackageStore(other).write({"grids": tiny_grids[tiny_grids["level"] == 0]})
    app = create_app(Settings(store=store_path))
    app.dependency_overrides[get_settings] = lambda: Settings(store=other)
    with TestClient(app) as c:
        page = c.get("/maps/grids").text
    assert '"grid_id": "D"' in page
    assert '"grid_id": "G1"' not in page


def test_without_a_store_the_demo_district_is_served(monkeypatch, store_path):
    calls = []

    def demo_store():
        calls.append(1)
        return store_path

    monkeypatch.setitem(sys.modules, "geogrid.demo", types.SimpleNamespace(demo_store=demo_store))
    with TestClient(create_app(Settings(store=None))) as c:
        r = c.get("/maps/grids")
    assert r.status_code == 200
    assert calls == [1]
    assert '"grid_id": "G4"' in r.text


def test_local_tiles_setting_adds_a_basemap(store_path):
    tiles = "http://tiles.intranet/{z}/{x}/{y}.png"
    with TestClient(create_app(Settings(store=store_path, tiles=tiles, tiles_attribution="<i>区测绘院</i>"))) as c:
        page = c.get("/maps/grids").text
    assert json.dumps(tiles) in page
    assert "<i>" not in page
