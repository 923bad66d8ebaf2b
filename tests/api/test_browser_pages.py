"""Every map page in headless Chromium on a demo district whose every text field carries a script payload.

On load and with every popup and tooltip opened: no dialog, no CSP violation, no console
error, no request beyond 127.0.0.1. The planner also sends an edit through its page
script and redraws. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from api import Settings, create_app
from tests.api.test_browser import RECORDER, _serve, start_chromium

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser-demo")]

PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(1)</script>",
    "`",
    "${alert(1)}",
    "\\`",
    "javascript:alert(1)",
]
ADMIN_KEY = "browser-admin-key-0123456789"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# Installed before any page script: records every dialog a payload would open (and the CSP violations).

# Opens every tooltip and popup the page binds: group tooltips by hovering each child (as folium binds
# them on the group), popups of clustered markers by opening them standalone (their text is set as HTML).
OPEN_EVERYTHING = """
const done = arguments[arguments.length - 1];
const maps = Object.values(window).filter(v => v instanceof L.Map);
let opened = 0;
const PER_GROUP = 300;
function show(map, layer, owner) {
    const at = layer.getLatLng ? layer.getLatLng() : (layer.getBounds ? layer.getBounds().getCenter() : null);
    if (!at) return;
    for (const kind of ['Tooltip', 'Popup']) {
        const bound = layer['get' + kind] && layer['get' + kind]();
        const group = owner && owner['get' + kind] && owner['get' + kind]();
        if (bound) {
            const content = bound.getContent();
            const html = typeof content === 'function' ? content(layer) : content;
            const standalone = kind === 'Tooltip' ? L.tooltip() : L.popup();
            standalone.setLatLng(at).setContent(html);
            map.openPopup && kind === 'Popup' ? map.openPopup(standalone) : standalone.addTo(map);
            opened++;
            map.removeLayer(standalone);
        } else if (group && map.hasLayer(layer)) {
            layer.fire(kind === 'Tooltip' ? 'mouseover' : 'click', {latlng: at}, true);
            if (owner['is' + kind + 'Open']()) opened++;
            layer.fire('mouseout', {latlng: at}, true);
        }
    }
}
for (const map of maps) {
    const layers = [];
    map.eachLayer(l => layers.push(l));
    for (const layer of layers) {
        if (layer instanceof L.LayerGroup) {
            let n = 0;
            layer.eachLayer(child => { if (n++ < PER_GROUP) show(map, child, layer); });
        } else {
            show(map, layer, null);
        }
    }
}
setTimeout(() => done(opened), 50);
"""


def _plant(frame, column: str, start: int = 0):
    cycle = itertools.islice(itertools.cycle(PAYLOADS), start, start + len(frame))
    frame[column] = [f"{p} {i}" if column == "name" else p for i, p in enumerate(cycle)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict[str, object]:
    """A small demo district (once per worker) with a payload in every text field, and an open plan."""
    from geogrid.demo import build_demo
    from geogrid.plans import new_plan
    from layers.store import GeoPackageStore

    d = build_demo(0, n_incidents=2_000, n_cameras=150)
    grids, incidents, cameras = d.grids.copy(), d.incidents.copy(), d.cameras.copy()
    _plant(grids, "name")
    grids["level_name"] = grids["level"].map(dict(enumerate(PAYLOADS)))
    _plant(incidents, "description")
    _plant(incidents, "category", 3)
    _plant(cameras, "owner")
    path = tmp_path_factory.mktemp("demo") / "hostile-demo.gpkg"
    store = GeoPackageStore(path)
    store.write({"grids": grids, "incidents": incidents, "cameras": cameras})
    plan = new_plan(store, PAYLOADS[1] + " 规划", author="test")
    return {"path": path, "plan_id": plan.plan_id, "grids": grids}


@pytest.fixture(scope="module")
def server(demo) -> Iterator[str]:
    app = create_app(Settings(store=demo["path"], local_admin_key=ADMIN_KEY))
    with _serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    driver = start_chromium(profile, window="1280,800", init_script=RECORDER)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _load(browser, url: str) -> None:
    browser.get_log("browser")  # drop what an earlier page logged
    browser.get(url)
    ready = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1], t0 = Date.now();
        (function poll() {
            if (window.__geogridReady || (window.L && document.querySelectorAll('.leaflet-interactive').length))
                return done(true);
            if (Date.now() - t0 > 20000) return done(false);
            setTimeout(poll, 50);
        })();
        """
    )
    assert ready, f"{url} did not render within 20 s"


