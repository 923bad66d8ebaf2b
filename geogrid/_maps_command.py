"""The command centre's wall map.

Grids, incidents (heat and clusters), cameras and their views, blind spots and hot spots,
on a dark background.

Public through :func:`geogrid.maps.command_centre_map`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

import folium
import geopandas as gpd
import shapely
from folium.plugins import FastMarkerCluster, HeatMap
from folium.template import Template

from geogrid.maps import _DISPLAY_PRECISION_DEG, OfflineMap, _check_grids, _level_overlay, escape_text
from geogrid.stats import latest_time, open_at
from layers import CRSError
from layers.times import DEFAULT_TZ

__all__ = ["LAYER_NAMES", "WALL_COLOURS", "command_centre_map"]

WALL_COLOURS = ("#e9ecef", "#ffd166", "#06d6a0", "#4cc9f0", "#c77dff", "#adb5bd")
"""Level outlines on the dark wall, coarsest first (bright on a navy background)."""

LAYER_NAMES = {
    "incidents": "事件点位",
    "incident heat": "事件热力",
    "cameras": "摄像头",
    "camera views": "摄像头视域",
    "hot spots": "热点网格 (Gi*)",
    "blind spots": "监控盲区",
}
"""The wall's overlay names in the layer switcher (the wall is read in Chinese), by what they show."""

_OPEN_COLOUR, _CLOSED_COLOUR = "#ff4d6d", "#8d99ae"
_HOT_COLOURS = {3: "#d7191c", 2: "#fd6b3c", 1: "#fdae61", -1: "#abd9e9", -2: "#74add1", -3: "#2c7bb6"}
_CAMERA_COLOUR, _VIEW_COLOUR, _BLIND_COLOUR = "#f8f9fa", "#90e0ef", "#ff00a8"
_EARTH_M_PER_DEG = 111_320.0
_HEAT_GRADIENT = {0.25: "#1d3557", 0.45: "#7b2cbf", 0.65: "#f72585", 0.85: "#ff9e00", 1.0: "#ffff3f"}


class _IncidentClusters(FastMarkerCluster):
    """FastMarkerCluster that adds its markers in one ``addLayers`` call (one clustering pass)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = (function(){
                {{ this.callback }}
                var data = {{ this.data|tojson }};
                var cluster = L.markerClusterGroup({{ this.options|tojavascript }});
                var markers = new Array(data.length);
                for (var i = 0; i < data.length; i++) { markers[i] = callback(data[i]); }
                cluster.addLayers(markers);
                cluster.addTo({{ this._parent.get_name() }});
                return cluster;
            })();
        {% endmacro %}"""
    )


class _CompactPolygons(folium.map.Layer):
    """Many polygons with one style, coordinates as 1e-5° integers delta-encoded per ring.

    About a quarter of the bytes of GeoJSON for thousands of small polygons (camera views):
    each item is a list of rings (exterior first), each ring ``[x0, y0, dx1, dy1, ...]``.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = (function(){
                var d = {{ this.data|tojson }}, g = L.featureGroup(), style = {{ this.style|tojson }};
                for (var i = 0; i < d.length; i++) {
                    var rings = [];
                    for (var k = 0; k < d[i].length; k++) {
                        var r = d[i][k], x = r[0], y = r[1], ll = [[y / 1e5, x / 1e5]];
                        for (var j = 2; j < r.length; j += 2) { x += r[j]; y += r[j + 1]; ll.push([y / 1e5, x / 1e5]); }
                        rings.push(ll);
                    }
                    L.polygon(rings, style).addTo(g);
                }
                return g;
            })();
        {% endmacro %}"""
    )

    def __init__(self, geoms: Any, *, name: str, style: dict[str, Any], show: bool = True) -> None:
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "CompactPolygons"
        self.style = style
        self.data = []
        for part in shapely.get_parts(np.asarray(geoms, dtype=object)):
            if part is None or part.is_empty or part.geom_type != "Polygon":
                continue
            rings = [part.exterior, *part.interiors]
            encoded = []
            for ring in rings:
                q = np.round(shapely.get_coordinates(ring)[:-1] * 1e5).astype(np.int64)
                if len(q) < 3:
                    continue
                deltas = np.diff(q, axis=0)
                encoded.append([int(q[0, 0]), int(q[0, 1]), *(int(v) for v in deltas.ravel())])
            if encoded:
                self.data.append(encoded)


