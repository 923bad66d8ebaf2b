"""Folium maps of the grid hierarchy that work on a closed intranet.

:func:`grid_map` draws every level of a grid layer as its own overlay;
:func:`render_offline` turns any folium map into HTML whose scripts and styles
all come from a local asset server (no CDN), so the page loads where the
public internet does not reach (command-centre intranets).

Every piece of user text that reaches the page (names, ids, layer names,
attributions) goes through :func:`escape_text` first.
"""

from __future__ import annotations

import base64
import copy
import functools
import html
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
from branca.element import CssLink, Element, Figure, JavascriptLink, MacroElement

import folium
import geopandas as gpd
import shapely
from folium.elements import JSCSSMixin
from folium.map import FitBounds
from folium.template import Template

from layers import CRSError, GeogridError, NotFoundError, SchemaError
from layers.crs import is_storage_crs
from layers.errors import Problem

__all__ = [
    "CHROME_RANK_ATTR",
    "LEAFLET_VERSION",
    "LEVEL_COLOURS",
    "PLUGIN_VERSIONS",
    "VENDORED_ASSETS",
    "WALL_COLOURS",
    "OfflineMap",
    "command_centre_map",
    "escape_text",
    "grid_map",
    "planner_map",
    "render_offline",
    "render_standalone",
]

LEAFLET_VERSION = "1.9.3"
"""The Leaflet release folium 0.20 links to, and the one vendored next to the web service."""

_LEAFLET_DIR = f"leaflet-{LEAFLET_VERSION}"

PLUGIN_VERSIONS: Mapping[str, str] = {
    "leaflet.markercluster": "1.5.3",
    "leaflet.heat": "0.2.0",
    "leaflet-geoman-free": "2.20.2",
}
"""The Leaflet plugins vendored next to Leaflet (folium links other versions, or ``@latest``)."""

_CLUSTER_DIR = f"leaflet.markercluster-{PLUGIN_VERSIONS['leaflet.markercluster']}"
_HEAT_DIR = f"leaflet.heat-{PLUGIN_VERSIONS['leaflet.heat']}"
_GEOMAN_DIR = f"leaflet-geoman-free-{PLUGIN_VERSIONS['leaflet-geoman-free']}"
_CDNJS_CLUSTER = "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0"
_UNPKG_GEOMAN = "https://unpkg.com/@geoman-io/leaflet-geoman-free@latest/dist"

VENDORED_ASSETS: Mapping[str, str] = {
    f"https://cdn.jsdelivr.net/npm/leaflet@{LEAFLET_VERSION}/dist/leaflet.js": f"{_LEAFLET_DIR}/leaflet.js",
    f"https://cdn.jsdelivr.net/npm/leaflet@{LEAFLET_VERSION}/dist/leaflet.css": f"{_LEAFLET_DIR}/leaflet.css",
    # folium.plugins.MarkerCluster / FastMarkerCluster (folium pins 1.1.0; 1.5.3 has the same API)
    f"{_CDNJS_CLUSTER}/leaflet.markercluster.js": f"{_CLUSTER_DIR}/leaflet.markercluster.js",
    f"{_CDNJS_CLUSTER}/MarkerCluster.css": f"{_CLUSTER_DIR}/MarkerCluster.css",
    f"{_CDNJS_CLUSTER}/MarkerCluster.Default.css": f"{_CLUSTER_DIR}/MarkerCluster.Default.css",
    # folium.plugins.HeatMap (folium links its own build of leaflet.heat from GitHub's main branch)
    "https://cdn.jsdelivr.net/gh/python-visualization/folium@main/folium/templates/leaflet_heat.min.js": (
        f"{_HEAT_DIR}/leaflet-heat.js"
    ),
    # folium.plugins.GeoMan (folium links @latest: never on a wall)
    f"{_UNPKG_GEOMAN}/leaflet-geoman.js": f"{_GEOMAN_DIR}/leaflet-geoman.min.js",
    f"{_UNPKG_GEOMAN}/leaflet-geoman.css": f"{_GEOMAN_DIR}/leaflet-geoman.css",
}
"""External asset URL → path, relative to the asset server's root, of its vendored copy."""

