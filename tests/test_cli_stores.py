"""The analysis commands read a PostGIS store (a URL) as they read a GeoPackage, with the same answers."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

import geopandas as gpd

from geogrid.cli import main
from layers.store import open_store

X0, Y0 = 117.20, 39.10


def _layers(grids: gpd.GeoDataFrame) -> dict[str, gpd.GeoDataFrame]:
    t0 = pd.Timestamp("2025-03-01 08:00", tz="UTC")
    incidents = gpd.GeoDataFrame(
        {
            "incident_id": ["E1", "E2", "E3"],
            "reported_at": [t0, t0 + pd.Timedelta(days=40), t0 + pd.Timedelta(hours=1)],
            "closed_at": [t0 + pd.Timedelta(hours=5), pd.NaT, pd.NaT],
            "category": ["噪音扰民", "环境卫生", "环境卫生"],
            "source": ["hotline", "grid_worker", "grid_worker"],
            "status": ["closed", "handling", "reported"],
        },
        geometry=gpd.points_from_xy([X0 + 0.002, X0 + 0.003, X0 + 0.015], [Y0 + 0.001, Y0 + 0.001, Y0 + 0.008]),
        crs="EPSG:4326",
    )
    cameras = gpd.GeoDataFrame(
        {"camera_id": ["C1"], "heading_deg": [90.0], "fov_deg": [360.0], "range_m": [80.0], "status": ["online"]},
        geometry=gpd.points_from_xy([X0 + 0.005], [Y0 + 0.005]),
        crs="EPSG:4326",
    )
    return {"grids": grids, "incidents": incidents, "cameras": cameras}


@pytest.fixture
def both(tiny_grids, tmp_path, postgis_url):
    """The same layers in a GeoPackage and in a PostGIS schema: (path, url)."""
    path = tmp_path / "城区.gpkg"
    for where in (path, postgis_url):
        open_store(where).write(_layers(tiny_grids))
    return str(path), postgis_url


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    "command",
    [
        ["stats", "--level", "2", "--json"],
        ["stats", "--by", "category", "--since", "2025-03-01", "--until", "2025-03-31", "--json"],
        ["check", "--json"],
        ["coverage", "--json"],
    ],
    ids=["stats", "stats-window", "check", "coverage"],
)
def test_a_postgis_url_answers_as_the_geopackage_does(both, command):
    path, url = both
    from_file = invoke(command[0], path, *command[1:])
    from_url = invoke(command[0], url, *command[1:])
    assert from_file.exit_code == 0, from_file.output
    assert from_url.exit_code == from_file.exit_code, from_url.output
    assert json.loads(from_url.stdout) == json.loads(from_file.stdout)


def test_repair_reads_a_postgis_store_into_a_geopackage(both, tmp_path):
    _, url = both
    out = tmp_path / "fixed.gpkg"
    r = invoke("repair", url, "--out", str(out))
    assert r.exit_code == 0, r.output
    assert sorted(open_store(out).layer_names()) == ["cameras", "grids", "incidents"]


def test_a_missing_layer_names_a_fix_that_works(both, tmp_path):
    path, url = both
    r = invoke("place-cameras", url, "-k", "1")
    assert r.exit_code == 2
    assert "has no 'streets' layer" in r.stderr
    bare = tmp_path / "bare.gpkg"
    open_store(bare).write({"grids": open_store(path).read("grids")})
    r = invoke("stats", str(bare))
    assert r.exit_code == 2
    assert "import one with `geogrid import FILE --kind incidents --into" in r.stderr


def test_import_into_a_postgis_url_stores_what_a_geopackage_stores(tiny_grids, tmp_path, postgis_url):
    src = tmp_path / "网格.geojson"
    tiny_grids.to_file(src)
    csv = tmp_path / "事件.csv"
    csv.write_text(
        "编号,时间,类别,来源,状态,经度,纬度\n"
        "E1,2025-03-01 08:00,噪音扰民,hotline,closed,117.202,39.101\n"
        "E2,2025-03-02 09:30,环境卫生,grid_worker,reported,117.215,39.108\n"
    )
    into = {"file": str(tmp_path / "city.gpkg"), "url": postgis_url}
    for where in into.values():
        r = invoke("import", str(src), "--kind", "grids", "--into", where)
        assert r.exit_code == 0, r.output
        r = invoke(
            "import", str(csv), "--kind", "incidents", "--into", where, "--id-col", "编号", "--time-col", "时间",
            "--category-col", "类别", "--source-col", "来源", "--status-col", "状态", "--x-col", "经度", "--y-col", "纬度", "--tz", "Asia/Shanghai", "--mode", "append",
        )  # fmt: skip
        assert r.exit_code == 0, r.output
    stores = {k: open_store(v) for k, v in into.items()}
    for layer in ("grids", "incidents"):
        a, b = (stores[k].read(layer) for k in ("file", "url"))
        assert a.drop(columns="geometry").astype(str).equals(b.drop(columns="geometry").astype(str)), layer
        assert a.geometry.geom_equals_exact(b.geometry, tolerance=1e-9).all(), layer
    assert [v.version for v in stores["url"].versions()] == [1]


_CSV_OPTIONS = ["--kind", "incidents", "--id-col", "编号", "--time-col", "时间", "--category-col", "类别",
                "--source-col", "来源", "--status-col", "状态", "--x-col", "经度", "--y-col", "纬度",
                "--tz", "Asia/Shanghai"]  # fmt: skip
_HEADER = "编号,时间,类别,来源,状态,经度,纬度\n"


@pytest.mark.parametrize("where", ["file", "url"])
def test_a_file_with_no_rows_does_not_replace_stored_incidents_unless_allowed(both, tmp_path, where):
    """A header-only CSV (an export that went wrong) imported with the default --mode replace: refused, naming
    how many rows it would delete and the flag, the store unchanged; --allow-empty empties the layer; appending
    it adds nothing; an empty GeoPackage layer (the one-shot path) is refused the same way."""
    into = dict(zip(("file", "url"), both, strict=True))[where]
    store = open_store(into)
    before = {k: store.read(k) for k in ("grids", "incidents", "cameras")}
    empty = tmp_path / "事件.csv"
    empty.write_text(_HEADER, encoding="utf-8")
    gpkg = tmp_path / "事件.gpkg"
    before["incidents"].iloc[:0].to_file(gpkg, layer="incidents")  # the columns, no row
    for src, extra in ((empty, _CSV_OPTIONS), (gpkg, ["--kind", "incidents"])):
        r = invoke("import", str(src), "--into", into, *extra)
        assert r.exit_code == 2, r.output
        assert "no rows: --mode replace would delete the 3 incidents stored" in r.stderr
        assert "--allow-empty" in r.stderr
        for k, v in before.items():
            pd.testing.assert_frame_equal(pd.DataFrame(store.read(k)), pd.DataFrame(v))
    r = invoke("import", str(empty), "--into", into, *_CSV_OPTIONS, "--mode", "append")
    assert r.exit_code == 0, r.output
    assert len(store.read("incidents")) == 3
    r = invoke("import", str(empty), "--into", into, *_CSV_OPTIONS, "--allow-empty")
    assert r.exit_code == 0, r.output
    assert len(store.read("incidents")) == 0
    pd.testing.assert_frame_equal(pd.DataFrame(store.read("grids")), pd.DataFrame(before["grids"]))
    # nothing stored to lose: an empty layer is what was asked for
    r = invoke("import", str(empty), "--into", into, *_CSV_OPTIONS)
    assert r.exit_code == 0, r.output
