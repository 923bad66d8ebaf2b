"""``geogrid plan``: new, edit, diff, commit, discard; conflicts and refusals exit 2 with the reason."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

import shapely

from geogrid.cli import main
from layers.store import open_store

X0, Y0, D = 117.20, 39.10, 0.01


@pytest.fixture(params=["gpkg", "postgis"])
def store_path(request, tmp_path, tiny_grids) -> str:
    """A GeoPackage path or a ``postgresql://`` URL: the commands take either."""
    g = tiny_grids.copy()
    g["households"] = pd.array([100, 60, 40, 30, 30, 20, 20], dtype="Int64")
    location = str(tmp_path / "cli.gpkg") if request.param == "gpkg" else request.getfixturevalue("postgis_url")
    open_store(location).write({"grids": g})
    return location


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_plan_round_trip(store_path):
    out = invoke("plan", "new", store_path, "--name", "east half", "--author", "li")
    assert out.exit_code == 0 and out.output.startswith("p1 (version 0")
    region = shapely.box(X0 + D / 2, Y0, X0 + D, Y0 + D / 2).wkt
    out = invoke(
        "plan", "edit", store_path, "p1", "transfer_area", "-p", f"region={region}", "-p", "to_grid=G2", "--expect", "0"
    )
    assert out.exit_code == 0, out.output
    assert "version 1" in out.output
    out = invoke("plan", "diff", store_path, "p1", "--json")
    diff = json.loads(out.output)
    assert diff["area_moved"][0]["from_id"] == "G1" and diff["summary"]["households_moved"] == 15
    out = invoke("plan", "commit", store_path, "p1", "--expect", "1")
    assert out.exit_code == 0 and "network version 2" in out.output
    out = invoke("plan", "list", store_path, "--json")
    assert [p["status"] for p in json.loads(out.output)] == ["committed"]


def test_stale_edit_and_refused_edit_exit_2(store_path):
    invoke("plan", "new", store_path, "--name", "x")
    invoke("plan", "edit", store_path, "p1", "merge_grids", "-p", 'ids=["G1", "G2"]')
    out = CliRunner().invoke(main, ["plan", "edit", store_path, "p1", "update_attributes", "--expect", "0",
                                     "-p", "grid_id=G3", "-p", 'values={"name": "x"}'])  # fmt: skip
    assert out.exit_code == 2 and "someone else changed it" in out.output
    crossing = shapely.box(X0 + D * 0.8, Y0, X0 + D * 1.2, Y0 + D / 4).wkt
    out = CliRunner().invoke(
        main, ["plan", "edit", store_path, "p1", "transfer_area", "-p", f"region={crossing}", "-p", "to_grid=G1"]
    )
    assert out.exit_code == 2 and "cascade=True" in out.output
    out = invoke("plan", "discard", store_path, "p1")
    assert out.exit_code == 0 and "discarded" in out.output


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (["-p", "grid_id=G1", "-p", "line=LINESTRING (...)"], r"line='LINESTRING \(\.\.\.\)' is not WKT"),
        (["-p", "grid_id=G1"], r"split_grid needs -p line=\.\.\."),
        (["-p", "grid_id=G1", "-p", "line=LINESTRING (0 0, 1 1)", "-p", "colour=red"], r"split_grid takes no colour"),
    ],
    ids=["bad-wkt", "missing-line", "unknown-param"],
)
def test_bad_edit_parameters_exit_2_with_the_reason(tmp_path, tiny_grids, params, reason):
    import re

    path = str(tmp_path / "cli.gpkg")
    open_store(path).write({"grids": tiny_grids})
    assert invoke("plan", "new", path, "--name", "x").exit_code == 0
    out = CliRunner().invoke(main, ["plan", "edit", path, "p1", "split_grid", *params])
    assert out.exit_code == 2, out.output
    assert re.search(reason, out.output), out.output
    assert "Traceback" not in out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)


def test_edit_help_lists_every_operation_with_its_parameters():
    from geogrid.edits import EDIT_OPERATIONS

    out = invoke("plan", "edit", "--help")
    for name in EDIT_OPERATIONS:
        assert f"  {name}: " in out.output
    assert "split_grid: grid_id*, line*" in out.output
    assert "transfer_area: region*, to_grid*" in out.output


def test_an_edit_warns_about_an_unmapped_count_column_and_names_the_fix(tmp_path, tiny_grids):
    g = tiny_grids.copy()
    g["户数"] = [40, 20, 20, 10, 10, 10, 10]  # kept under its own name: geogrid does not apportion it
    path = str(tmp_path / "cli.gpkg")
    open_store(path).write({"grids": g})
    assert invoke("plan", "new", path, "--name", "x").exit_code == 0
    out = invoke("plan", "edit", path, "p1", "merge_grids", "-p", 'ids=["G1", "G2"]')
    assert out.exit_code == 0, out.output
    assert "warning: merge_grids: grids column(s) '户数' hold whole numbers" in out.output
    assert "geogrid import --households-col 户数" in out.output


@pytest.mark.parametrize("name", ["", "   ", "\t\n"], ids=["empty", "spaces", "tab-newline"])
def test_a_plan_needs_a_name(store_path, name):
    out = CliRunner().invoke(main, ["plan", "new", store_path, "--name", name])
    assert out.exit_code == 2 and "plan name" in out.output and "is empty" in out.output, out.output
    assert invoke("plan", "list", store_path).output.strip() == "no plans"