# folium's Map links these on every page, but a map of polygons, tooltips and a layer
# control never uses them. They are left out unless the rendered script shows a use
# (then rendering fails, naming what must be vendored).
# (User text cannot fake a use: escape_text encodes ``$``.)
_USE_OF_OPTIONAL: Mapping[str, str | None] = {
    "jquery": r"\$\(|\$\.",  # folium's Popup, GeoJson(embed=False), objects_to_stay_in_front
    "bootstrap": None,
    "bootstrap_css": None,
    "glyphicons_css": r"L\.AwesomeMarkers",  # folium.Icon
    "awesome_markers": r"L\.AwesomeMarkers",
    "awesome_markers_css": r"L\.AwesomeMarkers",
    "awesome_markers_font_css": r"L\.AwesomeMarkers",
    "awesome_rotate_css": r"L\.AwesomeMarkers",
}

_ESCAPE_MORE = str.maketrans({"`": "&#96;", "$": "&#36;", "\\": "&#92;"})

_DISPLAY_PRECISION_DEG = 1e-6

# Stroke/fill colour per level, coarsest first; deeper levels reuse the last one.
_LEVEL_COLOURS = ("#b2182b", "#2166ac", "#1b7837", "#762a83", "#e08214", "#4d4d4d")
LEVEL_COLOURS = _LEVEL_COLOURS
"""Outline colours of the grid levels by depth, coarsest first."""

_ASSET_REF = re.compile(r"<(script|link)\b[^>]*?\b(src|href)\s*=\s*[\"']?([^\"'\s>]+)", re.IGNORECASE)
_ANY_SRC = re.compile(r"<[a-z]+\b[^>]*?\bsrc\s*=\s*[\"']?([^\"'\s>]+)", re.IGNORECASE)
_STYLE = re.compile(r"<style\b[^>]*>(.*?)</style>", re.IGNORECASE | re.DOTALL)
_CSS_IMPORT = re.compile(r"@import|url\(\s*[\"']?[a-z]*:?//", re.IGNORECASE)
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.IGNORECASE | re.DOTALL)
_OPENING_TAG = re.compile(r"<(script|style)(?=[\s>])", re.IGNORECASE)
_NONCE = re.compile(r"[A-Za-z0-9+/=_-]{1,128}")


def escape_text(text: object) -> str:
    r"""Make user text safe to put into folium HTML and JavaScript template strings.

    ``html.escape`` alone is not enough for folium: tooltips, popups and layer names
    end up inside JavaScript template literals, where ``${...}`` and a backslash
    before a backtick still run. Those three characters are entity-encoded too; the
    browser shows them unchanged.

    Parameters
    ----------
    text
        Any value; ``None`` and NaN become an empty string, others go through ``str``.

    Returns
    -------
    str
        Text with ``& < > " '`` and the backtick, ``$`` and ``\`` replaced by HTML entities.

    Examples
    --------
    >>> escape_text("<b>网格一</b> ${x}")
    '&lt;b&gt;网格一&lt;/b&gt; &#36;{x}'
    """
    if text is None or (isinstance(text, float) and text != text):
        return ""
    return html.escape(str(text), quote=True).translate(_ESCAPE_MORE)


