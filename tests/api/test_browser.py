"""The map page in a real headless Chromium: Leaflet starts under the CSP, nothing leaves localhost, no script runs from names."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from api import Settings, create_app
from tests.api._support import HOSTILE_LEVEL_NAME

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[dev]')")
    if missing:
        msg = f"browser test needs {', '.join(missing)} (Debian: apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


# Installed before any page script runs: records every CSP violation the page causes.
CSP_RECORDER = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
    e => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
"""

# CSP_RECORDER plus every dialog a payload would open (alert, confirm, prompt), installed before any page script.
RECORDER = (
    CSP_RECORDER
    + """
window.__dialogs = [];
for (const name of ['alert', 'confirm', 'prompt']) {
    window[name] = (...args) => { window.__dialogs.push(name + ':' + args.join(',')); };
}
"""
)


@pytest.fixture
def server(store_path: Path) -> Iterator[str]:
    """The app on a free localhost port, served by uvicorn in a thread."""
    with _serve(create_app(Settings(store=store_path))) as url:
        yield url


@contextmanager
def _serve(app: FastAPI) -> Iterator[str]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", ws="none", log_level="warning", access_log=False)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start within 10 s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        sock.close()


def start_chromium(profile: Path, *, window: str, init_script: str, network_log: bool = False) -> Any:
    """Headless Chromium that reaches only 127.0.0.1, logs the console, and runs ``init_script`` first on every page.

    With ``network_log``, chromedriver also keeps the DevTools network events (``get_log("performance")``).
    """
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size={window}",
        # A request to any other host fails at once instead of waiting for a closed network.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", **({"performance": "ALL"} if network_log else {})})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": init_script})
    return driver


@pytest.fixture
def browser(tmp_path):
    driver = start_chromium(tmp_path / "chromium-profile", window="1024,768", init_script=CSP_RECORDER)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_grid_map_works_offline(server, browser, grids):
    with urllib.request.urlopen(server + "/maps/grids") as r:
        csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp

    browser.get(server + "/maps/grids")
    browser.set_script_timeout(10)
    ready = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const t0 = Date.now();
        (function poll() {
            if (document.querySelectorAll('.leaflet-interactive').length >= arguments[0]) return done(true);
            if (Date.now() - t0 > 8000) return done(false);
            setTimeout(poll, 25);
        })();
        """.replace("arguments[0]", str(len(grids)))
    )
    assert ready, "Leaflet drew no polygons within 8 s"

    # One interactive path per grid of every level, and the three overlays in the layer control.
    assert browser.execute_script("return typeof L") == "object"
    assert browser.execute_script("return L.version") == "1.9.3"
    assert browser.execute_script("return document.querySelectorAll('.leaflet-interactive').length") == len(grids)
    labels = browser.execute_script(
        "return [...document.querySelectorAll('.leaflet-control-layers-overlays label')].map(l => l.textContent.trim())"
    )
    assert labels == [f"2 · {HOSTILE_LEVEL_NAME}", "1 · street", "0 · district"]

    # Open each grid's tooltip in turn (folium binds one per overlay): the names go through
    # innerHTML, where an unescaped payload would run.
    tooltips = browser.execute_script(
        """
        const shown = [];
        for (const key of Object.keys(window)) {
            const group = window[key];
            if (!key.startsWith('geo_json_') || !(group instanceof L.GeoJSON)) continue;
            group.eachLayer(layer => {
                const latlng = layer.getBounds().getCenter();
                layer.fire('mouseover', {latlng}, true);  // as a hover does; the group opens its tooltip
                const tip = group.isTooltipOpen() ? group.getTooltip().getElement() : null;
                shown.push(tip && tip.isConnected ? tip.textContent.replace(/\\s+/g, ' ').trim() : null);
                layer.fire('mouseout', {latlng}, true);
            });
        }
        return shown;
        """
    )
    assert len(tooltips) == len(grids)
    expected = {f"名称 {n} 编号 {g}" for n, g in zip(grids["name"], grids["grid_id"], strict=True)}
    assert set(tooltips) == expected, tooltips  # every name shown as the text it is, Chinese and hostile alike
    assert browser.execute_script("return window.__xss") is None

    # Nothing was fetched from anywhere but this server.
    origin = browser.execute_script("return location.origin")
    assert origin == server
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any(u.endswith("/leaflet.js") for u in fetched)
    assert [u for u in fetched if not u.startswith(server + "/")] == []

    # Every inline script and style carried the nonce: the CSP blocked nothing.
    assert browser.execute_script("return window.__csp") == []
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []


def test_the_csp_blocks_an_inline_script_without_the_nonce(store_path, browser):
    # The control for the test above: the recorder sees a violation, and the script does not run.
    app = create_app(Settings(store=store_path))

    @app.get("/test/unsigned")
    def unsigned() -> HTMLResponse:
        return HTMLResponse("<!DOCTYPE html><html><body><script>window.__ran = 1</script></body></html>")

    with _serve(app) as url:
        browser.get(url + "/test/unsigned")
        assert browser.execute_script("return window.__ran") is None
        violations = browser.execute_script("return window.__csp")
    assert violations and violations[0].startswith("script-src"), violations


def test_the_landing_page_links_to_the_map(server, browser):
    browser.get(server + "/")
    assert browser.title == "geogrid"
    hrefs = browser.execute_script("return [...document.querySelectorAll('a')].map(a => a.href)")
    assert server + "/maps/grids" in hrefs
    assert server + "/maps/command-centre" in hrefs
    assert browser.execute_script("return window.__csp") == []


def test_with_keys_a_browser_signs_in_and_reaches_the_map(store_path, browser):
    """Keys configured: the map redirects to the sign-in form; a wrong key is refused; the right one opens it."""
    from selenium.webdriver.common.by import By

    key = "browser-viewer-key-0123456789"
    with _serve(create_app(Settings(store=store_path, api_keys=f"{key}:viewer"))) as url:
        browser.get(url + "/maps/grids")
        assert browser.current_url == url + "/login?next=/maps/grids"
        for attempt in ("not-the-key", key):
            field = browser.find_element(By.NAME, "key")
            field.clear()
            field.send_keys(attempt)
            field.submit()
        assert browser.current_url == url + "/maps/grids"
        deadline = time.monotonic() + 20
        while not browser.execute_script("return document.querySelectorAll('.leaflet-interactive').length"):
            assert time.monotonic() < deadline, "the map did not render after signing in"
            time.sleep(0.05)
        # the cookie is out of the page scripts' reach
        assert browser.execute_script("return document.cookie") == ""
        assert browser.execute_script("return window.__csp") == []
