"""CLI: ``geogrid coverage`` and ``geogrid place-cameras`` (JSON contracts, exit codes)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from geogrid.cli import main


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    from geogrid.demo import write_demo

    path = tmp_path_factory.mktemp("cov") / "small.gpkg"
    write_demo(path, seed=1, n_incidents=3000, n_cameras=400)
    return path


def test_coverage_json_contract(small_store):
    res = CliRunner().invoke(main, ["coverage", str(small_store), "--level", "2", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == 114
    assert set(rows[0]) == {"grid_id", "level", "area_m2", "covered_m2", "ratio", "cameras"}
    for r in rows:
        assert r["level"] == 2
        assert 0 <= r["covered_m2"] <= r["area_m2"]
        assert r["ratio"] == pytest.approx(r["covered_m2"] / r["area_m2"], abs=1e-6)
        assert isinstance(r["cameras"], int)
    assert sum(r["area_m2"] for r in rows) == pytest.approx(23.76e6, rel=1e-6)


def test_coverage_with_occlusion_sees_less(small_store):
    plain = json.loads(CliRunner().invoke(main, ["coverage", str(small_store), "--level", "1", "--json"]).stdout)
    res = CliRunner().invoke(main, ["coverage", str(small_store), "--level", "1", "--occlusion", "--json"])
    assert res.exit_code == 0, res.output
    occ = json.loads(res.stdout)
    assert sum(r["covered_m2"] for r in occ) < sum(r["covered_m2"] for r in plain)


def test_coverage_table_and_missing_file(small_store, tmp_path):
    res = CliRunner().invoke(main, ["coverage", str(small_store), "--level", "1"])
    assert res.exit_code == 0
    assert "least seen grids" in res.stdout
    bad = CliRunner().invoke(main, ["coverage", str(tmp_path / "nope.gpkg")])
    assert bad.exit_code == 2
    assert "does not exist" in bad.output


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["table", "json"])
def test_a_level_the_grids_lack_is_refused_with_the_levels_they_have(small_store, json_flag):
    """Not an empty report that reads as "nothing to see" (stats and the API refuse it too)."""
    res = CliRunner().invoke(main, ["coverage", str(small_store), "--level", "9", *json_flag])
    assert res.exit_code == 2, res.output
    assert "level 9 does not occur" in res.stderr and "[0, 1, 2, 3]" in res.stderr


def test_place_cameras_json_contract(small_store):
    res = CliRunner().invoke(main, ["place-cameras", str(small_store), "-k", "3", "--json", "--method", "greedy"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["k"] == 3 and out["weight"] == "incidents" and out["method"] == "greedy"
    assert len(out["sites"]) == 3
    assert 0 < out["seen"] <= out["upper_bound"] + 1e-9
    assert out["seen"] <= out["total_unseen"]
    site = out["sites"][0]
    assert set(site) == {"candidate_id", "lon", "lat", "heading_deg", "fov_deg", "range_m", "gain"}
    assert 117 < site["lon"] < 117.3 and 39 < site["lat"] < 39.3
