"""One time convention: the same dates select the same incidents in every command, endpoint and map.

Dates are whole days in the store's time zone (Asia/Shanghai for the demo), ``until``
includes the day it names; GDAL's and QGIS's forms of the same window agree too.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from api.app import create_app
from api.settings import Settings
from geogrid.cli import main
from geogrid.hotspots import emerging_hotspots, incident_clusters, incident_hotspots
from geogrid.stats import grid_stats
from layers.store import GeoPackageStore
from layers.times import parse_interval, time_window
from tests.api._support import TestClient

SINCE, UNTIL = "2025-03-01", "2025-03-07"


def _direct(incidents: pd.DataFrame, column: str = "reported_at", tz: str = "Asia/Shanghai") -> int:
    """Incidents whose local day (in ``tz``) is SINCE..UNTIL, counted by hand."""
    day = pd.to_datetime(incidents[column], utc=True).dt.tz_convert(tz).dt.strftime("%Y-%m-%d")
    return int(((day >= SINCE) & (day <= UNTIL)).sum())


def _cli(*args: object) -> list[dict]:
    out = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert out.exit_code == 0, out.stderr
    return json.loads(out.stdout)


def test_every_command_endpoint_and_map_selects_the_same_incidents(small_demo):
    demo, path = small_demo
    inc, grids = demo.incidents, demo.grids
    expected = _direct(inc)
    # the window is not the UTC days: 8 hours apart at each end, so a UTC reading would differ
    utc_days = _direct(inc, tz="UTC")
    assert expected != utc_days

    counts: dict[str, int] = {}
    counts["grid_stats"] = int(grid_stats(inc, grids, level=3, since=SINCE, until=UNTIL)["count"].sum())
    counts["incident_hotspots"] = int(incident_hotspots(inc, grids, level=3, since=SINCE, until=UNTIL)["count"].sum())
    counts["emerging_hotspots"] = int(
        emerging_hotspots(inc, grids, level=3, period="D", since=SINCE, until=UNTIL)["count"].sum()
    )
    counts["geogrid stats"] = sum(
        r["count"] for r in _cli("stats", path, "--level", 3, "--since", SINCE, "--until", UNTIL, "--json")
    )
    counts["geogrid hotspots"] = sum(
        r["count"] for r in _cli("hotspots", path, "--level", 3, "--since", SINCE, "--until", UNTIL, "--json")
    )
    counts |= _clusters_and_emerging(path, inc, grids)
    with TestClient(create_app(Settings(store=path))) as client:
        for route in ("stats", "hotspots"):
            doc = client.get(f"/{route}?level=3&since={SINCE}&until={UNTIL}").json()
            counts[f"GET /{route}"] = sum(f["properties"]["count"] for f in doc["features"])
        items = "/collections/incidents/items?limit=1&datetime="
        for form in (f"{SINCE}/{UNTIL}", f"{SINCE}T/{UNTIL}T", f"{SINCE}T00:00:00/{UNTIL}T23:59:59.999999"):
            counts[f"OGC datetime={form}"] = client.get(items + form).json()["numberMatched"]
        page = client.get(f"/maps/command-centre?since={SINCE}&until={UNTIL}").text
        counts["command-centre map"] = int(re.search(r"事件 <b>([\d,]+)</b>", page).group(1).replace(",", ""))
    assert counts == dict.fromkeys(counts, expected)


def _clusters_and_emerging(path: Path, inc: pd.DataFrame, grids: pd.DataFrame, tz: str = "Asia/Shanghai") -> dict:
    """Incidents counted by Local Moran and emerging hot spots (daily, on communities) in Python, CLI and HTTP."""
    window = {"since": SINCE, "until": UNTIL, "tz": tz}
    counts = {
        "incident_clusters": int(incident_clusters(inc, grids, level=3, **window)["count"].sum()),
        "emerging_hotspots (communities, daily)": int(
            emerging_hotspots(inc, grids, level=2, period="D", **window)["count"].sum()
        ),
    }
    rows = _cli(
        "hotspots", path, "--statistic", "local-moran", "--level", 3, "--since", SINCE, "--until", UNTIL, "--json"
    )
    counts["geogrid hotspots --statistic local-moran"] = sum(r["count"] for r in rows)
    doc = _cli("emerging", path, "--level", 2, "--period", "D", "--since", SINCE, "--until", UNTIL, "--json")
    counts["geogrid emerging --period D"] = sum(r["count"] for r in doc["grids"])
    with TestClient(create_app(Settings(store=path))) as client:
        for url in (
            f"/hotspots?statistic=local-moran&level=3&since={SINCE}&until={UNTIL}",
            f"/emerging?level=2&period=D&since={SINCE}&until={UNTIL}",
        ):
            r = client.get(url)
            assert r.status_code == 200, r.text
            counts[f"GET {url.split('&')[0]}"] = sum(f["properties"]["count"] for f in r.json()["features"])
    return counts


def test_closed_at_filters_closed_at(small_demo):
    demo, path = small_demo
    inc, grids = demo.incidents, demo.grids
    expected = _direct(inc, "closed_at")
    assert expected != _direct(inc)
    python = grid_stats(inc, grids, level=3, since=SINCE, until=UNTIL, time_field="closed_at")
    assert int(python["count"].sum()) == expected
    cli = _cli("stats", path, "--level", 3, "--since", SINCE, "--until", UNTIL, "--time-field", "closed_at", "--json")
    assert sum(r["count"] for r in cli) == expected
    hot = _cli(
        "hotspots", path, "--level", 3, "--since", SINCE, "--until", UNTIL, "--time-field", "closed_at", "--json"
    )
    assert sum(r["count"] for r in hot) == expected


def test_the_store_time_zone_moves_the_window(small_demo, tmp_path):
    demo, _ = small_demo
    path = tmp_path / "utc.gpkg"
    GeoPackageStore(path).write(demo.layers(), metadata={**demo.metadata, "time_zone": "UTC"})
    rows = _cli("stats", path, "--level", 3, "--since", SINCE, "--until", UNTIL, "--json")
    assert sum(r["count"] for r in rows) == _direct(demo.incidents, tz="UTC")


_HOT_FEATURE = re.compile(
    r'"properties": \{"bin": (-?\d+), "count": "([^"]*)", "grid": "((?:[^"\\]|\\.)*)", "held": (true|false)'
)


def _map_hot_spots(page: str) -> dict[str, tuple[int, bool]]:
    """The wall's hot-spot overlay: grid name (or id) -> (bin, withheld)."""
    return {json.loads(f'"{g}"'): (int(b), held == "true") for b, _, g, held in _HOT_FEATURE.findall(page)}


