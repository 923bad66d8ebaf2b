"""`geogrid import` of a large CSV in parts: the same layer as a one-shot import, every problem named
with its line, nothing written on a refusal or a kill, memory bounded by the part size."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result

import geopandas as gpd
import shapely
from geopandas.testing import assert_geodataframe_equal

from geogrid.cli import main
from layers.io import read_layer, read_layer_chunks
from layers.store import GeoPackageStore

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
OPTIONS = [
    "--kind",
    "incidents",
    "--id-col",
    "编号",
    "--time-col",
    "上报时间",
    "--closed-col",
    "结案时间",
    "--category-col",
    "类别",
    "--source-col",
    "来源",
    "--status-col",
    "状态",
    "--description-col",
    "描述",
    "--tz",
    "Asia/Shanghai",
]
MAPPING = {
    "id": "编号",
    "time": "上报时间",
    "closed": "结案时间",
    "category": "类别",
    "source": "来源",
    "status": "状态",
    "description": "描述",
}


def _incidents_csv(path: Path, rows: int, *, first_id: int = 0, seed: int = 0) -> Path:
    """A seeded incident CSV (lon/lat, local times, some cells empty, a few descriptions over two lines)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(first_id, first_id + rows)
    reported = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300 * 86400, rows), unit="s")
    closed = reported + pd.to_timedelta(rng.integers(60, 86400, rows), unit="s")
    description = np.where(rng.random(rows) < 0.3, "路边有垃圾, 请处理", "")
    description[::997] = "第一行\n第二行"
    frame = pd.DataFrame(
        {
            "编号": [f"E{i:07d}" for i in ids],
            "经度": np.round(117.0 + rng.random(rows) * 0.2, 6),
            "纬度": np.round(39.0 + rng.random(rows) * 0.2, 6),
            "上报时间": reported.strftime("%Y-%m-%d %H:%M:%S"),
            "结案时间": np.where(rng.random(rows) < 0.5, closed.strftime("%Y-%m-%d %H:%M:%S"), ""),
            "类别": np.array(["环境卫生", "占道经营", "噪音扰民"])[rng.integers(0, 3, rows)],
            "来源": np.array(["hotline", "grid_worker", "camera"])[rng.integers(0, 3, rows)],
            "状态": np.array(["reported", "closed"])[rng.integers(0, 2, rows)],
            "描述": description,
        }
    )
    frame.to_csv(path, index=False, encoding="utf-8")
    return path


def _grid_store(path: Path) -> GeoPackageStore:
    store = GeoPackageStore(path)
    boxes = [shapely.box(117 + i * 0.1, 39 + j * 0.1, 117.1 + i * 0.1, 39.1 + j * 0.1) for i in (0, 1) for j in (0, 1)]
    grids = gpd.GeoDataFrame(
        {"grid_id": ["a", "b", "c", "d"], "parent_id": [None] * 4, "level": [0] * 4}, geometry=boxes, crs="EPSG:4326"
    )
    store.write({"grids": grids})
    return store


def _import(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["import", *map(str, args)], catch_exceptions=False)


def _dump(path: Path) -> list[str]:
    """Every table of the store as SQL, for a byte-for-byte comparison of its content."""
    with sqlite3.connect(path) as con:
        return list(con.iterdump())


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory) -> Path:
    return _incidents_csv(tmp_path_factory.mktemp("csv") / "事件.csv", 200_000)


def test_parts_equal_the_one_shot_import_same_rows_order_and_geometry(tmp_path, big_csv):
    one_shot = _grid_store(tmp_path / "one.gpkg")
    one_shot.write({"incidents": read_layer(big_csv, "incidents", columns=MAPPING, tz="Asia/Shanghai")})
    parts = _grid_store(tmp_path / "parts.gpkg")
    r = _import(big_csv, "--into", parts.path, *OPTIONS, "--chunk-rows", "30000")
    assert r.exit_code == 0, r.output
    assert "imported 200,000 incidents" in r.stdout
    expected, got = one_shot.read("incidents"), parts.read("incidents")
    assert_geodataframe_equal(got, expected)
    assert got["description"].str.contains("\n").sum() == len(range(0, 200_000, 997))
    box = (117.05, 39.05, 117.1, 39.07)  # the R-tree holds every part
    assert_geodataframe_equal(parts.read("incidents", bbox=box), one_shot.read("incidents", bbox=box))
    assert len(parts.read("incidents", bbox=box)) > 1000


