r"""What the planner page adds to :func:`geogrid.maps.planner_map`: drawing tools wired to the plan API.

A drawn polygon is sent as ``transfer_area`` to the grid chosen in the panel; a drawn
line as ``split_grid`` (of that grid) or ``reshape_boundary`` (between it and the chosen
neighbour), with the plan's ETag in ``If-Match``. The answer's grids replace the drawn
ones; a refusal (409, 412, 422...) is shown as text. ``window.geogridPlanner.submitEdit``
does the same for scripts and tests.

All data reaches the page as JSON in a ``<script type="application/json">`` element
(``<``, ``>`` and ``&`` as ``\\u`` escapes) and is inserted with ``textContent`` or
``new Option``, except layer-control names (Leaflet sets them as HTML): those are
escaped in the script. The only inline script carries the CSP nonce.
"""

from __future__ import annotations

import json
from typing import Any

from branca.element import Element, MacroElement

import folium
import geopandas as gpd
from folium.elements import JSCSSMixin
from folium.template import Template

from api.pages import add_ready_flag
from geogrid.maps import CHROME_RANK_ATTR, VENDORED_ASSETS
from layers.store import PlanInfo

__all__ = ["add_planner_chrome"]

_GEOMAN = [url for url in VENDORED_ASSETS if "leaflet-geoman" in url]


class _Geoman(JSCSSMixin, MacroElement):
    """Links Leaflet-Geoman (``render_offline`` rewrites the links to the vendored copy)."""

    default_js = [  # noqa: RUF012  (as JSCSSMixin declares it)
        (f"geoman_{n}", u) for n, u in enumerate(_GEOMAN) if u.endswith(".js")
    ]
    default_css = [  # noqa: RUF012
        (f"geoman_{n}", u) for n, u in enumerate(_GEOMAN) if u.endswith(".css")
    ]


class _PlannerScript(MacroElement):
    """The planner script: it uses the layer control, so it renders after the map's chrome."""

    _template = Template("{% macro script(this, kwargs) %}{{ this.code }}{% endmacro %}")

    def __init__(self, code: str) -> None:
        super().__init__()
        self._name = "GeogridPlanner"
        self.code = code
        setattr(self, CHROME_RANK_ATTR, 3)


def _json_for_html(value: object) -> str:
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_CSS = """
.gg-panel { position: absolute; top: 10px; left: 56px; z-index: 1000; width: 300px; background: #fff;
  border: 1px solid #999; border-radius: 4px; padding: 8px 10px; font: 13px/1.4 system-ui, sans-serif; }
.gg-panel h3 { margin: 0 0 6px; font-size: 15px; }
.gg-panel label { display: block; margin: 4px 0; }
.gg-panel select, .gg-panel input { width: 100%; box-sizing: border-box; }
.gg-msg { margin-top: 6px; padding: 4px; white-space: pre-wrap; word-break: break-word; }
.gg-msg.error { background: #ffe3e3; color: #a4161a; }
.gg-msg.ok { background: #e3fcec; color: #1b5e20; }
.gg-diff { margin-top: 6px; color: #333; }
.gg-actions { margin-top: 6px; display: flex; gap: 10px; align-items: center; }
"""

_PANEL = """
<div class="gg-panel" id="gg-panel">
  <h3 id="gg-title"></h3>
  <div id="gg-version"></div>
  <label>搜索网格 (名称或编号) <span id="gg-grid-count"></span>
    <input id="gg-grid-filter" type="search" autocomplete="off" placeholder="如 网格 12 或编号"></label>
  <label>网格 (多边形划入 / 线切分)<select id="gg-grid"></select></label>
  <label>相邻网格 (调整边界)<select id="gg-neighbour"></select></label>
  <label>画线用于<select id="gg-line-op">
    <option value="split_grid">切分网格 split_grid</option>
    <option value="reshape_boundary">调整边界 reshape_boundary</option>
  </select></label>
  <label>规划员密钥（已登录 /login 可不填）<input id="gg-key" type="password" autocomplete="off"></label>
  <div class="gg-diff" id="gg-diff"></div>
  <div class="gg-actions"><button type="button" id="gg-commit">提交规划 (需管理员)</button> <a href="../../">首页</a></div>
  <div class="gg-msg" id="gg-msg"></div>
</div>
"""