def test_a_store_in_another_time_zone_selects_the_same_incidents_everywhere(small_demo, tmp_path):
    """A store that names Europe/Paris: stats, hot spots, the API and the wall read the days there."""
    demo, _ = small_demo
    tz = "Europe/Paris"
    path = tmp_path / "paris.gpkg"
    GeoPackageStore(path).write(demo.layers(), metadata={**demo.metadata, "time_zone": tz})
    inc, grids = demo.incidents, demo.grids
    expected = _direct(inc, tz=tz)
    assert expected != _direct(inc)  # Shanghai's days would select others

    counts: dict[str, int] = {}
    counts["grid_stats"] = int(grid_stats(inc, grids, level=3, since=SINCE, until=UNTIL, tz=tz)["count"].sum())
    hot = incident_hotspots(inc, grids, level=3, since=SINCE, until=UNTIL, tz=tz)
    counts["incident_hotspots"] = int(hot["count"].sum())
    for command in ("stats", "hotspots"):
        rows = _cli(command, path, "--level", 3, "--since", SINCE, "--until", UNTIL, "--json")
        counts[f"geogrid {command}"] = sum(r["count"] for r in rows)
    counts |= _clusters_and_emerging(path, inc, grids, tz)
    with TestClient(create_app(Settings(store=path))) as client:
        for route in ("stats", "hotspots"):
            doc = client.get(f"/{route}?level=3&since={SINCE}&until={UNTIL}").json()
            counts[f"GET /{route}"] = sum(f["properties"]["count"] for f in doc["features"])
        counts["OGC datetime"] = client.get(f"/collections/incidents/items?limit=1&datetime={SINCE}/{UNTIL}").json()[
            "numberMatched"
        ]
        page = client.get(f"/maps/command-centre?since={SINCE}&until={UNTIL}").text
        # a half year, so that the hot spots are not all withheld as sparse
        half_year = client.get("/maps/command-centre?since=2025-01-01&until=2025-06-30").text
    counts["command-centre map"] = int(re.search(r"事件 <b>([\d,]+)</b>", page).group(1).replace(",", ""))
    assert counts == dict.fromkeys(counts, expected)

    # the wall's hot spots are geogrid.hotspots' on the same window: every grid it colours or withholds
    hot = incident_hotspots(inc, grids, since="2025-01-01", until="2025-06-30", tz=tz)
    names = hot["name"] if "name" in hot.columns else hot["grid_id"]
    shown = hot[(hot["bin"] != 0) | hot["withheld"].notna()]
    want = {
        str(n): (0 if w is not None else int(b), w is not None)
        for n, b, w in zip(names[shown.index], shown["bin"], shown["withheld"], strict=True)
    }
    got = _map_hot_spots(half_year)
    assert got == want
    assert any(not held for _, held in got.values())  # some grid is coloured, not only withheld


