"""grid_map draws every level with escaped text; render_offline gives a page with no external link."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from jinja2.utils import htmlsafe_json_dumps

import folium
import folium.plugins
from folium.elements import JSCSSMixin

from geogrid.maps import LEAFLET_VERSION, VENDORED_ASSETS, escape_text, grid_map, render_offline
from layers import CRSError, GeogridError, NotFoundError, SchemaError

ASSETS = "/static/vendor"

HOSTILE = [
    '<img src=x onerror="window.__xss=1">',
    "<img src=x onerror=alert(1)>",
    "${alert(1)}",
    "`;alert(1);`",
    "\\`${alert(1)}",
    "</script><script>alert(1)</script>",
    "' onmouseover='alert(1)",
]


def _js_forms(text: str) -> list[str]:
    """How ``text`` appears inside a page: raw, as a JSON string, as folium's HTML-safe JSON string."""
    return [text, json.dumps(text)[1:-1], str(htmlsafe_json_dumps(text))[1:-1]]


def _overlays(m: folium.Map) -> list[folium.GeoJson]:
    return [c for c in m._children.values() if isinstance(c, folium.GeoJson)]


def _external_refs(page: str) -> list[str]:
    return re.findall(r"<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)\s*=\s*[\"']?((?:https?:)?//[^\"'\s>]*)", page)


@pytest.fixture
def page(tiny_grids) -> str:
    return render_offline(grid_map(tiny_grids), asset_url=ASSETS)


# -- grid_map ------------------------------------------------------------------------


def test_every_level_is_its_own_overlay_with_all_its_grids(tiny_grids):
    overlays = _overlays(grid_map(tiny_grids))
    by_name = {o.layer_name: [f["properties"]["grid_id"] for f in o.data["features"]] for o in overlays}
    assert by_name == {"0 · district": ["D"], "1 · street": ["S1", "S2"], "2 · grid": ["G1", "G2", "G3", "G4"]}


def test_coarser_levels_draw_thicker_outlines_and_only_the_finest_is_filled(tiny_grids):
    styles = {o.layer_name[0]: o.style_function({}) for o in _overlays(grid_map(tiny_grids))}
    assert styles["0"]["weight"] > styles["1"]["weight"] > styles["2"]["weight"]
    assert [styles[k]["fill"] for k in "012"] == [False, False, True]
    assert 0 < styles["2"]["fillOpacity"] <= 0.2


def test_coarser_outlines_lie_on_top_of_the_finer_fill(tiny_grids):
    names = [o.layer_name[0] for o in _overlays(grid_map(tiny_grids))]
    assert names == ["2", "1", "0"]


def test_levels_selects_overlays(tiny_grids):
    overlays = _overlays(grid_map(tiny_grids, levels=[1, 0]))
    assert sorted(o.layer_name for o in overlays) == ["0 · district", "1 · street"]
    assert [o.style_function({})["fill"] for o in overlays] == [True, False]  # level 1 is now the finest


def test_unknown_level_is_refused(tiny_grids):
    with pytest.raises(NotFoundError, match=r"levels \[7\] do not occur.*levels \[0, 1, 2\]"):
        grid_map(tiny_grids, levels=[0, 7])


def test_tooltips_show_name_and_grid_id_with_a_layer_control_and_fitted_bounds(page):
    assert page.count(".bindTooltip(") == 3
    assert page.count('let fields = ["name", "grid_id"];') == 3
    assert "L.control.layers(" in page
    assert re.search(r"fitBounds\(\s*\[\[39\.1, 117\.2\], \[39\.11, 117\.22\]\]", page)


def test_names_fall_back_to_grid_id(tiny_grids):
    g = tiny_grids.drop(columns=["name", "level_name"])
    overlays = _overlays(grid_map(g))
    assert {f["properties"]["name"] for o in overlays for f in o.data["features"]} == set(g["grid_id"])
    assert sorted(o.layer_name for o in overlays) == ["level 0", "level 1", "level 2"]


def test_no_basemap_by_default_and_a_local_tile_server_on_request(tiny_grids):
    assert not any(isinstance(c, folium.TileLayer) for c in grid_map(tiny_grids)._children.values())
    url = "http://10.0.0.5:8080/tiles/{z}/{x}/{y}.png"
    m = grid_map(tiny_grids, tiles=url, attribution="<b>测绘院</b>")
    (layer,) = [c for c in m._children.values() if isinstance(c, folium.TileLayer)]
    assert layer.tiles == url
    assert layer.options["attribution"] == "&lt;b&gt;测绘院&lt;/b&gt;"


@pytest.mark.parametrize("tiles", ["OpenStreetMap", "Gaode.Normal", "http://tiles.local/a.png"], ids=str)
def test_tiles_must_be_a_url_template(tiny_grids, tiles):
    with pytest.raises(ValueError, match=r"not a tile URL template"):
        grid_map(tiny_grids, tiles=tiles)


