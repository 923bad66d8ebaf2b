"""Grid statistics of incidents: counts, rates, closing times, open and overdue work, sources.

Definitions (per grid, over incidents reported from ``since`` to ``until``, both inclusive of
the day or time they name, dates and zone-less times in the store's time zone; see
:mod:`layers.times`):

* ``count``: incidents reported; ``small`` is True when ``count < small_count`` (default 10):
  rates on so few events swing widely, so read them with care (or use ``smooth=True``);
* ``per_km2`` (area measured in an explicit metric CRS, see :func:`layers.crs.metric_crs`),
  ``per_1000_residents`` (``population``) and ``per_household`` (``households``); NaN when the
  grid has no such figure or it is 0;
* ``closed``: status ``closed``; ``closing_rate = closed / count``;
* ``close_hours_median`` and ``close_hours_p90``: hours from ``reported_at`` to ``closed_at`` of
  the closed incidents (linear interpolation between order statistics, as numpy and pandas do);
* ``open`` and ``overdue``: the backlog *as of* ``now`` (default: the end of the window
  ``until``, else the latest time in the data, so the result does not depend on the clock): an
  incident is open at ``now`` when it had been reported by then and not yet closed, i.e. its
  ``closed_at`` is missing or later (the end of a window is its last instant; see
  :func:`open_at`, also for a status that says done with no ``closed_at``: taken as done);
  ``overdue``: open at ``now`` and reported more
  than ``overdue_after`` before it. So the July report counts an incident reported on 1 July and
  closed on 20 August as open (and overdue) on 31 July, whatever its status today. ``closed``,
  ``closing_rate`` and the closing hours, by contrast, describe what became of the window's
  incidents as far as the data knows (status ``closed`` today);
* ``hotline`` and ``grid_worker``: incidents by those sources; ``hotline_ratio = hotline /
  grid_worker`` (NaN when no grid-worker report): where it is high, citizens report what patrols
  do not;
* with ``smooth=True``: ``per_km2_eb`` and ``per_1000_residents_eb``, global empirical-Bayes rates
  (Marshall 1991) over the grids of the same level (see :func:`smooth_rates`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

import geopandas as gpd

from geogrid.assignment import _check_crs, assign_points, grid_positions
from layers.crs import metric_crs
from layers.times import DEFAULT_TZ, in_window, parse_time, time_window

__all__ = ["STAT_COLUMNS", "grid_stats", "latest_time", "open_at", "smooth_rates", "summarise_codes"]

STAT_COLUMNS = (
    "count",
    "small",
    "per_km2",
    "per_1000_residents",
    "per_household",
    "closed",
    "closing_rate",
    "close_hours_median",
    "close_hours_p90",
    "open",
    "overdue",
    "hotline",
    "grid_worker",
    "hotline_ratio",
    "area_km2",
)
"""The statistics columns :func:`grid_stats` adds, in order (plus ``*_eb`` with ``smooth=True``)."""

_GRID_COLUMNS = ("grid_id", "parent_id", "level", "level_name", "name", "population", "households")
_DONE = ("closed", "cancelled")


def open_at(
    incidents: pd.DataFrame, at: str | datetime | pd.Timestamp, *, tz: str = DEFAULT_TZ
) -> npt.NDArray[np.bool_]:
    """Which incidents were open at the instant ``at``: the one definition of "open" in geogrid.

    An incident is open at ``at`` when it had been reported by then (``reported_at <= at``)
    and was not yet closed: its ``closed_at`` is missing or later than ``at``. So at the end of
    a window (its last instant) an incident closed after the window was open, whatever its
    status today. Cancelled incidents count as done at their ``closed_at``. An incident whose
    status says done (``closed`` or ``cancelled``) but that carries no ``closed_at`` is taken
    as done at every instant: the data cannot tell when it closed, and counting it open for
    ever would swell every backlog (record ``closed_at`` to have it counted). Without a
    ``status`` column, ``closed_at`` alone decides; with neither column no incident is known
    to be open.

    :func:`grid_stats` counts ``open`` and ``overdue`` with it at ``now`` (by default the end
    of the window), and the command-centre wall (``/maps/command-centre``) counts and colours
    its open incidents with it at the end of the period shown.

    Parameters
    ----------
    incidents
        Incidents with ``reported_at`` and, where available, ``closed_at`` and ``status``.
    at
        The instant (a date is its first instant; a time without a zone is in ``tz``).
    tz
        Time zone of a date or a zone-less time.

    Returns
    -------
    numpy.ndarray
        One boolean per incident, in order.

    Raises
    ------
    ValueError
        If ``at`` is not a date or time.

    Examples
    --------
    >>> import pandas as pd
    >>> inc = pd.DataFrame({
    ...     "reported_at": pd.to_datetime(["2025-07-01", "2025-07-02", "2025-08-02", "2025-07-03"], utc=True),
    ...     "closed_at": pd.to_datetime(["2025-08-20", "2025-07-05", None, None], utc=True),
    ...     "status": ["closed", "closed", "handling", "closed"]})
    >>> open_at(inc, "2025-07-31T23:59", tz="UTC").tolist()
    [True, False, False, False]
    """
    t = parse_time(at, tz, what="at")
    if t is None:
        msg = f"at={at!r} is not an instant: give a date or a time"
        raise ValueError(msg)
    n = len(incidents)
    if "status" not in incidents.columns and "closed_at" not in incidents.columns:
        return np.zeros(n, dtype=bool)
    reported = pd.to_datetime(incidents["reported_at"], utc=True)
    is_open = (reported <= t).fillna(False).to_numpy(dtype=bool, copy=True)
    if "closed_at" in incidents.columns:
        closed_at = pd.to_datetime(incidents["closed_at"], utc=True)
        no_close = closed_at.isna().to_numpy(dtype=bool)
        is_open &= no_close | (closed_at > t).fillna(False).to_numpy(dtype=bool)
    else:
        no_close = np.ones(n, dtype=bool)
    if "status" in incidents.columns:
        done = np.isin(incidents["status"].astype(object).to_numpy(), _DONE)
        is_open &= ~(done & no_close)
    return is_open


def latest_time(incidents: pd.DataFrame) -> pd.Timestamp | None:
    """Return the latest ``reported_at`` or ``closed_at`` of the incidents (UTC), None if none.

    The clock-free "now" of :func:`grid_stats` without ``until``: at that instant
    :func:`open_at` gives every incident's state as the data records it today.

    Examples
    --------
    >>> import pandas as pd
    >>> latest_time(pd.DataFrame({"reported_at": pd.to_datetime(["2025-07-01"], utc=True),
    ...                           "closed_at": pd.to_datetime(["2025-07-03"], utc=True)}))
    Timestamp('2025-07-03 00:00:00+0000', tz='UTC')
    """
    times = [pd.to_datetime(incidents[c], utc=True).max() for c in ("reported_at", "closed_at") if c in incidents]
    known = [t for t in times if not pd.isna(t)]
    return max(known) if known else None


def summarise_codes(
    codes: npt.ArrayLike,
    n_grids: int,
    *,
    close_hours: npt.ArrayLike | None = None,
    is_closed: npt.ArrayLike | None = None,
    is_open: npt.ArrayLike | None = None,
    is_overdue: npt.ArrayLike | None = None,
    is_hotline: npt.ArrayLike | None = None,
    is_grid_worker: npt.ArrayLike | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """Count events per grid position: the pure core of :func:`grid_stats`.

    Parameters
    ----------
    codes
        Grid position of each event (0 … n_grids-1), negative for none (ignored).
    n_grids
        Number of grids.
    close_hours
        Hours to close each event, NaN where not closed.
    is_closed, is_open, is_overdue, is_hotline, is_grid_worker
        Boolean flags per event.

    Returns
    -------
    dict of numpy.ndarray
        ``count`` and, for each flag given, ``closed``, ``open``, ``overdue``, ``hotline``,
        ``grid_worker`` (ints); with ``close_hours``, ``close_hours_median`` and
        ``close_hours_p90`` (NaN for grids with no closed event).

    Examples
    --------
    >>> out = summarise_codes([0, 0, 1, -1], 3, close_hours=[1.0, 3.0, float("nan"), 5.0])
    >>> out["count"].tolist(), out["close_hours_median"].tolist()
    ([2, 1, 0], [2.0, nan, nan])
    """
    c = np.asarray(codes, dtype=np.int64)
    keep = (c >= 0) & (c < n_grids)
    out: dict[str, npt.NDArray[Any]] = {"count": np.bincount(c[keep], minlength=n_grids)}
    flags = {
        "closed": is_closed,
        "open": is_open,
        "overdue": is_overdue,
        "hotline": is_hotline,
        "grid_worker": is_grid_worker,
    }
    for name, flag in flags.items():
        if flag is not None:
            f = np.asarray(flag, dtype=bool)
            out[name] = np.bincount(c[keep & f], minlength=n_grids)
    if close_hours is not None:
        h = np.asarray(close_hours, dtype=np.float64)
        ok = keep & np.isfinite(h)
        out["close_hours_median"] = _group_quantile(c[ok], h[ok], n_grids, 0.5)
        out["close_hours_p90"] = _group_quantile(c[ok], h[ok], n_grids, 0.9)
    return out


def _group_quantile(
    groups: npt.NDArray[np.int64], values: npt.NDArray[np.float64], n: int, q: float
) -> npt.NDArray[np.float64]:
    """Quantile ``q`` of ``values`` per group 0 … n-1 (numpy's 'linear' method), NaN for empty groups."""
    out = np.full(n, np.nan)
    if not values.size:
        return out
    order = np.lexsort((values, groups))
    g, v = groups[order], values[order]
    sizes = np.bincount(g, minlength=n)
    starts = np.cumsum(sizes) - sizes
    has = np.flatnonzero(sizes)
    pos = (sizes[has] - 1) * q
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, sizes[has] - 1)
    frac = pos - lo
    a, b = v[starts[has] + lo], v[starts[has] + hi]
    out[has] = a + (b - a) * frac
    return out


