"""``geogrid hotspots``: the JSON contract, the report, --out, and exit 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import geopandas as gpd

ROOT = Path(__file__).resolve().parents[1]


def run(*args: object) -> Result:
    """Run the command in-process (the entry point itself is tested once, below)."""
    from geogrid.cli import main

    return CliRunner().invoke(main, ["hotspots", *map(str, args)], catch_exceptions=False)


def run_process(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "geogrid", "hotspots", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )


def test_json_lists_every_grid_with_the_contract_fields(small_demo):
    demo_district, demo_gpkg = small_demo
    out = run(demo_gpkg, "--level", 2, "--permutations", 999, "--seed", 1, "--json")
    assert out.exit_code == 0, out.stderr
    rows = json.loads(out.stdout)
    communities = demo_district.grids[demo_district.grids["level"] == 2]
    assert len(rows) == len(communities) == 114
    assert set(rows[0]) == {"grid_id", "level", "count", "z", "p", "p_fdr", "bin", "withheld"}
    assert {r["grid_id"] for r in rows} == set(communities["grid_id"])
    assert sum(r["count"] for r in rows) == len(demo_district.incidents)
    assert all(r["level"] == 2 and r["bin"] in range(-3, 4) for r in rows)
    assert all(0 < r["p"] <= 1 for r in rows)  # two-sided permutation mid-p
    assert min(r["p_fdr"] for r in rows) >= min(r["p"] for r in rows)
    again = json.loads(run(demo_gpkg, "--level", 2, "--permutations", 999, "--seed", 1, "--json").stdout)
    assert again == rows


def test_filters_change_the_counts(small_demo):
    demo_district, demo_gpkg = small_demo
    inc = demo_district.incidents
    cat = inc["category"].value_counts().index[0]
    out = run(demo_gpkg, "--level", 1, "--category", cat, "--since", "2025-03-01", "--until", "2025-03-31", "--json")
    assert out.exit_code == 0, out.stderr
    local = inc["reported_at"].dt.tz_convert("Asia/Shanghai")
    expected = ((inc["category"] == cat) & (local.dt.month == 3)).sum()
    assert sum(r["count"] for r in json.loads(out.stdout)) == expected


def test_report_and_out_file(small_demo, tmp_path):
    _, demo_gpkg = small_demo
    out = run(demo_gpkg, "--level", 2, "--permutations", 99)
    assert out.exit_code == 0, out.stderr
    assert "114 grids on level 2" in out.stdout
    assert "hot spots:" in out.stdout
    # 99 permutations cannot reach any bin after the FDR over 114 grids: the report says how many would
    assert "permutations the FDR needs before a bin can be reached at all: 90% 1,139, 95% 2,279, 99% 11,399" in (
        out.stdout
    )
    dst = tmp_path / "hot.geojson"
    out = run(demo_gpkg, "--level", 2, "--permutations", 99, "--out", dst)
    assert out.exit_code == 0, out.stderr
    layer = gpd.read_file(dst)
    assert len(layer) == 114
    assert {"grid_id", "count", "z", "p", "p_fdr", "bin"} <= set(layer.columns)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--level", "9"], "level 9 does not occur"),
        (["--since", "2025-13-01"], "is not a date"),
        (["--category", "没有这类"], "does not occur in the incidents"),
        (["--since", "2025-06-01", "--until", "2025-05-01"], "before since"),
        (["--weights", "bishop"], "--weights"),
        (["--json", "--out", "x.geojson"], "exclude each other"),
    ],
    ids=["level", "date", "category", "window", "weights", "json-and-out"],
)
def test_bad_input_exits_2_with_the_reason(small_demo, args, message):
    _, demo_gpkg = small_demo
    out = run(demo_gpkg, *args)
    assert out.exit_code == 2
    assert message in out.stderr
    assert out.stdout == ""


def test_missing_source_exits_2_from_the_entry_point(tmp_path):
    out = run_process(tmp_path / "nope.gpkg")
    assert out.returncode == 2
    assert "does not exist" in out.stderr


def test_readme_example_finds_the_planted_hot_spots(demo_gpkg, demo_district):
    """The README's example on the full demo: the default (binomial test, FDR) reaches the 99 % bin."""
    out = run(demo_gpkg, "--level", 3, "--category", "占道经营", "--json")
    assert out.exit_code == 0, out.stderr
    rows = {r["grid_id"]: r for r in json.loads(out.stdout)}
    truth = [t for t in demo_district.metadata["demo_hotspots"] if t["category"] == "占道经营"]
    basic = demo_district.grids[demo_district.grids["level"] == 3]
    pts = gpd.GeoSeries(gpd.points_from_xy([t["lon"] for t in truth], [t["lat"] for t in truth]), crs=4326)
    holding = basic.to_crs(4326).sjoin(gpd.GeoDataFrame(geometry=pts), predicate="contains")["grid_id"]
    assert len(holding) == len(truth) >= 1
    assert all(rows[g]["bin"] == 3 for g in holding)
    assert not any(r["withheld"] for r in rows.values())


