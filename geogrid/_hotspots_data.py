"""Adapters of the hot-spot analyses to the layer types (private; see :mod:`geogrid.hotspots`).

Spatial weights from grid polygons, incident filtering by category and time window,
incidents counted per grid and per grid × period.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

import geopandas as gpd
from pyproj import CRS

from layers.crs import ensure_crs, metric_crs
from layers.errors import NotFoundError, Problem, SchemaError, format_ids
from layers.times import in_window, parse_time, time_window

__all__: list[str] = []

Weights = str | float | int | Any
"""``"queen"``, ``"rook"``, a distance band in metres, a libpysal ``W``/``Graph`` or a sparse matrix."""


def _schema_error(message: str, *, source: str) -> SchemaError:
    return SchemaError(source, [Problem("missing_column", message)])


# -- grids and weights ------------------------------------------------------------------------------
def _one_level(grids: gpd.GeoDataFrame, level: int | None = None) -> gpd.GeoDataFrame:
    """Return the grids of one level; without ``level``, ``grids`` must hold a single level."""
    missing = [c for c in ("grid_id", "level") if c not in grids.columns]
    if missing:
        msg = f"lacks the column(s) {missing}: pass a grid layer with grid_id and level"
        raise _schema_error(msg, source="grids")
    levels = sorted(int(v) for v in pd.unique(grids["level"].dropna()))
    if level is None:
        if len(levels) != 1:
            msg = f"grids holds levels {levels}; pick one: level=... or grids[grids.level == {levels[-1]}]"
            raise ValueError(msg)
        return grids
    if level not in levels:
        msg = f"level {level} does not occur in grids (levels: {levels})"
        raise NotFoundError(msg)
    return grids[grids["level"] == level]


def _level_grids(grids: gpd.GeoDataFrame, level: int | None) -> gpd.GeoDataFrame:
    """Return the grids of ``level``, by default of the finest level."""
    return _one_level(grids, int(grids["level"].max()) if level is None else level)


def _metric(gdf: gpd.GeoSeries | gpd.GeoDataFrame, crs: object) -> CRS:
    """Return the metric CRS to measure ``gdf`` in: ``crs`` if given, the layer's own if projected, else its GK/UTM zone."""
    if crs is not None:
        return ensure_crs(crs, what="metric_crs")
    own = ensure_crs(gdf.crs, what="layer")
    if own.is_projected:
        return own
    x0, y0, x1, y1 = gdf.total_bounds
    return metric_crs((x0 + x1) / 2, (y0 + y1) / 2)


def _weights_matrix(grids: gpd.GeoDataFrame, weights: Weights, metric_crs_: object) -> sp.csr_array:
    """Binary neighbour matrix of ``grids`` (positional order), without the diagonal."""
    from libpysal import graph

    if isinstance(weights, str):
        if weights not in ("queen", "rook"):
            msg = f"weights={weights!r} is not understood: use 'queen', 'rook' or a distance band in metres"
            raise ValueError(msg)
        g = graph.Graph.build_contiguity(grids.geometry.reset_index(drop=True), rook=weights == "rook")
        return sp.csr_array(g.sparse)
    if isinstance(weights, int | float) and not isinstance(weights, bool):
        if not weights > 0:
            msg = f"the distance band must be > 0 metres, got {weights}"
            raise ValueError(msg)
        crs = _metric(grids, metric_crs_)
        centres = grids.geometry.to_crs(crs).centroid.reset_index(drop=True)
        g = graph.Graph.build_distance_band(centres, float(weights), binary=True)
        return sp.csr_array(g.sparse)
    if sp.issparse(weights):
        m = sp.csr_array(weights)
    elif hasattr(weights, "sparse"):  # libpysal W or Graph, in the order of grids
        m = sp.csr_array(weights.sparse)
    else:
        msg = f"weights of type {type(weights).__name__} are not understood: use 'queen', 'rook', metres or a W"
        raise TypeError(msg)
    if m.shape != (len(grids), len(grids)):
        msg = f"weights are {m.shape[0]}x{m.shape[1]} but there are {len(grids)} grids: build them on these grids"
        raise ValueError(msg)
    return m


def _values_for(values: Any, grids: gpd.GeoDataFrame) -> tuple[np.ndarray, str]:
    """Align ``values`` with ``grids``: a Series on the grids' index or grid_id, or a sequence in their order."""
    name = "value"
    if isinstance(values, pd.Series):
        name = str(values.name) if values.name is not None else name
        if values.index.equals(grids.index) or values.index.isin(grids.index).all():
            s = values.reindex(grids.index)
        elif values.index.isin(grids["grid_id"]).all():
            s = values.reindex(pd.Index(grids["grid_id"]))
        else:
            bad = values.index[~values.index.isin(grids["grid_id"])]
            msg = f"values are keyed by neither the grids' index nor grid_id: {format_ids(bad)} not found"
            raise NotFoundError(msg)
        arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        arr = np.asarray(values, dtype=np.float64).ravel()
        if arr.size != len(grids):
            msg = f"{arr.size} values for {len(grids)} grids: give one value per grid, in the grids' order"
            raise ValueError(msg)
    if np.isinf(arr).any():
        msg = f"values hold infinities at grids {format_ids(grids['grid_id'].to_numpy()[np.isinf(arr)])}"
        raise ValueError(msg)
    return arr, name


