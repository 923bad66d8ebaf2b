"""The planner's and the operator's day in headless Chromium, from the first page, as users reach each state.

Each journey fails on any console error, any failed request or 4xx/5xx answer, and any request
to another host (read from chromedriver's DevTools network log), on any CSP violation or dialog.
Screenshots of each step go to ``$GEOGRID_ARTIFACTS`` (default ``test-artifacts/``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api import Settings, create_app
from tests.api.test_browser import RECORDER, _serve, start_chromium

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser-journeys")]

ADMIN_KEY = "journey-admin-key-0123456789"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("GEOGRID_ARTIFACTS") or ROOT / "test-artifacts") / "journeys"


WAIT_READY = """
const done = arguments[arguments.length - 1], t0 = Date.now();
(function poll() {
    if (document.readyState === 'complete' && (window.__geogridReady
        || (window.L && document.querySelectorAll('.leaflet-interactive').length))) return done(true);
    if (Date.now() - t0 > 30000) return done(false);
    setTimeout(poll, 50);
})();
"""


# -- what "clean" means -------------------------------------------------------------------


def network_problems(driver: Any, origin: str) -> list[str]:
    """Requests since the last call that left the machine, failed, or were answered 4xx/5xx."""
    local = (f"{origin}/", "data:", "about:", "blob:", "file://") if origin else ("data:", "about:", "blob:", "file://")
    problems, urls = [], {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        method, params = message["method"], message.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            urls[params["requestId"]] = url
            if not url.startswith(local):
                problems.append(f"request off the machine: {url}")
        elif method == "Network.responseReceived":
            status = int(params["response"]["status"])
            if status >= 400:
                problems.append(f"{status} answer: {params['response']['url']}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            problems.append(f"failed ({params.get('errorText')}): {urls.get(params['requestId'], '?')}")
    return problems


def assert_clean(driver: Any, origin: str, what: str) -> None:
    """No console error, dialog, CSP violation, failed request or request leaving the machine."""
    from selenium.common.exceptions import NoAlertPresentException

    try:
        text = driver.switch_to.alert.text
    except NoAlertPresentException:
        text = None
    assert text is None, f"{what}: a dialog opened: {text!r}"
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], what
    assert network_problems(driver, origin) == [], what
    assert driver.execute_script("return window.__csp || []") == [], what
    assert driver.execute_script("return window.__dialogs || []") == [], what


def load(driver: Any, url: str) -> None:
    driver.get(url)
    wait_ready(driver, url)


def wait_ready(driver: Any, what: str) -> None:
    if not driver.execute_async_script(WAIT_READY):
        errors = [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        pytest.fail(f"{what} did not render within 30 s; console: {errors}; network: {network_problems(driver, '')}")


def wait_for_url(driver: Any, part: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(lambda d: part in d.current_url, f"the page did not go to {part}")
    wait_ready(driver, part)


def screenshot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def overlay_labels(driver: Any) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('.leaflet-control-layers-overlays label')].map(l => l.textContent.trim())"
    )


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> Path:
    """A small demo district in a GeoPackage (grids, incidents, cameras, buildings)."""
    from geogrid.demo import build_demo
    from layers.store import GeoPackageStore

    d = build_demo(0, n_incidents=2_000, n_cameras=150)
    path = tmp_path_factory.mktemp("journey") / "demo.gpkg"
    GeoPackageStore(path).write({"grids": d.grids, "incidents": d.incidents, "cameras": d.cameras})
    return path


def _app(store: Path) -> Any:
    return create_app(Settings(store=store, api_keys=f"{ADMIN_KEY}:admin"))


@pytest.fixture(scope="module")
def chromium(tmp_path_factory) -> Iterator[Any]:
    driver = start_chromium(
        tmp_path_factory.mktemp("chromium-profile"), window="1400,900", init_script=RECORDER, network_log=True
    )
    driver.set_script_timeout(40)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium) -> Any:
    """The module's Chromium with its logs drained and its cookies cleared."""
    chromium.delete_all_cookies()
    chromium.get_log("browser")
    chromium.get_log("performance")
    return chromium


