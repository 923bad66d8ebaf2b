"""Map pages: the grid hierarchy and the command-centre wall, on maps that need no internet."""

from __future__ import annotations

import secrets
from datetime import date
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BeforeValidator

import geopandas as gpd

from api.auth import require_viewer
from api.deps import CacheDep, SettingsDep, StoreDep
from api.errors import ErrorBody
from api.middleware import csp_nonce
from api.page_store import PageStore
from api.pages import (
    AnalysisCache,
    Period,
    add_command_centre_chrome,
    iso_day,
    known_query_parameters,
    parse_period,
    select_period,
)
from api.planner_page import add_planner_chrome
from api.routers.ogc import AUTH_ERRORS
from geogrid.coverage import blind_spots, camera_views
from geogrid.hierarchy import check_grids
from geogrid.hotspots import incident_hotspots
from geogrid.maps import LEVEL_COLOURS, WALL_COLOURS, command_centre_map, grid_map, planner_map, render_offline
from geogrid.plans import diff_grids
from geogrid.stats import open_at
from layers.store import Store
from layers.times import store_time_zone

__all__ = ["ASSET_URL", "COVERAGE_THRESHOLD", "MAX_POINTS", "router"]

ASSET_URL = "/static/vendor"
"""Where the app serves the vendored browser assets (``api/static/vendor``)."""

MAX_POINTS = 10_000
"""Most incidents the wall draws as markers (the most recent of the period; the heat layer has all)."""

COVERAGE_THRESHOLD = 0.5
"""The wall counts basic grids whose area cameras see less than this share of (the header's 覆盖不足 count)."""

_PLACEHOLDER = "geogrid-nonce-" + secrets.token_hex(8)
"""Stands for the nonce in cached pages (user text cannot contain it: quotes are escaped)."""
_NONCE_ATTR = f'nonce="{_PLACEHOLDER}"'.encode()

router = APIRouter(
    prefix="/maps",
    tags=["maps"],
    dependencies=[Depends(require_viewer), Depends(known_query_parameters)],
    responses={
        **AUTH_ERRORS,
        400: {"model": ErrorBody, "description": "Invalid query parameter"},
        503: {"model": ErrorBody, "description": "The store is unavailable"},
    },
)


def _layer(store: Store, cache: CacheDep, name: str) -> gpd.GeoDataFrame | None:
    if name not in store.layer_names():
        return None
    frame = cache.get(store, name)
    return store.read(name) if frame is None else frame


def _analyses(request: Request) -> AnalysisCache:
    cache = getattr(request.app.state, "analysis_cache", None)
    if cache is None:
        cache = request.app.state.analysis_cache = AnalysisCache()
    return cache


_KEY_LAYERS = ("grids", "incidents", "cameras", "buildings")


def _store_key(store: Store) -> tuple[Any, ...]:
    """Name the state of the layers the wall shows: a plan edit leaves it alone, a commit or import changes it."""
    stamps = tuple(store.layer_stamp(name) for name in _KEY_LAYERS)
    path = getattr(store, "path", None)
    if path is None or any(s is None for s in stamps):
        return (id(store),)
    return (str(path), *stamps)


@router.get("/grids", response_class=HTMLResponse, summary="Map of every grid level")
def grids_page(request: Request, store: StoreDep, cache: CacheDep, settings: SettingsDep) -> HTMLResponse:
    """Return an HTML page with every level of the store's grids, one overlay per level.

    Its inline scripts and styles carry the response's CSP nonce; nothing else runs.
    """
    grids = _layer(store, cache, "grids")
    if grids is None:
        grids = store.read("grids")  # the store names what is missing
    m = grid_map(grids, tiles=settings.tiles, attribution=settings.tiles_attribution)
    return HTMLResponse(render_offline(m, asset_url=ASSET_URL, nonce=csp_nonce(request.scope), inplace=True))


