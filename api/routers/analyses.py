"""Checks and analyses as GeoJSON: thin over the engine, with the Python API's parameters.

``/checks`` is :func:`geogrid.hierarchy.check_grids`; ``/stats`` :func:`geogrid.stats.grid_stats`;
``/hotspots`` :func:`geogrid.hotspots.incident_hotspots` (``statistic=local-moran``:
:func:`geogrid.hotspots.incident_clusters`); ``/emerging``
:func:`geogrid.hotspots.emerging_hotspots`; ``/coverage``
:func:`geogrid.coverage.grid_coverage`; ``/coverage/blind-spots``
:func:`geogrid.coverage.blind_spots`. Each answers a GeoJSON FeatureCollection in
EPSG:4326 (CRS84 axis order), one feature per row of the engine's result. The query
parameters are those of the ``geogrid`` command of the same name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal, TypeVar

import pandas as pd
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BeforeValidator, StringConstraints

import geopandas as gpd

from api.auth import require_viewer
from api.deps import CacheDep, SettingsDep, StoreDep
from api.errors import ErrorBody
from api.features import InvalidParameterError
from api.pages import iso_day, known_query_parameters, parse_period
from api.routers.ogc import AUTH_ERRORS, GEOJSON
from geogrid.coverage import blind_spots, grid_coverage
from geogrid.hierarchy import check_grids
from geogrid.hotspots import emerging_hotspots, incident_clusters, incident_hotspots, parse_weights
from geogrid.stats import grid_stats
from layers.errors import NotFoundError
from layers.store import Store
from layers.times import store_time_zone

__all__ = ["router"]

T = TypeVar("T")

router = APIRouter(
    tags=["analyses"],
    dependencies=[Depends(require_viewer), Depends(known_query_parameters)],
    responses={
        **AUTH_ERRORS,
        400: {"model": ErrorBody, "description": "Invalid query parameter"},
        404: {"model": ErrorBody, "description": "No such level, or the store lacks a layer"},
        503: {"model": ErrorBody, "description": "The store is unavailable"},
    },
)

_FC: dict[int | str, dict[str, Any]] = {200: {"content": {GEOJSON: {}}, "description": "A GeoJSON FeatureCollection"}}

Level = Annotated[int | None, Query(ge=0, le=64, description="grid level (0 = top); default as in the engine")]
Since = Annotated[
    date | None, BeforeValidator(iso_day), Query(description="first day, YYYY-MM-DD (the store's time zone)")
]
Until = Annotated[date | None, BeforeValidator(iso_day), Query(description="last day, YYYY-MM-DD (included)")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Category = Annotated[
    list[Text] | None, Query(description="only this category (repeatable: category=A&category=B, as the CLI's)")
]
TimeField = Annotated[
    Literal["reported_at", "closed_at"], Query(description="the time since/until filter: reported or closed")
]
_POSITIVE = r"(0*[1-9][0-9]{0,4}(\.[0-9]{1,3})?|0*\.[0-9]{0,2}[1-9])"  # 0.001 to 99999.999, no exponent
WeightsText = Annotated[
    str,
    Query(
        max_length=32,
        pattern=rf"^(queen|rook|{_POSITIVE})$",
        description="neighbours: queen, rook, or a distance band in metres (e.g. 300; at most 99999.999)",
    ),
]
OverdueAfter = Annotated[
    str,
    Query(
        max_length=32,
        pattern=rf"^{_POSITIVE}(min|h|d|D)$",
        description="open longer than this is overdue: minutes, hours or days (e.g. 90min, 72h, 3d)",
    ),
]
Permutations = Annotated[
    int,
    Query(
        ge=0,
        le=99999,
        description="0: the p_method test; 99 or more: two-sided permutation mid-p",
        json_schema_extra={"anyOf": [{"enum": [0]}, {"minimum": 99}]},  # 1-98 is refused: say so in the document
    ),
]
CubePermutations = Annotated[
    int,
    Query(
        ge=0,
        le=9999,
        description="0: the p_method test; 99 to 9999: two-sided permutation mid-p of every grid-period",
        json_schema_extra={"anyOf": [{"enum": [0]}, {"minimum": 99}]},
    ),
]
"""Fewer than /hotspots allows: every grid-period is permuted (990 grids × 52 weeks × 9,999: 43 s on one core)."""
Seed = Annotated[int, Query(ge=0, le=2**32 - 1, description="seed of the permutations")]
PMethod = Annotated[
    Literal["binomial", "normal"],
    Query(
        description="binomial: test of each neighbourhood's count given the total, scaled for "
        "overdispersion (calibrated at any count); "
        "normal: ArcGIS's normal p of the z-score"
    ),
]
Population = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        description="a grid column (e.g. population) the expected counts are proportional to (binomial test)",
    ),
]


def _layer(store: Store, cache: CacheDep, name: str) -> gpd.GeoDataFrame:
    if name not in store.layer_names():
        msg = f"the store has no {name} layer; import one with 'geogrid import'"
        raise NotFoundError(msg)
    frame = cache.get(store, name)
    return store.read(name) if frame is None else frame


def _optional(store: Store, cache: CacheDep, name: str) -> gpd.GeoDataFrame | None:
    return _layer(store, cache, name) if name in store.layer_names() else None


def _check_level(grids: gpd.GeoDataFrame, level: int | None) -> None:
    present = sorted(int(v) for v in pd.unique(grids["level"]))
    if level is not None and level not in present:
        msg = f"level {level} does not occur in the grids; they have levels {present}"
        raise NotFoundError(msg)


def _dates(since: date | None, until: date | None) -> tuple[str | None, str | None]:
    """Pass ``since``/``until`` on as ISO dates, clamped to the years data can have."""
    if since is None and until is None:
        return None, None
    period = parse_period(since or until, until or since, None)
    return (period.since.isoformat() if since else None), (period.until.isoformat() if until else None)


def _run(call: Callable[[], T]) -> T:
    """Call the engine; its ValueError for an input it refuses becomes a 400 with its message."""
    try:
        return call()
    except NotFoundError:
        raise
    except ValueError as err:
        raise InvalidParameterError(str(err)) from err


def _geojson(frame: gpd.GeoDataFrame, **members: Any) -> Response:
    out = frame.to_crs("EPSG:4326") if frame.crs is not None and frame.crs.to_epsg() != 4326 else frame
    doc = json.loads(out.to_json(na="null", show_bbox=False, drop_id=True, to_wgs84=False))
    doc.update(members)
    return Response(json.dumps(doc, ensure_ascii=False, allow_nan=False), media_type=GEOJSON)


@router.get("/checks", summary="Hierarchy and topology findings", responses=_FC)
def checks(
    store: StoreDep,
    cache: CacheDep,
    gap_width_m: Annotated[float, Query(gt=0, le=1000, description="gaps narrower than this are slivers")] = 1.0,
    min_area_m2: Annotated[float, Query(ge=0, le=1e6, description="smaller findings are ignored")] = 0.01,
) -> Response:
    """Return :func:`~geogrid.hierarchy.check_grids` of the store's grids: findings and a summary."""
    grids = _layer(store, cache, "grids")
    result = _run(lambda: check_grids(grids, gap_width_m=gap_width_m, min_area_m2=min_area_m2))
    doc = result.to_dict()
    features = [{"type": "Feature", "geometry": f.pop("geometry"), "properties": f} for f in doc["findings"]]
    body = {"type": "FeatureCollection", "features": features, "sound": doc["sound"], "summary": doc["summary"]}
    return Response(json.dumps(body, ensure_ascii=False, allow_nan=False), media_type=GEOJSON)