def grid_map(
    grids: gpd.GeoDataFrame,
    *,
    levels: Sequence[int] | None = None,
    tiles: str | None = None,
    attribution: str | None = None,
) -> folium.Map:
    """Draw a grid layer, one overlay per level, on a folium map.

    Coarser levels are drawn as thicker outlines on top; the finest level shown is
    filled lightly so that hovering anywhere shows its tooltip (name and ``grid_id``).
    A layer control switches levels on and off and the view fits the grids.

    Parameters
    ----------
    grids
        Grid layer with ``grid_id``, ``level`` and polygon geometries in lon/lat
        (EPSG:4326 or EPSG:4490); ``name`` and ``level_name`` are shown when present.
    levels
        The levels to draw (default: every level in ``grids``).
    tiles
        URL template of a basemap tile server, e.g. ``"http://tiles.local/{z}/{x}/{y}.png"``.
        The default, None, draws no basemap: the right choice offline.
    attribution
        Attribution shown for ``tiles`` (escaped; plain text).

    Returns
    -------
    folium.Map
        The map; render it with :func:`render_offline` for a page without CDN links.

    Raises
    ------
    SchemaError
        ``grids`` lacks ``grid_id`` or ``level``.
    CRSError
        ``grids`` is not in lon/lat (EPSG:4326 / EPSG:4490).
    NotFoundError
        A requested level does not occur in ``grids``.
    ValueError
        ``tiles`` is not a ``{z}/{x}/{y}`` URL template.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame({"grid_id": ["d", "g"], "level": [0, 1], "name": ["河北区", "网格一"]},
    ...                      geometry=[shapely.box(117, 39, 117.02, 39.01)] * 2, crs="EPSG:4326")
    >>> m = grid_map(g)
    >>> sorted(c.layer_name for c in m._children.values() if isinstance(c, folium.GeoJson))
    ['level 0', 'level 1']
    """
    _check_grids(grids)
    present = sorted(int(v) for v in pd.unique(grids["level"]))
    if levels is None:
        shown = present
    else:
        missing = sorted({int(v) for v in levels} - set(present))
        if missing:
            msg = f"levels {missing} do not occur in grids (it has levels {present}): pass some of those"
            raise NotFoundError(msg)
        shown = sorted({int(v) for v in levels})
    if tiles is not None and not all(part in tiles for part in ("{z}", "{x}", "{y}")):
        msg = (
            f"tiles={tiles!r} is not a tile URL template: pass e.g. 'http://tiles.local/{{z}}/{{x}}/{{y}}.png' or None"
        )
        raise ValueError(msg)

    m = OfflineMap(tiles=None, zoom_snap=0.25)
    if tiles is not None:
        folium.TileLayer(
            tiles=tiles, attr=escape_text(attribution or "local tiles"), name="basemap", overlay=False
        ).add_to(m)

    finest = shown[-1] if shown else None
    # Finest level first so that the coarser outlines lie on top of its fill.
    for level in reversed(shown):
        rows = grids[grids["level"] == level]
        _level_overlay(rows, level, depth=shown.index(level), n_levels=len(shown), filled=level == finest).add_to(m)

    if shown:
        folium.LayerControl(collapsed=False).add_to(m)
    if len(grids) and not grids.geometry.is_empty.all():
        minx, miny, maxx, maxy = (float(v) for v in grids[grids["level"].isin(shown)].total_bounds)
        m.fit_bounds([[miny, minx], [maxy, maxx]])
    return m


# -- the map every builder returns ----------------------------------------------------

CHROME_RANK_ATTR = "_geogrid_chrome_rank"
"""Attribute of a map child that must render after the overlays: rank 1 layer control, 2 view, 3 scripts using them."""


def _chrome_rank(child: object) -> int:
    if isinstance(child, folium.LayerControl):
        return 1
    if isinstance(child, FitBounds):
        return 2
    return int(getattr(child, CHROME_RANK_ATTR, 0))