_SCRIPT = """
(function () {
  const cfg = JSON.parse(document.getElementById('geogrid-plan').textContent);
  const map = %(map)s;
  const control = %(control)s;
  const byId = id => document.getElementById(id);
  let etag = cfg.etag;
  let count = cfg.count;
  let key = null;
  let drawn = [];
  const esc = s => String(s).replace(/[&<>"'`$\\\\]/g, c => '&#' + c.charCodeAt(0) + ';');
  const say = (text, kind) => { byId('gg-msg').textContent = text; byId('gg-msg').className = 'gg-msg ' + kind; };
  const showVersion = () => { byId('gg-version').textContent = '版本 ' + etag + ' · 网格 ' + count; };
  byId('gg-title').textContent = cfg.name;
  byId('gg-key').addEventListener('change', e => { key = e.target.value || null; });

  function showDiff(summary) {
    if (!summary) return;
    byId('gg-diff').textContent = '对比现状: ' + summary.added + ' 新增, ' + summary.removed + ' 删除, ' +
      summary.changed + ' 变更, ' + Math.round(summary.area_moved_m2).toLocaleString() + ' m² 划转';
  }

  let listed = cfg.features;
  function fillSelects(features) {
    listed = features;
    const finest = Math.max(...features.map(f => f.properties.level));
    const basic = features.filter(f => f.properties.level === finest);
    const q = byId('gg-grid-filter').value.trim().toLowerCase();
    const label = p => (p.name || '') + ' · ' + p.grid_id;
    const shown = q ? basic.filter(f => label(f.properties).toLowerCase().includes(q)) : basic;
    for (const id of ['gg-grid', 'gg-neighbour']) {
      const sel = byId(id), keep = sel.value;
      sel.replaceChildren();
      for (const f of shown) sel.add(new Option(label(f.properties), f.properties.grid_id));
      if (keep && shown.some(f => f.properties.grid_id === keep)) sel.value = keep;
    }
    byId('gg-grid-count').textContent = shown.length + ' / ' + basic.length;
  }
  byId('gg-grid-filter').addEventListener('input', () => fillSelects(listed));

  function tip(p) {
    const el = document.createElement('div');
    el.textContent = (p.name || '') + ' · ' + p.grid_id;
    return el;
  }

  function redraw(fc) {
    for (const layer of drawn.concat(Object.values(control._layers).map(o => o.layer))) {
      if (layer instanceof L.GeoJSON) { map.removeLayer(layer); control.removeLayer(layer); }
    }
    drawn = [];
    const levels = [...new Set(fc.features.map(f => f.properties.level))].sort((a, b) => b - a);
    levels.forEach((level, i) => {
      const depth = levels.length - 1 - i;
      const colour = cfg.colours[Math.min(depth, cfg.colours.length - 1)];
      const filled = i === 0;
      const layer = L.geoJSON({type: 'FeatureCollection', features: fc.features.filter(f => f.properties.level === level)}, {
        style: {color: colour, weight: 1 + 1.5 * (levels.length - 1 - depth), fill: filled, fillOpacity: filled ? 0.12 : 0},
        onEachFeature: (f, l) => l.bindTooltip(tip(f.properties), {sticky: true}),
      }).addTo(map);
      const named = fc.features.find(f => f.properties.level === level && f.properties.level_name);
      control.addOverlay(layer, esc(named ? level + ' · ' + named.properties.level_name : 'level ' + level));
      drawn.push(layer);
    });
    count = fc.features.length;
    fillSelects(fc.features);
    showVersion();
  }

  async function submitEdit(op, geojson, params) {
    const body = Object.assign({op: op}, params || {});
    if (op === 'transfer_area') { body.region = geojson; if (!body.to_grid) body.to_grid = byId('gg-grid').value; }
    if (op === 'split_grid') { body.line = geojson; if (!body.grid_id) body.grid_id = byId('gg-grid').value; }
    if (op === 'reshape_boundary') {
      body.line = geojson;
      if (!body.grid_a) body.grid_a = byId('gg-grid').value;
      if (!body.grid_b) body.grid_b = byId('gg-neighbour').value;
    }
    // X-Requested-With: a change signed in by the session cookie must carry it (api.auth.CSRF_HEADER)
    const headers = {'Content-Type': 'application/json', 'If-Match': etag, 'X-Requested-With': 'geogrid'};
    if (key) headers.Authorization = 'Bearer ' + key;
    let r, data;
    try {
      r = await fetch(cfg.urls.edits, {method: 'POST', credentials: 'same-origin', headers: headers, body: JSON.stringify(body)});
      data = await r.json();
    } catch (err) {
      say('请求失败: ' + err, 'error');
      return {ok: false, status: 0, count: count};
    }
    if (!r.ok) {
      say(r.status + ' ' + (data.code || '') + ': ' + (data.description || r.statusText), 'error');
      return {ok: false, status: r.status, message: data.description || '', count: count};
    }
    etag = r.headers.get('ETag') || ('"' + data.version + '"');
    redraw(data.grids);
    say(data.summary, 'ok');
    try {
      const d = await fetch(cfg.urls.diff, {credentials: 'same-origin', headers: key ? {Authorization: 'Bearer ' + key} : {}});
      if (d.ok) showDiff((await d.json()).summary);
    } catch (err) { /* the edit stands; the summary waits for the next one */ }
    return {ok: true, status: r.status, count: count, version: data.version};
  }

  async function commit() {
    const headers = {'If-Match': etag, 'X-Requested-With': 'geogrid'};
    if (key) headers.Authorization = 'Bearer ' + key;
    let r, data;
    try {
      r = await fetch(cfg.urls.commit, {method: 'POST', credentials: 'same-origin', headers: headers});
      data = await r.json();
    } catch (err) {
      say('请求失败: ' + err, 'error');
      return {ok: false, status: 0};
    }
    if (!r.ok) {
      say(r.status + ' ' + (data.code || '') + ': ' + (data.description || r.statusText), 'error');
      return {ok: false, status: r.status, message: data.description || ''};
    }
    map.pm.removeControls();
    byId('gg-commit').disabled = true;
    say('已提交：现状网络版本 ' + data.network_version + '（规划版本 ' + data.plan_version + '）', 'ok');
    return {ok: true, status: r.status, network_version: data.network_version};
  }
  byId('gg-commit').addEventListener('click', () => { commit(); });

  map.pm.addControls({
    position: 'topleft', drawMarker: false, drawCircleMarker: false, drawPolyline: true, drawRectangle: false,
    drawPolygon: true, drawCircle: false, drawText: false, editMode: false, dragMode: false, cutPolygon: false,
    removalMode: false, rotateMode: false,
  });
  map.on('pm:create', e => {
    const geometry = e.layer.toGeoJSON().geometry;
    map.removeLayer(e.layer);
    if (e.shape === 'Polygon') submitEdit('transfer_area', geometry);
    else if (e.shape === 'Line') submitEdit(byId('gg-line-op').value, geometry);
  });

  fillSelects(cfg.features);
  showVersion();
  showDiff(cfg.diff);
  window.geogridPlanner = {
    submitEdit: submitEdit,
    commit: commit,
    setKey: k => { key = k; },
    gridCount: () => count,
    etag: () => etag,
  };
})();
"""


