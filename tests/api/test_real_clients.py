"""Real OGC API clients against ``geogrid serve`` on a demo store: GDAL (ogrinfo/ogr2ogr), QGIS, OWSLib.

The server runs as a subprocess on a free loopback port; its access log (uvicorn's) shows which
requests each client sent, so the tests check that filters and bboxes were *answered by the server*
rather than evaluated by the client after downloading everything.

GDAL 3.6 (Debian bookworm's ``gdal-bin``) and QGIS 3.22 (``python3-qgis``, for Debian's own
``/usr/bin/python3``, run headless) are installed by ``scripts/test``; a missing client is a
failure in CI and a skip elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest

import geopandas as gpd
import pyogrio
import shapely

from layers.schema import INCIDENT_SOURCES, INCIDENT_STATUSES
from layers.store import GeoPackageStore

ROOT = Path(__file__).resolve().parents[2]
QGIS_PYTHON = "/usr/bin/python3"
BBOX = (117.14, 39.15, 117.16, 39.17)
_PAGES = ("-oo", "PAGE_SIZE=1000")
"""GDAL 3.6 asks for 10 features a page unless told (GDAL >= 3.8 reads the limit maximum of the API document)."""

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("real_clients")]


def _require(what: str, present: bool, install: str) -> None:
    if present:
        return
    msg = f"{what} is not installed (apt-get install {install}; scripts/test does it)"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def _has_qgis() -> bool:
    if not Path(QGIS_PYTHON).exists():
        return False
    probe = subprocess.run([QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True, env=_qgis_env(), timeout=60)
    return probe.returncode == 0


def _qgis_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "GEOGRID_"))}
    return env | {"QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": tempfile.mkdtemp(prefix="qgis-xdg-")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``geogrid serve`` in a subprocess, with its access log."""

    def __init__(self, store: Path, log: Path) -> None:
        self.store, self.log = store, log
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GEOGRID_")}
        self._log_fh = open(log, "w", encoding="utf-8")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "geogrid", "serve", str(store), "--port", str(self.port)],
            cwd=ROOT,
            env=env | {"PYTHONUNBUFFERED": "1"},
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"geogrid serve did not start:\n{log.read_text()}")
                time.sleep(0.2)

    def mark(self) -> int:
        """Return a position in the request log; :meth:`requests` reads what came after it."""
        return len(self.log.read_text(encoding="utf-8"))

    def requests(self, since: int) -> list[str]:
        """The decoded request targets (path and query) logged after ``since``, with their status."""
        text = self.log.read_text(encoding="utf-8")[since:]
        return [f"{unquote(m[1])} {m[2]}" for m in re.finditer(r'"GET (\S+) HTTP/1\.1" (\d{3})', text)]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log_fh.close()