def test_metric_crs_is_refused_not_reprojected(tiny_grids):
    with pytest.raises(CRSError, match=r"EPSG:32650.*to_crs\('EPSG:4326'\)"):
        grid_map(tiny_grids.to_crs(32650))


def test_missing_columns_are_named(tiny_grids):
    with pytest.raises(SchemaError, match=r"lacks column\(s\) \['level'\]"):
        grid_map(tiny_grids.drop(columns="level"))


# -- escaping ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("网格一", "网格一"),
        ("<b>", "&lt;b&gt;"),
        ("${x}", "&#36;{x}"),
        ("`a`", "&#96;a&#96;"),
        ("\\", "&#92;"),
        ("a&b\"'", "a&amp;b&quot;&#x27;"),
        (None, ""),
        (float("nan"), ""),
        (12, "12"),
    ],
    ids=["chinese", "tag", "dollar", "backtick", "backslash", "html-specials", "none", "nan", "int"],
)
def test_escape_text(text, expected):
    assert escape_text(text) == expected


@pytest.mark.parametrize("payload", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("column", ["name", "grid_id", "level_name"])
def test_user_text_never_reaches_the_page_unescaped(tiny_grids, payload, column):
    g = tiny_grids.copy()
    g.loc[g["grid_id"] == "G1", column] = payload
    page = render_offline(grid_map(g), asset_url=ASSETS)
    for form in _js_forms(payload):
        assert form not in page
    # What is there instead: the escaped text, which the browser shows as the original.
    shown = escape_text(payload) if column != "level_name" else f"2 · {escape_text(payload)}"
    assert any(form in page for form in _js_forms(shown)[1:])


# -- render_offline ------------------------------------------------------------------


def test_offline_page_links_only_the_vendored_leaflet(page):
    assert _external_refs(page) == []
    assert "@latest" not in page
    assert not re.search(r"https?://", page.split("<body>")[0])
    links = re.findall(r"<(?:script|link)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", page)
    assert links == [
        "data:,",
        f"{ASSETS}/leaflet-{LEAFLET_VERSION}/leaflet.js",
        f"{ASSETS}/leaflet-{LEAFLET_VERSION}/leaflet.css",
    ]


def test_asset_url_trailing_slash_does_not_double(tiny_grids):
    page = render_offline(grid_map(tiny_grids), asset_url="/assets/")
    assert 'src="/assets/leaflet-1.9.3/leaflet.js"' in page


def test_render_offline_leaves_the_map_and_folium_class_state_alone(tiny_grids):
    state = {cls: (list(cls.default_js), list(cls.default_css)) for cls in _mixin_classes()}
    m = grid_map(tiny_grids)
    pristine = copy.deepcopy(m)  # folium's render is not idempotent: compare with an untouched twin
    render_offline(m, asset_url=ASSETS)
    render_offline(m, asset_url="/elsewhere")
    assert {cls: (list(cls.default_js), list(cls.default_css)) for cls in _mixin_classes()} == state
    assert "default_js" not in vars(m)
    after = m.get_root().render()
    assert after == pristine.get_root().render()
    # folium's own render (save, Jupyter) copies the vendored Leaflet into the page instead of linking the CDN
    assert "cdn.jsdelivr.net" not in after and "L.map(" in after and _external_refs(after) == []


def test_a_map_rendered_before_still_renders_offline(tiny_grids):
    m = grid_map(tiny_grids)
    m.get_root().render()  # fills the Figure's header with CDN links
    assert _external_refs(render_offline(m, asset_url=ASSETS)) == []


def test_an_unvendored_asset_is_an_error_naming_it(tiny_grids, monkeypatch):
    # add_js_link changes the class-level list; give the class a private copy for this test.
    monkeypatch.setattr(folium.Map, "default_js", list(folium.Map.default_js))
    m = grid_map(tiny_grids)
    m.add_js_link("measure", "https://unpkg.com/leaflet-measure@latest/dist/leaflet-measure.js")
    with pytest.raises(GeogridError, match=r"1 asset\(s\) that are not vendored:\n  - https://unpkg.com/.*@latest"):
        render_offline(m, asset_url=ASSETS)
    page = render_offline(
        m,
        asset_url=ASSETS,
        assets={"https://unpkg.com/leaflet-measure@latest/dist/leaflet-measure.js": "leaflet-measure-3.1.0/m.js"},
    )
    assert f'src="{ASSETS}/leaflet-measure-3.1.0/m.js"' in page
    assert _external_refs(page) == []


def test_a_plugin_with_cdn_links_is_an_error(tiny_grids):
    m = grid_map(tiny_grids)
    folium.plugins.Fullscreen().add_to(m)
    with pytest.raises(GeogridError, match=r"not vendored:\n  - https://"):
        render_offline(m, asset_url=ASSETS)


@pytest.mark.parametrize(
    ("feature", "library"),
    [
        (lambda m: folium.Marker([39.1, 117.2], popup="说明").add_to(m), "jquery"),
        (lambda m: folium.Marker([39.1, 117.2], icon=folium.Icon()).add_to(m), "awesome_markers"),
    ],
    ids=["popup-needs-jquery", "icon-needs-awesome-markers"],
)
def test_a_dropped_default_the_page_uses_is_an_error(tiny_grids, feature, library):
    m = grid_map(tiny_grids)
    feature(m)
    with pytest.raises(GeogridError, match=rf"\({library}, used by the page's script\)"):
        render_offline(m, asset_url=ASSETS)


def test_every_vendored_asset_is_served_from_a_pinned_copy():
    # The CDN URL may be folium's (even @latest); what the page gets is a versioned local copy.
    vendor = Path(__file__).resolve().parents[2] / "api" / "static" / "vendor"
    for url, rel in VENDORED_ASSETS.items():
        assert url.startswith("https://"), url
        folder = rel.split("/")[0]
        assert re.fullmatch(r"[\w.-]+-\d+\.\d+\.\d+", folder), rel
        assert (vendor / rel).is_file(), rel
    assert any(rel.startswith(f"leaflet-{LEAFLET_VERSION}/") for rel in VENDORED_ASSETS.values())


def _mixin_classes() -> list[type]:
    out, todo = [], [JSCSSMixin]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def test_an_absolute_intranet_asset_url_is_accepted(tiny_grids):
    page = render_offline(grid_map(tiny_grids), asset_url="http://gis.intranet:8000/static/vendor")
    assert 'src="http://gis.intranet:8000/static/vendor/leaflet-1.9.3/leaflet.js"' in page


# -- the map chrome renders last; the map renders offline wherever it is shown -------------


def _declared_before_control(page: str) -> list[str]:
    """Return the overlay variables the layer control names that the page declares after the control."""
    at = page.index("overlays :  {")
    control = page[at : page.index("}", at)]
    names = re.findall(r"\b((?:geo_json|feature_group|heat_map|compact_polygons)_[0-9a-f]+)\b", control)
    assert names, "the layer control names no overlay"
    return [n for n in names if page.index(f"var {n} ") > at]


def test_an_overlay_added_after_grid_map_returns_is_declared_before_the_layer_control(tiny_grids):
    m = grid_map(tiny_grids)
    folium.GeoJson(tiny_grids.iloc[:1].to_geo_dict(), name="added later").add_to(m)
    for page in (m.get_root().render(), render_offline(m, asset_url=ASSETS)):
        assert _declared_before_control(page) == []
        assert "added later" in page[page.index("overlays :  {") :]
        assert page.rindex("L.control.layers(") < page.rindex(".fitBounds(")


def test_planner_map_with_findings_and_changes_declares_every_overlay_before_the_control(tiny_grids):
    from geogrid.maps import planner_map

    findings = tiny_grids.iloc[:1].assign(kind="gap", message="a gap")
    diff = tiny_grids[["grid_id"]].iloc[1:3].assign(status="changed")
    page = render_offline(planner_map(tiny_grids, findings=findings, diff=diff), asset_url=ASSETS)
    assert _declared_before_control(page) == []
    assert page.count("L.control.layers(") == 1


def test_a_saved_grid_map_holds_leaflet_and_links_nothing(tiny_grids, tmp_path):
    out = tmp_path / "grids.html"
    grid_map(tiny_grids).save(str(out))
    page = out.read_text(encoding="utf-8")
    assert _external_refs(page) == []
    assert not re.search(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"(?!data:)", page)
    assert f'"{LEAFLET_VERSION}"' in page  # Leaflet's own source (its version string) is in the page
    # Jupyter shows the same page in an iframe's srcdoc
    assert "cdn.jsdelivr.net" not in grid_map(tiny_grids)._repr_html_()


def test_saving_a_map_with_an_unvendored_plugin_is_an_error_naming_it(tiny_grids, tmp_path):
    m = grid_map(tiny_grids)
    folium.plugins.Fullscreen().add_to(m)
    with pytest.raises(GeogridError, match=r"not vendored:\n  - https://"):
        m.save(str(tmp_path / "m.html"))


def test_the_scale_bar_is_metric_only(tiny_grids):
    page = render_offline(grid_map(tiny_grids), asset_url=ASSETS)
    assert page.count("L.control.scale(") == 1
    assert "L.control.scale({metric: true, imperial: false})" in page
