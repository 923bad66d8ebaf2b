"""Private: the offline QA report of :func:`geogrid.hierarchy.check_grids` as one HTML page."""

from __future__ import annotations

import math

import numpy as np

import folium
import geopandas as gpd
import shapely

from geogrid.hierarchy import FINDING_KINDS, CheckResult
from geogrid.maps import escape_text, grid_map, render_standalone
from layers.schema import STORAGE_CRS

__all__ = ["report_html"]

_KIND_COLOURS = {
    "invalid": "#000000",
    "overlap": "#d7191c",
    "gap": "#ff7f00",
    "edge_mismatch": "#e7298a",
    "outside_parent": "#7b3294",
    "parent_not_tiled": "#f1b6da",
    "hierarchy": "#1a1a1a",
}

_PAGE_CSS = """<style>
.folium-map { height: 62vh !important; }
#geogrid-qa { font: 14px/1.4 system-ui, sans-serif; margin: 12px 16px 40px; }
#geogrid-qa table { border-collapse: collapse; width: 100%; }
#geogrid-qa th, #geogrid-qa td { border-bottom: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }
#geogrid-qa td.num { text-align: right; font-variant-numeric: tabular-nums; }
#geogrid-qa .swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
</style>"""


def _num(v: float, fmt: str) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def report_html(grids: gpd.GeoDataFrame, result: CheckResult, *, title: str = "grid QA report") -> str:
    """Build the page: the grids, each finding highlighted (shape and a ring marker), a table."""
    g = grids.to_crs(STORAGE_CRS) if grids.crs is not None and not grids.crs.equals(STORAGE_CRS) else grids
    usable = ~(g.geometry.is_empty | g.geometry.isna())
    m = grid_map(g[usable])
    f = result.findings.reset_index(drop=True)
    number = np.arange(1, len(f) + 1)
    has = ~(f.geometry.isna() | f.geometry.is_empty) if len(f) else np.zeros(0, dtype=bool)
    for kind in FINDING_KINDS:
        rows = f[(f["kind"] == kind) & has]
        if rows.empty:
            continue
        colour = _KIND_COLOURS[kind]
        props = gpd.GeoDataFrame(
            {
                "n": [str(i) for i in number[rows.index]],
                "kind": escape_text(kind),
                "ids": [escape_text(", ".join(ids)) for ids in rows["grid_ids"]],
                "message": [escape_text(msg) for msg in rows["message"]],
            },
            geometry=rows.geometry.to_numpy(),
            crs=STORAGE_CRS,
        )
        tip = folium.GeoJsonTooltip(
            fields=["n", "kind", "ids", "message"], aliases=["#", "kind", "grids", ""], sticky=True
        )
        group = folium.FeatureGroup(name=escape_text(f"{kind} ({len(rows)})"), overlay=True, show=True)
        shapes = props[~props.geometry.geom_type.isin(["Point", "MultiPoint"])]
        if len(shapes):
            style = {"color": colour, "weight": 3, "opacity": 0.95, "fillColor": colour, "fillOpacity": 0.5}
            folium.GeoJson(
                shapes.to_geo_dict(show_bbox=False),
                style_function=lambda _f, s=style: s,
                tooltip=tip,
                embed=True,
                zoom_on_click=False,
            ).add_to(group)
        # A ring at each finding, so slivers a metre wide are visible at district zoom.
        marks = props.set_geometry(shapely.point_on_surface(props.geometry.to_numpy()), crs=STORAGE_CRS)
        folium.GeoJson(
            marks.to_geo_dict(show_bbox=False),
            marker=folium.CircleMarker(radius=7, color=colour, weight=2, fill=False),
            tooltip=folium.GeoJsonTooltip(fields=["n", "kind", "ids", "message"], aliases=["#", "kind", "grids", ""]),
            embed=True,
            zoom_on_click=False,
        ).add_to(group)
        group.add_to(m)  # grid_map's layer control lists it: the control renders after every overlay
    page = render_standalone(m)
    table = _table(result, number, title)
    head_at = page.index("</head>")
    page = page[:head_at] + f"<title>{escape_text(title)}</title>" + _PAGE_CSS + page[head_at:]
    body_at = page.rindex("</body>")
    return page[:body_at] + table + page[body_at:]


def _table(result: CheckResult, number: np.ndarray, title: str) -> str:
    s = result.summary
    f = result.findings
    levels = ", ".join(f"{lv}: {count:,}" for lv, count in sorted(s["levels"].items()))
    verdict = "sound: no findings" if result.sound else f"{len(f):,} findings"
    parts = [
        '<div id="geogrid-qa">',
        f"<h1>{escape_text(title)}</h1>",
        f"<p>{s['grids']:,} grids (per level {escape_text(levels)}); {escape_text(verdict)}; "
        f"measured in {escape_text(s['metric_crs'])}, gap width {s['gap_width_m']:g} m.</p>",
    ]
    if len(f):
        parts.append(
            "<table><thead><tr><th>#</th><th>kind</th><th>level</th><th>grids</th>"
            "<th>area m²</th><th>length m</th><th>message</th></tr></thead><tbody>"
        )
        for i, (kind, lv, ids, area, length, msg) in enumerate(
            zip(f["kind"], f["level"], f["grid_ids"], f["area_m2"], f["length_m"], f["message"], strict=True)
        ):
            swatch = f'<span class="swatch" style="background:{_KIND_COLOURS.get(kind, "#888")}"></span>'
            parts.append(
                f"<tr><td class=num>{number[i]}</td><td>{swatch}{escape_text(kind)}</td><td class=num>{int(lv)}</td>"
                f"<td>{escape_text(', '.join(ids))}</td><td class=num>{_num(area, ',.2f')}</td>"
                f"<td class=num>{_num(length, ',.1f')}</td><td>{escape_text(msg)}</td></tr>"
            )
        parts.append("</tbody></table>")
    parts.append("</div>")
    return "\n".join(parts)
