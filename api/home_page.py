"""The home page: the application's front door, in Chinese (default) or English.

Maps, the plans (open one in the planner, start one, commit or discard one, for the roles
allowed), the latest QA of the current network, the layers and the API, on the
command centre's dark theme. Every value from data goes through
:func:`geogrid.maps.escape_text`; the one inline script and style carry the CSP nonce and
read their data from a ``<script type="application/json">`` element.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import HTTPException
from starlette.requests import Request

from api.auth import Principal, principal_of
from api.settings import Role, Settings
from geogrid.hierarchy import check_grids
from geogrid.maps import escape_text
from geogrid.plans import list_plans
from layers.store import Store

__all__ = ["LANGUAGES", "HomeData", "home_data", "home_html"]

LANGUAGES = ("zh", "en")
"""The page's languages; Chinese is the default."""

Lang = Literal["zh", "en"]

_TEXT: Mapping[str, Mapping[str, str]] = {
    "title": {"zh": "网格化治理平台", "en": "Grid governance platform"},
    "lead": {
        "zh": "网格、事件与摄像头一张网：指挥中心大屏、网格调整规划、质检与数据服务。",
        "en": "One network of grids, incidents and cameras: the command-centre wall, grid redrawing plans, QA and data services.",
    },
    "maps": {"zh": "地图", "en": "Maps"},
    "command_centre": {"zh": "指挥中心大屏", "en": "Command centre wall"},
    "command_centre_note": {
        "zh": "网格、事件热力与聚合、摄像头视域、热点与盲区，按日期查询",
        "en": "grids, incident heat and clusters, camera views, hot spots and blind spots, by date",
    },
    "grid_levels": {"zh": "网格层级图", "en": "Grid levels"},
    "grid_levels_note": {"zh": "各级网格边界，逐级开关", "en": "every level's boundaries, each switchable"},
    "plans": {"zh": "规划", "en": "Plans"},
    "plans_note": {
        "zh": "规划是现状网格的副本：在规划页上画线切分、画面划转，提交后成为新的现状网络。",
        "en": "A plan is a copy of the current network: draw lines to split and areas to transfer in the planner; committing makes it the current network.",
    },
    "no_plans": {"zh": "还没有规划。", "en": "No plans yet."},
    "col_name": {"zh": "名称", "en": "Name"},
    "col_status": {"zh": "状态", "en": "Status"},
    "col_version": {"zh": "版本", "en": "Version"},
    "col_author": {"zh": "创建人", "en": "Author"},
    "col_updated": {"zh": "更新时间", "en": "Updated"},
    "col_actions": {"zh": "操作", "en": "Actions"},
    "open": {"zh": "编辑中", "en": "open"},
    "committed": {"zh": "已提交", "en": "committed"},
    "discarded": {"zh": "已放弃", "en": "discarded"},
    "planner": {"zh": "在规划页打开", "en": "Open in the planner"},
    "diff": {"zh": "对比现状", "en": "Diff"},
    "commit": {"zh": "提交", "en": "Commit"},
    "discard": {"zh": "放弃", "en": "Discard"},
    "new_plan": {"zh": "新建规划", "en": "New plan"},
    "plan_name": {"zh": "规划名称", "en": "Plan name"},
    "create": {"zh": "新建并打开", "en": "Create and open"},
    "key": {"zh": "密钥（已登录可不填）", "en": "Key (not needed when signed in)"},
    "need_planner": {
        "zh": "新建和编辑规划需要规划员权限，提交需要管理员权限：请先登录。",
        "en": "Creating and editing plans needs the planner role, committing the admin role: sign in first.",
    },
    "need_viewer": {"zh": "登录后可查看规划与质检。", "en": "Sign in to see the plans and the QA."},
    "qa": {"zh": "最新质检（现状网络）", "en": "Latest QA (current network)"},
    "qa_sound": {
        "zh": "无问题：各级网格无缝、无重叠、逐级嵌套。",
        "en": "Sound: every level tiles its parent with no gap or overlap.",
    },
    "qa_findings": {"zh": "发现问题", "en": "findings"},
    "qa_grids": {"zh": "网格数", "en": "grids"},
    "qa_geojson": {"zh": "问题清单 (GeoJSON)", "en": "Findings (GeoJSON)"},
    "qa_cli": {
        "zh": "离线质检报告：geogrid check 网络.gpkg --report qa.html",
        "en": "Offline QA report: geogrid check network.gpkg --report qa.html",
    },
    "layers": {"zh": "图层 (GeoJSON)", "en": "Layers (GeoJSON)"},
    "api": {"zh": "数据接口", "en": "API"},
    "qgis": {
        "zh": "QGIS：图层 → 添加图层 → 添加 WFS / OGC API – Features 图层，填入本页地址。",
        "en": "In QGIS: Layer → Add Layer → Add WFS / OGC API – Features Layer, with this page's URL.",
    },
    "sign_in": {"zh": "登录", "en": "Sign in"},
    "signed_in_as": {"zh": "当前角色", "en": "Role"},
    "anonymous": {"zh": "未登录（只读）", "en": "not signed in (read only)"},
    "anonymous_none": {"zh": "未登录", "en": "not signed in"},
    "viewer": {"zh": "查看员", "en": "viewer"},
    "planner_role": {"zh": "规划员", "en": "planner"},
    "admin": {"zh": "管理员", "en": "admin"},
    "working": {"zh": "处理中…", "en": "Working…"},
    "failed": {"zh": "失败", "en": "failed"},
    "committed_msg": {"zh": "已提交为现状网络版本", "en": "committed as network version"},
    "confirm_commit": {"zh": "提交后该规划成为现状网络。", "en": "Committing makes this plan the current network."},
}