# -- incidents ---------------------------------------------------------------------------------------
def _bound(value: Any, tz: str, *, end: bool) -> pd.Timestamp | None:
    """Return the UTC bound of ``since`` (start) or ``until`` (end, inclusive of the day or time named)."""
    return parse_time(value, tz, end=end, what="until" if end else "since")


def _filter_incidents(
    incidents: gpd.GeoDataFrame,
    *,
    category: str | Sequence[str] | None,
    since: Any,
    until: Any,
    tz: str,
    time_field: str = "reported_at",
) -> gpd.GeoDataFrame:
    """Incidents of the categories whose ``time_field`` lies in ``since``–``until`` (see :mod:`layers.times`)."""
    if "reported_at" not in incidents.columns:
        msg = "lacks the column 'reported_at': pass an incident layer"
        raise _schema_error(msg, source="incidents")
    if time_field not in ("reported_at", "closed_at"):
        msg = f"time_field={time_field!r} is not understood: use 'reported_at' or 'closed_at'"
        raise ValueError(msg)
    if time_field not in incidents.columns:
        msg = f"lacks the column {time_field!r} to filter on"
        raise _schema_error(msg, source="incidents")
    keep = np.ones(len(incidents), dtype=bool)
    if category is not None:
        cats = [category] if isinstance(category, str) else list(category)
        if "category" not in incidents.columns:
            msg = "lacks the column 'category'"
            raise _schema_error(msg, source="incidents")
        seen = set(incidents["category"].dropna().unique())
        unknown = [c for c in cats if c not in seen]
        if unknown:
            msg = f"category {format_ids(unknown)} does not occur in the incidents (there are: {format_ids(sorted(seen))})"
            raise NotFoundError(msg)
        keep &= incidents["category"].isin(cats).to_numpy()
    t0, t1 = time_window(since, until, tz)
    if t0 is not None or t1 is not None:
        keep &= in_window(incidents[time_field], t0, t1)
    return incidents[keep]


def _assign(points: gpd.GeoDataFrame, grids: gpd.GeoDataFrame) -> np.ndarray:
    """Position in ``grids`` (one level) of the grid holding each point; -1 outside every grid."""
    from geogrid.assignment import assign_points, grid_positions

    level = int(grids["level"].iloc[0]) if len(grids) else 0
    ids = assign_points(points, grids, levels=[level], nested=False)[f"grid_id_{level}"]
    return grid_positions(ids, grids["grid_id"].to_numpy())


def _periods(reported: pd.Series, period: str, tz: str) -> pd.PeriodIndex:
    """Return the period (in local time ``tz``) of each timestamp."""
    if period not in ("M", "W", "D", "Q"):
        msg = f"period={period!r} is not understood: use 'M' (month), 'W' (week), 'Q' or 'D'"
        raise ValueError(msg)
    local = pd.DatetimeIndex(reported).tz_convert(tz).tz_localize(None)
    return local.to_period(period)


def _whole_periods(
    reported: pd.Series, period: str, tz: str, since: Any, until: Any
) -> tuple[pd.Period, pd.Period] | None:
    """First and last period wholly inside the window (default: the days from the first to the last report)."""
    if len(reported) == 0:
        return None
    t0, t1 = _bound(since, tz, end=False), _bound(until, tz, end=True)
    local = pd.DatetimeIndex(reported).tz_convert(tz).tz_localize(None)
    start = local.min().normalize() if t0 is None else t0.tz_convert(tz).tz_localize(None)
    end = local.max().normalize() + pd.Timedelta(days=1) if t1 is None else t1.tz_convert(tz).tz_localize(None)
    first = start.to_period(period)
    if first.start_time < start:
        first = first + 1
    last = (end - pd.Timedelta(microseconds=1)).to_period(period)
    if last.end_time >= end:
        last = last - 1
    if last < first:
        msg = f"the window {start:%Y-%m-%d} – {end:%Y-%m-%d} holds no whole period {period!r}: widen it"
        raise ValueError(msg)
    return first, last


def _cube(
    pos: np.ndarray, periods: pd.PeriodIndex, n_grids: int, span: tuple[pd.Period, pd.Period] | None
) -> tuple[np.ndarray, pd.PeriodIndex]:
    """Count incidents per grid × period (every period of the span, empty ones included)."""
    ok = pos >= 0
    if span is None:
        if not ok.any():
            msg = "no incident falls inside the grids in the time window: nothing to analyse"
            raise ValueError(msg)
        span = (periods[ok].min(), periods[ok].max())
    axis = pd.period_range(span[0], span[1], freq=span[0].freq)
    t_arr = np.asarray(periods[ok].asi8, dtype=np.int64) - span[0].ordinal
    inside = (t_arr >= 0) & (t_arr < len(axis))
    counts = np.zeros((n_grids, len(axis)))
    np.add.at(counts, (pos[ok][inside], t_arr[inside]), 1.0)
    return counts, axis
