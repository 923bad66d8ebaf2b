"""Plans and versions: draft redraws of the grid network, their impact, and the network's history.

A *plan* is a draft copy of the grid network that planners edit with the operations of
:mod:`geogrid.edits`; the current network is untouched until the plan is committed.
Every plan carries a version number. An edit names the version it was based on and is
refused with :class:`~layers.errors.EditConflict` (changing nothing) if someone else
changed the plan in between, so no edit is ever lost when several planners work at once
(retry: reload, redo, save). Every change is appended to the store's edit log.

Committing a plan makes it the current network as a new *version*; every version is
kept with its validity period, so :func:`grids_at` gives the grids that existed when an
incident was reported.

Examples
--------
>>> import tempfile, pathlib, geopandas as gpd, shapely
>>> from layers.store import GeoPackageStore
>>> store = GeoPackageStore(pathlib.Path(tempfile.mkdtemp()) / "s.gpkg")
>>> g = gpd.GeoDataFrame({"grid_id": ["D"], "parent_id": [None], "level": [0], "name": ["old"]},
...     geometry=[shapely.box(117.2, 39.1, 117.22, 39.11)], crs="EPSG:4326")
>>> store.write({"grids": g})
>>> plan = new_plan(store, "rename", author="li")
>>> plan, cs = edit_plan(store, plan.plan_id, "update_attributes", expected_version=0, author="li",
...                      grid_id="D", values={"name": "new"})
>>> commit_plan(store, plan.plan_id, expected_version=plan.version, author="li").version
2
>>> store.read("grids").name.tolist()
['new']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from geogrid.edits import EDIT_OPERATIONS, ChangeSet, apply_edit
from geogrid.hierarchy import check_grids
from layers.crs import metric_crs
from layers.errors import Problem, TopologyError, ValidationError
from layers.schema import WORKLOAD_COLUMNS
from layers.store import PlanInfo, Store, VersionInfo

__all__ = [
    "PLAN_NAME_MAX",
    "PlanDiff",
    "PlanInfo",
    "VersionInfo",
    "commit_plan",
    "diff_grids",
    "diff_plan",
    "discard_plan",
    "edit_plan",
    "grids_at",
    "list_plans",
    "new_plan",
    "plan_log",
]


def new_plan(store: Store, name: str, *, author: str) -> PlanInfo:
    """Start a plan: a draft copy of the current grid network (version 0).

    Parameters
    ----------
    store
        The store holding the network.
    name
        A display name ("split 望海楼 C03").
    author
        Who starts it (written to the edit log).

    Returns
    -------
    PlanInfo
        The plan's record.

    Raises
    ------
    ValidationError
        If ``name`` is empty, only white space, or longer than 200 characters (the one check
        of plan names: the CLI and the API both come through here).
    """
    _check_plan_name(name)
    return store.create_plan(name, author=author)


PLAN_NAME_MAX = 200
"""The longest plan name accepted, in characters."""


def _check_plan_name(name: object) -> None:
    """Raise ValidationError unless ``name`` is a display name: non-blank text of at most 200 characters."""
    if not isinstance(name, str) or not name.strip():
        msg = f"plan name {name!r} is empty: give the plan a name people will recognise, e.g. 'split 望海楼 C03'"
    elif len(name) > PLAN_NAME_MAX:
        msg = f"plan name has {len(name)} characters: shorten it to {PLAN_NAME_MAX} or fewer"
    else:
        return
    source = "plan name"
    raise ValidationError(source, [Problem("bad_plan_name", msg)])


def list_plans(store: Store) -> pd.DataFrame:
    """List the plans of a store (one row each, oldest first).

    Returns
    -------
    pandas.DataFrame
        ``plan_id``, ``name``, ``status``, ``version``, ``base_version``, ``created_by``,
        ``created_at``, ``updated_at``.
    """
    cols = list(PlanInfo.__dataclass_fields__)
    return pd.DataFrame([p.__dict__ for p in store.plans()], columns=cols)


def edit_plan(
    store: Store,
    plan_id: str,
    operation: str,
    *,
    author: str,
    expected_version: int | None = None,
    **params: Any,
) -> tuple[PlanInfo, ChangeSet]:
    """Apply one edit (see :data:`geogrid.edits.EDIT_OPERATIONS`) to a plan.

    Parameters
    ----------
    store, plan_id
        The plan.
    operation
        ``transfer_area``, ``reshape_boundary``, ``split_grid``, ``merge_grids``,
        ``reparent`` or ``update_attributes``.
    author
        Who edits (written to the edit log).
    expected_version
        The plan version the edit is based on (what the planner was looking at). The
        default is the version read now; either way a concurrent change in between is a
        conflict, never a lost update.
    **params
        The operation's parameters (geometries may be WKT in the grids' CRS).

    Returns
    -------
    (PlanInfo, ChangeSet)
        The plan's new record and what changed.

    Raises
    ------
    EditConflict
        The plan is not at ``expected_version`` (or not open): nothing was changed.
    TopologyError
        The edit would break the grid: nothing was changed.
    """
    if operation not in EDIT_OPERATIONS:
        msg = f"unknown edit operation {operation!r}; choose one of {', '.join(EDIT_OPERATIONS)}"
        raise ValueError(msg)
    grids, info = store.read_plan(plan_id)
    base = info.version if expected_version is None else int(expected_version)
    if info.version != base:
        from layers.errors import EditConflict

        msg = (
            f"plan {plan_id!r} is at version {info.version}, but the edit was based on version {base}: "
            "someone else changed it. Nothing was changed; reload the plan and redo the edit"
        )
        raise EditConflict(msg, expected=base, actual=info.version)
    new, cs = apply_edit(grids, operation, **params)
    logged = {**cs.parameters, "summary": cs.summary()}
    saved = store.save_plan(plan_id, new, expected_version=base, author=author, operation=operation, parameters=logged)
    return saved, cs


def discard_plan(store: Store, plan_id: str, *, author: str, expected_version: int | None = None) -> PlanInfo:
    """Discard an open plan (the network is untouched; the log keeps its history).

    Raises
    ------
    EditConflict
        The plan moved on since ``expected_version``, or is not open.
    """
    v = store.plan_info(plan_id).version if expected_version is None else int(expected_version)
    return store.discard_plan(plan_id, expected_version=v, author=author)


def commit_plan(store: Store, plan_id: str, *, author: str, expected_version: int | None = None) -> VersionInfo:
    """Make a plan the current network, as a new version (the old one stays, with its period).

    The plan's grids are checked with :func:`~geogrid.hierarchy.check_grids` first.

    Raises
    ------
    TopologyError
        The plan's grids are not sound (nothing was committed).
    EditConflict
        The plan moved on since ``expected_version``, or another plan was committed since
        this one was started (start a new plan from the current network).
    """
    grids, info = store.read_plan(plan_id)
    v = info.version if expected_version is None else int(expected_version)
    result = check_grids(grids)
    if not result.sound:
        msg = (
            f"plan {plan_id!r} has {len(result.findings)} finding(s) and cannot be committed; first: "
            f"{result.findings['message'].iloc[0]}"
        )
        raise TopologyError(msg, result.findings)
    return store.commit_plan(plan_id, expected_version=v, author=author)


def plan_log(store: Store, plan_id: str | None = None) -> pd.DataFrame:
    """Return the edit log (of one plan, or all): who, when, operation, parameters, versions."""
    return store.edit_log(plan_id)


def _parse_time(t: object) -> datetime:
    ts = pd.Timestamp(t)
    if ts.tzinfo is None:
        msg = f"timestamp {t!r} has no time zone: give one (e.g. '2025-03-01T08:00+08:00')"
        raise ValueError(msg)
    return ts.to_pydatetime().astimezone(UTC)


def grids_at(store: Store, timestamp: object) -> gpd.GeoDataFrame:
    """Return the grid network that was current at ``timestamp`` (timezone-aware).

    A version is current from its ``valid_from`` (inclusive) to its ``valid_to``
    (exclusive); the first version has no start, the current one no end.

    Examples
    --------
    >>> import tempfile, pathlib, geopandas as gpd, shapely
    >>> from layers.store import GeoPackageStore
    >>> store = GeoPackageStore(pathlib.Path(tempfile.mkdtemp()) / "s.gpkg")
    >>> g = gpd.GeoDataFrame({"grid_id": ["D"], "parent_id": [None], "level": [0]},
    ...     geometry=[shapely.box(117.2, 39.1, 117.22, 39.11)], crs="EPSG:4326")
    >>> store.write({"grids": g})
    >>> grids_at(store, "2020-01-01T00:00Z").grid_id.tolist()
    ['D']
    """
    t = _parse_time(timestamp)
    for v in store.versions():
        start = None if v.valid_from is None else _parse_time(v.valid_from)
        end = None if v.valid_to is None else _parse_time(v.valid_to)
        if (start is None or start <= t) and (end is None or t < end):
            return store.read_version(v.version)
    return store.read("grids")


# -- diff ---------------------------------------------------------------------------------
@dataclass
class PlanDiff:
    """The impact of a plan against the current network.

    Attributes
    ----------
    grids
        One row per grid added, removed or changed: ``grid_id``, ``level``, ``status``,
        ``parent_before``/``parent_after``, ``area_before_m2``/``area_after_m2``, workloads
        before/after, ``incidents_before``/``incidents_after`` (basic grids).
    area_moved
        ``level``, ``from_id``, ``to_id``, ``area_m2``: area that changes grid.
    incidents, cameras
        Points that would change basic grid: id, ``grid_before``, ``grid_after``.
    summary
        Counts and totals (m², households moved, incidents and cameras moved).
    """

    grids: pd.DataFrame
    area_moved: pd.DataFrame
    incidents: pd.DataFrame
    cameras: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)

    def impact_table(self) -> pd.DataFrame:
        """Return the changed basic grids with workload and incident deltas, the largest change first."""
        g = self.grids
        if g.empty:
            return g
        fin = g[g["level"] == g["level"].max()].copy()
        fin["area_delta_m2"] = fin["area_after_m2"].fillna(0) - fin["area_before_m2"].fillna(0)
        for col in [*WORKLOAD_COLUMNS, "incidents"]:
            if f"{col}_before" in fin:
                fin[f"{col}_delta"] = fin[f"{col}_after"].fillna(0) - fin[f"{col}_before"].fillna(0)
        return fin.sort_values("area_delta_m2", key=np.abs, ascending=False).reset_index(drop=True)


def _points_in(points: np.ndarray, cells: gpd.GeoDataFrame) -> np.ndarray:
    """Id of the cell containing each point (None outside); cells do not overlap."""
    out = np.full(len(points), None, dtype=object)
    if len(points) == 0 or len(cells) == 0:
        return out
    tree = shapely.STRtree(np.asarray(cells.geometry.array, dtype=object))
    p, c = tree.query(points, predicate="intersects")
    out[p] = cells["grid_id"].to_numpy(dtype=object)[c]
    return out


def _moved_points(
    layer: gpd.GeoDataFrame | None, id_col: str, before: gpd.GeoDataFrame, after: gpd.GeoDataFrame
) -> pd.DataFrame:
    cols = [id_col, "grid_before", "grid_after"]
    if layer is None or layer.empty or (before.empty and after.empty):
        return pd.DataFrame(columns=cols)
    region = np.concatenate([before.geometry.array, after.geometry.array])
    x0, y0, x1, y1 = shapely.total_bounds(region)
    xy = shapely.get_coordinates(layer.geometry.array)
    if len(xy) != len(layer):
        return pd.DataFrame(columns=cols)
    near = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
    pts = np.asarray(layer.geometry.array, dtype=object)[near]
    gb, ga = _points_in(pts, before), _points_in(pts, after)
    inside = np.array([b is not None or a is not None for b, a in zip(gb, ga, strict=True)], dtype=bool)
    # A point in neither changed set before or after stays where it was; only the changed cells matter.
    moved = inside & (gb != ga)
    ids = layer[id_col].to_numpy(dtype=object)[near]
    return pd.DataFrame({id_col: ids[moved], "grid_before": gb[moved], "grid_after": ga[moved]}, columns=cols)


_RENODE_TOLERANCE_M2 = 1e-4
"""Grids whose point sets differ by less than this (m²) are the same: an edit only added vertices."""


def _same_area(before: np.ndarray, after: np.ndarray, crs: Any) -> np.ndarray:
    """Tell, per pair, whether two geometries cover the same ground (vertices inserted on edges only).

    An edit nodes its line into the neighbours' edges (``ChangeSet.renoded``); the inserted
    vertex lies on the edge only up to rounding, so exact equality would call those grids
    changed. The symmetric difference is measured in local metres (degrees scaled at the
    pair's latitude: reprojecting a 1e-9° sliver would bend it into square millimetres).
    """
    same = np.asarray(shapely.equals(before, after), dtype=bool)
    todo = np.flatnonzero(~same)
    if todo.size == 0:
        return same
    sym = shapely.symmetric_difference(before[todo], after[todo])
    area = shapely.area(sym)
    if crs is not None and gpd.GeoSeries(crs=crs).crs.is_geographic:
        lat = shapely.get_coordinates(shapely.centroid(before[todo]))[:, 1]
        area = area * 111_320.0**2 * np.cos(np.radians(lat))
    same[todo] = area < _RENODE_TOLERANCE_M2
    return same


def diff_grids(
    before: gpd.GeoDataFrame,
    after: gpd.GeoDataFrame,
    *,
    incidents: gpd.GeoDataFrame | None = None,
    cameras: gpd.GeoDataFrame | None = None,
) -> PlanDiff:
    """Compare two grid networks (see :func:`diff_plan`)."""
    b = before.set_index(before["grid_id"].astype(str))
    a = after.set_index(after["grid_id"].astype(str))
    common = b.index.intersection(a.index)
    status: dict[str, str] = dict.fromkeys(sorted(set(b.index) - set(a.index)), "removed")
    status.update(dict.fromkeys(sorted(set(a.index) - set(b.index)), "added"))
    bc, ac = b.loc[common], a.loc[common]
    differs = ~_same_area(
        np.asarray(bc.geometry.array, dtype=object), np.asarray(ac.geometry.array, dtype=object), before.crs
    )
    for c in ("parent_id", "name", "level_name", *WORKLOAD_COLUMNS):
        if c in b.columns and c in a.columns:
            x, y = bc[c].astype(object), ac[c].astype(object)
            both_na = x.isna().to_numpy() & y.isna().to_numpy()
            differs |= ~both_na & ~(x.fillna("\x00").to_numpy() == y.fillna("\x00").to_numpy())
    status.update(dict.fromkeys(common[differs], "changed"))
    crs = before.crs
    lon, lat = shapely.get_coordinates(shapely.centroid(shapely.union_all(before.geometry.array[:1])))[0]
    metric = metric_crs(lon, lat)
    touched = list(status)
    tb = b.loc[[g for g in touched if g in b.index]]
    ta = a.loc[[g for g in touched if g in a.index]]
    area_b = tb.geometry.to_crs(metric).area if len(tb) else pd.Series(dtype=float)
    area_a = ta.geometry.to_crs(metric).area if len(ta) else pd.Series(dtype=float)
    rows = []
    for g in touched:
        src = b if g in b.index else a
        row: dict[str, Any] = {
            "grid_id": g,
            "level": int(src["level"][g]),
            "status": status[g],
            "parent_before": b["parent_id"][g] if g in b.index else None,
            "parent_after": a["parent_id"][g] if g in a.index else None,
            "area_before_m2": float(area_b[g]) if g in area_b.index else np.nan,
            "area_after_m2": float(area_a[g]) if g in area_a.index else np.nan,
        }
        for c in WORKLOAD_COLUMNS:
            if c in b.columns or c in a.columns:
                row[f"{c}_before"] = b[c][g] if g in b.index and c in b.columns else pd.NA
                row[f"{c}_after"] = a[c][g] if g in a.index and c in a.columns else pd.NA
        rows.append(row)
    grids = pd.DataFrame(rows)
    # area moved between grids of each level
    moved_rows = []
    levels = sorted({int(v) for v in pd.to_numeric(before["level"])} | {int(v) for v in pd.to_numeric(after["level"])})
    for lv in levels:
        ob = tb[pd.to_numeric(tb["level"]) == lv] if len(tb) else tb
        na = ta[pd.to_numeric(ta["level"]) == lv] if len(ta) else ta
        if ob.empty or na.empty:
            continue
        tree = shapely.STRtree(np.asarray(na.geometry.array, dtype=object))
        i, j = tree.query(np.asarray(ob.geometry.array, dtype=object), predicate="intersects")
        src_ids, dst_ids = ob.index.to_numpy()[i], na.index.to_numpy()[j]
        keep = src_ids != dst_ids
        if not keep.any():
            continue
        inter = shapely.intersection(ob.geometry.array[i[keep]], na.geometry.array[j[keep]])
        area = gpd.GeoSeries(inter, crs=crs).to_crs(metric).area.to_numpy()
        for s, d, ar in zip(src_ids[keep], dst_ids[keep], area, strict=True):
            if ar >= 0.01:
                moved_rows.append({"level": lv, "from_id": s, "to_id": d, "area_m2": float(ar)})
    area_moved = pd.DataFrame(moved_rows, columns=["level", "from_id", "to_id", "area_m2"])
    fin = max(levels) if levels else 0
    fb = tb[pd.to_numeric(tb["level"]) == fin].reset_index(drop=True) if len(tb) else tb
    fa = ta[pd.to_numeric(ta["level"]) == fin].reset_index(drop=True) if len(ta) else ta
    fb = fb.assign(grid_id=fb["grid_id"].astype(str)) if len(fb) else fb
    fa = fa.assign(grid_id=fa["grid_id"].astype(str)) if len(fa) else fa
    inc = _moved_points(incidents, "incident_id", fb, fa)
    cam = _moved_points(cameras, "camera_id", fb, fa)
    if incidents is not None and len(grids):
        pts = np.asarray(incidents.geometry.array, dtype=object)
        for col, cells in (("incidents_before", fb), ("incidents_after", fa)):
            owner = pd.Series(_points_in(pts, cells)).value_counts()
            grids[col] = [
                int(owner.get(g, 0)) if lvl == fin else pd.NA
                for g, lvl in zip(grids["grid_id"], grids["level"], strict=True)
            ]
    hh_moved = 0
    if "households_before" in grids and len(grids):
        fin_rows = grids[grids["level"] == fin]
        delta = pd.to_numeric(fin_rows["households_after"], errors="coerce").fillna(0) - pd.to_numeric(
            fin_rows["households_before"], errors="coerce"
        ).fillna(0)
        hh_moved = int(delta[delta > 0].sum())
    counts = grids["status"].value_counts() if len(grids) else pd.Series(dtype=int)
    summary = {
        "added": int(counts.get("added", 0)),
        "removed": int(counts.get("removed", 0)),
        "changed": int(counts.get("changed", 0)),
        "area_moved_m2": float(area_moved.loc[area_moved["level"] == fin, "area_m2"].sum()) if len(area_moved) else 0.0,
        "households_moved": hh_moved,
        "incidents_moved": len(inc),
        "cameras_moved": len(cam),
        "metric_crs": metric.to_string(),
    }
    return PlanDiff(grids, area_moved, inc, cam, summary)


def diff_plan(store: Store, plan_id: str, *, points: bool = True) -> PlanDiff:
    """Compare a plan with the current network: what a commit would change.

    Parameters
    ----------
    store, plan_id
        The plan.
    points
        Also find the incidents and cameras that would change basic grid (when the
        store has those layers).

    Returns
    -------
    PlanDiff
        Grids added / removed / changed, area moved between grids (per level),
        incidents and cameras that would change grid, households moved, and a summary.
    """
    after, _ = store.read_plan(plan_id)
    before = store.read("grids")
    names = store.layer_names()
    incidents = store.read("incidents") if points and "incidents" in names else None
    cameras = store.read("cameras") if points and "cameras" in names else None
    return diff_grids(before, after, incidents=incidents, cameras=cameras)