_COLLECTION_NAMES: Mapping[str, Mapping[str, str]] = {
    "grids": {"zh": "网格", "en": "grids"},
    "incidents": {"zh": "事件", "en": "incidents"},
    "cameras": {"zh": "摄像头", "en": "cameras"},
    "buildings": {"zh": "建筑", "en": "buildings"},
}

_ROLE_TEXT = {Role.VIEWER: "viewer", Role.PLANNER: "planner_role", Role.ADMIN: "admin"}

_CSS = """
html, body { margin: 0; background: #0b1220; color: #e9ecef;
  font: 15px/1.5 "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", system-ui, sans-serif; }
a { color: #90e0ef; }
.gg-bar { display: flex; align-items: center; gap: 18px; height: 52px; padding: 0 16px; box-sizing: border-box;
  background: #111a2e; border-bottom: 2px solid #4cc9f0; }
.gg-title { font-size: 20px; font-weight: 700; letter-spacing: 1px; color: #fff; white-space: nowrap; }
.gg-right { margin-left: auto; display: flex; gap: 12px; align-items: center; white-space: nowrap; }
.gg-lang a, .gg-lang b { padding: 2px 6px; border: 1px solid #2b3a55; border-radius: 3px; text-decoration: none; }
.gg-lang b { background: #4cc9f0; color: #0b1220; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; padding: 16px; }
section { background: #111a2e; border: 1px solid #2b3a55; border-radius: 6px; padding: 12px 16px; }
section.wide { grid-column: 1 / -1; }
h1 { font-size: 16px; margin: 0 16px; color: #adb5bd; font-weight: 400; padding-top: 12px; }
h2 { font-size: 17px; margin: 0 0 8px; color: #ffd166; }
.note { color: #adb5bd; font-size: 13px; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #2b3a55; padding: 4px 6px; text-align: left; }
th { color: #adb5bd; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status-open { color: #06d6a0; } .status-committed { color: #4cc9f0; } .status-discarded { color: #8d99ae; }
button, .button { background: #4cc9f0; color: #0b1220; border: 0; border-radius: 3px; padding: 3px 10px;
  font-weight: 700; cursor: pointer; text-decoration: none; font-size: 13px; }
button.danger { background: #8d99ae; }
input { background: #0b1220; color: #e9ecef; border: 1px solid #4cc9f0; border-radius: 3px; padding: 3px 6px; }
form.gg-new { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; margin-top: 10px; }
.gg-msg { margin-top: 8px; white-space: pre-wrap; } .gg-msg.error { color: #ff4d6d; } .gg-msg.ok { color: #06d6a0; }
.big { font-size: 26px; font-weight: 700; color: #ffd166; }
ul { padding-left: 20px; margin: 4px 0; }
code { color: #ffd166; }
"""