def _assert_clean(browser, server: str, what: str, *, refused: str | None = None) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        text = browser.switch_to.alert.text
        pytest.fail(f"{what}: a dialog opened: {text!r}")
    except NoAlertPresentException:
        pass
    assert browser.execute_script("return window.__dialogs") == [], what
    assert browser.execute_script("return window.__csp") == [], what
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert [u for u in fetched if not u.startswith(server + "/")] == [], what
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    if refused is not None:  # Chromium logs every 4xx answer to a fetch; the expected refusal is not an error
        errors = [e for e in errors if not (e["source"] == "network" and refused in e["message"])]
    assert errors == [], what


def _screenshot(browser, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))


@pytest.mark.parametrize("page", ["/maps/grids", "/maps/command-centre", "planner"])
def test_payloads_in_every_text_field_stay_text(server, chromium, demo, page):
    url = f"{server}/maps/planner/{demo['plan_id']}" if page == "planner" else server + page
    _load(chromium, url)
    _assert_clean(chromium, server, f"{page} on load")
    opened = chromium.execute_async_script(OPEN_EVERYTHING)
    assert opened > 0, f"{page}: no tooltip or popup opened"
    _assert_clean(chromium, server, f"{page} with tooltips and popups open")
    # The payloads are shown as the text they are (here: in the layer control).
    labels = chromium.execute_script(
        "return [...document.querySelectorAll('.leaflet-control-layers-overlays label')].map(l => l.textContent)"
    )
    assert any(PAYLOADS[0] in label for label in labels), labels
    _screenshot(chromium, "page-" + page.strip("/").replace("/", "-"))


def test_the_planner_sends_an_edit_and_redraws(server, chromium, demo):
    grids = demo["grids"]
    fin = grids[grids["level"] == grids["level"].max()].iloc[0]
    x0, _, x1, _ = fin.geometry.bounds
    cy = fin.geometry.representative_point().y
    line = {"type": "LineString", "coordinates": [[x0 - 1e-4, cy], [x1 + 1e-4, cy]]}
    _load(chromium, f"{server}/maps/planner/{demo['plan_id']}")
    before = chromium.execute_script("return window.geogridPlanner.gridCount()")
    assert before == len(grids)
    submit = """
        const done = arguments[arguments.length - 1];
        window.geogridPlanner.setKey(arguments[0]);
        window.geogridPlanner.submitEdit(arguments[1], JSON.parse(arguments[2]), JSON.parse(arguments[3])).then(done);
    """
    result = chromium.execute_async_script(
        submit, ADMIN_KEY, "split_grid", json.dumps(line), json.dumps({"grid_id": fin.grid_id})
    )
    assert result["ok"], result
    assert result["count"] == before + 1 == chromium.execute_script("return window.geogridPlanner.gridCount()")
    assert chromium.execute_script("return window.geogridPlanner.etag()") == f'"{result["version"]}"'
    assert "split_grid" in chromium.execute_script("return document.getElementById('gg-msg').textContent")
    _screenshot(chromium, "planner-after-split")

    # A refused edit (a region across a parent boundary): the message is shown as text, nothing redrawn.
    bx0, by0, bx1, by1 = (float(v) for v in grids.total_bounds)
    big = {"type": "Polygon", "coordinates": [[[bx0, by0], [bx1, by0], [bx1, by1], [bx0, by1], [bx0, by0]]]}
    other = grids[grids["level"] == grids["level"].max()].iloc[1].grid_id
    refused = chromium.execute_async_script(
        submit, ADMIN_KEY, "transfer_area", json.dumps(big), json.dumps({"to_grid": other})
    )
    assert not refused["ok"] and refused["status"] == 409, refused
    shown = chromium.execute_script("return document.getElementById('gg-msg').textContent")
    assert str(refused["status"]) in shown
    assert chromium.execute_script("return window.geogridPlanner.gridCount()") == before + 1
    _assert_clean(chromium, server, "planner after edits", refused="status of 409")
    _screenshot(chromium, "planner-refused")