@router.get("/stats", summary="Incident statistics per grid", responses=_FC)
def stats(
    store: StoreDep,
    cache: CacheDep,
    level: Level = None,
    since: Since = None,
    until: Until = None,
    category: Category = None,
    source: Annotated[list[Text] | None, Query(description="only this source (repeatable)")] = None,
    time_field: TimeField = "reported_at",
    by: Annotated[Literal["category", "source"] | None, Query(description="one row per grid and value")] = None,
    overdue_after: OverdueAfter = "72h",
    smooth: Annotated[bool, Query(description="add empirical-Bayes smoothed rates (*_eb)")] = False,
) -> Response:
    """Return :func:`~geogrid.stats.grid_stats` (counts, rates, closing times) per grid."""
    grids, incidents = _layer(store, cache, "grids"), _layer(store, cache, "incidents")
    _check_level(grids, level)
    first, last = _dates(since, until)
    tz = store_time_zone(store.metadata())
    result = _run(
        lambda: grid_stats(
            incidents,
            grids,
            level=level,
            since=first,
            until=last,
            category=category,
            source=source,
            by=by,
            overdue_after=overdue_after,
            smooth=smooth,
            tz=tz,
            time_field=time_field,
        )
    )
    return _geojson(result)


def _weights(text: str) -> str | float:
    """Read the ``weights`` query parameter as the analyses take it (400: neither queen, rook nor metres)."""
    try:
        return parse_weights(text)
    except ValueError as err:
        raise InvalidParameterError(str(err)) from err


