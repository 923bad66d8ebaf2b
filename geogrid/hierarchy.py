"""Hierarchy and topology checks of a grid layer (every level in one call).

:func:`check_grids` reports, as data, everything that breaks the rules of a grid
hierarchy ("boundaries coincide, levels are clear; seamless, full-area coverage"):

==================  ===============================================================
kind                what it means
==================  ===============================================================
invalid             an invalid polygon, with ``shapely.is_valid_reason``; the other
                    checks run on a ``make_valid`` copy
overlap             two grids of one level share area (one finding per pair)
gap                 area of the jurisdiction no grid of a level covers (enclaves and
                    exempt areas are not gaps)
edge_mismatch       edges that nearly but not exactly coincide: slivers narrower than
                    the gap width, T-junctions (``shapely.coverage_invalid_edges``)
outside_parent      the part of a grid outside its parent
parent_not_tiled    the part of a parent its children do not cover (naming children of
                    other parents that straddle into it)
hierarchy           parent_id missing, unknown or on the wrong level, cycles, a level
                    with no grids
==================  ===============================================================

One defect may show under several kinds: a vertex moved 2 m makes an overlap on one
side, a sliver gap on the other and mismatched edges on both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from geogrid import _hierarchy_impl as _impl
from layers.crs import ensure_crs, metric_crs, to_crs_object
from layers.errors import Problem, ValidationError
from layers.schema import STORAGE_CRS
from layers.validate import count_invalid_at_door

__all__ = ["FINDING_KINDS", "REPORTED_PROBLEM_KINDS", "CheckResult", "check_grids"]

FINDING_KINDS: tuple[str, ...] = _impl.KINDS
"""Every finding kind, in the order findings are sorted."""

REPORTED_PROBLEM_KINDS = frozenset(
    {
        "top_level_with_parent",
        "missing_parent",
        "unknown_parent",
        "parent_wrong_level",
        "parent_cycle",
        "empty_geometry",
        "missing_geometry",
    }
)
"""Door problems that :func:`check_grids` reports as findings instead of raising."""

_COLUMNS = ["kind", "level", "grid_ids", "area_m2", "length_m", "message", "geometry"]


@dataclass
class CheckResult:
    """What :func:`check_grids` found.

    Attributes
    ----------
    findings
        GeoDataFrame in EPSG:4326 with columns ``kind``, ``level``, ``grid_ids`` (tuple
        of str), ``area_m2`` (polygonal findings; NaN otherwise), ``length_m``
        (``edge_mismatch``; NaN otherwise), ``message``, ``geometry``; sorted by kind
        (in :data:`FINDING_KINDS` order), level, largest area/length first, ids.
    summary
        ``sound``, ``grids`` (count), ``levels`` (grids per level), ``findings``
        (count), ``counts`` (kind -> level -> count), ``area_m2`` (kind -> level -> total
        area), ``metric_crs``, ``gap_width_m``, ``min_area_m2``.
    """

    findings: gpd.GeoDataFrame
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def sound(self) -> bool:
        """True when there is no finding at all."""
        return bool(self.summary.get("sound", len(self.findings) == 0))

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON contract: ``{"sound", "summary", "findings": [...]}``, geometry as GeoJSON.

        Levels become string keys (JSON objects need them); NaN becomes ``None``.
        """
        f = self.findings
        geojson = shapely.to_geojson(np.asarray(f.geometry.array, dtype=object))
        import json

        rows = [
            {
                "kind": k,
                "level": int(lv),
                "grid_ids": list(ids),
                "area_m2": None if math.isnan(a) else float(a),
                "length_m": None if math.isnan(ln) else float(ln),
                "message": m,
                "geometry": None if g is None else json.loads(g),
            }
            for k, lv, ids, a, ln, m, g in zip(
                f["kind"], f["level"], f["grid_ids"], f["area_m2"], f["length_m"], f["message"], geojson, strict=True
            )
        ]
        return {"sound": self.sound, "summary": _jsonable(self.summary), "findings": rows}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _as_geometry(value: object, crs: object, what: str) -> shapely.Geometry | None:
    """Turn an outline / exempt argument into one geometry in ``crs``."""
    if value is None:
        return None
    if isinstance(value, gpd.GeoDataFrame):
        value = value.geometry
    if isinstance(value, gpd.GeoSeries):
        if value.crs is None:
            msg = f"{what} has no CRS: set it with .set_crs(...) (the grids are in {crs})"
            from layers.errors import CRSError

            raise CRSError(msg)
        value = value.to_crs(crs).to_numpy()
    geoms = np.atleast_1d(np.asarray(value, dtype=object))
    if not all(isinstance(g, shapely.Geometry) for g in geoms):
        msg = f"{what} must be a shapely geometry, a GeoSeries or a GeoDataFrame, got {type(value).__name__}"
        raise TypeError(msg)
    geoms = _impl.polygonal(shapely.make_valid(geoms))
    return shapely.union_all(geoms)