def sign_in(driver: Any, url: str) -> None:
    """Open the home page: with keys configured it asks for one; type it, land on the home page signed in."""
    from selenium.webdriver.common.by import By

    driver.get(url + "/?lang=zh")
    if not driver.current_url.startswith(url + "/login?next=/"):  # still signed in (a session that outlived it)
        wait_ready(driver, "home")
        assert "管理员" in driver.find_element(By.ID, "gg-who").text
        return
    field = driver.find_element(By.NAME, "key")
    field.send_keys(ADMIN_KEY)
    field.submit()
    wait_for_url(driver, "/?lang=zh")
    assert "管理员" in driver.find_element(By.ID, "gg-who").text


def _finest_grids(grids: Any) -> Any:
    return grids[grids["level"] == grids["level"].max()]


def _split_line(grid: Any) -> dict[str, Any]:
    x0, _, x1, _ = grid.geometry.bounds
    cy = grid.geometry.representative_point().y
    return {"type": "LineString", "coordinates": [[x0 - 1e-4, cy], [x1 + 1e-4, cy]]}


SUBMIT = """
const done = arguments[arguments.length - 1];
window.geogridPlanner.submitEdit(arguments[0], JSON.parse(arguments[1]), JSON.parse(arguments[2])).then(done);
"""


# -- the journeys -------------------------------------------------------------------------


def test_planner_journey_home_new_plan_two_edits_reload_diff_commit(demo_store, browser):
    """Home → sign in → new plan → two edits in the page → reload → the diff agrees → commit."""
    from selenium.webdriver.common.by import By

    from layers.store import GeoPackageStore

    grids = GeoPackageStore(demo_store).read("grids")
    with _serve(_app(demo_store)) as url:
        sign_in(browser, url)
        screenshot(browser, "01-home-signed-in")
        assert_clean(browser, url, "home")

        browser.find_element(By.ID, "gg-plan-name").send_keys("东片区调整 <b>2026</b>")
        browser.find_element(By.CSS_SELECTOR, "#gg-new button[type=submit]").click()
        wait_for_url(browser, "/maps/planner/")
        plan_id = browser.current_url.rsplit("/", 1)[1]
        assert browser.find_element(By.ID, "gg-title").text == "东片区调整 <b>2026</b>"
        n0 = browser.execute_script("return window.geogridPlanner.gridCount()")
        assert n0 == len(grids)
        assert_clean(browser, url, "planner of a new plan")

        # Two edits, as the drawing tools send them: split two basic grids.
        for i, grid in enumerate(_finest_grids(grids).iloc[[0, 5]].itertuples()):
            result = browser.execute_async_script(
                SUBMIT, "split_grid", json.dumps(_split_line(grid)), json.dumps({"grid_id": grid.grid_id})
            )
            assert result["ok"], result
            assert result["count"] == n0 + i + 1
        screenshot(browser, "02-planner-after-two-edits")
        assert_clean(browser, url, "planner after two edits")

        # Reload: the page of an edited plan (the one that used to die on setZIndex).
        browser.refresh()
        wait_ready(browser, "planner of the edited plan after reload")
        assert browser.execute_script("return window.geogridPlanner.gridCount()") == n0 + 2
        n_options = browser.execute_script("return document.querySelectorAll('#gg-grid option').length")
        assert n_options == len(_finest_grids(grids)) + 2
        # The grid picker is searchable: typing part of an id leaves the grids that match.
        wanted = str(_finest_grids(grids).iloc[7].grid_id)
        browser.find_element(By.ID, "gg-grid-filter").send_keys(wanted)
        options = browser.execute_script("return [...document.querySelectorAll('#gg-grid option')].map(o => o.value)")
        assert wanted in options and len(options) < n_options and all(wanted in o for o in options), options
        browser.find_element(By.ID, "gg-grid-filter").clear()
        browser.execute_script("document.getElementById('gg-grid-filter').dispatchEvent(new Event('input'))")
        labels = overlay_labels(browser)
        assert "对比现状的变更" in labels and len(labels) >= 4, labels
        assert browser.execute_script("return document.querySelectorAll('.leaflet-pm-toolbar').length") > 0
        zoom = browser.execute_script("return Object.values(window).find(v => v instanceof L.Map).getZoom()")
        assert zoom > 10, f"the map is not fitted to the district (zoom {zoom})"
        screenshot(browser, "03-planner-reloaded")
        assert_clean(browser, url, "planner of an edited plan after reload")

        # The diff: what the panel says is what the API says.
        diff_text = browser.find_element(By.ID, "gg-diff").text
        summary = browser.execute_async_script(
            """const done = arguments[arguments.length - 1];
            fetch(arguments[0], {credentials: 'same-origin'}).then(r => r.json()).then(d => done(d.summary));""",
            f"{url}/plans/{plan_id}/diff",
        )
        assert f"{summary['added']} 新增" in diff_text and f"{summary['changed']} 变更" in diff_text, diff_text
        assert summary["added"] >= 2

        # Commit from the planner.
        browser.find_element(By.ID, "gg-commit").click()
        browser.execute_async_script(
            """const done = arguments[arguments.length - 1], t0 = Date.now();
            (function poll() {
                if (document.getElementById('gg-msg').className.includes('ok') || Date.now() - t0 > 20000) return done();
                setTimeout(poll, 50);
            })();"""
        )
        message = browser.find_element(By.ID, "gg-msg").text
        assert "已提交" in message, message
        screenshot(browser, "04-planner-committed")
        assert_clean(browser, url, "planner after commit")

        # Home lists the plan as committed, and the network has the two new grids.
        load(browser, url + "/")
        row = browser.find_element(By.CSS_SELECTOR, f'tr[data-plan="{plan_id}"]')
        assert "已提交" in row.text
        assert len(GeoPackageStore(demo_store).read("grids")) == len(grids) + 2
        screenshot(browser, "05-home-after-commit")
        assert_clean(browser, url, "home after commit")