def test_a_quiet_week_paints_no_cold_spot(demo_gpkg):
    """One quiet week: most grids have no incident; they are withheld with the reason, never cold."""
    out = run(
        demo_gpkg, "--level", 3, "--category", "养犬管理", "--since", "2025-03-03", "--until", "2025-03-09", "--json"
    )
    assert out.exit_code == 0, out.stderr
    rows = json.loads(out.stdout)
    assert 30 <= sum(r["count"] for r in rows) <= 400
    assert not any(r["bin"] < 0 for r in rows)
    assert {r["withheld"] for r in rows} == {"sparse"}  # 147 incidents: about 1 expected per neighbourhood
    assert sum(1 for r in rows if r["withheld"]) > len(rows) / 2
    text = run(demo_gpkg, "--level", 3, "--category", "养犬管理", "--since", "2025-03-03", "--until", "2025-03-09")
    assert "withheld (no bin, not coloured)" in text.stdout
    assert "sparse: fewer incidents expected in a neighbourhood than the minimum" in text.stdout


def test_population_option_finds_the_planted_hot_spots_per_resident(demo_gpkg, demo_district):
    """--population: expected counts follow the residents; the planted spots are still hot, fewer grids are."""
    args = ("--level", 3, "--category", "占道经营")
    raw = json.loads(run(demo_gpkg, *args, "--json").stdout)
    out = run(demo_gpkg, *args, "--population", "population", "--json")
    assert out.exit_code == 0, out.stderr
    rows = {r["grid_id"]: r for r in json.loads(out.stdout)}
    truth = [t for t in demo_district.metadata["demo_hotspots"] if t["category"] == "占道经营"]
    basic = demo_district.grids[demo_district.grids["level"] == 3]
    pts = gpd.GeoSeries(gpd.points_from_xy([t["lon"] for t in truth], [t["lat"] for t in truth]), crs=4326)
    holding = basic.to_crs(4326).sjoin(gpd.GeoDataFrame(geometry=pts), predicate="contains")["grid_id"]
    assert all(rows[g]["bin"] >= 2 for g in holding)
    # the expected neighbourhood counts follow the population, not the number of grids
    pop = basic.set_index("grid_id")["population"]
    by_raw = {r["grid_id"]: r["expected"] for r in raw}
    assert len({round(r["expected"] / by_raw[g], 6) for g, r in rows.items()}) > 10
    top = max(rows, key=lambda g: pop[g])
    assert rows[top]["expected"] > by_raw[top]
    text = run(demo_gpkg, *args, "--population", "population")
    assert "inference: binomial p (counts scaled by their dispersion " in text.stdout
    assert "expected counts proportional to the grids' 'population'" in text.stdout


def test_normal_p_method_is_arcgis_normal_p_of_z(demo_gpkg):
    import scipy.stats

    out = run(demo_gpkg, "--level", 3, "--category", "占道经营", "--p-method", "normal", "--json")
    assert out.exit_code == 0, out.stderr
    rows = [r for r in json.loads(out.stdout) if r["p"] is not None]
    assert rows and all("expected" not in r for r in rows)
    for r in rows:
        assert r["p"] == pytest.approx(2 * scipy.stats.norm.sf(abs(r["z"])), rel=1e-9)


def test_unknown_population_column_exits_2_naming_it(demo_gpkg):
    out = run(demo_gpkg, "--level", 3, "--population", "residents")
    assert out.exit_code == 2
    assert "population='residents' is not a column of the grids" in out.stderr