@router.get(
    "/planner/{plan_id}",
    response_class=HTMLResponse,
    responses={
        404: {"model": ErrorBody, "description": "No such plan"},
        409: {"model": ErrorBody, "description": "The plan is not open"},
    },
    summary="Edit a plan on a map",
)
def planner_page(plan_id: str, request: Request, store: StoreDep, settings: SettingsDep) -> HTMLResponse:
    """Return the planner: the plan's grids, its findings, its changes against the current network, drawing tools.

    Drawn polygons and lines go to ``POST /plans/{plan_id}/edits`` with the page's ETag
    in ``If-Match`` (a planner key typed into the panel); the answer is redrawn.
    """
    info = store.plan_info(plan_id)
    if info.status != "open":
        msg = f"plan {plan_id!r} is {info.status}; only open plans can be edited"
        raise HTTPException(status_code=409, detail=msg)
    grids, info = store.read_plan(plan_id)
    current = store.read("grids")
    diff = diff_grids(current, grids)
    m = planner_map(
        grids,
        findings=check_grids(grids).findings,
        diff=diff.grids,
        current=current,
        tiles=settings.tiles,
        attribution=settings.tiles_attribution,
    )
    add_planner_chrome(
        m,
        plan=info,
        grids=grids,
        diff_summary=diff.summary,
        colours=list(LEVEL_COLOURS),
        edits_url=f"/plans/{info.plan_id}/edits",
        diff_url=f"/plans/{info.plan_id}/diff",
        commit_url=f"/plans/{info.plan_id}/commit",
    )
    page = render_offline(m, asset_url=ASSET_URL, nonce=csp_nonce(request.scope), inplace=True)
    return HTMLResponse(page, headers={"ETag": f'"{info.version}"'})


@router.get("/command-centre", response_class=HTMLResponse, summary="The command-centre wall")
def command_centre_page(
    request: Request,
    store: StoreDep,
    cache: CacheDep,
    settings: SettingsDep,
    since: Annotated[
        date | None, BeforeValidator(iso_day), Query(description="first day shown, YYYY-MM-DD (the store's time zone)")
    ] = None,
    until: Annotated[
        date | None,
        BeforeValidator(iso_day),
        Query(description="last day shown, YYYY-MM-DD (default: the latest report)"),
    ] = None,
) -> HTMLResponse:
    """Return the wall: grid levels, incidents of the period clustered and as heat, cameras, hot spots.

    Hot spots are :func:`geogrid.hotspots.incident_hotspots` of the period at the finest level.
    A page is built once per store state and period and kept (walls refresh it all day);
    only its CSP nonce changes per response.
    """
    state = _store_key(store)
    kept = PageStore.beside(getattr(store, "path", None))
    latest = None if since and until else _latest_report(store, cache, state, kept)
    period = parse_period(since, until, latest, store_time_zone(store.metadata()))
    key = ("command-centre", state, period, settings.tiles, settings.tiles_attribution, request.url.path)

    def build() -> str:
        # Built before by this or an earlier run of the server on the same store state: read it back.
        text = kept.get(key) if kept is not None else None
        if text is not None:
            used, page = text.split("\n", 1)
            return page.replace(f'nonce="{used}"', f'nonce="{_PLACEHOLDER}"')
        grids = _layer(store, cache, "grids")
        if grids is None:
            grids = store.read("grids")
        incidents = _layer(store, cache, "incidents")
        page = _command_centre_html(request, store, cache, settings, grids, incidents, period)
        if kept is not None:
            kept.put(key, f"{_PLACEHOLDER}\n{page}")
        return page

    # Kept as UTF-8 pieces around the nonce: a response joins them with its own nonce (one copy
    # of bytes), instead of replacing in and encoding a page of megabytes on every refresh.
    pieces = _analyses(request).get(key, lambda: build().encode("utf-8").split(_NONCE_ATTR))
    return HTMLResponse(f'nonce="{csp_nonce(request.scope)}"'.encode().join(pieces))


