"""``geogrid plan``: draft redraws of the grid network (new, list, diff, edit, commit, discard)."""

from __future__ import annotations

import inspect
import json
from typing import Any

import click

import shapely

from geogrid.cli._common import handle_errors, login_name, main
from geogrid.edits import EDIT_OPERATIONS
from geogrid.plans import commit_plan, diff_plan, discard_plan, edit_plan, list_plans, new_plan
from layers.store import open_store

__all__ = ["plan"]


_me = login_name


author_option = click.option("--author", default=None, help="who makes the change (default: the login name)")
expect_option = click.option(
    "--expect", "expected", type=int, default=None, help="the plan version you based this on (refused if stale)"
)


def _parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            msg = f"parameter {pair!r} is not KEY=VALUE"
            raise click.BadParameter(msg, param_hint="-p")
        try:
            out[key.replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = raw  # plain text: ids, WKT
    return out


_NOT_FROM_THE_CLI = frozenset({"points", "weight_column"})  # a GeoDataFrame (and its column): the Python API's
_GEOMETRY_PARAMS = frozenset({"region", "line"})


def _params_of(operation: str) -> list[inspect.Parameter]:
    """Return the parameters ``-p`` can give the edit (all but the grids and the points)."""
    params = list(inspect.signature(EDIT_OPERATIONS[operation]).parameters.values())[1:]
    return [p for p in params if p.name not in _NOT_FROM_THE_CLI]


def _operations_help() -> str:
    lines = ["\b", "Operations and their -p parameters (* required; geometries as WKT in the grids' CRS):"]
    for name in sorted(EDIT_OPERATIONS):
        shown = [
            f"{p.name}*" if p.default is inspect.Parameter.empty else f"{p.name}={json.dumps(p.default)}"
            for p in _params_of(name)
        ]
        lines.append(f"  {name}: {', '.join(shown)}")
    return "\n".join(lines)


def _check_params(operation: str, params: dict[str, Any]) -> None:
    """Refuse (exit 2) unknown or missing parameters and geometries that are not WKT, all at once."""
    accepted = _params_of(operation)
    names = [p.name for p in accepted]
    problems = []
    unknown = sorted(set(params) - set(names))
    if unknown:
        problems.append(f"{operation} takes no {', '.join(unknown)}; it takes {', '.join(names)}")
    missing = [p.name for p in accepted if p.default is inspect.Parameter.empty and p.name not in params]
    if missing:
        problems.append(f"{operation} needs {' '.join(f'-p {m}=...' for m in missing)}")
    for key in sorted(_GEOMETRY_PARAMS & set(params)):
        value = params[key]
        try:
            if not isinstance(value, str):
                raise TypeError(type(value).__name__)
            shapely.from_wkt(value)
        except (TypeError, shapely.errors.ShapelyError) as err:
            problems.append(
                f'{key}={value!r} is not WKT ({err}): write e.g. "{key}=LINESTRING (117.201 39.1, 117.209 39.11)"'
            )
    if problems:
        raise click.BadParameter("; ".join(problems), param_hint="-p")


@main.group()
def plan() -> None:
    r"""Redraw grids in a draft plan; the network changes only on commit.

    \b
      geogrid plan new demo.gpkg --name "split G01"
      geogrid plan edit demo.gpkg p1 split_grid -p grid_id=D01-S01-C01-G01 \
          -p "line=LINESTRING (117.14214 39.1860, 117.14214 39.1875)" --expect 0
      geogrid plan diff demo.gpkg p1
      geogrid plan commit demo.gpkg p1 --expect 1
    """


@plan.command("new")
@click.argument("store")
@click.option("--name", required=True, help="a display name for the plan")
@author_option
@handle_errors
def new_cmd(store: str, name: str, author: str | None) -> None:
    """Start a plan: a draft copy of the current network."""
    info = new_plan(open_store(store), name, author=author or _me())
    click.echo(f"{info.plan_id} (version {info.version}, from network version {info.base_version})")


@plan.command("list")
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@handle_errors
def list_cmd(store: str, as_json: bool) -> None:
    """List the plans of a store."""
    df = list_plans(open_store(store))
    if as_json:
        click.echo(json.dumps(df.to_dict(orient="records"), ensure_ascii=False))
    elif df.empty:
        click.echo("no plans")
    else:
        click.echo(df[["plan_id", "status", "version", "base_version", "created_by", "name"]].to_string(index=False))


@plan.command("edit", epilog=_operations_help())
@click.argument("store")
@click.argument("plan_id")
@click.argument("operation", type=click.Choice(sorted(EDIT_OPERATIONS)))
@click.option("-p", "--param", "params", multiple=True, help="KEY=VALUE (JSON, or text; geometries as WKT)")
@expect_option
@author_option
@handle_errors
def edit_cmd(
    store: str, plan_id: str, operation: str, params: tuple[str, ...], expected: int | None, author: str | None
) -> None:
    """Apply one edit to a plan (refused, changing nothing, if it would break the grid)."""
    parsed = _parse_params(params)
    _check_params(operation, parsed)
    info, cs = edit_plan(
        open_store(store),
        plan_id,
        operation,
        author=author or _me(),
        expected_version=expected,
        **parsed,
    )
    click.echo(f"{cs.summary()}; plan {info.plan_id} is now at version {info.version}")


@plan.command("diff")
@click.argument("store")
@click.argument("plan_id")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@handle_errors
def diff_cmd(store: str, plan_id: str, as_json: bool) -> None:
    """Show what committing a plan would change."""
    d = diff_plan(open_store(store), plan_id)
    if as_json:
        payload = {
            "summary": d.summary,
            "grids": json.loads(d.grids.to_json(orient="records")),
            "area_moved": json.loads(d.area_moved.to_json(orient="records")),
            "incidents": json.loads(d.incidents.to_json(orient="records")),
            "cameras": json.loads(d.cameras.to_json(orient="records")),
        }
        click.echo(json.dumps(payload, ensure_ascii=False))
        return
    s = d.summary
    click.echo(
        f"{s['added']} added, {s['removed']} removed, {s['changed']} changed; "
        f"{s['area_moved_m2']:,.0f} m² of basic grids move; {s['households_moved']:,} households, "
        f"{s['incidents_moved']:,} incidents, {s['cameras_moved']:,} cameras change basic grid"
    )
    if len(d.area_moved):
        click.echo("\n" + d.area_moved.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))


@plan.command("commit")
@click.argument("store")
@click.argument("plan_id")
@expect_option
@author_option
@handle_errors
def commit_cmd(store: str, plan_id: str, expected: int | None, author: str | None) -> None:
    """Make a plan the current network (a new version; the old one is kept)."""
    v = commit_plan(open_store(store), plan_id, author=author or _me(), expected_version=expected)
    click.echo(f"network version {v.version}, valid from {v.valid_from}")


@plan.command("discard")
@click.argument("store")
@click.argument("plan_id")
@expect_option
@author_option
@handle_errors
def discard_cmd(store: str, plan_id: str, expected: int | None, author: str | None) -> None:
    """Discard a plan (the network is untouched; the log keeps its history)."""
    info = discard_plan(open_store(store), plan_id, author=author or _me(), expected_version=expected)
    click.echo(f"{info.plan_id} discarded")