class OfflineMap(folium.Map):
    """A folium map whose chrome renders last and whose page needs no network.

    Two things happen each time it renders (``m.save``, Jupyter's display,
    ``m.get_root().render()``, :func:`render_offline`):

    - Its chrome renders after every overlay, whatever order the children were added
      in: the layer control (its script names each overlay's variable, so an overlay
      declared after it is still undefined and the page script dies on
      ``setZIndex``), then ``fit_bounds``, then children that set
      :data:`CHROME_RANK_ATTR` to 3 (scripts that use the control).
    - Unless :func:`render_offline` has already pointed the links at an asset server,
      the vendored scripts and stylesheets are copied into the page (as
      :func:`render_standalone` does), folium's unused jQuery/Bootstrap links are left
      out, and a link to any other host is an error.

    Examples
    --------
    >>> m = OfflineMap(tiles=None)
    >>> folium.LayerControl().add_to(m)  # doctest: +ELLIPSIS
    <folium.map.LayerControl object at ...>
    >>> _ = folium.GeoJson({"type": "Point", "coordinates": [117, 39]}, name="late").add_to(m)
    >>> page = m.get_root().render()
    >>> page.index("var geo_json_") < page.rindex("L.control.layers("), "cdn.jsdelivr.net" in page
    (True, False)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.pop("control_scale", False):
            msg = "OfflineMap draws a metric scale bar itself; leave out control_scale"
            raise TypeError(msg)
        super().__init__(*args, **kwargs)
        _MetricScale().add_to(self)

    def render(self, **kwargs: Any) -> None:  # type: ignore[override]  # folium's Map.render returns None too
        """Render the children with the chrome last, then inline the vendored assets."""
        for key, _child in sorted(self._children.items(), key=lambda kv: _chrome_rank(kv[1])):
            self._children.move_to_end(key)
        super().render(**kwargs)
        figure = self.get_root()
        if isinstance(figure, Figure):
            _inline_header(figure, _default_asset_dir())

    def save(self, outfile: str | bytes | Path | BinaryIO, close_file: bool = True, **kwargs: Any) -> None:
        """Write the page to ``outfile`` (a path or a binary file); rendered first, so an error leaves no file."""
        page = self.get_root().render(**kwargs).encode("utf8")
        if isinstance(outfile, str | bytes | Path):
            with open(outfile, "wb") as fid:
                fid.write(page)
            return
        outfile.write(page)
        if close_file:
            outfile.close()


class _MetricScale(MacroElement):
    """Leaflet's scale bar in metres and kilometres only (folium's ``control_scale`` adds feet and miles)."""

    _template = Template(
        "{% macro script(this, kwargs) %}"
        "L.control.scale({metric: true, imperial: false}).addTo({{ this._parent.get_name() }});"
        "{% endmacro %}"
    )

    def __init__(self) -> None:
        super().__init__()
        self._name = "MetricScale"


def _inline_header(figure: Figure, root: Path) -> None:
    """Put the vendored files the header links into the page, if it still links their CDN copies."""
    header = figure.header
    links = {k: c for k, c in header._children.items() if isinstance(c, JavascriptLink | CssLink)}
    if not any(c.url in VENDORED_ASSETS for c in links.values()):
        return  # render_offline pointed the links at an asset server (or nothing to do)
    vendored = {k for k, c in links.items() if c.url in VENDORED_ASSETS}
    dropped = {k: c.url for k, c in links.items() if k not in vendored and k in _USE_OF_OPTIONAL}
    for key in dropped:
        del header._children[key]
    if "favicon" not in header._children:
        header.add_child(Element('<link rel="icon" href="data:,">'), name="favicon")
    # Checked before inlining: the vendored sources themselves are not the page's script.
    rest = "".join(c.render() for k, c in header._children.items() if k not in vendored)
    _check_offline(rest + figure.html.render() + f"<script>{figure.script.render()}</script>", "data:", dropped)
    for key in vendored:
        child = links[key]
        rel = VENDORED_ASSETS[child.url]
        text = _inline_js(root, rel) if isinstance(child, JavascriptLink) else _inline_css(root, rel)
        header._children[key] = _Verbatim(text)


class _Verbatim(Element):
    """HTML put into the page as it is (a branca ``Element`` would read it as a Jinja template)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def render(self, **kwargs: Any) -> str:
        """Return the text unchanged."""
        return self.text