def command_centre_map(
    grids: gpd.GeoDataFrame,
    *,
    incidents: gpd.GeoDataFrame | None = None,
    cameras: gpd.GeoDataFrame | None = None,
    views: gpd.GeoDataFrame | None = None,
    hotspots: gpd.GeoDataFrame | None = None,
    blind_spots: gpd.GeoDataFrame | None = None,
    max_points: int = 20_000,
    heat_cell_m: float = 25.0,
    tiles: str | None = None,
    attribution: str | None = None,
    tz: str = DEFAULT_TZ,
    as_of: pd.Timestamp | None = None,
) -> folium.Map:
    """Draw the command-centre wall: grid levels, incidents, cameras and analyses on one map.

    Built to stay light on a whole district: incidents are drawn twice, as a heat layer of
    counts per ``heat_cell_m`` cell (every incident given) and as clusters of the
    ``max_points`` most recent ones, each with an escaped popup; vectors go to one
    canvas. Pass the incidents of the period to show (the caller filters by time).

    Parameters
    ----------
    grids
        Grid layer (``grid_id``, ``level``; ``name``, ``level_name`` shown) in lon/lat.
    incidents
        Incidents to show (``incident_id``, ``reported_at``; ``category``, ``source``,
        ``status``, ``description`` in popups, all escaped), in the grids' CRS.
    cameras
        Cameras (``camera_id``; ``owner``, ``status`` in tooltips).
    views
        Camera view polygons (:func:`geogrid.coverage.camera_views`).
    hotspots
        Gi* results with ``bin`` (:func:`geogrid.hotspots.incident_hotspots`): grids with a
        non-zero bin are drawn, hot in reds, cold in blues; grids withheld as too sparse to
        judge (``withheld``) get a grey dashed outline and the reason, never a colour.
    blind_spots
        Polygons no camera sees (:func:`geogrid.coverage.blind_spots`).
    max_points
        Most incidents drawn as individual (clustered) markers: the most recent ones.
    heat_cell_m
        Cell size of the heat layer's aggregation, in metres.
    tiles, attribution
        A local basemap, as in :func:`grid_map`.
    tz
        The store's time zone (:func:`layers.times.store_time_zone`): popups show report
        times there.
    as_of
        The instant markers are coloured open or closed at (:func:`geogrid.stats.open_at`;
        pass the last instant of the period shown). Default: the latest report or closing
        time of the incidents given, i.e. their state as the data records it today.

    Returns
    -------
    folium.Map
        The map (render it with :func:`render_offline`); its overlays are the grid levels
        and, as given, the layers of :data:`LAYER_NAMES` under their Chinese names.

    Raises
    ------
    SchemaError, CRSError
        As :func:`grid_map`; also when a point layer's CRS differs from the grids'.

    Examples
    --------
    >>> import geopandas as gpd, pandas as pd, shapely
    >>> g = gpd.GeoDataFrame({"grid_id": ["d"], "level": [0]},
    ...                      geometry=[shapely.box(117, 39, 117.02, 39.01)], crs="EPSG:4326")
    >>> inc = gpd.GeoDataFrame({"incident_id": ["e1"], "reported_at": pd.to_datetime(["2025-03-01"], utc=True),
    ...                         "description": ["<img src=x>"]}, geometry=[shapely.Point(117.01, 39.005)], crs=4326)
    >>> m = command_centre_map(g, incidents=inc)
    >>> sorted(getattr(c, "layer_name", "") for c in m._children.values() if getattr(c, "layer_name", ""))
    ['level 0', '事件点位', '事件热力']
    """
    _check_grids(grids)
    for name, layer in (("incidents", incidents), ("cameras", cameras)):
        if layer is not None and layer.crs != grids.crs:
            seen = layer.crs.to_string() if layer.crs is not None else "no CRS"
            msg = f"{name} has {seen} but grids have {grids.crs.to_string()}: call {name}.to_crs(grids.crs)"
            raise CRSError(msg)
    if tiles is not None and not all(part in tiles for part in ("{z}", "{x}", "{y}")):
        msg = f"tiles={tiles!r} is not a tile URL template: pass e.g. 'http://tiles.local/{{z}}/{{x}}/{{y}}.png'"
        raise ValueError(msg)

    # markercluster needs the map's own maxZoom (folium gives it only to tile layers).
    m = OfflineMap(tiles=None, zoom_snap=0.25, prefer_canvas=True, maxZoom=19)
    if tiles is not None:
        folium.TileLayer(
            tiles=tiles, attr=escape_text(attribution or "local tiles"), name="basemap", overlay=False
        ).add_to(m)
    levels = sorted(int(v) for v in pd.unique(grids["level"]))
    for depth, level in reversed(list(enumerate(levels))):
        rows = grids[grids["level"] == level]
        overlay = _level_overlay(
            rows, level, depth=depth, n_levels=len(levels), filled=depth == len(levels) - 1, colours=WALL_COLOURS
        )
        overlay.add_to(m)
    if hotspots is not None and len(hotspots):
        _hotspot_overlay(hotspots).add_to(m)
    if blind_spots is not None and len(blind_spots):
        _plain_overlay(blind_spots, LAYER_NAMES["blind spots"], _BLIND_COLOUR, fill_opacity=0.35, show=False).add_to(m)
    if views is not None and len(views):
        _plain_overlay(
            views, LAYER_NAMES["camera views"], _VIEW_COLOUR, fill_opacity=0.12, weight=0.5, show=False
        ).add_to(m)
    if cameras is not None and len(cameras):
        _camera_overlay(cameras).add_to(m)
    if incidents is not None:
        _incident_heat(incidents, cell_m=heat_cell_m).add_to(m)
        _incident_clusters(incidents, max_points=max_points, tz=tz, as_of=as_of).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    if len(grids) and not grids.geometry.is_empty.all():
        minx, miny, maxx, maxy = (float(v) for v in grids.total_bounds)
        m.fit_bounds([[miny, minx], [maxy, maxx]])
    return m