@pytest.fixture(scope="module")
def served(small_demo, tmp_path_factory):
    """The small demo district (20,000 incidents) served by ``geogrid serve`` from a private copy."""
    _, path = small_demo
    work = tmp_path_factory.mktemp("served")
    store = work / "district.gpkg"
    shutil.copyfile(path, store)
    server = Server(store, work / "access.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def layers(small_demo):
    demo, _ = small_demo
    return demo.layers()


def _gdal(*args: str) -> subprocess.CompletedProcess[str]:
    _require("GDAL's command-line tools", shutil.which("ogr2ogr") is not None, "gdal-bin")
    out = subprocess.run(args, capture_output=True, text=True, encoding="utf-8", timeout=600)
    assert out.returncode == 0, out.stderr
    return out


def _items(requests: list[str], cid: str) -> list[str]:
    return [r for r in requests if r.startswith(f"/collections/{cid}/items")]


# -- GDAL ---------------------------------------------------------------------------------------


def test_gdal_lists_the_three_collections_with_their_counts(served, layers):
    out = _gdal("ogrinfo", "-ro", "-so", "-al", f"OAPIF:{served.url}")
    counts = dict(re.findall(r"Layer name: (\w+).*?Feature Count: (\d+)", out.stdout, flags=re.S))
    assert {k: int(v) for k, v in counts.items()} == {c: len(layers[c]) for c in ("grids", "incidents", "cameras")}


def test_gdal_sends_attribute_filters_to_the_server(served, layers, tmp_path):
    grids, incidents = layers["grids"], layers["incidents"]
    category = incidents["category"].value_counts().index[-1]  # the rarest: a small answer
    since = served.mark()
    out = tmp_path / "filtered.gpkg"
    _gdal(
        "ogr2ogr",
        "-f",
        "GPKG",
        str(out),
        f"OAPIF:{served.url}",
        "incidents",
        "-where",
        f"category = '{category}'",
        *_PAGES,
    )
    _gdal("ogr2ogr", "-update", "-f", "GPKG", str(out), f"OAPIF:{served.url}", "grids", "-where", "level = 3", *_PAGES)
    got_inc = pyogrio.read_dataframe(out, layer="incidents")
    got_grids = pyogrio.read_dataframe(out, layer="grids")
    assert sorted(got_inc["incident_id"]) == sorted(incidents.loc[incidents["category"] == category, "incident_id"])
    assert sorted(got_grids["grid_id"]) == sorted(grids.loc[grids["level"] == 3, "grid_id"])
    requests = served.requests(since)
    inc_pages, grid_pages = _items(requests, "incidents"), _items(requests, "grids")
    # Every page GDAL fetched carried the filter; the one unfiltered request is its schema sniff (limit=10).
    for pages, wanted in ((inc_pages, f"category={category}"), (grid_pages, "level=3")):
        filtered = [r for r in pages if wanted in r]
        assert filtered, requests
        assert [r for r in pages if r not in filtered] == [pages[0]] and "offset" not in pages[0], pages
    assert all(r.endswith(" 200") for r in requests)


def test_gdal_sends_the_bbox_to_the_server(served, layers, tmp_path):
    incidents = layers["incidents"]
    want = incidents[incidents.intersects(shapely.box(*BBOX))]
    since = served.mark()
    out = tmp_path / "bbox.geojson"
    _gdal("ogr2ogr", "-f", "GeoJSON", str(out), f"OAPIF:{served.url}", "incidents", "-spat", *map(str, BBOX), *_PAGES)
    got = gpd.read_file(out)
    assert 0 < len(got) == len(want)
    assert sorted(got["incident_id"]) == sorted(want["incident_id"])
    pages = _items(served.requests(since), "incidents")
    with_bbox = [r for r in pages if "bbox=" in r]
    assert with_bbox and len(with_bbox) >= len(pages) - 1, pages


def test_gdal_full_copy_in_large_pages_equals_the_store(served, tmp_path):
    """GDAL 3.6 pages 10 at a time unless told (GDAL ≥ 3.8 reads the limit maximum of the API document)."""
    since = served.mark()
    out = tmp_path / "copy.gpkg"
    _gdal("ogr2ogr", "-f", "GPKG", str(out), f"OAPIF:{served.url}", "-oo", "PAGE_SIZE=10000", "incidents")
    store = GeoPackageStore(served.store).read("incidents")
    got = pyogrio.read_dataframe(out, layer="incidents").set_index("incident_id").loc[store["incident_id"]]
    assert len(got) == len(store)
    assert shapely.equals_exact(got.geometry.to_numpy(), store.geometry.to_numpy(), tolerance=1e-9).all()
    for col in ("category", "source", "status"):
        assert list(got[col]) == list(store[col])
    reported = pd.to_datetime(got["reported_at"], utc=True)
    assert (reported.to_numpy() == store["reported_at"].to_numpy()).all()
    pages = _items(served.requests(since), "incidents")
    assert len(pages) <= 2 + len(store) // 10_000, pages  # a sniff page and 10,000 a page


# -- QGIS ---------------------------------------------------------------------------------------

_QGIS_PRELUDE = """
import json, sys
from qgis.core import QgsApplication, QgsFeatureRequest, QgsPointXY, QgsRectangle, QgsVectorLayer
QgsApplication.setPrefixPath("/usr", True)
app = QgsApplication([], False)
app.initQgis()
out = {}
"""


def _qgis(script: str, *args: str) -> dict:
    _require("QGIS's Python API", _has_qgis(), "python3-qgis")
    # QGIS 3.22 may crash while tearing down layers at exit: the answer is printed first, then the
    # process ends without the teardown (os._exit), so a crash there cannot pass for a result.
    ending = "\nprint(json.dumps(out), flush=True)\nimport os\nos._exit(0)\n"
    code = _QGIS_PRELUDE + textwrap.dedent(script) + ending
    run = subprocess.run([QGIS_PYTHON, "-c", code, *args], capture_output=True, text=True, env=_qgis_env(), timeout=600)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_qgis_loads_the_collections_in_large_pages_and_sends_the_bbox(served, layers):
    since = served.mark()
    got = _qgis(
        """
        url = sys.argv[1]
        for cid in ("grids", "incidents", "cameras"):
            layer = QgsVectorLayer(f"url='{url}' typename='{cid}' restrictToRequestBBOX='1'", cid, "OAPIF")
            out[cid] = layer.featureCount() if layer.isValid() else None
        layer = QgsVectorLayer(f"url='{url}' typename='incidents' restrictToRequestBBOX='1'", "v", "OAPIF")
        request = QgsFeatureRequest().setFilterRect(QgsRectangle(*map(float, sys.argv[2:6])))
        out["in_view"] = sorted(f["incident_id"] for f in layer.getFeatures(request))
        """,
        served.url,
        *map(str, BBOX),
    )
    assert {c: got[c] for c in ("grids", "incidents", "cameras")} == {c: len(layers[c]) for c in got if c in layers}
    incidents = layers["incidents"]
    assert got["in_view"] == sorted(incidents.loc[incidents.intersects(shapely.box(*BBOX)), "incident_id"])
    pages = _items(served.requests(since), "incidents")
    assert [r for r in pages if "bbox=" in r and "limit=1000" in r], pages  # QGIS's page: 1,000 (its own cap)


def test_qgis_sends_an_attribute_filter_given_in_the_connection_url(served, layers):
    """QGIS 3.22 evaluates a layer's subset string itself; query parameters of the URL reach the server."""
    incidents = layers["incidents"]
    since = served.mark()
    got = _qgis(
        """
        layer = QgsVectorLayer(f"url='{sys.argv[1]}/?source=hotline' typename='incidents'", "hotline", "OAPIF")
        out["count"] = layer.featureCount()
        out["ids"] = sorted(f["incident_id"] for f in layer.getFeatures())
        """,
        served.url,
    )
    want = sorted(incidents.loc[incidents["source"] == "hotline", "incident_id"])
    assert got["count"] == len(want) and got["ids"] == want
    pages = _items(served.requests(since), "incidents")
    assert pages and all("source=hotline" in r and r.endswith(" 200") for r in pages), pages


def test_an_edit_made_in_qgis_is_noticed_by_geogrid(served):
    """QGIS edits an incident in the served GeoPackage (status and position): the API answers with the change.

    The grid network is not edited in QGIS: the store's triggers refuse it and QGIS shows why.
    """
    before = GeoPackageStore(served.store).read("incidents").iloc[0]
    new_status = next(s for s in INCIDENT_STATUSES if s != before["status"])
    got = _qgis(
        """
        path, incident_id, status = sys.argv[1:4]
        layer = QgsVectorLayer(path + "|layername=incidents", "incidents", "ogr")
        feature = next(layer.getFeatures("incident_id = '" + incident_id + "'"))
        point = feature.geometry().asPoint()
        layer.startEditing()
        layer.changeAttributeValue(feature.id(), layer.fields().indexOf("status"), status)
        layer.moveVertex(point.x() + 0.0001, point.y(), feature.id(), 0)
        out["saved"] = layer.commitChanges()
        out["errors"] = layer.commitErrors()
        grids = QgsVectorLayer(path + "|layername=grids", "grids", "ogr")
        cell = next(grids.getFeatures())
        grids.startEditing()
        grids.changeAttributeValue(cell.id(), grids.fields().indexOf("name"), "renamed in QGIS")
        out["grids_saved"] = grids.commitChanges()
        out["grids_errors"] = " ".join(grids.commitErrors())
        grids.rollBack()
        """,
        str(served.store),
        str(before["incident_id"]),
        new_status,
    )
    assert got["saved"], got["errors"]
    with urllib.request.urlopen(f"{served.url}/collections/incidents/items/{before['incident_id']}", timeout=30) as r:
        feature = json.load(r)
    assert feature["properties"]["status"] == new_status
    x, y = feature["geometry"]["coordinates"]
    assert (x, y) == pytest.approx((before.geometry.x + 0.0001, before.geometry.y), abs=1e-9)
    assert not got["grids_saved"]
    assert "edit it in a plan" in got["grids_errors"], got["grids_errors"]


# -- OWSLib ---------------------------------------------------------------------------------------


def test_owslib_reads_conformance_collections_and_queryables(served):
    from owslib.ogcapi.features import Features

    api = Features(served.url)
    assert "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables" in api.conformance()["conformsTo"]
    assert {c["id"] for c in api.collections()["collections"]} == {"grids", "incidents", "cameras"}
    queryables = api.collection_queryables("incidents")
    assert queryables["properties"]["source"]["enum"] == list(INCIDENT_SOURCES)
    assert queryables["properties"]["reported_at"] == {
        "title": "reported_at",
        "type": "string",
        "format": "date-time",
        "description": "when it was reported (timezone-aware)",
    }
    page = api.collection_items("incidents", filter="source = 'hotline' AND status <> 'closed'", limit=5)
    assert page["numberReturned"] == 5
    assert all(f["properties"]["source"] == "hotline" for f in page["features"])


# -- geogrid's own tables are not offered as layers -------------------------------------------------


@pytest.fixture
def store_with_plans(small_demo, tmp_path):
    """A copy of the small demo with a committed plan (versions 1 and 2) and an open plan."""
    _, path = small_demo
    store = GeoPackageStore(tmp_path / "planned.gpkg")
    shutil.copyfile(path, store.path)
    first = store.create_plan("first", author="test")
    store.commit_plan(first.plan_id, expected_version=0, author="test")
    store.create_plan("draft", author="test")
    return store


DATA_LAYERS = ["buildings", "cameras", "grids", "incidents", "streets"]


def test_gdal_lists_only_the_data_layers(store_with_plans):
    out = _gdal("ogrinfo", "-ro", "-q", str(store_with_plans.path))
    assert sorted(re.findall(r"^\d+: (\w+)", out.stdout, flags=re.M)) == DATA_LAYERS
    # geogrid still reads its own tables
    assert [v.version for v in store_with_plans.versions()] == [1, 2]
    assert len(store_with_plans.read_version(1)) == len(store_with_plans.read("grids"))
    assert store_with_plans.read_plan("p2")[1].status == "open"


def test_qgis_lists_only_the_data_layers(store_with_plans):
    got = _qgis(
        """
        from qgis.core import QgsProviderRegistry
        details = QgsProviderRegistry.instance().providerMetadata("ogr").querySublayers(sys.argv[1])
        out["layers"] = sorted(d.name() for d in details)
        """,
        str(store_with_plans.path),
    )
    assert got["layers"] == DATA_LAYERS