def add_planner_chrome(
    m: folium.Map,
    *,
    plan: PlanInfo,
    grids: gpd.GeoDataFrame,
    diff_summary: dict[str, Any],
    colours: list[str],
    edits_url: str,
    diff_url: str,
    commit_url: str,
) -> None:
    """Add the panel, Geoman's draw-line / draw-polygon tools and the script that sends edits.

    Parameters
    ----------
    m
        A map from :func:`geogrid.maps.planner_map` (it has a layer control).
    plan, grids
        The plan's record and grids (WGS-84); ids, names and levels go to the selects.
    diff_summary
        ``PlanDiff.summary``.
    colours
        Outline colours by depth, coarsest first (as the map's levels).
    edits_url, diff_url, commit_url
        Where the page posts edits, reads the diff and commits the plan.
    """
    control = next(c for c in m._children.values() if isinstance(c, folium.LayerControl))
    cols = [c for c in ("grid_id", "name", "level", "level_name") if c in grids.columns]
    features = [
        {"properties": {k: (None if v != v else v) for k, v in row.items()}} for row in grids[cols].to_dict("records")
    ]
    config = {
        "plan_id": plan.plan_id,
        "name": plan.name,
        "etag": f'"{plan.version}"',
        "count": len(grids),
        "features": features,
        "diff": diff_summary,
        "colours": colours,
        "urls": {"edits": edits_url, "diff": diff_url, "commit": commit_url},
    }
    _Geoman().add_to(m)
    root = m.get_root()
    root.header.add_child(Element(f"<style>{_CSS}</style>"), name="geogrid_planner_css")  # type: ignore[attr-defined]
    data = f'<script type="application/json" id="geogrid-plan">{_json_for_html(config)}</script>'
    root.html.add_child(Element(_PANEL + data), name="geogrid_planner")  # type: ignore[attr-defined]
    _PlannerScript(_SCRIPT % {"map": m.get_name(), "control": control.get_name()}).add_to(m)
    add_ready_flag(m)