def test_appended_parts_equal_the_one_shot_import_of_both_files(tmp_path, big_csv):
    first = _incidents_csv(tmp_path / "first.csv", 70_000, first_id=1_000_000, seed=1)
    one_shot = _grid_store(tmp_path / "one.gpkg")
    both = pd.concat(
        [
            read_layer(first, "incidents", columns=MAPPING, tz="Asia/Shanghai"),
            read_layer(big_csv, "incidents", columns=MAPPING, tz="Asia/Shanghai"),
        ],
        ignore_index=True,
    )
    one_shot.write({"incidents": gpd.GeoDataFrame(both, geometry="geometry", crs="EPSG:4326")})
    parts = _grid_store(tmp_path / "parts.gpkg")
    assert _import(first, "--into", parts.path, *OPTIONS, "--chunk-rows", "25000").exit_code == 0
    r = _import(big_csv, "--into", parts.path, *OPTIONS, "--chunk-rows", "30000", "--mode", "append")
    assert r.exit_code == 0, r.output
    assert "the layer now has 270,000 rows" in r.stdout
    assert_geodataframe_equal(parts.read("incidents"), one_shot.read("incidents"))
    box = (117.0, 39.0, 117.02, 39.02)
    assert_geodataframe_equal(parts.read("incidents", bbox=box), one_shot.read("incidents", bbox=box))
    with sqlite3.connect(parts.path) as con:
        assert con.execute("SELECT feature_count FROM gpkg_ogr_contents WHERE table_name = 'incidents'").fetchone() == (
            270_000,
        )
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_bad_row_deep_in_the_file_is_refused_with_its_line_and_the_store_is_unchanged(tmp_path):
    src = _incidents_csv(tmp_path / "deep.csv", 260_000)
    lines = src.read_text(encoding="utf-8").split("\n")
    # 251 descriptions above it span two lines: data row 249,747 starts on line 250,000.
    row = 249_747
    assert sum(1 for i in range(0, row, 997)) == 251
    target = 250_000 - 1
    assert lines[target].startswith(f"E{row:07d},")
    lines[target] = lines[target].replace(",reported,", ",lost,").replace(",closed,", ",lost,")
    src.write_text("\n".join(lines), encoding="utf-8")
    store = _grid_store(tmp_path / "city.gpkg")
    ok = _incidents_csv(tmp_path / "ok.csv", 1_000, first_id=5_000_000, seed=2)
    assert _import(ok, "--into", store.path, *OPTIONS).exit_code == 0
    before = _dump(store.path)
    r = _import(src, "--into", store.path, *OPTIONS, "--chunk-rows", "40000", "--mode", "append")
    assert r.exit_code == 2
    assert f"status has unknown value(s) 'lost' at row {row} (id 'E{row:07d}')" in r.stderr
    assert "(line 250,000 of the file)" in r.stderr
    assert _dump(store.path) == before


def test_an_id_already_stored_is_refused_naming_its_row_and_nothing_is_appended(tmp_path):
    store = _grid_store(tmp_path / "city.gpkg")
    old = _incidents_csv(tmp_path / "old.csv", 500, first_id=120_000, seed=3)
    assert _import(old, "--into", store.path, *OPTIONS).exit_code == 0
    before = _dump(store.path)
    new = _incidents_csv(tmp_path / "new.csv", 120_001, seed=4)  # its last row has id E0120000
    r = _import(new, "--into", store.path, *OPTIONS, "--chunk-rows", "50000", "--mode", "append")
    assert r.exit_code == 2
    assert "incident_id 'E0120000' already in the store at rows 120000" in r.stderr
    assert _dump(store.path) == before


_IMPORT = "from geogrid.cli import main; main()"


