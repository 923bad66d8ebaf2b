"""A restarted server answers the command centre from the page its earlier run kept beside the store."""

from __future__ import annotations

import re

import pytest

from api import Settings, create_app
from layers.store import GeoPackageStore
from tests.api._support import TestClient

PAGE = "/maps/command-centre"


def _client(path):
    return TestClient(create_app(Settings(store=path)))


def _nonces(response) -> set[str]:
    return set(re.findall(r'nonce="([^"]+)"', response.text))


def _refuse_to_build(monkeypatch):
    import api.routers.maps

    def refuse(*args, **kwargs):
        pytest.fail("the page was built again")

    monkeypatch.setattr(api.routers.maps, "_command_centre_html", refuse)
    monkeypatch.setattr(api.routers.maps, "_layer", refuse)  # not even a layer is read


@pytest.mark.parametrize("query", ["", "?since=2025-03-01&until=2025-03-31"], ids=["default-period", "a-period"])
def test_after_a_restart_the_kept_page_is_served_with_a_fresh_nonce(full_store_path, monkeypatch, query):
    with _client(full_store_path) as first:
        built = first.get(PAGE + query)
    assert built.status_code == 200
    assert list(full_store_path.parent.glob(full_store_path.name + ".pages/*.txt"))

    _refuse_to_build(monkeypatch)
    with _client(full_store_path) as restarted:
        again = restarted.get(PAGE + query)
    assert again.status_code == 200
    csp = again.headers["Content-Security-Policy"]
    (nonce,) = _nonces(again)
    assert f"'nonce-{nonce}'" in csp and nonce not in _nonces(built)
    strip = re.compile(r'nonce="[^"]+"')
    assert strip.sub("", again.text) == strip.sub("", built.text)


def test_a_changed_store_is_built_again(full_store_path, monkeypatch, incidents):
    with _client(full_store_path) as first:
        before = first.get(PAGE + "?since=2024-12-01&until=2025-12-31").text
    GeoPackageStore(full_store_path).write({"incidents": incidents.iloc[:2]})
    with _client(full_store_path) as restarted:
        after = restarted.get(PAGE + "?since=2024-12-01&until=2025-12-31").text
    assert "事件 <b>2</b>" in after and "事件 <b>2</b>" not in before


def test_an_unwritable_directory_still_serves_the_page(full_store_path, caplog):
    (full_store_path.parent / (full_store_path.name + ".pages")).write_text("a file where the directory would go")
    with _client(full_store_path) as client:
        r = client.get(PAGE)
    assert r.status_code == 200 and 'class="gg-legend"' in r.text
    assert "could not keep the page" in caplog.text