def _incidents_of_level(
    store: Store, cache: CacheDep, level: int | None, permutations: int
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Return the grids and incidents of a hot-spot request, its level and permutations checked (400/404)."""
    if 0 < permutations < 99:
        msg = f"permutations={permutations}: use 0 (the p_method test) or at least 99"
        raise InvalidParameterError(msg)
    grids, incidents = _layer(store, cache, "grids"), _layer(store, cache, "incidents")
    _check_level(grids, level)
    return grids, incidents


@router.get("/hotspots", summary="Gi* hot spots, or Local Moran clusters, of incidents", responses=_FC)
def hotspots(
    store: StoreDep,
    cache: CacheDep,
    level: Level = None,
    since: Since = None,
    until: Until = None,
    category: Category = None,
    time_field: TimeField = "reported_at",
    statistic: Annotated[
        Literal["gi", "local-moran"],
        Query(
            description="gi: Getis-Ord Gi* hot and cold spots (bin); "
            "local-moran: Local Moran clusters HH, LL and outliers HL, LH (cluster)"
        ),
    ] = "gi",
    permutations: Permutations = 0,
    seed: Seed = 0,
    fdr: Annotated[float, Query(gt=0, lt=1, description="false discovery rate for 'significant'")] = 0.05,
    p_method: PMethod = "binomial",
    population: Population = None,
    weights: WeightsText = "queen",
) -> Response:
    """Return :func:`~geogrid.hotspots.incident_hotspots` per grid of one level (default: the finest).

    With ``statistic=local-moran``: :func:`~geogrid.hotspots.incident_clusters` (``i``,
    ``z``, ``quadrant``, ``p``, ``p_fdr``, ``cluster``). Grids too sparse to judge have
    ``bin`` 0 (``cluster`` "withheld") and the reason in ``withheld``
    (:data:`geogrid.hotspots.WITHHELD_REASONS`).
    """
    w = _weights(weights)
    grids, incidents = _incidents_of_level(store, cache, level, permutations)
    first, last = _dates(since, until)
    run = incident_clusters if statistic == "local-moran" else incident_hotspots
    result = _run(
        lambda: run(
            incidents,
            grids,
            level=level,
            category=category,
            since=first,
            until=last,
            tz=store_time_zone(store.metadata()),
            time_field=time_field,
            weights=w,
            permutations=permutations,
            seed=seed,
            fdr=fdr,
            p_method=p_method,
            population=population,
        )
    )
    return _geojson(result)


@router.get("/emerging", summary="Emerging hot spots of incidents", responses=_FC)
def emerging(
    store: StoreDep,
    cache: CacheDep,
    settings: SettingsDep,
    level: Level = None,
    since: Since = None,
    until: Until = None,
    category: Category = None,
    period: Annotated[
        Literal["M", "W", "Q", "D"], Query(description="the time step: M month, W week, Q quarter, D day")
    ] = "M",
    time_lag: Annotated[
        int, Query(ge=0, le=366, description="preceding periods in a bin's neighbourhood (0: each period alone)")
    ] = 1,
    alpha: Annotated[float, Query(gt=0, lt=1, description="significance level of the bins and of the trend")] = 0.05,
    fdr: Annotated[bool, Query(description="adjust the bins' p for the false-discovery rate")] = True,
    min_share: Annotated[
        float, Query(gt=0, le=1, description="share of hot periods for persistent, intensifying... (ArcGIS: 0.9)")
    ] = 0.9,
    strict: Annotated[
        bool, Query(description="ArcGIS's rules only (no 'historical' for a hot spot that ended)")
    ] = False,
    permutations: CubePermutations = 0,
    seed: Seed = 0,
    p_method: PMethod = "binomial",
    population: Population = None,
    weights: WeightsText = "queen",
) -> Response:
    """Return :func:`~geogrid.hotspots.emerging_hotspots` per grid of one level (default: the finest).

    Each grid's ``pattern`` (new, consecutive, intensifying... hot spot, or no pattern) and
    ``history`` (a character per period, oldest first: H hot, C cold, - withheld, . neither);
    the collection's ``periods`` member names the periods. A cube larger than the service's
    limits (``GEOGRID_EMERGING_MAX_BINS``, ``GEOGRID_EMERGING_MAX_PERMUTED_BINS``) is refused
    with 400, before any work.
    """
    w = _weights(weights)
    grids, incidents = _incidents_of_level(store, cache, level, permutations)
    first, last = _dates(since, until)
    result = _run(
        lambda: emerging_hotspots(
            incidents,
            grids,
            level=level,
            period=period,
            time_lag=time_lag,
            weights=w,
            alpha=alpha,
            fdr=fdr,
            min_share=min_share,
            strict=strict,
            category=category,
            since=first,
            until=last,
            tz=store_time_zone(store.metadata()),
            p_method=p_method,
            population=population,
            permutations=permutations,
            seed=seed,
            max_bins=settings.emerging_max_bins,
            max_permuted_bins=settings.emerging_max_permuted_bins,
        )
    )
    return _geojson(result, periods=result.attrs["periods"])


@router.get("/coverage", summary="Camera coverage per grid", responses=_FC)
def coverage(
    store: StoreDep,
    cache: CacheDep,
    level: Level = None,
    include_offline: Annotated[bool, Query(description="count offline cameras as seeing")] = False,
) -> Response:
    """Return :func:`~geogrid.coverage.grid_coverage`, buildings occluding when the store has them."""
    grids, cameras = _layer(store, cache, "grids"), _layer(store, cache, "cameras")
    _check_level(grids, level)
    buildings = _optional(store, cache, "buildings")
    result = _run(
        lambda: grid_coverage(grids, cameras, level=level, buildings=buildings, include_offline=include_offline)
    )
    return _geojson(result)


@router.get("/coverage/blind-spots", summary="What no camera sees, per grid", responses=_FC)
def coverage_blind_spots(
    store: StoreDep,
    cache: CacheDep,
    level: Level = None,
    include_offline: Annotated[bool, Query(description="count offline cameras as seeing")] = False,
) -> Response:
    """Return :func:`~geogrid.coverage.blind_spots` (with street length when the store has streets)."""
    grids, cameras = _layer(store, cache, "grids"), _layer(store, cache, "cameras")
    _check_level(grids, level)
    streets, buildings = _optional(store, cache, "streets"), _optional(store, cache, "buildings")
    result = _run(
        lambda: blind_spots(
            grids, cameras, streets=streets, level=level, buildings=buildings, include_offline=include_offline
        )
    )
    return _geojson(result)