@pytest.mark.slow
def test_kill_9_during_an_import_leaves_the_store_as_before_or_fully_imported(tmp_path, big_csv):
    store = _grid_store(tmp_path / "city.gpkg")
    ok = _incidents_csv(tmp_path / "ok.csv", 1_000, first_id=5_000_000, seed=2)
    assert _import(ok, "--into", store.path, *OPTIONS).exit_code == 0
    before = _dump(store.path)
    wal = Path(f"{store.path}-wal")
    tmp = tmp_path / "tmp"  # the killed writer's staging folder stays behind: here, not in /tmp
    tmp.mkdir()
    killed_before = 0
    for moment in ("staging", "writing", "writing"):
        cmd = [sys.executable, "-c", _IMPORT, "import", str(big_csv), "--into", str(store.path), *OPTIONS]
        with subprocess.Popen(
            [*cmd, "--chunk-rows", "20000", "--mode", "append"],
            cwd=ROOT,
            env={**ENV, "TMPDIR": str(tmp)},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as proc:
            start = wal.stat().st_size if wal.exists() else 0
            deadline = time.monotonic() + 600
            # staging: once the first parts are read; writing: once the transaction has grown the WAL
            while proc.poll() is None and time.monotonic() < deadline:
                if moment == "staging" and any(p.name.startswith("geogrid-stage-") for p in tmp.iterdir()):
                    time.sleep(1.0)
                    break
                if moment == "writing" and wal.exists() and wal.stat().st_size > start + (1 << 20):
                    break
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            out = proc.communicate()[0]
        after = _dump(store.path)
        with sqlite3.connect(store.path) as con:
            assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        if after == before:
            killed_before += 1
            assert "imported" not in out
        else:  # the commit was done before the signal: all of it is there
            assert len(GeoPackageStore(store.path).read("incidents")) == 201_000
            break
    assert killed_before >= 1


_MEASURE = textwrap.dedent(
    """
    import sys
    from geogrid.cli import main
    try:
        main(sys.argv[1:])
    except SystemExit as e:
        assert not e.code, e.code
    # VmHWM, not getrusage: Linux carries the parent's peak into ru_maxrss across fork/vfork + exec, so
    # under pytest the child "peaked" at the worker's own size (1,154-1,167 MiB in full CI runs)
    hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")]
    print("peak_mib", int(hwm[0]) // 1024)
    """
)


@pytest.mark.slow
def test_memory_of_a_1m_row_import_is_bounded_by_the_part_not_the_file(tmp_path):
    src = tmp_path / "m.csv"
    with open(src, "w", encoding="utf-8") as fh:  # 1,000,000 rows written in blocks
        fh.write("编号,经度,纬度,上报时间,类别,来源,状态\n")
        for block in range(10):
            ids = np.arange(block * 100_000, (block + 1) * 100_000)
            fh.writelines(
                f"M{i:07d},{117 + (i % 1000) * 1e-4:.6f},{39 + (i // 1000 % 1000) * 1e-4:.6f},"
                f"2024-05-01 08:{i % 60:02d}:00,环境卫生,hotline,reported\n"
                for i in ids
            )
    store = _grid_store(tmp_path / "city.gpkg")
    args = [
        "import",
        str(src),
        "--into",
        str(store.path),
        *[o for o in OPTIONS if o not in ("--closed-col", "结案时间")],
    ]
    args = [a for a in args if a not in ("--description-col", "描述")] + ["--chunk-rows", "20000"]
    r = subprocess.run([sys.executable, "-c", _MEASURE, *args], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    peak = int(r.stdout.split("peak_mib")[-1])
    # In one part (--chunk-rows 1000000) this import peaks at ~1,320 MiB, read whole by the old code
    # ~1,150 MiB (BENCHMARKS.md). In parts it peaks at ~390 MiB, of which ~245 MiB are the CLI's
    # imports. (It once seemed to peak at 861 and 1,167 MiB: that was the pytest worker's peak, which
    # getrusage reports for a child after exec.)
    assert peak < 1000, peak
    assert len(store.read("incidents", bbox=(117.0, 39.0, 117.0005, 39.0005))) == 36


def test_read_layer_chunks_refuses_what_it_cannot_stream(tmp_path):
    gj = tmp_path / "a.geojson"
    gj.write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    with pytest.raises(ValueError, match="read_layer_chunks reads CSV files"):
        read_layer_chunks(gj, "incidents")
    csv = _incidents_csv(tmp_path / "g.csv", 3)
    with pytest.raises(ValueError, match="grids need polygons"):
        read_layer_chunks(csv, "grids")


def test_the_datum_hint_of_a_large_file_comes_from_a_sample_of_its_points(tmp_path):
    from layers import datum

    store = _grid_store(tmp_path / "city.gpkg")
    n = 130_000
    rng = np.random.default_rng(9)
    # Along the grids' east edge: copied from Gaode (GCJ-02, ~600 m east) most of them lie beyond it.
    lon, lat = rng.uniform(117.19, 117.1995, n), rng.uniform(39.01, 39.19, n)
    glon, glat = datum.wgs84_to_gcj02(lon, lat)
    src = tmp_path / "高德.csv"
    pd.DataFrame(
        {
            "编号": [f"G{i}" for i in range(n)],
            "经度": np.round(glon, 6),
            "纬度": np.round(glat, 6),
            "上报时间": "2024-05-01 08:00:00",
            "类别": "环境卫生",
            "来源": "hotline",
            "状态": "reported",
        }
    ).to_csv(src, index=False)
    options = [o for o in OPTIONS if o not in ("--closed-col", "结案时间", "--description-col", "描述")]
    r = _import(src, "--into", store.path, *options, "--chunk-rows", "40000")
    assert r.exit_code == 0, r.output
    assert "points sampled from 130,000 lie outside the grids" in r.stderr, r.stderr
    assert "--datum gcj02" in r.stderr


def test_a_problem_in_several_parts_is_listed_once_with_its_count_and_the_first_line_further_on(tmp_path):
    src = _incidents_csv(tmp_path / "s.csv", 9)
    lines = src.read_text(encoding="utf-8").split("\n")
    for row in (1, 6, 7):
        lines[row + 2] = lines[row + 2].replace(",reported,", ",lost,").replace(",closed,", ",lost,")
    src.write_text("\n".join(lines), encoding="utf-8")
    parts = read_layer_chunks(src, "incidents", columns=MAPPING, tz="Asia/Shanghai", chunk_rows=3)
    with pytest.raises(ValueError, match="1 problem") as err:
        list(parts)
    # row 0's description spans two lines: data row 1 starts on line 4
    assert "status has unknown value(s) 'lost' at row 1 (id 'E0000001'): allowed:" in str(err.value)
    assert "(line 4 of the file); and 2 more row(s) further on, the first at row 6 (line 9)" in str(err.value)