def _display(geoms: Any, precision: float = _DISPLAY_PRECISION_DEG) -> Any:
    return shapely.set_precision(np.asarray(geoms, dtype=object), precision, mode="pointwise")


def _plain_overlay(
    frame: gpd.GeoDataFrame, name: str, colour: str, *, fill_opacity: float, weight: float = 1.0, show: bool = True
) -> _CompactPolygons:
    """Polygons with one style and no text (views, blind spots): coordinates to about 1 m."""
    # Display only: simplified to about 2 m, coordinates to 1e-5° (about 1 m).
    geoms = shapely.simplify(np.asarray(frame.geometry.array, dtype=object), 2e-5, preserve_topology=True)
    style = {
        "color": colour,
        "weight": weight,
        "opacity": 0.8,
        "fillColor": colour,
        "fillOpacity": fill_opacity,
        "interactive": False,
    }
    return _CompactPolygons(geoms, name=escape_text(name), style=style, show=show)


_WITHHELD_LABELS = {
    "too_few": "事件过少，未判定",
    "sparse": "数据稀疏，未判定",
    "empty_neighbourhood": "周边无事件，未判定",
    "no_neighbours": "无相邻网格，未判定",
    "constant": "各网格无差异，未判定",
    "no_value": "无数据，未判定",
}
"""What the wall says instead of a colour, per ``withheld`` code of :func:`geogrid.hotspots.gi_star`."""
_WITHHELD_COLOUR = "#adb5bd"
_CONFIDENCE = {3: "99%", 2: "95%", 1: "90%"}