def _door(grids: gpd.GeoDataFrame, source: str) -> int | None:
    """Raise the door problems that make the layer unusable; the rest become findings.

    Returns the number of invalid polygons when the layer passed the door (else None).
    """
    try:
        # The check reports the hierarchy itself (hierarchy_findings): the door skips it.
        return count_invalid_at_door(grids, "grids", source=source, hierarchy=False)
    except ValidationError as err:
        fatal: list[Problem] = [p for p in err.problems if p.kind not in REPORTED_PROBLEM_KINDS]
        if fatal:
            raise ValidationError(err.source, fatal) from err
        return None


def check_grids(
    grids: gpd.GeoDataFrame,
    *,
    gap_width_m: float = 1.0,
    min_area_m2: float = 0.01,
    outline: object = None,
    exempt: object = None,
    metric_crs: object = None,
    levels: Iterable[int] | None = None,
    progress: Callable[[str], None] | None = None,
    method: str = "fast",
) -> CheckResult:
    """Check every level of a grid layer and how the levels nest.

    Parameters
    ----------
    grids
        A grid layer (all levels): ``grid_id``, ``parent_id``, ``level`` and polygons,
        in any CRS (a raw frame is fine: hierarchy problems and empty geometries are
        reported as findings, not raised).
    gap_width_m
        Edges of neighbours closer than this without coinciding are ``edge_mismatch``;
        gaps narrower than this are called slivers.
    min_area_m2
        Overlaps, gaps and nesting leaks smaller than this are ignored (rounding noise).
    outline
        The jurisdiction, if it is not the union of level 0 (a shapely geometry in the
        grids' CRS, or a GeoSeries / GeoDataFrame with a CRS). Its holes are enclaves.
    exempt
        Areas that need no grid (a lake, a military zone): never reported as gaps.
    metric_crs
        The CRS in which areas and lengths are measured; by default the CGCS2000
        Gauss–Krüger zone (in China) or UTM zone of the data's centre.
    levels
        Report only these levels (default: all). Hierarchy findings are always reported.
    progress
        Called with a short label after each step (for progress bars).
    method
        ``"fast"`` (default), or ``"reference"`` to compute the area findings (``invalid``,
        ``overlap``, ``gap``, ``outside_parent``, ``parent_not_tiled``) with
        :func:`geogrid.reference.check_grids` instead: plain pairwise GEOS calls, slow,
        for double-checking a verdict. ``edge_mismatch`` and ``hierarchy`` findings are
        computed the same way by both.

    Returns
    -------
    CheckResult
        ``findings`` (GeoDataFrame, EPSG:4326) and ``summary``.

    Raises
    ------
    CRSError
        If ``grids`` (or a GeoSeries outline / exempt) has no CRS.
    ValidationError
        If the layer is unusable for reasons other than hierarchy problems (missing
        columns, duplicate ids, wrong geometry types, NaN coordinates...).

    Notes
    -----
    Topology is computed in the grids' own coordinates scaled to metres around their
    centre (an affine map, so exact nesting stays exact); areas and lengths are then
    measured in ``metric_crs``. The work is near-linear in the number of grids:
    GEOS overlay runs only where the coverage validation or an area sum points.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame(
    ...     {"grid_id": ["D", "a", "b"], "parent_id": [None, "D", "D"], "level": [0, 1, 1]},
    ...     geometry=[shapely.box(117.2, 39.1, 117.22, 39.11), shapely.box(117.2, 39.1, 117.21, 39.11),
    ...               shapely.box(117.21, 39.1, 117.219, 39.11)], crs="EPSG:4326")
    >>> result = check_grids(g)
    >>> result.sound, result.findings[["kind", "level", "grid_ids"]].values.tolist()
    (False, [['gap', 1, ('b',)], ['parent_not_tiled', 0, ('D',)]])
    >>> round(result.findings.area_m2.iloc[0] / 1000)  # ~86 m x 1.1 km
    96
    """
    crs = ensure_crs(grids.crs, what="grids")
    if method not in ("fast", "reference"):
        msg = f"method must be 'fast' or 'reference', got {method!r}"
        raise ValueError(msg)
    n_invalid = _door(grids, source="grids")
    n = len(grids)
    ids = grids["grid_id"].astype(str).to_numpy(dtype=object)
    parent_s = grids["parent_id"].astype("string").str.strip()
    parents = parent_s.mask(parent_s == "").to_numpy(dtype=object, na_value=None)
    level = pd.to_numeric(grids["level"]).to_numpy(dtype=np.int64)
    raw = np.asarray(grids.geometry.array, dtype=object)
    report = None if levels is None else {int(v) for v in levels}
    tick = progress or (lambda _label: None)

    usable = ~(shapely.is_missing(raw) | shapely.is_empty(raw))
    finite_bounds = shapely.total_bounds(raw[usable]) if usable.any() else np.array([0.0, 0.0, 0.0, 0.0])
    metric = None if metric_crs is None else to_crs_object(metric_crs, what="metric_crs")
    frame = _impl.Frame.build(crs, finite_bounds, metric, _metric_crs_of)
    out = _impl.Findings(frame)
    outline_g = _as_geometry(outline, crs, "outline")
    exempt_g = _as_geometry(exempt, crs, "exempt")

    # 1. invalid and empty geometries (reported; the other checks use a repaired copy)
    for r in np.flatnonzero(~usable):
        out.add("invalid", level[r], (ids[r],), f"grid {ids[r]!r} has no geometry (empty)", None)
    fixed = raw.copy()
    valid = np.ones(n, dtype=bool)
    if n_invalid != 0:  # the door counted them already when it passed
        valid[usable] = shapely.is_valid(raw[usable])
    bad = np.flatnonzero(~valid)
    if bad.size:
        reasons = shapely.is_valid_reason(raw[bad])
        fixed[bad] = _impl.polygonal(shapely.make_valid(raw[bad]))
        for r, reason in zip(bad, reasons, strict=True):
            if report is None or int(level[r]) in report:
                where = _impl.reason_point(str(reason))
                msg = f"grid {ids[r]!r} is invalid: {reason}; the other checks use a repaired copy (make_valid)"
                out.add("invalid", level[r], (ids[r],), msg, where if where is not None else raw[r])
    usable &= ~(shapely.is_empty(fixed) | shapely.is_missing(fixed))
    local = np.empty(n, dtype=object)
    local[usable] = frame.local(_impl.single_parts(fixed[usable]))
    tick("validity")

    # 2. the hierarchy itself
    parent_row = _impl.hierarchy_findings(ids, parents, level, raw, out)
    tick("hierarchy")

    # 3. each level as a coverage; the levels nested
    present = [int(v) for v in np.unique(level[usable])]
    built: dict[int, _impl.Level] = {}
    gw, ma = float(gap_width_m), float(min_area_m2)
    outline_l = None if outline_g is None else frame.local(np.array([outline_g], dtype=object))[0]
    exempt_l = None if exempt_g is None else frame.local(np.array([exempt_g], dtype=object))[0]
    jurisdiction = None
    for lv in present:
        rows = np.flatnonzero(usable & (level == lv))
        cur = _impl.build_level(lv, rows, ids, local, gw)
        built[lv] = cur
        above = built.get(lv - 1)
        known = None
        if above is not None:
            fam = _impl.families(above, cur, parent_row)
            known = (fam, _impl.exactly_tiled(above, cur, fam))  # the union and the nesting pass reuse both
        _impl.unite(cur, above, known)
        if jurisdiction is None:
            jurisdiction = _impl.jurisdiction_of(cur, outline_l, gw)
            rim = shapely.boundary(jurisdiction)
        wanted = report is None or lv in report
        if wanted:
            _impl.edge_findings(cur, gw, out, rim)
            _impl.overlap_findings(cur, ma, out)
            _impl.gap_findings(cur, jurisdiction, exempt_l, gw, ma, out)
        tick(f"level {lv}")
        if above is not None and (wanted or (lv - 1) in report):  # type: ignore[operator]
            _impl.nesting_findings(
                above,
                cur,
                parent_row,
                exempt_l,
                ma,
                out,
                report_outside=wanted,
                report_untiled=report is None or (lv - 1) in report,
                known=known,
            )
        tick(f"nesting {lv - 1}/{lv}")
    if method == "reference":
        _use_reference(out, grids, gw, ma, outline_g, exempt_g, frame)
    findings = _frame_of(out, report)
    summary = _summarise(findings, level, frame, gw, ma)
    return CheckResult(findings, summary)