def _latest_report(
    store: Store, cache: CacheDep, state: tuple[Any, ...], kept: PageStore | None
) -> pd.Timestamp | None:
    """Return the latest incident report of the store (None without incidents), kept beside the store per state."""
    if kept is not None:
        value = kept.get_json(("latest-report", state))
        if isinstance(value, dict):
            return None if value["latest"] is None else pd.Timestamp(value["latest"])
    incidents = _layer(store, cache, "incidents")
    latest = pd.to_datetime(incidents["reported_at"], utc=True).max() if incidents is not None else None
    if latest is not None and pd.isna(latest):
        latest = None
    if kept is not None:
        kept.put_json(("latest-report", state), {"latest": None if latest is None else latest.isoformat()})
    return latest


def _command_centre_html(
    request: Request,
    store: Store,
    cache: CacheDep,
    settings: SettingsDep,
    grids: gpd.GeoDataFrame,
    incidents: gpd.GeoDataFrame | None,
    period: Period,
) -> str:
    cameras = _layer(store, cache, "cameras")
    shown = select_period(incidents, period) if incidents is not None else None
    last_instant = period.end - pd.Timedelta(1, "ns")
    hot = None
    if incidents is not None and shown is not None and len(shown) and period.since <= period.until:
        key = ("hotspots", _store_key(store), period)
        hot = _analyses(request).get(
            key,
            lambda: incident_hotspots(
                incidents, grids, since=period.since.isoformat(), until=period.until.isoformat(), tz=period.tz
            ),
        )
    views = blind = None
    if cameras is not None and len(cameras):
        buildings = _layer(store, cache, "buildings")
        finest = int(grids["level"].max())
        base = ("coverage", _store_key(store))
        # Display sectors: 2 arc segments per 90° (the wall needs the shape, not the metre).
        views = _analyses(request).get(
            (*base, "views"), lambda: camera_views(cameras, buildings=buildings, resolution=2)
        )
        blind = _analyses(request).get(
            (*base, "blind"), lambda: blind_spots(grids, cameras, level=finest, buildings=buildings)
        )
    m = command_centre_map(
        grids,
        incidents=shown,
        cameras=cameras,
        views=views,
        blind_spots=blind,
        hotspots=hot,
        max_points=MAX_POINTS,
        tiles=settings.tiles,
        attribution=settings.tiles_attribution,
        tz=period.tz,
        as_of=last_instant,
    )
    n = 0 if shown is None else len(shown)
    # open at the period's last instant, as ``/stats`` counts them (geogrid.stats.open_at)
    open_n = 0 if shown is None else int(open_at(shown, last_instant).sum())
    counts = {"incidents": n, "open": open_n, "cameras": 0 if cameras is None else len(cameras)}
    layers = []
    if hot is not None:
        counts["hot"] = int((hot["bin"] > 0).sum())
        counts["withheld"] = int(hot["withheld"].notna().sum())
        layers.append("hot spots")
    if views is not None:
        layers.append("camera views")
    if blind is not None:
        counts["blind"] = int((blind["blind_ratio"] > 1.0 - COVERAGE_THRESHOLD).sum())
        layers.append("blind spots")
    levels = sorted(int(v) for v in pd.unique(grids["level"]))
    level_names = []
    for depth, level in enumerate(levels):
        names = grids.loc[grids["level"] == level, "level_name"].dropna().tolist() if "level_name" in grids else []
        label = str(names[0]) if names else f"level {level}"
        level_names.append((label, WALL_COLOURS[min(depth, len(WALL_COLOURS) - 1)]))
    top = grids.loc[grids["level"] == levels[0], "name"].dropna().tolist() if levels and "name" in grids else []
    add_command_centre_chrome(
        m,
        title=str(top[0]) if len(top) == 1 else "geogrid",
        period=period,
        counts=counts,
        shown_points=min(n, MAX_POINTS),
        level_names=level_names,
        action=request.url.path,
        layers=layers,
        coverage_threshold=COVERAGE_THRESHOLD,
    )
    return render_offline(m, asset_url=ASSET_URL, nonce=_PLACEHOLDER, inplace=True)
