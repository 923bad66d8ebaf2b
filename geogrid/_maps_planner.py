"""The planner's map: a plan's grids with its findings and its changes against the current network.

Public through :func:`geogrid.maps.planner_map`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import folium
import geopandas as gpd
import shapely

from geogrid import maps as _m

__all__ = ["FINDING_COLOUR", "STATUS_COLOURS", "planner_map"]

FINDING_COLOUR = "#ff00a8"
"""Findings of :func:`geogrid.hierarchy.check_grids` (gaps, overlaps, nesting leaks)."""

STATUS_COLOURS = {"added": "#06d6a0", "changed": "#ffb000", "removed": "#8d99ae"}
"""Grids of the diff by status."""


def _text_overlay(
    frame: gpd.GeoDataFrame, name: str, fields: dict[str, str], style: dict[str, object]
) -> folium.GeoJson:
    """Return a GeoJson overlay whose tooltip fields are escaped text."""
    data = gpd.GeoDataFrame(
        {col: [_m.escape_text(v) for v in frame[col]] if col in frame else [""] * len(frame) for col in fields},
        geometry=shapely.set_precision(
            np.asarray(frame.geometry.array, dtype=object), _m._DISPLAY_PRECISION_DEG, mode="pointwise"
        ),
        crs=frame.crs,
    )
    return folium.GeoJson(
        data.to_geo_dict(show_bbox=False),
        name=_m.escape_text(name),
        style_function=lambda _feature: style,
        tooltip=folium.GeoJsonTooltip(fields=list(fields), aliases=list(fields.values()), sticky=True),
        embed=True,
        zoom_on_click=False,
    )


def planner_map(
    grids: gpd.GeoDataFrame,
    *,
    findings: gpd.GeoDataFrame | None = None,
    diff: pd.DataFrame | None = None,
    current: gpd.GeoDataFrame | None = None,
    tiles: str | None = None,
    attribution: str | None = None,
) -> folium.Map:
    """Draw a plan: its grid levels (:func:`~geogrid.maps.grid_map`), its findings and its changes.

    Parameters
    ----------
    grids
        The plan's grid layer (lon/lat).
    findings
        Findings of :func:`geogrid.hierarchy.check_grids` on ``grids`` (``kind``, ``message``),
        drawn in :data:`FINDING_COLOUR` on top.
    diff
        ``PlanDiff.grids`` (``grid_id``, ``status``): added and changed grids are drawn from
        ``grids``, removed ones from ``current``, in :data:`STATUS_COLOURS`.
    current
        The current network (for the outlines of removed grids).
    tiles, attribution
        As for :func:`~geogrid.maps.grid_map`.

    Returns
    -------
    folium.Map
        Overlays ``对比现状的变更`` (changes against the current network) and ``质检问题``
        (findings) after the levels.
    """
    m = _m.grid_map(grids, tiles=tiles, attribution=attribution)
    if diff is not None and len(diff):
        status = dict(zip(diff["grid_id"].astype(str), diff["status"], strict=True))
        ids = grids["grid_id"].astype(str)
        shown = grids[ids.isin([g for g, s in status.items() if s != "removed"])]
        parts = [shown.assign(status=shown["grid_id"].astype(str).map(status))]
        if current is not None:
            gone = current[current["grid_id"].astype(str).isin([g for g, s in status.items() if s == "removed"])]
            parts.append(gone.assign(status="removed").to_crs(grids.crs))
        changes = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=grids.crs)
        colours = {s: STATUS_COLOURS[s] for s in STATUS_COLOURS}
        style = {"weight": 3, "opacity": 0.95, "fillOpacity": 0.18, "dashArray": "6 4"}
        overlay = _text_overlay(changes, "对比现状的变更", {"status": "变更", "grid_id": "编号", "name": "名称"}, style)
        overlay.style_function = lambda feature: {
            **style,
            "color": colours.get(feature["properties"]["status"], "#ffb000"),
            "fillColor": colours.get(feature["properties"]["status"], "#ffb000"),
        }
        overlay.add_to(m)
    if findings is not None and len(findings):
        style = {"color": FINDING_COLOUR, "weight": 4, "opacity": 1.0, "fillColor": FINDING_COLOUR, "fillOpacity": 0.5}
        _text_overlay(findings, "质检问题", {"kind": "问题", "message": "说明"}, style).add_to(m)
    return m