_AREA_KINDS = frozenset({"invalid", "overlap", "gap", "outside_parent", "parent_not_tiled"})


def _use_reference(
    out: _impl.Findings,
    grids: gpd.GeoDataFrame,
    gap_width: float,
    min_area: float,
    outline: shapely.Geometry | None,
    exempt: shapely.Geometry | None,
    frame: _impl.Frame,
) -> None:
    """Replace the fast path's area findings in ``out`` by the reference's."""
    from geogrid._reference_check import check_grids_reference

    keep = [i for i, k in enumerate(out.kind) if k not in _AREA_KINDS]
    cols = ("kind", "level", "grid_ids", "area_m2", "length_m", "message", "geometry")
    kept = {c: [getattr(out, c)[i] for i in keep] for c in cols}
    for c in cols:
        setattr(out, c, kept[c])
    ref = check_grids_reference(  # every grid: one with no geometry is an invalid finding of the reference too
        grids,
        gap_width_m=gap_width,
        min_area_m2=min_area,
        outline=outline,
        exempt=exempt,
        metric_crs_=frame.metric,
    )
    for kind, lv, ids, area, geom in zip(
        ref["kind"], ref["level"], ref["grid_ids"], ref["area_m2"], ref.geometry, strict=True
    ):
        what = "invalid" if kind == "invalid" else f"{_impl.area_text(area)} ({kind.replace('_', ' ')})"
        msg = f"{what} at level {lv}: {', '.join(map(repr, ids)) or 'no grid'} (reference check)"
        out.add(kind, lv, ids, msg, geom, area_m2=area)


