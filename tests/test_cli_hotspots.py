"""``geogrid hotspots``: the JSON contract, the report, --out, and exit 2 on bad input."""

from __future__ import annotations

import json
import re
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


# -- Local Moran (--statistic local-moran) and emerging hot spots ------------------------------------------
MORAN_FIELDS = ["grid_id", "level", "count", "i", "z", "quadrant", "p", "p_fdr", "cluster", "withheld", "expected"]
EMERGING_FIELDS = [
    "grid_id",
    "level",
    "count",
    "pattern",
    "hot_periods",
    "cold_periods",
    "history",
    "withheld_periods",
    "withheld",
    "trend_z",
    "trend_p",
    "trend_tau",
    "count_trend_tau",
    "count_trend_p",
]


def run_emerging(*args: object) -> Result:
    from geogrid.cli import main

    return CliRunner().invoke(main, ["emerging", *map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="module")
def small_store(small_demo):
    """The small demo's store path and its grids and incidents as the store gives them back."""
    from layers.store import open_store

    _, path = small_demo
    store = open_store(path)
    return path, store.read("grids"), store.read("incidents")


def test_local_moran_json_is_incident_clusters(small_store):
    from geogrid.hotspots import incident_clusters
    from tests._frames import rows_of

    path, grids, incidents = small_store
    out = run(
        path, "--statistic", "local-moran", "--level", 3, "--since", "2025-04-01", "--until", "2025-09-30", "--json"
    )
    assert out.exit_code == 0, out.stderr
    expected = incident_clusters(incidents, grids, level=3, since="2025-04-01", until="2025-09-30")
    rows = json.loads(out.stdout)
    assert list(rows[0]) == MORAN_FIELDS
    assert rows == rows_of(expected, MORAN_FIELDS)
    assert {"HH", "LH"} <= {r["cluster"] for r in rows}  # the window has clusters and outliers to show


def test_local_moran_options_reach_incident_clusters(small_store):
    """Category (Chinese), population, p-method and permutations are those of the Python call."""
    from geogrid.hotspots import incident_clusters
    from tests._frames import rows_of

    path, grids, incidents = small_store
    for args, kwargs in (
        (
            ["--category", "占道经营", "--population", "population"],
            {"category": ["占道经营"], "population": "population"},
        ),
        (
            ["--p-method", "normal", "--permutations", 199, "--seed", 4],
            {"p_method": "normal", "permutations": 199, "seed": 4},
        ),
        (
            ["--weights", "rook", "--time-field", "closed_at", "--since", "2025-06-01"],
            {"weights": "rook", "time_field": "closed_at", "since": "2025-06-01"},
        ),
    ):
        out = run(path, "--statistic", "local-moran", "--level", 2, *args, "--json")
        assert out.exit_code == 0, out.stderr
        expected = incident_clusters(incidents, grids, level=2, **kwargs)
        fields = [f for f in MORAN_FIELDS if f in expected.columns]
        assert json.loads(out.stdout) == rows_of(expected, fields), args


def test_local_moran_report_and_out_file(small_store, tmp_path):
    from geogrid.hotspots import incident_clusters

    path, grids, incidents = small_store
    expected = incident_clusters(incidents, grids, level=3)
    out = run(path, "--statistic", "local-moran", "--level", 3)
    assert out.exit_code == 0, out.stderr
    counts = expected["cluster"].value_counts()
    assert (
        f"Local Moran (FDR-adjusted): HH: {counts.get('HH', 0)}, LL: {counts.get('LL', 0)}, "
        f"HL: {counts.get('HL', 0)}, LH: {counts.get('LH', 0)}, not significant: {counts['not significant']}"
    ) in out.stdout
    strongest = expected[expected["cluster"] == "HH"].sort_values("p_fdr")["grid_id"].iloc[0]
    assert f"HH clusters (high among high): {counts['HH']}" in out.stdout
    assert re.search(rf"^  {strongest} +count .* p_fdr ", out.stdout, flags=re.M)
    dst = tmp_path / "clusters.gpkg"
    out = run(path, "--statistic", "local-moran", "--level", 3, "--out", dst)
    assert out.exit_code == 0, out.stderr
    layer = gpd.read_file(dst, layer="clusters")
    assert layer["cluster"].tolist() == expected["cluster"].tolist()
    assert layer["p_fdr"].tolist() == expected["p_fdr"].tolist()


def test_emerging_json_is_emerging_hotspots(small_store):
    """Weekly, one category named in Chinese, a window: the periods and every column equal the Python call."""
    from geogrid.hotspots import emerging_hotspots
    from tests._frames import rows_of

    path, grids, incidents = small_store
    args = ("--level", 2, "--category", "占道经营", "--period", "W", "--since", "2025-09-01", "--until", "2025-12-31")
    out = run_emerging(path, *args, "--json")
    assert out.exit_code == 0, out.stderr
    doc = json.loads(out.stdout)
    expected = emerging_hotspots(
        incidents, grids, level=2, category=["占道经营"], period="W", since="2025-09-01", until="2025-12-31"
    )
    assert doc["periods"] == expected.attrs["periods"] and len(doc["periods"]) == 17  # whole weeks only
    assert list(doc["grids"][0]) == EMERGING_FIELDS
    assert doc["grids"] == rows_of(expected, EMERGING_FIELDS)


def test_emerging_options_reach_emerging_hotspots(small_store):
    from geogrid.hotspots import emerging_hotspots
    from tests._frames import rows_of

    path, grids, incidents = small_store
    for args, kwargs in (
        ([], {}),
        (
            ["--time-lag", 0, "--alpha", 0.1, "--no-fdr", "--min-share", 0.5, "--strict", "--p-method", "normal"],
            {"time_lag": 0, "alpha": 0.1, "fdr": False, "min_share": 0.5, "strict": True, "p_method": "normal"},
        ),
        (["--period", "Q", "--population", "population"], {"period": "Q", "population": "population"}),
    ):
        out = run_emerging(path, "--level", 2, *args, "--json")
        assert out.exit_code == 0, out.stderr
        expected = emerging_hotspots(incidents, grids, level=2, **kwargs)
        doc = json.loads(out.stdout)
        assert doc["periods"] == expected.attrs["periods"], args
        assert doc["grids"] == rows_of(expected, EMERGING_FIELDS), args


def test_emerging_report_and_out_file(small_store, tmp_path):
    from geogrid.hotspots import emerging_hotspots

    path, grids, incidents = small_store
    expected = emerging_hotspots(incidents, grids, level=2)
    out = run_emerging(path, "--level", 2)
    assert out.exit_code == 0, out.stderr
    assert "114 grids on level 2, 20,000 incidents, 12 periods (2025-01 … 2025-12)" in out.stdout
    for pattern, k in expected["pattern"].value_counts().items():
        assert re.search(rf"^ +{k:,} {pattern}$", out.stdout, flags=re.M), pattern
    found = expected[expected["pattern"] != "no pattern"]
    assert len(found) >= 5  # the demo plants spots that start and end during the year
    for r in found.itertuples():
        assert re.search(rf"^  {r.grid_id} +count +{r.count} +{re.escape(r.history)} ", out.stdout, flags=re.M)
    dst = tmp_path / "emerging.geojson"
    out = run_emerging(path, "--level", 2, "--out", dst)
    assert out.exit_code == 0, out.stderr
    layer = gpd.read_file(dst)
    assert layer["pattern"].tolist() == expected["pattern"].tolist()
    assert layer["history"].tolist() == expected["history"].tolist()


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("hotspots", ["--statistic", "moran"], "Invalid value for '--statistic'"),
        ("hotspots", ["--statistic", "local-moran", "--level", "9"], "level 9 does not occur"),
        ("hotspots", ["--statistic", "local-moran", "--out", "x.txt"], "--out x.txt: geogrid writes .gpkg"),
        ("hotspots", ["--weights", "-300"], "--weights '-300' is not understood"),
        ("emerging", ["--period", "Y"], "Invalid value for '--period'"),
        ("emerging", ["--time-lag", "-1"], "Invalid value for '--time-lag'"),
        ("emerging", ["--alpha", "1"], "Invalid value for '--alpha'"),
        ("emerging", ["--min-share", "0"], "Invalid value for '--min-share'"),
        ("emerging", ["--permutations", "-5"], "Invalid value for '--permutations'"),
        ("emerging", ["--seed", "-1"], "Invalid value for '--seed'"),
        ("emerging", ["--weights", "bishop"], "--weights 'bishop' is not understood"),
        ("emerging", ["--json", "--out", "x.geojson"], "exclude each other"),
        ("emerging", ["--out", "x.csv"], "--out x.csv: geogrid writes .gpkg"),
        ("emerging", ["--level", "9"], "level 9 does not occur"),
        ("emerging", ["--category", "没有这类"], "does not occur in the incidents"),
        ("emerging", ["--since", "2025-13-01"], "is not a date"),
        ("emerging", ["--since", "2025-06-01", "--until", "2025-05-01"], "before since"),
        ("emerging", ["--since", "2025-10-15"], "the cube has 2 period(s); emerging hot spots need at least 3"),
        ("emerging", ["--since", "2025-12-20"], "holds no whole period 'M'"),
        ("emerging", ["--population", "residents"], "population='residents' is not a column of the grids"),
        ("emerging", ["--time-field", "closed_at"], "No such option '--time-field'"),
    ],
    ids=[
        "statistic",
        "moran-level",
        "moran-out-suffix",
        "negative-band",
        "period",
        "time-lag",
        "alpha",
        "min-share",
        "permutations",
        "seed",
        "weights",
        "json-and-out",
        "out-suffix",
        "level",
        "category",
        "date",
        "window",
        "two-periods",
        "no-whole-period",
        "population",
        "time-field",
    ],
)
def test_bad_options_of_clusters_and_emerging_exit_2_with_the_reason(small_demo, command, args, message):
    from geogrid.cli import main

    _, demo_gpkg = small_demo
    out = CliRunner().invoke(main, [command, str(demo_gpkg), *args], catch_exceptions=False)
    assert out.exit_code == 2
    assert message in out.stderr
    assert out.stdout == ""


def test_emerging_on_a_missing_store_names_the_fix(tmp_path):
    out = run_emerging(tmp_path / "nope.gpkg")
    assert out.exit_code == 2
    assert "nope.gpkg does not exist: create a store with `geogrid demo" in out.stderr