_SCRIPT = """
(function () {
  const cfg = JSON.parse(document.getElementById('gg-home').textContent);
  const msg = document.getElementById('gg-msg');
  const say = (text, kind) => { msg.textContent = text; msg.className = 'gg-msg ' + kind; };
  function headers(extra) {
    const h = Object.assign({'X-Requested-With': 'geogrid'}, extra || {});
    const key = document.getElementById('gg-key');
    if (key && key.value) h.Authorization = 'Bearer ' + key.value;
    return h;
  }
  async function send(url, method, body, extra) {
    say(cfg.text.working, '');
    const init = {method: method, credentials: 'same-origin', headers: headers(extra)};
    if (body !== undefined) { init.body = JSON.stringify(body); init.headers['Content-Type'] = 'application/json'; }
    const r = await fetch(url, init);
    let data = {};
    try { data = await r.json(); } catch (err) { data = {}; }
    if (!r.ok) { say(r.status + ' ' + (data.code || '') + ': ' + (data.description || r.statusText), 'error'); return null; }
    return data;
  }
  const form = document.getElementById('gg-new');
  if (form) form.addEventListener('submit', async e => {
    e.preventDefault();
    const data = await send('plans', 'POST', {name: document.getElementById('gg-plan-name').value});
    if (data) window.location.assign('maps/planner/' + encodeURIComponent(data.plan_id));
  });
  for (const b of document.querySelectorAll('button[data-action]')) {
    b.addEventListener('click', async () => {
      const id = b.dataset.plan, etag = '"' + b.dataset.version + '"';
      const data = b.dataset.action === 'commit'
        ? await send('plans/' + encodeURIComponent(id) + '/commit', 'POST', undefined, {'If-Match': etag})
        : await send('plans/' + encodeURIComponent(id), 'DELETE', undefined, {'If-Match': etag});
      if (data) window.location.reload();
    });
  }
  window.__geogridReady = performance.now();
})();
"""


@dataclass(frozen=True)
class HomeData:
    """What the home page shows; None where the caller may not see it."""

    role: Role | None
    authenticated: bool
    keys_configured: bool
    plans: Sequence[Mapping[str, Any]] | None
    qa: Mapping[str, Any] | None
    collections: Sequence[str]
    api_links: Sequence[Mapping[str, str]]


