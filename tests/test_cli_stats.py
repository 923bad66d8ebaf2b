"""``geogrid stats``: the JSON contract, the table, --out, and exit status 2 with the fix named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import geopandas as gpd

from geogrid.cli import main
from layers.store import GeoPackageStore

ROOT = Path(__file__).resolve().parents[1]
X0, Y0 = 117.20, 39.10


@pytest.fixture
def store(tiny_grids, tmp_path):
    g = tiny_grids.copy()
    g["population"] = pd.array([4000, 2000, 2000, 1000, 1000, 1000, 1000], dtype="Int64")
    t0 = pd.Timestamp("2025-03-01 08:00", tz="UTC")
    inc = gpd.GeoDataFrame(
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
    path = tmp_path / "城区.gpkg"
    GeoPackageStore(path).write({"grids": g, "incidents": inc})
    return path


def invoke(*args: object):
    return CliRunner().invoke(main, ["stats", *map(str, args)])


def test_json_contract(store):
    out = invoke(store, "--level", "2", "--json")
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert [r["grid_id"] for r in doc] == ["G1", "G2", "G3", "G4"]
    keys = {"grid_id", "level", "count", "small", "per_km2", "per_1000_residents", "per_household", "closed"}
    keys |= {"closing_rate", "close_hours_median", "close_hours_p90", "open", "overdue", "hotline", "grid_worker"}
    keys |= {"hotline_ratio", "area_km2"}
    assert all(set(r) == keys for r in doc)
    g1 = doc[0]
    assert (g1["level"], g1["count"], g1["closed"], g1["open"], g1["hotline"], g1["grid_worker"]) == (2, 2, 1, 1, 1, 1)
    assert g1["close_hours_median"] == 5.0
    assert g1["per_1000_residents"] == 2.0
    assert doc[1]["closing_rate"] is None  # no incident: null, not NaN
    assert doc[3]["overdue"] == 1  # reported 40 days before the latest time in the data


def test_open_and_overdue_are_the_backlog_at_the_end_of_the_window(store):
    # E1 (reported 08:00 UTC, closed 13:00 UTC) and E3 (09:00 UTC) were both open at 10:00 UTC,
    # though E1 is closed today: the window's backlog, not today's status.
    out = invoke(store, "--level", "0", "--since", "2025-03-01", "--until", "2025-03-01T10:00:00Z", "--json")
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.stdout)
    assert (row["count"], row["open"], row["overdue"], row["closed"]) == (2, 2, 0, 1)
    out = invoke(store, "--level", "0", "--since", "2025-03-01", "--until", "2025-03-05", "--json")
    (row,) = json.loads(out.stdout)
    assert (row["count"], row["open"], row["overdue"]) == (2, 1, 1)  # E1 closed, E3 open > 72 h by 5 March


def test_filters_window_and_by(store):
    out = invoke(store, "--level", "1", "--since", "2025-03-02", "--source", "grid_worker", "--json")
    assert out.exit_code == 0, out.output
    assert [(r["grid_id"], r["count"]) for r in json.loads(out.stdout)] == [("S1", 1), ("S2", 0)]
    out = invoke(store, "--level", "0", "--by", "category", "--category", "环境卫生", "--json")
    doc = json.loads(out.stdout)
    assert [(r["grid_id"], r["category"], r["count"]) for r in doc] == [("D", "环境卫生", 2)]


def test_table_and_out_file(store, tmp_path):
    out = invoke(store, "--level", "2")
    assert out.exit_code == 0, out.output
    assert "top 4 by count" in out.stdout
    assert out.stdout.splitlines()[5].split()[:3] == ["G1", "2", "2"]
    dest = tmp_path / "out" / "stats.gpkg"
    out = invoke(store, "--out", dest, "--smooth")
    assert out.exit_code == 0, out.output
    back = gpd.read_file(dest, layer="grid_stats")
    assert len(back) == 7
    assert back.crs.to_epsg() == 4326
    assert "per_km2_eb" in back.columns


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--level", "9"], "no level 9; levels present"),
        (["--since", "soon"], "not a date"),
        (["--json", "--out", "x.gpkg"], "either --json or --out"),
        (["--out", "x.xlsx"], "unknown format"),
        (["--overdue-after", "soon"], "not a duration"),
        (["--overdue-after", "-5h"], "must be a positive duration"),
    ],
    ids=["level", "date", "json-and-out", "out-format", "overdue-not-a-duration", "overdue-negative"],
)
def test_unusable_input_exits_2_with_the_fix(store, args, message):
    out = invoke(store, *args)
    assert out.exit_code == 2
    assert message in out.stderr


def test_missing_store_and_layer_exit_2(tiny_grids, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "geogrid", "stats", str(tmp_path / "none.gpkg")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert proc.returncode == 2
    assert "geogrid demo" in proc.stderr
    only_grids = tmp_path / "grids.gpkg"
    GeoPackageStore(only_grids).write({"grids": tiny_grids})
    out = invoke(only_grids)
    assert out.exit_code == 2
    assert "no 'incidents' layer" in out.stderr


def test_out_csv_defuses_formulas_from_citizens_text(store, tmp_path):
    """OWASP CSV injection: a category or name starting with = + - @ tab CR is written as text."""
    payloads = ['=HYPERLINK("http://evil.example","x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
    s = GeoPackageStore(store)
    inc = s.read("incidents")
    inc = pd.concat([inc] * 2, ignore_index=True).iloc[: len(payloads)].copy()
    inc["incident_id"] = [f"X{i}" for i in range(len(inc))]
    inc["category"] = payloads
    s.write({"incidents": inc})
    g = s.read("grids")
    g.loc[g.grid_id == "D", "name"] = "=1+1"
    s.write({"grids": g})
    dest = tmp_path / "stats.csv"
    out = invoke(store, "--level", "0", "--by", "category", "--out", dest)
    assert out.exit_code == 0, out.output
    back = pd.read_csv(dest, dtype=str, keep_default_na=False)
    cells = [c for col in back.columns for c in back[col]]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")], cells
    assert {f"'{p}" for p in payloads} <= set(back["category"]), back["category"].tolist()


def test_out_csv_keeps_chinese_names_for_excel(store, tmp_path):
    """Excel and WPS read a CSV without a byte-order mark as GBK on Chinese Windows: names must survive that."""
    dest = tmp_path / "统计.csv"
    out = invoke(store, "--level", "1", "--by", "category", "--out", dest)
    assert out.exit_code == 0, out.output
    raw = dest.read_bytes()
    # What a spreadsheet does: UTF-8 only when the file says so, else the ANSI code page.
    text = raw[3:].decode("utf-8") if raw.startswith(b"\xef\xbb\xbf") else raw.decode("gbk", errors="replace")
    assert "望海楼街道" in text and "环境卫生" in text, text[:200]
    back = pd.read_csv(dest)  # tools that know UTF-8 see the header unchanged
    assert back.columns[0] == "grid_id"
    assert set(back["name"]) == {"望海楼街道", "鸿顺里街道"}


def test_an_unwritable_out_csv_exits_2_with_the_reason(store, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = invoke(store, "--out", blocker / "stats.csv")  # a folder that cannot exist
    assert out.exit_code == 2, out.output
    assert "cannot write" in out.stderr and "stats.csv" in out.stderr