def _hotspot_overlay(hot: gpd.GeoDataFrame) -> folium.GeoJson:
    held = hot["withheld"].notna().to_numpy() if "withheld" in hot.columns else np.zeros(len(hot), dtype=bool)
    rows = hot[(hot["bin"] != 0).to_numpy() | held]
    held = held[(hot["bin"] != 0).to_numpy() | held]
    names = rows["name"] if "name" in rows.columns else rows["grid_id"]
    bins = rows["bin"].astype(int).to_numpy()
    state = [
        _WITHHELD_LABELS.get(str(code), "未判定") if h else f"{'热点' if b > 0 else '冷点'} {_CONFIDENCE[abs(b)]}"
        for b, h, code in zip(bins, held, rows.get("withheld", pd.Series([None] * len(rows))), strict=True)
    ]
    data = gpd.GeoDataFrame(
        {
            "grid": [escape_text(n) for n in names],
            "bin": np.where(held, 0, bins),
            "held": held,
            "state": state,
            "count": [escape_text(f"{c:g}") for c in rows["count"]] if "count" in rows else "",
            "z": ["-" if z != z else f"{z:.2f}" for z in rows["z"]],
            "p": ["-" if p != p else f"{p:.3f}" for p in rows.get("p_fdr", rows["p"])],
        },
        geometry=_display(rows.geometry.array),
        crs=rows.crs,
    )

    def style(feature: dict[str, Any]) -> dict[str, Any]:
        if feature["properties"]["held"]:
            # Withheld: said in the tooltip and the legend, never coloured as a hot or cold spot.
            return {"color": _WITHHELD_COLOUR, "weight": 1, "dashArray": "4 4", "fillOpacity": 0.0}
        colour = _HOT_COLOURS.get(int(feature["properties"]["bin"]), "#ffffff")
        return {"color": colour, "weight": 1.5, "fillColor": colour, "fillOpacity": 0.45}

    return folium.GeoJson(
        data.to_geo_dict(show_bbox=False, drop_id=True),
        name=LAYER_NAMES["hot spots"],
        style_function=style,
        tooltip=folium.GeoJsonTooltip(
            fields=["grid", "state", "count", "z", "p"], aliases=["网格", "判定", "事件", "Gi* z", "p (FDR)"]
        )
        if len(data)
        else None,  # folium refuses tooltip fields on an empty layer; no significant grid is a result too
        embed=True,
    )


def _camera_overlay(cameras: gpd.GeoDataFrame) -> folium.GeoJson:
    xy = shapely.get_coordinates(cameras.geometry.array)
    n = len(cameras)
    column = {c: cameras[c] if c in cameras.columns else pd.Series([None] * n) for c in ("owner", "status")}
    data = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [round(float(x), 5), round(float(y), 5)]},
                "properties": {"camera": escape_text(c), "owner": escape_text(o), "status": escape_text(s)},
            }
            for (x, y), c, o, s in zip(xy, cameras["camera_id"], column["owner"], column["status"], strict=True)
        ],
    }
    return folium.GeoJson(
        data,
        name=LAYER_NAMES["cameras"],
        marker=folium.CircleMarker(radius=2, weight=0, fill=True, fill_color=_CAMERA_COLOUR, fill_opacity=0.8),
        tooltip=folium.GeoJsonTooltip(fields=["camera", "owner", "status"], aliases=["摄像头", "权属", "状态"]),
        embed=True,
        show=False,
    )