def _metric_crs_of(lon: float, lat: float) -> Any:
    return metric_crs(lon, lat)


def _frame_of(out: _impl.Findings, report: set[int] | None) -> gpd.GeoDataFrame:
    geoms = np.array(out.geometry, dtype=object) if out.geometry else np.empty(0, dtype=object)
    if geoms.size:
        present = ~shapely.is_missing(geoms)
        geoms[present] = out.frame.to_wgs84(geoms[present])
    df = pd.DataFrame(
        {
            "kind": pd.Series(out.kind, dtype=object),
            "level": pd.Series(out.level, dtype="int64"),
            "grid_ids": pd.Series(out.grid_ids, dtype=object),
            "area_m2": pd.Series(out.area_m2, dtype="float64"),
            "length_m": pd.Series(out.length_m, dtype="float64"),
            "message": pd.Series(out.message, dtype=object),
        }
    )
    gdf = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=STORAGE_CRS), crs=STORAGE_CRS)
    if report is not None:
        gdf = gdf[(gdf["kind"] == "hierarchy") | gdf["level"].isin(sorted(report))]
    if len(gdf):
        order = {k: i for i, k in enumerate(FINDING_KINDS)}
        size = gdf["area_m2"].fillna(gdf["length_m"]).fillna(0.0).round(6)
        key = pd.DataFrame(
            {
                "k": gdf["kind"].map(order),
                "l": gdf["level"],
                "s": -size,
                "i": gdf["grid_ids"].map(lambda t: "\x00".join(t)),
                "m": gdf["message"],
            }
        )
        gdf = gdf.iloc[key.sort_values(["k", "l", "s", "i", "m"], kind="stable").index.map(gdf.index.get_loc)]
    return gdf.reset_index(drop=True)[_COLUMNS]


def _summarise(
    findings: gpd.GeoDataFrame, level: np.ndarray, frame: _impl.Frame, gap_width: float, min_area: float
) -> dict[str, Any]:
    counts: dict[str, dict[int, int]] = {}
    areas: dict[str, dict[int, float]] = {}
    for (kind, lv), grp in findings.groupby(["kind", "level"], sort=True):
        counts.setdefault(str(kind), {})[int(lv)] = len(grp)
        a = grp["area_m2"].dropna()
        if len(a):
            areas.setdefault(str(kind), {})[int(lv)] = float(a.sum())
    lv_counts = pd.Series(level).value_counts().sort_index()
    return {
        "sound": len(findings) == 0,
        "grids": len(level),
        "levels": {int(k): int(v) for k, v in lv_counts.items()},
        "findings": len(findings),
        "counts": {k: counts[k] for k in FINDING_KINDS if k in counts},
        "area_m2": {k: areas[k] for k in FINDING_KINDS if k in areas},
        "metric_crs": frame.metric.to_string(),
        "gap_width_m": gap_width,
        "min_area_m2": min_area,
    }