def test_operator_journey_home_command_centre_date_change(demo_store, browser):
    """Home → command centre → a different period through the date form."""
    from selenium.webdriver.common.by import By

    with _serve(_app(demo_store)) as url:
        sign_in(browser, url)
        browser.find_element(By.ID, "gg-link-command-centre").click()
        wait_for_url(browser, "/maps/command-centre")
        legend = browser.find_element(By.CSS_SELECTOR, ".gg-legend h4").text
        until = browser.find_element(By.NAME, "until").get_attribute("value")
        assert legend.endswith(until), legend
        screenshot(browser, "10-command-centre")
        assert_clean(browser, url, "command centre")

        since = "2025-01-01"
        browser.execute_script("document.querySelector('input[name=since]').value = arguments[0]", since)
        browser.find_element(By.CSS_SELECTOR, ".gg-form button[type=submit]").click()
        wait_for_url(browser, f"since={since}")
        assert browser.find_element(By.CSS_SELECTOR, ".gg-legend h4").text.startswith(since)
        assert browser.execute_script(
            "return document.querySelectorAll('.leaflet-control-layers-overlays label').length"
        )
        screenshot(browser, "11-command-centre-new-period")
        assert_clean(browser, url, "command centre after the date change")


def test_every_page_works_after_a_restart(demo_store, browser, tmp_path):
    """Pages of a store the server did not build itself: a restart with an edited plan waiting."""
    import shutil

    from selenium.webdriver.common.by import By

    from geogrid.plans import edit_plan, new_plan
    from layers.store import GeoPackageStore

    path = tmp_path / "restarted.gpkg"
    shutil.copy(demo_store, path)
    store = GeoPackageStore(path)
    grids = store.read("grids")
    plan = new_plan(store, "重启前的规划", author="test")
    grid = _finest_grids(grids).iloc[3]
    edit_plan(store, plan.plan_id, "split_grid", author="test", grid_id=grid.grid_id, line=shapely_line(grid))

    with _serve(_app(path)) as url:  # the first run: someone used it
        sign_in(browser, url)
        assert_clean(browser, url, "home before the restart")
    with _serve(_app(path)) as url:  # the restart (sessions may or may not outlive it)
        sign_in(browser, url)
        pages = {
            "home": url + "/?lang=en",
            "grids": url + "/maps/grids",
            "command-centre": url + "/maps/command-centre",
            "planner": f"{url}/maps/planner/{plan.plan_id}",
        }
        for name, page in pages.items():
            load(browser, page)
            screenshot(browser, f"20-after-restart-{name}")
            assert_clean(browser, url, f"{name} after a restart")
        assert browser.execute_script("return window.geogridPlanner.gridCount()") == len(grids) + 1
        assert "对比现状的变更" in overlay_labels(browser)
        load(browser, pages["home"])
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"