def _json_for_html(value: object) -> str:
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def home_html(data: HomeData, *, lang: Lang, nonce: str, base: str = "/") -> str:
    """Return the home page in ``lang`` (``"zh"`` or ``"en"``); its script and style carry ``nonce``.

    Links start with ``base``, the app's own URL (behind a proxy: its public prefix).
    """
    e = escape_text
    b = e(base)

    def t(key: str) -> str:
        return e(_TEXT[key][lang])

    other = "en" if lang == "zh" else "zh"
    switch = [
        f"<b>{label}</b>" if code == lang else f'<a id="gg-lang-{code}" href="?f=html&amp;lang={code}">{label}</a>'
        for code, label in (("zh", "中文"), ("en", "English"))
    ]
    lang_switch = f'<span class="gg-lang">{" ".join(switch)}</span>'
    if data.role is None or not data.authenticated:
        who = t("anonymous") if data.role is not None else t("anonymous_none")
    else:
        who = f"{t('signed_in_as')}: {t(_ROLE_TEXT[data.role])}"
    sign_in = (
        f'<a href="{b}login?next=/%3Flang%3D{lang}">{t("sign_in")}</a>'
        if data.keys_configured and not data.authenticated
        else ""
    )
    bar = (
        f'<div class="gg-bar"><span class="gg-title">geogrid · {t("title")}</span>'
        f'<span class="gg-right"><span id="gg-who">{who}</span>{sign_in}{lang_switch}</span></div>'
    )
    maps = (
        f"<section><h2>{t('maps')}</h2><ul>"
        f'<li><a id="gg-link-command-centre" href="{b}maps/command-centre">{t("command_centre")}</a>'
        f' <span class="note">{t("command_centre_note")}</span></li>'
        f'<li><a id="gg-link-grids" href="{b}maps/grids">{t("grid_levels")}</a>'
        f' <span class="note">{t("grid_levels_note")}</span></li></ul></section>'
    )
    sections = [maps, _qa_section(data, t, b), _plans_section(data, t, lang, b), _layers_section(data, t, lang, b)]
    api = "".join(
        f'<li><a href="{e(link["href"])}">{e(link["title"])}</a> <code>{e(link["type"])}</code></li>'
        for link in data.api_links
    )
    sections.append(f'<section><h2>{t("api")}</h2><ul>{api}</ul><p class="note">{t("qgis")}</p></section>')
    config = {"text": {"working": _TEXT["working"][lang], "failed": _TEXT["failed"][lang]}, "lang": lang}
    return (
        f'<!DOCTYPE html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>geogrid</title><link rel="icon" href="data:,"><link rel="alternate" hreflang="{other}" '
        f'href="?f=html&amp;lang={other}"><style nonce="{nonce}">{_CSS}</style></head><body>'
        f"{bar}<h1>{t('lead')}</h1><main>{''.join(sections)}</main>"
        f'<script type="application/json" id="gg-home">{_json_for_html(config)}</script>'
        f'<script nonce="{nonce}">{_SCRIPT}</script></body></html>'
    )


def _qa_section(data: HomeData, t: Any, b: str) -> str:
    if data.qa is None:
        return f'<section><h2>{t("qa")}</h2><p class="note">{t("need_viewer")}</p></section>'
    qa = data.qa
    kinds = "".join(f"<li>{escape_text(k)}: {n:,}</li>" for k, n in sorted(qa["kinds"].items()))
    verdict = (
        f'<p id="gg-qa-verdict">{t("qa_sound")}</p>'
        if qa["findings"] == 0
        else f'<p id="gg-qa-verdict"><span class="big">{qa["findings"]:,}</span> {t("qa_findings")}</p><ul>{kinds}</ul>'
    )
    return (
        f"<section><h2>{t('qa')}</h2>{verdict}"
        f'<p class="note">{t("qa_grids")}: {qa["grids"]:,} · <a href="{b}checks">{t("qa_geojson")}</a></p>'
        f'<p class="note"><code>{t("qa_cli")}</code></p></section>'
    )


