"""GET /maps/command-centre: the wall's layers, its period, escaped text, and a cached page with a fresh nonce."""

from __future__ import annotations

import json
import re

import pytest

from tests.api._support import HOSTILE_LEVEL_NAME, HOSTILE_NAMES

PAGE = "/maps/command-centre"
WHOLE = f"{PAGE}?since=2024-12-01&until=2025-12-31"


def _layers(page: str) -> list[str]:
    """The overlay names in the layer control, as rendered."""
    block = page[page.index("overlays :") : page.index("L.control.layers(")]
    return [json.loads(f'"{n}"') for n in re.findall(r'"([^"]+)" : \w+,', block)]


def test_the_wall_has_every_layer(full_client):
    r = full_client.get(WHOLE)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    layers = _layers(r.text)
    for name in ("事件点位", "事件热力", "摄像头", "摄像头视域", "监控盲区", "热点网格 (Gi*)"):
        assert name in layers, layers
    assert {"2 · " + n for n in ["&lt;b onmouseover=&quot;window.__xss=4&quot;&gt;基础网格&lt;/b&gt;"]} <= set(layers)
    assert "L.markerClusterGroup(" in r.text and "L.heatLayer(" in r.text
    assert 'class="gg-legend"' in r.text and 'name="since" value="2024-12-01"' in r.text


def test_the_period_selects_the_incidents(full_client):
    page = full_client.get(f"{PAGE}?since=2025-03-01&until=2025-03-02").text
    # E1 (2025-03-01T00:00Z), E2 (23:59Z = 03-02 07:59 Shanghai) and E3 (03-02T08:00Z = 16:00 Shanghai)
    ids = set(re.findall(r'"(E\d)"', page))
    assert ids == {"E1", "E2", "E3"}
    assert "事件 <b>3</b>" in page


def test_the_default_period_is_the_last_week_of_the_data(full_client):
    page = full_client.get(PAGE).text
    assert 'name="since" value="2025-06-24"' in page and 'name="until" value="2025-06-30"' in page
    assert set(re.findall(r'"(E\d)"', page)) == {"E6"}


@pytest.mark.parametrize("query", ["since=yesterday", "until=2025-13-01"], ids=["word", "month-13"])
def test_a_bad_date_is_400(full_client, query):
    r = full_client.get(f"{PAGE}?{query}")
    assert r.status_code == 400
    assert "since" in r.json()["description"] or "until" in r.json()["description"]


@pytest.mark.parametrize(
    "query", ["since=2025-03-02&until=2025-03-01", "since=0001-01-01&until=9999-12-31"], ids=["reversed", "extreme"]
)
def test_odd_periods_are_answered(full_client, query):
    r = full_client.get(f"{PAGE}?{query}")
    assert r.status_code == 200
    n = 0 if query.startswith("since=2025") else 6
    assert f"事件 <b>{n}</b>" in r.text


def test_no_user_text_reaches_the_page_unescaped(full_client):
    page = full_client.get(WHOLE).text
    for text in [*HOSTILE_NAMES.values(), HOSTILE_LEVEL_NAME, '<img src=x onerror="window.__xss=9">']:
        assert text not in page
        assert json.dumps(text)[1:-1] not in page
    # The description is there, HTML-escaped (and then JSON-escaped by the template's tojson).
    assert r"\u0026lt;img src=x onerror=\u0026quot;window.__xss=9\u0026quot;\u0026gt;" in page


def test_the_page_is_cached_but_the_nonce_is_fresh(full_client):
    a, b = full_client.get(WHOLE), full_client.get(WHOLE)
    nonces = [r.headers["content-security-policy"].split("'nonce-")[1].split("'")[0] for r in (a, b)]
    assert nonces[0] != nonces[1]
    for r, nonce in zip((a, b), nonces, strict=True):
        assert r.text.count("<script") == r.text.count(f'<script nonce="{nonce}"') > 0
        assert r.text.count("<style") == r.text.count(f'<style nonce="{nonce}"') > 0
        assert "geogrid-nonce-" not in r.text
    assert a.text.replace(nonces[0], "N") == b.text.replace(nonces[1], "N")


def test_every_asset_is_local(full_client):
    page = full_client.get(WHOLE).text
    refs = re.findall(r"<(?:script|link)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", page)
    assert any("markercluster" in u for u in refs) and any("leaflet-heat" in u for u in refs)
    for url in (u for u in refs if not u.startswith("data:")):
        assert url.startswith("/static/vendor/"), url
        assert full_client.get(url).status_code == 200, url


def test_a_grid_only_store_still_has_a_wall(client):
    r = client.get(PAGE)
    assert r.status_code == 200
    assert _layers(r.text)[-1] == "0 · district"


def test_the_blind_spot_count_is_grids_below_the_stated_coverage(full_client, grids, cameras):
    from api.routers.maps import COVERAGE_THRESHOLD
    from geogrid.coverage import blind_spots

    blind = blind_spots(grids, cameras, level=int(grids["level"].max()))
    expected = int((blind["blind_ratio"] > 1 - COVERAGE_THRESHOLD).sum())
    page = full_client.get(WHOLE).text
    assert f"覆盖不足50%网格 <b>{expected}</b>" in page
    assert "摄像头可见面积不到网格面积50%的基础网格" in page  # the legend states the threshold
    assert "事件聚合：数字为事件数" in page  # the cluster bubbles are explained


def test_sparse_hot_spots_are_said_not_coloured(full_client):
    """Six incidents are too few to judge: the hot-spot layer outlines the grids grey with the reason."""
    page = full_client.get(WHOLE).text
    assert "数据稀疏，未判定" in page  # the legend row
    held = re.findall(r'"held": (true|false)', page)
    assert held and set(held) == {"true"}  # every grid of the layer is withheld, none coloured
    assert not re.findall(r'"bin": -?[1-3]\b', page)
    assert "\\u4e8b\\u4ef6\\u8fc7\\u5c11" in page or "事件过少，未判定" in page  # the reason: too few incidents


def test_the_open_count_is_the_backlog_at_the_end_of_the_period_as_stats_counts_it(tmp_path, grids, incidents):
    """E1 closed after the period was open at its end; E3 closed within it was not; E2 is still open."""
    import pandas as pd

    from api import Settings, create_app
    from layers.store import GeoPackageStore
    from tests.api._support import TestClient

    inc = incidents.copy()
    closed = {"E1": "2025-03-10T00:00:00Z", "E3": "2025-03-02T09:00:00Z", "E5": "2025-01-02T00:00:00Z"}
    inc["closed_at"] = pd.to_datetime(inc["incident_id"].map(closed), utc=True)
    path = tmp_path / "backlog.gpkg"
    GeoPackageStore(path).write({"grids": grids, "incidents": inc})
    with TestClient(create_app(Settings(store=path))) as c:
        page = c.get(f"{PAGE}?since=2025-03-01&until=2025-03-02").text
        stats = c.get("/stats?level=0&since=2025-03-01&until=2025-03-02").json()
    assert "未办结 <b>2</b>" in page  # E1 and E2 (today: only E2)
    assert sum(f["properties"]["open"] for f in stats["features"]) == 2
    # the markers are coloured by the same definition: the last field is 1 for open
    flags = dict(re.findall(r'"(E\d)", "[^"]*", "[^"]*", (\d)\]', page))
    assert flags == {"E1": "1", "E2": "1", "E3": "0"}