def shapely_line(grid: Any) -> Any:
    import shapely

    return shapely.geometry.shape(_split_line(grid))


def test_qa_report_with_findings_opens_from_disk_with_no_network(tiny_grids, tmp_path, browser):
    """``geogrid check --report``: the page opened from the file system, the network switched off."""
    import subprocess
    import sys

    g = tiny_grids[tiny_grids["grid_id"] != "G4"].copy()  # a gap at the finest level, an untiled street
    src = tmp_path / "g.gpkg"
    g.to_file(src, layer="grids")
    report = tmp_path / "qa.html"
    out = subprocess.run(
        [sys.executable, "-m", "geogrid", "check", str(src), "--report", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr

    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
    )
    try:
        load(browser, report.as_uri())
        labels = overlay_labels(browser)
        assert any(label.startswith("gap (1)") for label in labels), labels
        assert any(label.startswith("parent_not_tiled") for label in labels), labels
        n_paths = browser.execute_script("return document.querySelectorAll('.leaflet-interactive').length")
        assert n_paths >= len(g) + 2  # every grid, and each finding's shape or ring
        assert browser.execute_script("return document.querySelectorAll('#geogrid-qa tbody tr').length") == 2
        screenshot(browser, "30-qa-report-from-disk")
        assert_clean(browser, "", "the QA report opened from disk")
    finally:
        browser.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )


@pytest.mark.parametrize("how", ["save", "jupyter"])
def test_a_saved_grid_map_renders_with_the_network_off(tiny_grids, tmp_path, browser, how):
    """``grid_map(...).save()`` and the HTML Jupyter shows (an iframe's srcdoc), opened with no network."""
    from geogrid.maps import grid_map

    m = grid_map(tiny_grids)
    page = tmp_path / "grids.html"
    if how == "save":
        m.save(str(page))
    else:
        page.write_text(f"<!DOCTYPE html><html><body>{m._repr_html_()}</body></html>", encoding="utf-8")
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", text)

    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
    )
    try:
        browser.get(page.as_uri())
        if how == "jupyter":
            browser.switch_to.frame(0)
        wait_ready(browser, f"grid_map via {how}")
        assert browser.execute_script("return document.querySelectorAll('.leaflet-interactive').length") == len(
            tiny_grids
        )
        assert overlay_labels(browser) == ["2 · grid", "1 · street", "0 · district"]
        scale = browser.execute_script(
            "return [...document.querySelectorAll('.leaflet-control-scale-line')].map(e => e.textContent)"
        )
        assert len(scale) == 1 and re.fullmatch(r"\d+ k?m", scale[0]), scale  # metres only, no feet
        screenshot(browser, f"40-grid-map-offline-{how}")
        browser.switch_to.default_content()
        assert_clean(browser, "", f"grid_map via {how} offline")
    finally:
        browser.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
