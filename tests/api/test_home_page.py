"""The home page: the application's front door, Chinese by default, English complete, by role."""

from __future__ import annotations

import re

import pytest

from api import Settings, create_app
from geogrid.plans import new_plan
from layers.store import GeoPackageStore
from tests.api._support import TestClient

HTML = {"Accept": "text/html,application/xhtml+xml"}
ADMIN, PLANNER, VIEWER = ("a" * 24, "p" * 24, "v" * 24)
CJK = re.compile(r"[\u3400-\u9fff]")


@pytest.fixture
def keyed(store_path):
    GeoPackageStore(store_path)
    new_plan(GeoPackageStore(store_path), "<img src=x onerror=alert(1)> 东区", author="test")
    app = create_app(Settings(store=store_path, api_keys=f"{ADMIN}:admin,{PLANNER}:planner,{VIEWER}:viewer"))
    with TestClient(app) as c:
        yield c


def _visible_text(page: str) -> str:
    body = page.split("<body>", 1)[1]
    body = re.sub(r"<script\b.*?</script>", "", body, flags=re.DOTALL)
    return re.sub(r"<[^>]+>", " ", body)


def test_chinese_by_default_with_the_maps_plans_qa_layers_and_api(client):
    page = client.get("/", headers=HTML).text
    assert '<html lang="zh-CN">' in page
    for text in ("指挥中心大屏", "网格层级图", "规划", "最新质检", "图层", "数据接口"):
        assert text in page, text
    assert 'href="http://localhost/maps/command-centre"' in page
    assert 'href="http://localhost/collections/grids/items?limit=10"' in page
    assert 'id="gg-qa-verdict">无问题' in page  # the test network is sound
    assert 'id="gg-lang-en" href="?f=html&amp;lang=en"' in page


def test_english_is_complete(client):
    page = client.get("/?lang=en", headers=HTML).text
    assert '<html lang="en">' in page
    text = _visible_text(page).replace("中文", "")  # the switch back names its language in it
    assert CJK.findall(text) == [], CJK.findall(text)
    assert "Command centre wall" in text and "Latest QA" in text


def test_plans_are_offered_by_role_and_names_stay_text(keyed):
    def page(key: str) -> str:
        r = keyed.get("/", headers={**HTML, "Authorization": f"Bearer {key}"})
        assert r.status_code == 200
        return r.text

    admin, planner, viewer = page(ADMIN), page(PLANNER), page(VIEWER)
    for p in (admin, planner, viewer):
        assert "&lt;img src=x onerror=alert(1)&gt; 东区" in p and "<img src=x" not in p
        assert "在规划页打开" in p
    assert 'data-action="commit"' in admin and 'data-action="commit"' not in planner
    assert 'id="gg-new"' in planner and 'data-action="discard"' in planner
    assert 'id="gg-new"' not in viewer and "<button data-action" not in viewer and 'class="danger"' not in viewer
    assert "需要规划员权限" in viewer


def test_a_finding_in_the_network_shows_on_the_home_page(tmp_path, tiny_grids):
    path = tmp_path / "gap.gpkg"
    GeoPackageStore(path).write({"grids": tiny_grids[tiny_grids["grid_id"] != "G4"]})
    with TestClient(create_app(Settings(store=path))) as c:
        page = c.get("/", headers=HTML).text
    verdict = re.search(r'id="gg-qa-verdict">(.*?)</p>', page).group(1)
    assert re.sub(r"<[^>]+>", "", verdict) == "2 发现问题"