def smooth_rates(events: npt.ArrayLike, base: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Global empirical-Bayes smoothed rates ``events / base`` (Marshall 1991).

    Each raw rate is shrunk towards the global rate ``m = Σe / Σb`` with weight
    ``w = a / (a + m / b)``, where ``a = Σ b (r - m)² / Σ b - m / mean(b)`` is the
    between-unit variance (set to 0 when negative, so every rate becomes ``m``: the raw
    rates vary no more than chance). Units with a missing or non-positive base are left
    out of the estimates and get NaN. Agrees with ``esda.smoothing.Empirical_Bayes``
    whenever ``a`` is positive.

    Parameters
    ----------
    events
        Event counts per unit.
    base
        Population at risk (residents, area) per unit.

    Returns
    -------
    numpy.ndarray
        Smoothed rates in events per unit of ``base``.

    Examples
    --------
    >>> smooth_rates([0, 10, 2], [100, 100, 100]).round(4).tolist()
    [0.0086, 0.0871, 0.0243]
    """
    e = np.asarray(events, dtype=np.float64)
    b = np.asarray(base, dtype=np.float64)
    out = np.full(e.shape, np.nan)
    ok = np.isfinite(e) & np.isfinite(b) & (b > 0)
    if not ok.any():
        return out
    e, b = e[ok], b[ok]
    m = e.sum() / b.sum()
    r = e / b
    a = (b * (r - m) ** 2).sum() / b.sum() - m / b.mean()
    a = max(a, 0.0)
    w = np.divide(a, a + m / b, out=np.zeros_like(b), where=(a + m / b) > 0)
    out[ok] = w * r + (1.0 - w) * m
    return out


def _timestamp(value: str | datetime | pd.Timestamp | None, what: str, tz: str) -> pd.Timestamp | None:
    return parse_time(value, tz, what=what)


def _as_list(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _areas_km2(grids: gpd.GeoDataFrame, crs: Any) -> npt.NDArray[np.float64]:
    if crs is None:
        lonlat = grids.to_crs("EPSG:4326") if grids.crs is not None and not grids.crs.is_geographic else grids
        minx, miny, maxx, maxy = lonlat.total_bounds
        crs = metric_crs((minx + maxx) / 2, (miny + maxy) / 2)
    return np.asarray(grids.to_crs(crs).area, dtype=np.float64) / 1e6


def _per(count: npt.NDArray[Any], base: pd.Series | None, scale: float = 1.0) -> npt.NDArray[np.float64]:
    if base is None:
        return np.full(count.size, np.nan)
    b = pd.to_numeric(base, errors="coerce").astype("float64").to_numpy(na_value=np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, count * scale / b, np.nan)


_UNITS = {
    **dict.fromkeys(("d", "day", "days"), "D"),
    **dict.fromkeys(("w", "week", "weeks"), "W"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "h"),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), "min"),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "s"),
}
_NUMBER_UNIT = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]+)\s*")


def _duration(value: pd.Timedelta | str) -> pd.Timedelta:
    """Read a duration such as ``"72h"``, ``"3d"``, ``"3D"``, ``"90min"`` or ``"2 weeks"`` (units in any case).

    pandas 3 warns on ``"3d"``, ``"2w"`` or ``"72H"`` (only ``D``, ``W``, ``h`` are to stay)
    and will refuse them: a number and a unit are read here; other text goes to ``pd.Timedelta``.
    """
    if isinstance(value, str):
        m = _NUMBER_UNIT.fullmatch(value)
        unit = "" if m is None or m.group(2) == "M" else m.group(2).lower()  # "3M" (months?) is pandas' to refuse
        if m is not None and unit in _UNITS:
            return pd.Timedelta(float(m.group(1)), unit=_UNITS[unit])
    return pd.Timedelta(value)


def grid_stats(
    incidents: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame,
    *,
    level: int | None = None,
    since: str | datetime | pd.Timestamp | None = None,
    until: str | datetime | pd.Timestamp | None = None,
    category: str | Sequence[str] | None = None,
    source: str | Sequence[str] | None = None,
    by: str | None = None,
    now: str | datetime | pd.Timestamp | None = None,
    overdue_after: pd.Timedelta | str = "72h",
    small_count: int = 10,
    smooth: bool = False,
    crs: Any = None,
    tz: str = DEFAULT_TZ,
    time_field: str = "reported_at",
) -> gpd.GeoDataFrame:
    """Statistics of incidents per grid (see the module notes for every definition).

    Parameters
    ----------
    incidents
        The incident layer: point geometry, ``reported_at``, and ``closed_at``, ``status``,
        ``category``, ``source`` where available. Columns ``grid_id_<level>`` (as
        :func:`~geogrid.assignment.assign_points` returns them) are used when present instead
        of assigning again.
    grids
        The grid layer (``grid_id``, ``parent_id``, ``level``; ``population`` and
        ``households`` for the per-resident and per-household rates).
    level
        One level, or every level (default).
    since, until
        Window on ``time_field``, both ends inclusive: a date is the whole day, a time
        without a zone is in ``tz`` (see :func:`layers.times.time_window`).
    category, source
        Keep only incidents of these categories / sources (a value or a list).
    by
        ``"category"`` or ``"source"``: one row per grid and value (every value seen in the
        filtered incidents, zeros included), with that column added.
    now
        The instant the backlog (``open``, ``overdue``) is measured at, see :func:`open_at`
        (default: the end of the window ``until``, else the latest ``reported_at``/``closed_at``
        in the data).
    overdue_after
        An open incident older than this is overdue (default 72 hours).
    small_count
        Counts below this are flagged in ``small``.
    smooth
        Add empirical-Bayes smoothed ``per_km2_eb`` and ``per_1000_residents_eb``.
    crs
        Metric CRS to measure areas in (default: :func:`layers.crs.metric_crs` at the centre).
    tz
        Time zone of dates and zone-less times (the store's; default Asia/Shanghai).
    time_field
        ``"reported_at"`` (default) or ``"closed_at"``: the time ``since``/``until`` filter.

    Returns
    -------
    geopandas.GeoDataFrame
        The grids of the level(s) (their index, CRS and geometry) with the grid columns
        ``grid_id``, ``parent_id``, ``level``, ``level_name``, ``name``, ``population``,
        ``households`` (those present) and :data:`STAT_COLUMNS`.

    Raises
    ------
    CRSError
        If incidents and grids have different CRSs.
    ValueError
        If ``level`` is absent, a date cannot be parsed or ``by`` is not a column.

    Examples
    --------
    >>> import geopandas as gpd, pandas as pd, shapely
    >>> grids = gpd.GeoDataFrame(
    ...     {"grid_id": ["A", "B"], "parent_id": [None, None], "level": [0, 0], "population": [2000, 0]},
    ...     geometry=[shapely.box(117.0, 39.0, 117.01, 39.01), shapely.box(117.01, 39.0, 117.02, 39.01)],
    ...     crs="EPSG:4326")
    >>> inc = gpd.GeoDataFrame(
    ...     {"reported_at": pd.to_datetime(["2025-01-01 08:00", "2025-01-01 09:00"], utc=True),
    ...      "closed_at": pd.to_datetime(["2025-01-01 10:00", None], utc=True),
    ...      "status": ["closed", "handling"], "source": ["hotline", "grid_worker"]},
    ...     geometry=gpd.points_from_xy([117.005, 117.006], [39.005, 39.005]), crs="EPSG:4326")
    >>> s = grid_stats(inc, grids, now="2025-01-05")
    >>> s[["grid_id", "count", "per_1000_residents", "closing_rate", "close_hours_median", "overdue"]]
      grid_id  count  per_1000_residents  closing_rate  close_hours_median  overdue
    0       A      2                 1.0           0.5                 2.0        1
    1       B      0                 NaN           NaN                 NaN        0
    """
    _check_crs(incidents.crs, grids.crs)
    if by is not None and by not in incidents.columns:
        msg = f"by={by!r} is not a column of the incidents; use 'category' or 'source'"
        raise ValueError(msg)
    have = sorted(int(v) for v in pd.unique(grids["level"].dropna()))
    levels = have if level is None else [int(level)]
    if level is not None and int(level) not in have:
        msg = f"grids have no level {level}; levels present: {have}"
        raise ValueError(msg)
    if time_field not in ("reported_at", "closed_at") or time_field not in incidents.columns:
        msg = f"time_field={time_field!r}: use 'reported_at' or 'closed_at' (a column of the incidents)"
        raise ValueError(msg)
    try:
        overdue_td = _duration(overdue_after)
    except (ValueError, TypeError) as err:
        msg = f"overdue_after={overdue_after!r} is not a duration ({err}): write e.g. '72h', '3d' or '90min'"
        raise ValueError(msg) from err
    if pd.isna(overdue_td) or overdue_td <= pd.Timedelta(0):
        msg = f"overdue_after={overdue_after!r} must be a positive duration, e.g. '72h' or '3d'"
        raise ValueError(msg)
    t_since, t_until = time_window(since, until, tz)
    t_now = _timestamp(now, "now", tz)
    inc = incidents
    reported = pd.to_datetime(inc["reported_at"], utc=True)
    # the backlog's instant: the window's last instant (``until`` is its exclusive end)
    as_of = t_now
    if t_now is None and t_until is not None:
        t_now, as_of = t_until, t_until - pd.Timedelta(1, "ns")
    if t_now is None:
        latest = latest_time(inc)
        t_now = as_of = latest if latest is not None else pd.Timestamp.now(tz="UTC")
    keep = in_window(inc[time_field], t_since, t_until)
    for col, wanted in (("category", _as_list(category)), ("source", _as_list(source))):
        if wanted is not None:
            if col not in inc.columns:
                msg = f"incidents have no {col!r} column to filter on"
                raise ValueError(msg)
            keep &= inc[col].isin(wanted).fillna(False).to_numpy(dtype=bool)
    inc = inc[keep]
    reported = reported[keep]

    missing_cols = [lv for lv in levels if f"grid_id_{lv}" not in inc.columns]
    assigned = inc
    if missing_cols:
        time = "reported_at" if {"valid_from", "valid_to"} & set(grids.columns) else None
        assigned = assign_points(inc, grids, levels=missing_cols, time=time)

    status = inc["status"].astype(object).to_numpy() if "status" in inc.columns else np.full(len(inc), None)
    src = inc["source"].astype(object).to_numpy() if "source" in inc.columns else np.full(len(inc), None)
    is_closed = status == "closed"
    is_open = open_at(inc, as_of, tz=tz)
    age = (t_now - reported).to_numpy()
    is_overdue = is_open & (age > overdue_td.to_timedelta64())
    if "closed_at" in inc.columns:
        hours = (pd.to_datetime(inc["closed_at"], utc=True) - reported).dt.total_seconds().to_numpy() / 3600.0
        hours = np.where(is_closed, hours, np.nan)
    else:
        hours = np.full(len(inc), np.nan)
    flags = {
        "is_closed": is_closed,
        "is_open": is_open,
        "is_overdue": is_overdue,
        "is_hotline": src == "hotline",
        "is_grid_worker": src == "grid_worker",
    }
    groups: list[tuple[Any, npt.NDArray[np.bool_]]] = [(None, np.ones(len(inc), dtype=bool))]
    if by is not None:
        values = sorted(str(v) for v in pd.unique(inc[by].dropna()))
        col = inc[by].astype(object).to_numpy()
        groups = [(v, col == v) for v in values]
    # ``by`` with no incident left after the filters: no (grid, value) rows, same columns.
    no_rows = not groups
    if no_rows:
        groups = [(None, np.zeros(len(inc), dtype=bool))]

    frames: list[gpd.GeoDataFrame] = []
    for lv in levels:
        level_frames: list[gpd.GeoDataFrame] = []
        g = grids[grids["level"] == lv]
        area = _areas_km2(g, crs)
        ids = g["grid_id"].astype(object).to_numpy()
        col = assigned[f"grid_id_{lv}"] if f"grid_id_{lv}" in assigned.columns else inc[f"grid_id_{lv}"]
        codes = grid_positions(col, ids)
        base = g[[c for c in _GRID_COLUMNS if c in g.columns]]
        for value, sel in groups:
            s = summarise_codes(
                np.where(sel, codes, -1), len(g), close_hours=hours, **{k: v & sel for k, v in flags.items()}
            )
            frame = pd.DataFrame(index=g.index)
            for c in base.columns:
                frame[c] = base[c]
            if by is not None:
                frame[by] = pd.array([value] * len(g), dtype="string")
            count = s["count"]
            frame["count"] = count
            frame["small"] = count < small_count
            frame["per_km2"] = _per(count, pd.Series(area, index=g.index))
            frame["per_1000_residents"] = _per(count, g.get("population"), 1000.0)
            frame["per_household"] = _per(count, g.get("households"))
            frame["closed"] = s["closed"]
            with np.errstate(divide="ignore", invalid="ignore"):
                frame["closing_rate"] = np.where(count > 0, s["closed"] / count, np.nan)
                frame["close_hours_median"] = s["close_hours_median"]
                frame["close_hours_p90"] = s["close_hours_p90"]
                frame["open"] = s["open"]
                frame["overdue"] = s["overdue"]
                frame["hotline"] = s["hotline"]
                frame["grid_worker"] = s["grid_worker"]
                frame["hotline_ratio"] = np.where(s["grid_worker"] > 0, s["hotline"] / s["grid_worker"], np.nan)
            frame["area_km2"] = area
            if smooth:
                frame["per_km2_eb"] = smooth_rates(count, area)
                pop = g.get("population")
                frame["per_1000_residents_eb"] = (
                    smooth_rates(count, pd.to_numeric(pop).astype("float64").to_numpy(na_value=np.nan)) * 1000.0
                    if pop is not None
                    else np.nan
                )
            level_frames.append(gpd.GeoDataFrame(frame, geometry=g.geometry, crs=grids.crs))
        joined = pd.concat(level_frames) if len(level_frames) > 1 else level_frames[0]
        # grid-major: each grid's rows together, values in sorted order
        order = np.argsort(np.tile(np.arange(len(g)), len(level_frames)), kind="stable")
        frames.append(joined.iloc[order])
    out = pd.concat(frames) if len(frames) > 1 else frames[0]
    if no_rows:
        out = out.iloc[:0]
    return gpd.GeoDataFrame(out, geometry="geometry", crs=grids.crs)
