"""Map pages: HTML size and time until rendered in headless Chromium, ours against plain folium.

``ours`` fetches ``/maps/command-centre`` from the app (uvicorn on 127.0.0.1) and loads it
in headless Chromium until the page's ``load`` event and one more frame; its time is the
whole round trip (server build + transfer + browser). ``extra`` records the HTML size
and the browser's own time from navigation to that frame.

The baseline is what folium does by default: grids as GeoJson, every camera and incident
a ``CircleMarker`` with a tooltip. Drawn in full it is tens of MB, so it is built for
``BASELINE_INCIDENTS`` incidents (and every camera) and the incident part of its size and
times is extrapolated linearly to the page's incident count (shown as ``*_extrapolated``).

Needs ``chromium`` and ``chromium-driver`` (Debian) and selenium; the full scale builds
the demo district (990 grids, 7,500 cameras, 200,000 incidents) once into the demo cache.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd

from benchmarks._runner import Case

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
BASELINE_INCIDENTS = 10_000

_LOADED = """
window.addEventListener('load', function () {
    requestAnimationFrame(function () { requestAnimationFrame(function () {
        window.__renderedAt = performance.now();
    }); });
});
"""


@contextmanager
def _serve(app: Any) -> Iterator[str]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", ws="none", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def _browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="bench-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1600,900",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _LOADED})
    driver.set_page_load_timeout(300)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _render_ms(driver: Any, url: str) -> float:
    """Load ``url`` and return the ms from navigation to the second frame after ``load``."""
    driver.get("about:blank")
    driver.get(url)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        done = driver.execute_script("return window.__renderedAt || null")
        if done is not None:
            return float(done)
        time.sleep(0.02)
    msg = f"{url} did not render within 300 s"
    raise TimeoutError(msg)


def _plain_folium(grids: gpd.GeoDataFrame, incidents: gpd.GeoDataFrame, cameras: gpd.GeoDataFrame) -> str:
    """The page folium makes by default: every point a CircleMarker with a tooltip (CDN links made local)."""
    from geogrid.maps import escape_text, render_offline

    m = folium.Map(tiles=None)
    folium.GeoJson(grids[["grid_id", "name", "geometry"]], tooltip=folium.GeoJsonTooltip(["name"])).add_to(m)
    for p, cid in zip(cameras.geometry, cameras["camera_id"], strict=True):
        folium.CircleMarker([p.y, p.x], radius=2, tooltip=str(cid)).add_to(m)
    for p, desc in zip(incidents.geometry, incidents["description"], strict=True):
        # escaped: the demo's descriptions carry script payloads that plain folium would run (an alert)
        folium.CircleMarker([p.y, p.x], radius=4, tooltip=escape_text(desc)).add_to(m)  # a Popup needs jQuery
    folium.LayerControl().add_to(m)
    return render_offline(m, asset_url="/static/vendor")


def cases(scale: str) -> list[Case]:
    """The command-centre page on the demo district (full: 200,000 incidents; small: 20,000)."""
    from api import Settings, create_app
    from geogrid.demo import build_demo
    from layers.store import GeoPackageStore

    n_incidents, n_cameras = (200_000, 7_500) if scale == "full" else (20_000, 500)
    n_base = min(BASELINE_INCIDENTS, n_incidents // 4)
    tmp = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    state: dict[str, Any] = {}

    def setup() -> dict[str, Any]:
        if "store" not in state:
            demo = build_demo(seed=0, n_incidents=n_incidents, n_cameras=n_cameras)
            path = tmp / "demo.gpkg"
            GeoPackageStore(path).write(demo.layers(), metadata=demo.metadata)
            state.update(store=path, demo=demo)
        return state

    def page_case(name: str, query: str, notes: str, with_baseline: bool) -> Case:
        extra: dict[str, Any] = {}

        def ours(s: dict[str, Any]) -> float:
            import urllib.request

            app = create_app(Settings(store=s["store"]))
            with _serve(app) as url, _browser() as driver:
                t0 = time.perf_counter()
                with urllib.request.urlopen(url + "/maps/command-centre" + query, timeout=300) as r:
                    size = len(r.read())
                build_s = time.perf_counter() - t0
                # The second load is the one a wall sees every refresh: the analyses are cached.
                ms = _render_ms(driver, url + "/maps/command-centre" + query)
                ms = _render_ms(driver, url + "/maps/command-centre" + query)
            extra.update(page_mb=round(size / 1e6, 2), render_ms=round(ms), first_build_s=round(build_s, 2))
            return ms

        def baseline(s: dict[str, Any]) -> float:
            from fastapi.responses import HTMLResponse

            demo = s["demo"]
            inc = demo.incidents.iloc[:n_base]
            t0 = time.perf_counter()
            page = _plain_folium(demo.grids, inc, demo.cameras)
            build_s = time.perf_counter() - t0
            empty = _plain_folium(demo.grids, inc.iloc[:0], demo.cameras)
            app = create_app(Settings(store=s["store"]))

            @app.get("/bench/plain")
            def plain() -> HTMLResponse:
                return HTMLResponse(page)

            @app.get("/bench/empty")
            def no_incidents() -> HTMLResponse:
                return HTMLResponse(empty)

            app.user_middleware.clear()  # plain folium runs inline scripts without a nonce
            app.middleware_stack = None
            with _serve(app) as url, _browser() as driver:
                ms = _render_ms(driver, url + "/bench/plain")
                ms0 = _render_ms(driver, url + "/bench/empty")
            factor = n_incidents / n_base
            size = len(page.encode())
            size0 = len(empty.encode())
            extra.update(
                baseline_page_mb=round(size / 1e6, 2),
                baseline_render_ms=round(ms),
                baseline_build_s=round(build_s, 2),
                baseline_incidents=n_base,
                baseline_page_mb_extrapolated=round((size0 + (size - size0) * factor) / 1e6, 1),
                baseline_render_ms_extrapolated=round(ms0 + (ms - ms0) * factor),
            )
            return ms

        return Case(
            name=name,
            setup=setup,
            ours=ours,
            baseline=baseline if with_baseline else None,
            baseline_name=f"plain folium, CircleMarker+tooltip per point ({n_base} incidents, extrapolated)"
            if with_baseline
            else "",
            repeat=1,
            notes=notes,
            extra=extra,
        )

    def planner_case() -> Case:
        extra: dict[str, Any] = {}

        def ours(s: dict[str, Any]) -> float:
            import urllib.request

            from geogrid.plans import new_plan

            if "plan_id" not in s:
                s["plan_id"] = new_plan(GeoPackageStore(s["store"]), "基准 benchmark", author="bench").plan_id
            page = f"/maps/planner/{s['plan_id']}"
            app = create_app(Settings(store=s["store"]))
            with _serve(app) as url, _browser() as driver:
                t0 = time.perf_counter()
                with urllib.request.urlopen(url + page, timeout=300) as r:
                    size = len(r.read())
                build_s = time.perf_counter() - t0
                _render_ms(driver, url + page)
                ms = _render_ms(driver, url + page)
            extra.update(page_mb=round(size / 1e6, 2), render_ms=round(ms), first_build_s=round(build_s, 2))
            return ms

        return Case(
            name="planner_page",
            setup=setup,
            ours=ours,
            repeat=1,
            notes="demo seed 0: an open plan over all 1,114 grids (4 levels); Geoman drawing tools; timed: render ms",
            extra=extra,
        )

    return [
        planner_case(),
        page_case(
            "command_centre_last_week",
            "",
            f"demo seed 0 ({n_incidents} incidents, {n_cameras} cameras); default period: the last 7 days",
            with_baseline=False,
        ),
        page_case(
            "command_centre_whole_year",
            "?since=2025-01-01&until=2025-12-31",
            f"demo seed 0 ({n_incidents} incidents over the year, {n_cameras} cameras); timed value: render ms",
            with_baseline=True,
        ),
    ]