@functools.lru_cache(maxsize=64)
def _inline_js(root: Path, rel: str) -> str:
    js = _read_vendored(root, rel).replace("</script", "<\\/script")
    return f"<script>{js}</script>"


@functools.lru_cache(maxsize=64)
def _inline_css(root: Path, rel: str) -> str:
    css = _CSS_COMMENT.sub("", _read_vendored(root, rel))
    base = (root / rel).parent

    def data_url(u: re.Match[str]) -> str:
        img = base / u.group(1)
        if not img.is_file():
            return "url(data:,)"
        mime = "image/png" if img.suffix == ".png" else "image/svg+xml"
        return f"url(data:{mime};base64,{base64.b64encode(img.read_bytes()).decode('ascii')})"

    return f"<style>{_CSS_URL.sub(data_url, css)}</style>"


def _read_vendored(root: Path, rel: str) -> str:
    path = root / rel
    if not path.is_file():
        msg = f"vendored asset {rel} is missing under {root}: reinstall geogrid or pass asset_dir=..."
        raise GeogridError(msg)
    return path.read_text(encoding="utf-8")


def render_offline(
    m: folium.Map,
    *,
    asset_url: str,
    assets: Mapping[str, str] | None = None,
    nonce: str | None = None,
    inplace: bool = False,
) -> str:
    """Render a folium map to HTML that loads every script and stylesheet from ``asset_url``.

    Works on a copy: neither ``m`` nor folium's class-level link lists change. Links in
    :data:`VENDORED_ASSETS` (and ``assets``) are rewritten to ``{asset_url}/{path}``;
    folium's default jQuery, Bootstrap, Font Awesome and awesome-markers links are left
    out when the page does not use them.

    Parameters
    ----------
    m
        The map to render.
    asset_url
        URL prefix under which the vendored files are served, e.g. ``"/static/vendor"``.
    assets
        Extra ``external URL → relative path`` pairs for assets vendored beyond Leaflet
        (e.g. for a plugin).
    nonce
        A Content-Security-Policy nonce: every ``<script>`` and ``<style>`` tag of the
        page gets ``nonce="..."``, so a policy of ``script-src 'nonce-...'`` runs the
        page's own scripts and nothing else. Letters, digits and ``+/=_-`` only.
    inplace
        Render ``m`` itself rather than a copy (its links are rewritten): faster for a map
        built for one page (copying 200,000 points takes seconds); do not reuse ``m``.

    Returns
    -------
    str
        A complete HTML page with no reference to another host.

    Raises
    ------
    GeogridError
        The page needs an asset that is not vendored; the message lists the URLs.
    ValueError
        ``nonce`` has characters a nonce cannot have.

    Examples
    --------
    >>> page = render_offline(folium.Map(tiles=None), asset_url="/static/vendor")
    >>> 'src="/static/vendor/leaflet-1.9.3/leaflet.js"' in page, "https://" in page
    (True, False)
    >>> page = render_offline(folium.Map(tiles=None), asset_url="/static/vendor", nonce="r4nd0m")
    >>> page.count("<script") == page.count('<script nonce="r4nd0m"')
    True
    """
    if nonce is not None and not _NONCE.fullmatch(nonce):
        msg = f"nonce {nonce!r} has characters a CSP nonce cannot have: use letters, digits and +/=_- only"
        raise ValueError(msg)
    base = asset_url.rstrip("/")
    table = {**VENDORED_ASSETS, **(assets or {})}
    dropped: dict[str, str] = {}

    def local(name: str, url: str) -> str | None:
        if url in table:
            return f"{base}/{table[url].lstrip('/')}"
        if name in _USE_OF_OPTIONAL:
            dropped[name] = url
            return None
        return url  # left as is; the check below reports it

    figure = (m if inplace else copy.deepcopy(m)).get_root()
    if not isinstance(figure, Figure):  # pragma: no cover  (folium maps always sit in a Figure)
        msg = f"cannot render {type(m).__name__}: it is not inside a branca Figure"
        raise GeogridError(msg)
    for element in _walk(figure):
        if isinstance(element, JSCSSMixin):
            # Instance attributes shadow the class-level lists that add_js_link mutates.
            element.default_js = _relink(element.default_js, local)
            element.default_css = _relink(element.default_css, local)
    for key, child in list(figure.header._children.items()):
        if isinstance(child, JavascriptLink | CssLink):
            url = local(key, child.url)
            if url is None:
                del figure.header._children[key]
            else:
                child.url = url
    if "favicon" not in figure.header._children:
        # An empty icon: browsers otherwise fetch /favicon.ico and log a 404.
        figure.header.add_child(Element('<link rel="icon" href="data:,">'), name="favicon")

    page = figure.render()
    _check_offline(page, base, dropped)
    if nonce is not None:
        page = _OPENING_TAG.sub(lambda t: f'<{t.group(1)} nonce="{nonce}"', page)
    return page


