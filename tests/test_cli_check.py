"""``geogrid check``: exit status 0/1/2, the readable table and the JSON contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import geopandas as gpd

from layers.store import GeoPackageStore

ROOT = Path(__file__).resolve().parents[1]


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "geogrid", "check", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def test_sound_store_exits_0(tiny_grids, tmp_path):
    store = GeoPackageStore(tmp_path / "city.gpkg")
    store.write({"grids": tiny_grids})
    out = run(store.path)
    assert out.returncode == 0, out.stderr
    assert "sound: no findings" in out.stdout
    assert "7 grids" in out.stdout


def test_findings_exit_1_with_a_table_and_the_worst_items(tiny_grids, tmp_path):
    src = tmp_path / "grids.geojson"
    tiny_grids[tiny_grids["grid_id"] != "G4"].to_file(src)
    out = run(src)
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("gap") and line.split()[1:3] == ["0", "1"] for line in lines)  # level 1: 0, level 2: 1
    assert any(line.startswith("parent_not_tiled") for line in lines)
    assert "worst 2 of 2 findings" in out.stdout
    assert "'S2'" in out.stdout


def test_reference_option_gives_the_same_verdict_on_a_stored_multipart_overlap(tiny_grids, tmp_path):
    # a GeoPackage store makes every grid a MultiPolygon; a copy of G1 overlaps it entirely
    g = tiny_grids.copy()
    dup = g[g["grid_id"] == "G1"].assign(grid_id="G1b")
    store = GeoPackageStore(tmp_path / "city.gpkg")
    store.write({"grids": gpd.GeoDataFrame(pd.concat([g, dup], ignore_index=True), crs=g.crs)})
    fast, ref = run(store.path, "--json"), run(store.path, "--json", "--reference")
    assert fast.returncode == ref.returncode == 1, (fast.stderr, ref.stderr)
    pairs = [
        [
            (f["kind"], f["grid_ids"], round(f["area_m2"] or 0))
            for f in json.loads(o.stdout)["findings"]
            if f["kind"] == "overlap"
        ]
        for o in (fast, ref)
    ]
    assert pairs[0] == pairs[1] and pairs[0][0][1] == ["G1", "G1b"]


def test_json_contract_in_utf8(tiny_grids, tmp_path):
    g = tiny_grids.copy()
    g.loc[g["grid_id"] == "G3", "parent_id"] = "不存在"  # an orphan: a finding, not a refusal
    src = tmp_path / "网格.gpkg"
    g.to_file(src, layer="grids")
    out = run(src, "--json")
    assert out.returncode == 1, out.stderr
    assert "不存在" in out.stdout  # ensure_ascii=False
    doc = json.loads(out.stdout)
    assert set(doc) == {"sound", "summary", "findings"}
    assert doc["sound"] is False
    assert doc["summary"]["counts"]["hierarchy"] == {"2": 1}
    keys = {"kind", "level", "grid_ids", "area_m2", "length_m", "message", "geometry"}
    assert all(set(f) == keys for f in doc["findings"])
    orphan = next(f for f in doc["findings"] if f["kind"] == "hierarchy")
    assert orphan["grid_ids"] == ["G3", "不存在"]
    assert orphan["area_m2"] is None
    straddle = next(f for f in doc["findings"] if f["kind"] == "parent_not_tiled")
    assert straddle["geometry"]["type"] == "Polygon"
    lon, lat = straddle["geometry"]["coordinates"][0][0]
    assert 117 < lon < 118 and 39 < lat < 40  # WGS-84


def test_column_mapping_and_level_option(tiny_grids, tmp_path):
    g = tiny_grids.rename(columns={"grid_id": "编号", "parent_id": "上级", "level": "层级"})
    g = g[g["编号"] != "G4"]
    src = tmp_path / "mapped.geojson"
    g.to_file(src)
    out = run(src, "--id-col", "编号", "--parent-col", "上级", "--level-col", "层级", "--level", "1", "--json")
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)
    assert [(f["kind"], f["level"], f["grid_ids"]) for f in doc["findings"]] == [("parent_not_tiled", 1, ["S2"])]


@pytest.mark.parametrize("orphan", [False, True], ids=["sound", "orphan"])
def test_a_gbk_shapefile_without_cpg_is_checked_with_the_encoding_the_door_names(tiny_grids, tmp_path, orphan):
    """The import door says "--encoding gbk"; check and repair take it too (the README's 网格.shp)."""
    g = tiny_grids.rename(columns={"grid_id": "编号", "parent_id": "上级", "level": "层级", "name": "名称"})
    if orphan:  # a finding the check reports (the raw reader's path), not a refusal
        g.loc[g["编号"] == "G4", "上级"] = "无此街道"
    src = tmp_path / "网格.shp"
    g.to_file(src, encoding="gbk")
    src.with_suffix(".cpg").unlink()
    mapping = ["--id-col", "编号", "--parent-col", "上级", "--level-col", "层级", "--name-col", "名称"]
    refused = run(src, *mapping)
    assert refused.returncode == 2 and "--encoding gbk" in refused.stderr
    out = run(src, *mapping, "--encoding", "gbk", "--json")
    assert out.returncode == (1 if orphan else 0), out.stderr
    if orphan:
        assert ["G4", "无此街道"] in [f["grid_ids"] for f in json.loads(out.stdout)["findings"]]  # names decoded
    fixed = tmp_path / "fixed.gpkg"
    rep = subprocess.run(
        [sys.executable, "-m", "geogrid", "repair", src, "--out", fixed, *mapping, "--encoding", "gbk"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert rep.returncode in (0, 1), rep.stderr
    assert set(GeoPackageStore(fixed).read("grids")["name"]) == set(tiny_grids["name"])


@pytest.mark.parametrize(
    ("make", "words"),
    [
        pytest.param(lambda p, g: p / "absent.gpkg", "does not exist", id="missing-file"),
        pytest.param(
            lambda p, g: (g.drop(columns="level").to_file(p / "nolevel.geojson"), p / "nolevel.geojson")[1],
            "--level-col",
            id="missing-level-column",
        ),
        pytest.param(
            lambda p, g: ((p / "bad.geojson").write_text("{not json", encoding="utf-8"), p / "bad.geojson")[1],
            "bad.geojson",
            id="unreadable-file",
        ),
    ],
)
def test_unusable_input_exits_2_with_the_reason(tiny_grids, tmp_path, make, words):
    src = make(tmp_path, tiny_grids)
    out = run(src)
    assert out.returncode == 2
    assert words in out.stderr
    assert out.stdout == ""


def test_help_describes_the_exit_status():
    out = run("--help")
    assert out.returncode == 0
    assert "0 sound, 1 findings, 2 unusable" in out.stdout.replace("\n", " ").replace("  ", " ")


def test_read_back_geojson_of_a_finding(tiny_grids, tmp_path):
    """The JSON findings load straight into geopandas (a planner's next step)."""
    src = tmp_path / "g.geojson"
    tiny_grids[tiny_grids["grid_id"] != "G4"].to_file(src)
    doc = json.loads(run(src, "--json").stdout)
    features = [{"type": "Feature", "geometry": f.pop("geometry"), "properties": f} for f in doc["findings"]]
    back = gpd.GeoDataFrame.from_features(features, crs="EPSG:4326")
    assert list(back["kind"]) == ["gap", "parent_not_tiled"]
    assert back.to_crs("EPSG:4548").area.iloc[0] == pytest.approx(doc["findings"][0]["area_m2"], rel=1e-6)


def test_report_is_one_offline_page_with_every_finding_and_escaped_names(tiny_grids, tmp_path):
    import re

    g = tiny_grids[tiny_grids["grid_id"] != "G4"].copy()
    evil = "<img src=x onerror=alert(1)>${x}`"
    g.loc[g["grid_id"] == "S2", "grid_id"] = evil
    g.loc[g["parent_id"] == "S2", "parent_id"] = evil
    g.loc[g["grid_id"] == "G1", "name"] = "<script>alert(2)</script>"
    src = tmp_path / "g.gpkg"
    g.to_file(src, layer="grids")
    report = tmp_path / "qa.html"
    out = run(src, "--report", report)
    assert out.returncode == 1, out.stderr
    page = report.read_text(encoding="utf-8")
    # Offline: Leaflet is inlined, and outside it the page names no other host at all.
    leaflet = (ROOT / "api/static/vendor/leaflet-1.9.3/leaflet.js").read_text(encoding="utf-8")
    assert leaflet in page
    rest = page.replace(leaflet, "")
    assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}", rest, re.IGNORECASE)
    # In Leaflet itself: the SVG namespace and the home-page link of its attribution, never a fetch.
    assert set(re.findall(r"https?://[a-z0-9./-]+", leaflet)) == {"http://www.w3.org/2000/svg", "https://leafletjs.com"}
    assert "<script src=" not in page and 'rel="stylesheet"' not in page
    # Escaped: the raw payloads never appear, their escaped form does.
    assert "<img src=x" not in page and "<script>alert(2)" not in page and "${x}" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;&#36;{x}&#96;" in page
    # Every finding is in the table and on the map.
    assert page.count("<tr><td class=num>") == 2  # the gap on level 2 and the untiled parent
    assert "parent_not_tiled" in page and "gap (1)" in page


def test_outline_and_exempt_files_shape_what_is_a_gap(tiny_grids, tmp_path):
    src = tmp_path / "grids.geojson"
    tiny_grids[tiny_grids["grid_id"] != "G4"].to_file(src)
    lake = tmp_path / "水域.geojson"
    tiny_grids.loc[tiny_grids["grid_id"] == "G4", ["geometry"]].to_file(lake)

    def gaps(*extra: object) -> list[dict]:
        out = run(src, "--json", *extra)
        assert out.returncode in (0, 1), out.stderr
        return [f for f in json.loads(out.stdout)["findings"] if f["kind"] == "gap"]

    assert [g["level"] for g in gaps()] == [2]
    assert gaps("--exempt", lake) == []  # the lake needs no grid
    # an outline wider than the district: the ring around it is a gap on every level
    outline = tmp_path / "辖区.geojson"
    gpd.GeoDataFrame(geometry=[tiny_grids.union_all().buffer(0.002, join_style="mitre")], crs=tiny_grids.crs).to_file(
        outline
    )
    assert {0, 1, 2} <= {g["level"] for g in gaps("--outline", outline, "--exempt", lake)}


def _no_crs(path: Path, g: gpd.GeoDataFrame) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pyogrio warns that the file will have no CRS
        gpd.GeoDataFrame(geometry=g.geometry.to_numpy()).to_file(path)


@pytest.mark.parametrize(
    ("name", "make", "words"),
    [
        ("exempt.gpkg", _no_crs, "has no CRS"),  # (GeoJSON is WGS-84 by definition: GDAL says so)
        (
            "exempt.geojson",
            lambda p, g: gpd.GeoDataFrame(geometry=g.representative_point(), crs=g.crs).to_file(p),
            "must hold polygons",
        ),
        ("exempt.geojson", lambda p, g: p.write_text("not a vector file", encoding="utf-8"), "cannot read it"),
    ],
    ids=["no-crs", "points", "garbage"],
)
def test_an_unusable_exempt_file_exits_2_with_the_reason(tiny_grids, tmp_path, name, make, words):
    src = tmp_path / "grids.gpkg"
    tiny_grids.to_file(src, layer="grids")
    bad = tmp_path / name
    make(bad, tiny_grids)
    out = run(src, "--exempt", bad)
    assert out.returncode == 2, out.stdout
    assert words in out.stderr and "--exempt" in out.stderr


@pytest.mark.parametrize("command", ["check", "repair"])
@pytest.mark.parametrize(
    ("option", "small", "needs"),
    [("--max-vertices", 4, "vertices"), ("--max-depth", 3, "deep")],
    ids=["vertices", "depth"],
)
def test_the_door_names_a_limit_the_command_has(tiny_grids, tmp_path, command, option, small, needs):
    """check and repair read files through the door: its 'raise the limit with --max-...' is an option of theirs."""
    from click.testing import CliRunner

    from geogrid.cli import main

    src = tmp_path / "g.geojson"
    tiny_grids.to_file(src)  # boxes: 5 vertices each; a FeatureCollection of polygons nests 5 deep
    extra = ["--out", str(tmp_path / "fixed.gpkg")] if command == "repair" else []
    out = CliRunner().invoke(main, [command, str(src), *extra, option, str(small)])
    assert out.exit_code == 2, out.output
    assert needs in out.output and option in out.output
    out = CliRunner().invoke(main, [command, str(src), *extra, option, "1000"])
    assert out.exit_code == 0, out.output  # raised: the file reads and is sound