@pytest.mark.parametrize(
    ("value", "start", "end"),
    [
        ("2025-12-01", "2025-11-30T16:00Z", "2025-12-01T16:00Z"),
        ("2025-12-01T/..", "2025-11-30T16:00Z", None),  # GDAL: reported_at >= '2025-12-01'
        ("../2025-12-01T", None, "2025-12-01T16:00Z"),  # GDAL: reported_at <= '2025-12-01'
        ("2025-12-01T08:00:00/..", "2025-12-01T00:00Z", None),  # no zone: the store's
        ("2025-12-01T08:00:00Z/..", "2025-12-01T08:00Z", None),
    ],
    ids=["day", "gdal-from", "gdal-to", "no-zone", "utc"],
)
def test_the_forms_gdal_and_qgis_send(value, start, end):
    assert parse_interval(value, "Asia/Shanghai") == tuple(None if t is None else pd.Timestamp(t) for t in (start, end))
    assert time_window("2025-12-01", "2025-12-01") == parse_interval("2025-12-01")


# -- a real client: GDAL's ogrinfo ---------------------------------------------------------------------
@contextmanager
def _serve(path: Path) -> Iterator[str]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(Settings(store=path)), lifespan="off", ws="none", log_level="warning", access_log=False
    )
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


def test_gdal_date_where_counts_right(small_demo):
    """``ogrinfo -where "reported_at >= '2025-12-01'"``: GDAL sends ``datetime=2025-12-01T/..``."""
    if shutil.which("ogrinfo") is None:
        pytest.fail("ogrinfo (gdal-bin) is missing: scripts/test installs it")
    demo, path = small_demo
    day = pd.to_datetime(demo.incidents["reported_at"], utc=True).dt.tz_convert("Asia/Shanghai")
    expected = int((day >= pd.Timestamp("2025-12-01", tz="Asia/Shanghai")).sum())
    with _serve(path) as url:
        out = subprocess.run(
            [
                "ogrinfo",
                "-ro",
                "-so",
                "-oo",
                "PAGE_SIZE=10000",
                "-where",
                "reported_at >= '2025-12-01'",
                f"OAPIF:{url}",
                "incidents",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={"CPL_DEBUG": "ON", "PATH": "/usr/bin:/bin", "GDAL_HTTP_TIMEOUT": "120"},
        )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "datetime=2025-12-01T%2F.." in out.stderr  # what GDAL 3.6 sent
    assert f"Feature Count: {expected}" in out.stdout, out.stdout[-2000:]


def test_clusters_and_emerging_in_a_paris_store_equal_the_python_calls_with_its_time_zone(small_demo, tmp_path):
    """The CLI and the API read a Europe/Paris store's days as the Python call with tz="Europe/Paris" does."""
    from layers.store import open_store
    from tests._frames import rows_of

    demo, _ = small_demo
    path = tmp_path / "paris.gpkg"
    GeoPackageStore(path).write(demo.layers(), metadata={**demo.metadata, "time_zone": "Europe/Paris"})
    store = open_store(path)
    grids, inc = store.read("grids"), store.read("incidents")
    window = {"since": "2025-03-01", "until": "2025-03-31"}
    clusters = incident_clusters(inc, grids, level=3, tz="Europe/Paris", **window)
    emerging = emerging_hotspots(inc, grids, level=2, period="W", tz="Europe/Paris", **window)
    # Shanghai's days would give other counts: the test can tell the time zones apart
    assert clusters["count"].tolist() != incident_clusters(inc, grids, level=3, **window)["count"].tolist()
    assert emerging["count"].tolist() != emerging_hotspots(inc, grids, level=2, period="W", **window)["count"].tolist()
    moran_fields = [c for c in clusters.columns if c != "geometry"]
    emerging_fields = [c for c in emerging.columns if c != "geometry"]

    args = ("--since", window["since"], "--until", window["until"], "--json")
    assert _cli("hotspots", path, "--statistic", "local-moran", "--level", 3, *args) == rows_of(clusters, moran_fields)
    doc = _cli("emerging", path, "--level", 2, "--period", "W", *args)
    assert doc == {"periods": emerging.attrs["periods"], "grids": rows_of(emerging, emerging_fields)}
    query = f"since={window['since']}&until={window['until']}"
    with TestClient(create_app(Settings(store=path))) as client:
        moran_doc = client.get(f"/hotspots?statistic=local-moran&level=3&{query}").json()
        emerging_doc = client.get(f"/emerging?level=2&period=W&{query}").json()
    assert [f["properties"] for f in moran_doc["features"]] == rows_of(clusters, moran_fields)
    assert emerging_doc["periods"] == emerging.attrs["periods"]
    assert [f["properties"] for f in emerging_doc["features"]] == rows_of(emerging, emerging_fields)