_INLINE_BASE = "geogrid-inline:"
_INLINE_JS = re.compile(r'<script src="geogrid-inline:/([^"]+)"></script>')
_INLINE_CSS = re.compile(r'<link rel="stylesheet" href="geogrid-inline:/([^"]+)"\s*/?>')
_CSS_URL = re.compile(r"url\((?![\"']?(?:data:|#))[\"']?([^\"')]+)[\"']?\)")
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


def _default_asset_dir() -> Path:
    """Return the directory of the vendored browser assets shipped in the wheel (``api/static/vendor``)."""
    return Path(__file__).resolve().parents[1] / "api" / "static" / "vendor"


def render_standalone(m: folium.Map, *, asset_dir: str | Path | None = None) -> str:
    """Render a folium map to one self-contained HTML file: Leaflet's JS and CSS inlined.

    Like :func:`render_offline`, but the vendored files are copied into the page, so it
    opens from disk (``file://``, an e-mail attachment, a USB stick) with no server and
    no network. Images the stylesheet names are inlined as ``data:`` URLs (an empty one
    when the file is not vendored); CSS comments are dropped.

    Parameters
    ----------
    m
        The map to render.
    asset_dir
        Directory holding the vendored files (default: ``api/static/vendor`` of the installed wheel).

    Returns
    -------
    str
        A complete HTML page that fetches nothing.

    Raises
    ------
    GeogridError
        The page needs an asset that is not vendored, or a vendored file is missing.

    Examples
    --------
    >>> page = render_standalone(folium.Map(tiles=None))
    >>> "<script src=" in page, 'rel="stylesheet"' in page, "L.map(" in page
    (False, False, True)
    """
    root = Path(asset_dir) if asset_dir is not None else _default_asset_dir()
    page = render_offline(m, asset_url=_INLINE_BASE)

    def script(match: re.Match[str]) -> str:
        return _inline_js(root, match.group(1))

    def style(match: re.Match[str]) -> str:
        return _inline_css(root, match.group(1))

    # Functions as replacements: the inlined text is taken literally (no backslash escapes).
    page = _INLINE_JS.sub(script, page)
    page = _INLINE_CSS.sub(style, page)
    if _INLINE_BASE in page:
        msg = "the page still links a vendored asset in a form that could not be inlined"
        raise GeogridError(msg)
    return page


# -- helpers -------------------------------------------------------------------------


def _check_grids(grids: gpd.GeoDataFrame) -> None:
    missing = [c for c in ("grid_id", "level") if c not in grids.columns]
    if missing:
        problem = Problem("missing_column", f"grids lacks column(s) {missing}; it has {list(grids.columns)}")
        source = "grids"
        raise SchemaError(source, [problem])
    if grids.crs is None or not is_storage_crs(grids.crs):
        seen = grids.crs.to_string() if grids.crs is not None else "no CRS"
        msg = f"grids has {seen}; the map needs lon/lat: call grids.to_crs('EPSG:4326') (or set_crs if it is missing)"
        raise CRSError(msg)


