"""What the map pages add around the engine's folium maps: the period, the wall's chrome, a cache.

Nothing here knows about HTTP. The chrome (title bar, time form, legend, styles and the
"rendered" flag) is plain HTML and CSS with classes only (the CSP forbids inline style
attributes); every value in it that comes from data goes through
:func:`geogrid.maps.escape_text`.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pandas as pd
from branca.element import Element
from starlette.requests import Request

import folium
import geopandas as gpd

from api.features import InvalidParameterError
from geogrid.maps import escape_text
from layers.times import DEFAULT_TZ, parse_time

__all__ = [
    "LOCAL_TZ",
    "AnalysisCache",
    "Period",
    "add_command_centre_chrome",
    "add_ready_flag",
    "iso_day",
    "known_query_parameters",
    "parse_period",
    "select_period",
]

LOCAL_TZ = DEFAULT_TZ
"""Dates on the pages are whole days in the store's time zone (:func:`layers.times.store_time_zone`); this one
when the store names none."""

DEFAULT_DAYS = 7
"""With no ``since``, the wall shows the last week of the data."""


@dataclass(frozen=True)
class Period:
    """Whole days ``since`` to ``until``, both inclusive, in the time zone ``tz`` (the store's)."""

    since: date
    until: date
    tz: str = DEFAULT_TZ

    @property
    def start(self) -> pd.Timestamp:
        """The first instant of the period (UTC), as :func:`layers.times.parse_time` reads the day."""
        start = parse_time(self.since, self.tz)
        assert start is not None  # a date is never an open end
        return start

    @property
    def end(self) -> pd.Timestamp:
        """The first instant after the period (UTC)."""
        end = parse_time(self.until, self.tz, end=True)
        assert end is not None
        return end


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def iso_day(value: object) -> object:
    """Refuse anything but ``YYYY-MM-DD`` before pydantic reads it (it would take ``0`` as 1970-01-01)."""
    if value is None or isinstance(value, date) or (isinstance(value, str) and _ISO_DAY.fullmatch(value)):
        return value
    msg = f"{value!r} is not a date: write YYYY-MM-DD"
    raise ValueError(msg)


def _date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as err:
        msg = f"{name}={value!r} is not a date: write YYYY-MM-DD (a whole day in the store's time zone)"
        raise InvalidParameterError(msg) from err


_FIRST_DAY, _LAST_DAY = date(1900, 1, 1), date(2200, 12, 31)
"""Days outside these are clamped to them (no data is that old or new; pandas' range ends in 2262)."""


def _clamp(day: date) -> date:
    return min(max(day, _FIRST_DAY), _LAST_DAY)


def parse_period(
    since: str | date | None, until: str | date | None, latest: pd.Timestamp | None, tz: str = DEFAULT_TZ
) -> Period:
    """Return the period of ``since``/``until`` (dates); missing ends default around ``latest``.

    Parameters
    ----------
    since, until
        ``YYYY-MM-DD`` or None. Without ``until``: the day of ``latest`` (today with no
        data); without ``since``: :data:`DEFAULT_DAYS` days up to ``until``.
    latest
        The latest report time in the data.
    tz
        The store's time zone (:func:`layers.times.store_time_zone`): the days are whole days there.

    Raises
    ------
    InvalidParameterError
        A value is not a date. (``since`` after ``until`` is an empty period, not an error.)

    Examples
    --------
    >>> parse_period("2025-03-01", "2025-03-31", None)
    Period(since=datetime.date(2025, 3, 1), until=datetime.date(2025, 3, 31), tz='Asia/Shanghai')
    >>> parse_period(None, None, pd.Timestamp("2025-12-31T20:00Z")).since.isoformat()  # 2026-01-01 in Shanghai
    '2025-12-26'
    """
    if until:
        last = until if isinstance(until, date) else _date(until, "until")
    elif latest is not None and not pd.isna(latest):
        last = pd.Timestamp(latest).tz_convert(tz).date()
    else:
        last = pd.Timestamp.now(tz=tz).date()
    last = _clamp(last)
    if since:
        first = _clamp(since if isinstance(since, date) else _date(since, "since"))
    else:
        first = _clamp(last - timedelta(days=DEFAULT_DAYS - 1)) if last > _FIRST_DAY else _FIRST_DAY
    return Period(first, last, tz)


def select_period(incidents: gpd.GeoDataFrame, period: Period) -> gpd.GeoDataFrame:
    """Return the incidents reported within ``period`` (rows keep their index)."""
    t = pd.to_datetime(incidents["reported_at"], utc=True)
    return incidents[(t >= period.start) & (t < period.end)]


@dataclass
class AnalysisCache:
    """Results of slow analyses (hot spots, camera views) by key, least recently used out first.

    Single-flight: while one request computes a key, the others asking for it wait for
    that result instead of computing it again (16 walls refreshing at once compute once).
    """

    max_items: int = 16
    _items: OrderedDict[Hashable, Any] = field(default_factory=OrderedDict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _flights: dict[Hashable, threading.Lock] = field(default_factory=dict, init=False, repr=False)

    def _hit(self, key: Hashable) -> tuple[bool, Any]:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return True, self._items[key]
        return False, None

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """Return the value for ``key``, computing it with ``compute()`` on a miss (once, however many ask)."""
        found, value = self._hit(key)
        if found:
            return value
        with self._lock:
            flight = self._flights.setdefault(key, threading.Lock())
        try:
            with flight:
                found, value = self._hit(key)
                if found:
                    return value
                value = compute()
                with self._lock:
                    self._items[key] = value
                    while len(self._items) > self.max_items:
                        self._items.popitem(last=False)
                return value
        finally:
            with self._lock:  # later arrivals find the value (waiters still hold this lock)
                self._flights.pop(key, None)


_WALL_CSS = """
html, body { margin: 0; height: 100%; background: #0b1220; color: #e9ecef;
  font: 14px/1.4 "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", system-ui, sans-serif; }
.folium-map { position: absolute !important; top: 52px !important; left: 0; right: 0;
  height: calc(100% - 52px) !important; background: #0b1220; }
.gg-bar { position: absolute; top: 0; left: 0; right: 0; height: 52px; box-sizing: border-box;
  display: flex; align-items: center; gap: 18px; padding: 0 16px; background: #111a2e;
  border-bottom: 2px solid #4cc9f0; }
.gg-title { font-size: 20px; font-weight: 700; letter-spacing: 1px; color: #ffffff; white-space: nowrap; }
.gg-stats { display: flex; gap: 14px; white-space: nowrap; }
.gg-stat b { color: #ffd166; font-size: 18px; }
.gg-form { margin-left: auto; display: flex; align-items: center; gap: 6px; white-space: nowrap; }
.gg-form input { background: #0b1220; color: #e9ecef; border: 1px solid #4cc9f0; border-radius: 3px; padding: 3px; }
.gg-form button { background: #4cc9f0; color: #0b1220; border: 0; border-radius: 3px; padding: 4px 10px;
  font-weight: 700; cursor: pointer; }
.gg-form a { color: #90e0ef; text-decoration: none; border: 1px solid #2b3a55; border-radius: 3px; padding: 2px 6px; }
.gg-legend { position: absolute; right: 12px; bottom: 28px; z-index: 1000; background: rgba(17, 26, 46, 0.92);
  border: 1px solid #2b3a55; border-radius: 4px; padding: 8px 12px; min-width: 150px; }
.gg-legend h4 { margin: 0 0 4px; font-size: 13px; color: #adb5bd; font-weight: 600; }
.gg-legend div { display: flex; align-items: center; gap: 8px; margin: 2px 0; }
.gg-sw { display: inline-block; width: 14px; height: 10px; border: 2px solid; box-sizing: border-box; }
.gg-dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%; }
.gg-note { color: #adb5bd; font-size: 12px; max-width: 230px; }
.folium-map.leaflet-container { background: #0b1220; }
.leaflet-container .leaflet-control-layers { background: rgba(17, 26, 46, 0.92); color: #e9ecef; border: 1px solid #2b3a55; }
.leaflet-container .leaflet-control-scale-line { background: rgba(17, 26, 46, 0.8); color: #e9ecef; border-color: #e9ecef; }
.leaflet-container .leaflet-popup-content-wrapper, .leaflet-container .leaflet-popup-tip { background: #111a2e; color: #e9ecef; }
.leaflet-container .leaflet-tooltip { background: #111a2e; color: #e9ecef; border-color: #4cc9f0; }
.gg-desc { color: #ffd166; }
.gg-cluster { display: inline-block; min-width: 18px; height: 18px; border-radius: 50%; font-size: 11px;
  line-height: 18px; text-align: center; color: #000; background: #f1d357; box-shadow: 0 0 0 3px rgba(241, 211, 87, 0.5); }
"""


def _swatch_css(items: list[tuple[str, str]]) -> str:
    return "".join(f".{cls} {{ border-color: {colour}; background: {colour}; }}\n" for cls, colour in items)


def add_ready_flag(m: folium.Map) -> None:
    """Set ``window.__geogridReady`` (ms since navigation) on the frame after every layer was added."""
    m.get_root().script.add_child(  # type: ignore[attr-defined]
        Element("requestAnimationFrame(function () { window.__geogridReady = performance.now(); });"),
        name="geogrid_ready",
    )


def add_command_centre_chrome(
    m: folium.Map,
    *,
    title: str,
    period: Period,
    counts: dict[str, int],
    shown_points: int,
    level_names: list[tuple[str, str]],
    action: str,
    layers: list[str],
    coverage_threshold: float = 0.5,
) -> None:
    """Add the title bar with counts and the time form, the legend, the styles and the ready flag.

    Parameters
    ----------
    m
        The map from :func:`geogrid.maps.command_centre_map`.
    title
        The district's name (user text: escaped here).
    period
        The period shown.
    counts
        ``{"incidents": n, "open": n, "cameras": n, "hot": n, "withheld": n, "blind": n}``
        (missing: not shown; ``withheld``: hot-spot grids too sparse to judge).
    shown_points
        How many incidents are drawn as markers (the most recent ones).
    level_names
        ``(label, colour)`` per grid level, coarsest first (labels escaped here).
    action
        The page's own path, where the form sends ``since``/``until``.
    layers
        Which optional overlays the map has (``"hot spots"``, ``"camera views"``, ``"blind spots"``).
    coverage_threshold
        ``counts["blind"]`` counts the basic grids cameras see less than this share of; the
        header and the legend state it.
    """
    e = escape_text
    n = counts.get("incidents", 0)
    stats = [("事件", n), ("未办结", counts.get("open", 0)), ("摄像头", counts.get("cameras", 0))]
    if "hot spots" in layers:
        stats.append(("热点网格", counts.get("hot", 0)))
    pct = f"{coverage_threshold:.0%}"
    if "blind spots" in layers:
        stats.append((f"覆盖不足{pct}网格", counts.get("blind", 0)))
    stat_html = "".join(f'<span class="gg-stat">{e(k)} <b>{v:,}</b></span>' for k, v in stats)
    last = period.until
    quick = [
        ("7 天", last - timedelta(days=6)),
        ("30 天", last - timedelta(days=29)),
        ("一年", last - timedelta(days=364)),
    ]
    quick_html = "".join(
        f'<a href="{e(action)}?since={d.isoformat()}&amp;until={last.isoformat()}">{e(label)}</a>' for label, d in quick
    )
    bar = (
        '<div class="gg-bar">'
        f'<span class="gg-title">{e(title)} · 网格化指挥中心</span>'
        f'<span class="gg-stats">{stat_html}</span>'
        f'<form class="gg-form" method="get" action="{e(action)}">'
        f'<label>自 <input type="date" name="since" value="{period.since.isoformat()}"></label>'
        f'<label>至 <input type="date" name="until" value="{period.until.isoformat()}"></label>'
        f'<button type="submit">查询</button>{quick_html}</form></div>'
    )
    swatches = [(f"gg-lv{i}", colour) for i, (_label, colour) in enumerate(level_names)]
    rows = [
        f'<div><span class="gg-sw {cls}"></span>{e(label)}</div>'
        for (cls, _c), (label, _) in zip(swatches, level_names, strict=True)
    ]
    marks = [
        ("gg-open", "#ff4d6d", "未办结事件"),
        ("gg-closed", "#8d99ae", "已办结事件"),
        ("gg-cam", "#f8f9fa", "摄像头"),
    ]
    if "camera views" in layers:
        marks.append(("gg-view", "#90e0ef", "摄像头视域"))
    if "hot spots" in layers:
        marks += [
            ("gg-hot", "#d7191c", "热点 (Gi*, 90/95/99%, FDR)"),
            ("gg-cold", "#2c7bb6", "冷点 (Gi*, 90/95/99%, FDR)"),
        ]
        if counts.get("withheld", 0):
            marks.append(("gg-held", "#adb5bd", f"数据稀疏，未判定 ({counts['withheld']:,} 格，虚线)"))
    if "blind spots" in layers:
        marks.append(("gg-blind", "#ff00a8", "监控盲区（无摄像头可见）"))
    rows += [f'<div><span class="gg-dot {cls}"></span>{e(label)}</div>' for cls, _c, label in marks]
    rows.append('<div><span class="gg-sw gg-heat"></span>事件密度 (热力)</div>')
    rows.append(
        '<div><span class="gg-cluster">12</span>事件聚合：数字为事件数（绿 &lt;10，黄 &lt;100，橙 ≥100），放大展开</div>'
    )
    note = ""
    if "blind spots" in layers:
        note += (
            f'<p class="gg-note">覆盖不足{e(pct)}网格：摄像头可见面积不到网格面积{e(pct)}的基础网格'
            f"（{counts.get('blind', 0):,} 个）。</p>"
        )
    if shown_points < n:
        note += f'<p class="gg-note">点位显示最近 {shown_points:,} 条事件；热力图包含全部 {n:,} 条。</p>'
    legend = (
        f'<div class="gg-legend"><h4>{period.since.isoformat()} — {period.until.isoformat()}</h4>'
        f"{''.join(rows)}{note}</div>"
    )
    css = (
        _WALL_CSS
        + _swatch_css(swatches)
        + _swatch_css([(cls, colour) for cls, colour, _ in marks])
        + ".gg-heat { border-color: #ff4d00; background: linear-gradient(90deg, #1d3557, #7b2cbf, #f72585, #ff9e00, #ffff3f); }\n"
    )
    root = m.get_root()
    root.header.add_child(Element(f"<style>{css}</style>"), name="geogrid_wall_css")  # type: ignore[attr-defined]
    root.html.add_child(Element(bar + legend), name="geogrid_wall")  # type: ignore[attr-defined]
    add_ready_flag(m)


async def known_query_parameters(request: Request) -> None:
    """Refuse query parameters the route does not declare (400), as the OGC routes do.

    A mistyped ``sinse=`` silently ignored would show the wrong period on a wall.
    """
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= {p.alias for p in sub.query_params}
    unknown = sorted(set(request.query_params) - names)
    if unknown:
        msg = f"unknown query parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(names)) or 'none'}"
        raise InvalidParameterError(msg)