def _plans_section(data: HomeData, t: Any, lang: Lang, b: str) -> str:
    e = escape_text
    head = f'<section class="wide"><h2>{t("plans")}</h2><p class="note">{t("plans_note")}</p>'
    if data.plans is None:
        return head + f'<p class="note">{t("need_viewer")}</p></section>'
    # Signed in: the role decides what is offered. Not signed in: a key typed into the page decides.
    can_plan = not data.authenticated or (data.role is not None and data.role >= Role.PLANNER)
    can_commit = not data.authenticated or (data.role is not None and data.role >= Role.ADMIN)
    rows = []
    for p in data.plans:
        pid, status, version = str(p["plan_id"]), str(p["status"]), int(p["version"])
        actions = []
        if status == "open":
            actions.append(f'<a class="button" href="{b}maps/planner/{e(pid)}">{t("planner")}</a>')
            actions.append(f'<a href="{b}plans/{e(pid)}/diff">{t("diff")}</a>')
            if can_commit:
                actions.append(
                    f'<button data-action="commit" data-plan="{e(pid)}" data-version="{version}">{t("commit")}</button>'
                )
            if can_plan:
                actions.append(
                    f'<button class="danger" data-action="discard" data-plan="{e(pid)}" data-version="{version}">'
                    f"{t('discard')}</button>"
                )
        status_text = t(status) if status in _TEXT else e(status)
        rows.append(
            f'<tr data-plan="{e(pid)}"><td>{e(p["name"])}</td><td class="status-{e(status)}">{status_text}</td>'
            f'<td class="num">{version}</td><td>{e(p.get("created_by") or "")}</td>'
            f"<td>{e(_short_time(p.get('updated_at')))}</td><td>{' '.join(actions)}</td></tr>"
        )
    table = (
        f'<table id="gg-plans"><thead><tr><th>{t("col_name")}</th><th>{t("col_status")}</th>'
        f"<th>{t('col_version')}</th><th>{t('col_author')}</th><th>{t('col_updated')}</th>"
        f"<th>{t('col_actions')}</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else f'<p class="note">{t("no_plans")}</p>'
    )
    if can_plan:
        key = (
            ""
            if data.authenticated
            else f'<label>{t("key")} <input id="gg-key" type="password" autocomplete="off"></label>'
        )
        form = (
            f'<form class="gg-new" id="gg-new"><label>{t("plan_name")} <input id="gg-plan-name" required '
            f'maxlength="200"></label>{key}<button type="submit">{t("create")}</button></form>'
        )
    else:
        form = f'<p class="note">{t("need_planner")}</p>'
    return head + table + form + '<div class="gg-msg" id="gg-msg"></div></section>'


def _layers_section(data: HomeData, t: Any, lang: Lang, b: str) -> str:
    e = escape_text
    items = "".join(
        f'<li><a href="{b}collections/{e(c)}/items?limit=10">{e(_COLLECTION_NAMES.get(c, {}).get(lang, c))}</a>'
        f" <code>{e(c)}</code></li>"
        for c in data.collections
    )
    return f"<section><h2>{t('layers')}</h2><ul>{items}</ul></section>"


def _short_time(value: object) -> str:
    text = "" if value is None else str(value)
    return text[:16].replace("T", " ")


def home_data(
    request: Request,
    settings: Settings,
    store: Store,
    api_links: Sequence[Mapping[str, str]],
    collections: Sequence[str],
) -> HomeData:
    """Gather what the home page shows for the caller of ``request`` (plans and QA only with read rights)."""
    from api.routers.maps import _analyses, _store_key  # the maps' analysis cache (late: maps imports ogc)

    try:
        principal = principal_of(request, settings)
    except HTTPException:  # an unknown key in the header: the page shows what an anonymous caller sees
        principal = Principal(role=Role.VIEWER if settings.anonymous_read else None, authenticated=False)
    plans = qa = None
    if principal.role is not None:
        plans = list_plans(store).to_dict(orient="records")
        if "grids" in collections:
            qa = _analyses(request).get(("home-qa", _store_key(store)), lambda: _qa_summary(store))
    shown = [link for link in api_links if link["rel"] in ("service-desc", "service-doc", "conformance", "data")]
    return HomeData(
        role=principal.role,
        authenticated=principal.authenticated,
        keys_configured=not settings.anonymous_read,
        plans=plans,
        qa=qa,
        collections=list(collections),
        api_links=shown,
    )


def _qa_summary(store: Store) -> dict[str, Any]:
    grids = store.read("grids")
    findings = check_grids(grids).findings
    kinds = findings["kind"].value_counts().to_dict() if len(findings) else {}
    return {"grids": len(grids), "findings": len(findings), "kinds": {str(k): int(v) for k, v in kinds.items()}}