def _level_overlay(
    rows: gpd.GeoDataFrame,
    level: int,
    *,
    depth: int,
    n_levels: int,
    filled: bool,
    colours: Sequence[str] = _LEVEL_COLOURS,
) -> folium.GeoJson:
    """One GeoJson overlay for the grids of one level, with escaped tooltips."""
    colour = colours[min(depth, len(colours) - 1)]
    weight = 1.0 + 1.5 * (n_levels - 1 - depth)  # finest 1 px, each coarser level 1.5 px thicker
    names = rows["name"] if "name" in rows.columns else pd.Series(None, index=rows.index, dtype=object)
    data = gpd.GeoDataFrame(
        {
            "name": [escape_text(n) or escape_text(g) for n, g in zip(names, rows["grid_id"], strict=True)],
            "grid_id": [escape_text(g) for g in rows["grid_id"]],
        },
        # Display only: coordinates to 1e-6° (about 0.1 m) shrink the page by about half.
        geometry=shapely.set_precision(rows.geometry.to_numpy(), _DISPLAY_PRECISION_DEG, mode="pointwise"),
        crs=rows.crs,
    )
    style = {"color": colour, "weight": weight, "opacity": 0.9, "fill": filled, "fillColor": colour}
    style["fillOpacity"] = 0.12 if filled else 0.0
    return folium.GeoJson(
        data.to_geo_dict(show_bbox=False),
        name=escape_text(_level_label(rows, level)),
        style_function=lambda _feature: style,
        highlight_function=lambda _feature: {"weight": weight + 2, "fillOpacity": 0.3 if filled else 0.0},
        tooltip=folium.GeoJsonTooltip(fields=["name", "grid_id"], aliases=["名称", "编号"], sticky=True),
        embed=True,
        zoom_on_click=False,
    )


def _level_label(rows: gpd.GeoDataFrame, level: int) -> str:
    if "level_name" in rows.columns:
        named = rows["level_name"].dropna()
        if len(named):
            return f"{level} · {named.iloc[0]}"
    return f"level {level}"


def _relink(links: list[tuple[str, str]], local: Callable[[str, str], str | None]) -> list[tuple[str, str]]:
    """Return a new list of ``(name, url)`` with each url made local; dropped links left out."""
    out = []
    for name, url in links:
        new = local(name, url)
        if new is not None:
            out.append((name, new))
    return out


def _walk(element: Element) -> Iterator[Any]:
    yield element
    for child in list(element._children.values()):
        yield from _walk(child)


def _check_offline(page: str, base: str, dropped: Mapping[str, str]) -> None:
    """Raise if ``page`` still links an asset from another host or needs a dropped one."""
    problems = []
    local = (f"{base}/", "data:")
    for _tag, _attr, url in _ASSET_REF.findall(page):
        if not url.startswith(local):
            problems.append(url)
    for url in _ANY_SRC.findall(page):
        external = re.match(r"(?:[a-z][a-z0-9+.-]*:)?//", url, re.IGNORECASE) and not url.startswith(local)
        if external and url not in problems:
            problems.append(url)
    if any(_CSS_IMPORT.search(css) for css in _STYLE.findall(page)):
        problems.append("a CSS @import or url(//...) in an inline style")
    scripts = "\n".join(_INLINE_SCRIPT.findall(page))
    needed = sorted(n for n, use in _USE_OF_OPTIONAL.items() if n in dropped and use and re.search(use, scripts))
    problems += [f"{dropped[name]} ({name}, used by the page's script)" for name in needed]
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        msg = (
            f"the page needs {len(problems)} asset(s) that are not vendored:\n{listed}\n"
            "vendor each file under the asset directory and pass assets={url: relative_path}, "
            "or drop the feature that needs it"
        )
        raise GeogridError(msg)


from geogrid._maps_command import WALL_COLOURS, command_centre_map  # noqa: E402  (builds on the helpers above)
from geogrid._maps_planner import planner_map  # noqa: E402  (it builds on grid_map above)