def _incident_heat(incidents: gpd.GeoDataFrame, *, cell_m: float) -> HeatMap:
    """Draw counts per cell of about ``cell_m`` metres as heat (every incident, however many)."""
    xy = shapely.get_coordinates(incidents.geometry.array)
    if len(xy) == 0:
        return HeatMap([], name=LAYER_NAMES["incident heat"], max=1.0, radius=14, blur=18)
    lat0 = float(np.nanmean(xy[:, 1]))
    dy = cell_m / _EARTH_M_PER_DEG
    dx = dy / max(np.cos(np.radians(lat0)), 1e-6)
    cells = np.floor(xy / [dx, dy]).astype(np.int64)
    cells -= cells.min(axis=0)
    width = int(cells[:, 1].max()) + 1
    keys, counts = np.unique(cells[:, 0] * width + cells[:, 1], return_counts=True)
    origin = np.floor(xy / [dx, dy]).min(axis=0)
    centres = (np.column_stack([keys // width, keys % width]) + origin + 0.5) * [dx, dy]
    top = float(np.quantile(counts, 0.995)) if len(counts) > 1 else float(counts.max())
    data = [[round(float(y), 5), round(float(x), 5), int(c)] for (x, y), c in zip(centres, counts, strict=True)]
    return HeatMap(
        data,
        name=LAYER_NAMES["incident heat"],
        max=max(top, 1.0),
        radius=14,
        blur=18,
        min_opacity=0.05,
        gradient=_HEAT_GRADIENT,
    )


def _incident_clusters(
    incidents: gpd.GeoDataFrame, *, max_points: int, tz: str, as_of: pd.Timestamp | None
) -> _IncidentClusters:
    """Cluster the ``max_points`` most recent incidents, popups built from escaped text."""
    recent = incidents
    if "reported_at" in incidents.columns and len(incidents) > max_points:
        recent = incidents.iloc[np.argsort(incidents["reported_at"].to_numpy(), kind="stable")[-max_points:]]
    elif len(incidents) > max_points:
        recent = incidents.iloc[:max_points]
    n = len(recent)

    def codes(col: str) -> tuple[list[str], list[int]]:
        values = recent[col].astype(object).where(recent[col].notna(), "") if col in recent else pd.Series([""] * n)
        cats, idx = np.unique(values.astype(str).to_numpy(), return_inverse=True)
        return [escape_text(c) for c in cats], [int(i) for i in idx]

    cat_names, cat = codes("category")
    src_names, src = codes("source")
    st_names, st = codes("status")
    at = as_of if as_of is not None else latest_time(recent)
    known = at is not None and "reported_at" in recent
    is_open = open_at(recent, at, tz=tz) if known and at is not None else np.zeros(n, dtype=bool)
    if "reported_at" in recent and n:
        local = pd.DatetimeIndex(pd.to_datetime(recent["reported_at"], utc=True)).tz_convert(tz)
        times = np.datetime_as_string(local.tz_localize(None).to_numpy(dtype="datetime64[m]"), unit="m")
        times = np.char.replace(times.astype(str), "T", " ").astype(object)
        times[local.isna()] = ""
    else:
        times = np.full(n, "", dtype=object)
    desc = recent["description"] if "description" in recent else pd.Series([""] * n)
    xy = shapely.get_coordinates(recent.geometry.array)
    data = [
        [round(float(y), 5), round(float(x), 5), c, s, t, escape_text(i), escape_text(w), escape_text(d), int(o)]
        for (x, y), c, s, t, i, w, d, o in zip(
            xy, cat, src, st, recent["incident_id"], times, desc.astype(object).fillna(""), is_open, strict=True
        )
    ]
    import json

    tables = json.dumps({"cat": cat_names, "src": src_names, "st": st_names})
    callback = (
        "(function () {\n"
        f"var T = {tables};\n"
        "return function (r) {\n"
        f"  var m = L.circleMarker([r[0], r[1]], {{radius: 5, weight: 1, color: '#0b1220', fillOpacity: 0.9,\n"
        f"      fillColor: r[8] ? '{_OPEN_COLOUR}' : '{_CLOSED_COLOUR}'}});\n"
        "  m.bindPopup(function () {\n"
        "    return '<b>' + r[5] + '</b> ' + r[6] + '<br>' + T.cat[r[2]] + ' · ' + T.src[r[3]] + ' · ' + T.st[r[4]]\n"
        "      + '<br><span class=\"gg-desc\">' + r[7] + '</span>';\n"
        "  });\n"
        "  return m;\n"
        "};\n"
        "})()"
    )
    options = {"chunkedLoading": False, "maxClusterRadius": 50, "disableClusteringAtZoom": 18}
    return _IncidentClusters(data, callback=callback, name=LAYER_NAMES["incidents"], options=options)
