"""Plans over HTTP: thin routes over :mod:`geogrid.plans`, with versions as ETags.

Every plan response carries the plan's version as a quoted ETag. A change (edit,
commit, discard) must send it back in ``If-Match``: without one the answer is 428,
with a stale one 412, and an edit that would break the topology 409 with the
findings; a commit whose If-Match is current but whose network moved on since the
plan was copied (another plan committed, grids imported) is 409 ``NetworkChanged``,
not 412: the precondition held, the plan conflicts with the network. In every case the
stored plan is unchanged (the engine's conditional update sees to the race between
check and write).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Response
from pydantic import BaseModel

import geopandas as gpd

from api.auth import Principal, require_admin, require_planner, require_viewer
from api.deps import PrincipalDep, StoreDep, on_write_threads, writes_first
from api.errors import ErrorBody, PreconditionRequired
from api.features import feature_texts, json_text
from api.pages import known_query_parameters
from api.plan_bodies import (
    CommitResult,
    EditBody,
    EditResult,
    NewPlan,
    PlanCreated,
    PlanDetail,
    PlanRecord,
    edit_params,
)
from api.routers.ogc import AUTH_ERRORS
from geogrid.plans import PlanInfo, commit_plan, diff_plan, discard_plan, edit_plan, list_plans, new_plan
from layers.errors import EditConflict
from layers.store import Store

__all__ = ["etag_of", "grids_geojson", "router"]

router = APIRouter(
    prefix="/plans",
    tags=["plans"],
    dependencies=[Depends(known_query_parameters)],
    responses={
        **AUTH_ERRORS,
        400: {"model": ErrorBody, "description": "Unknown query parameter"},
        404: {"model": ErrorBody, "description": "No such plan"},
        503: {"model": ErrorBody, "description": "The store is unavailable"},
    },
)

_CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "The change would break the grid topology (findings attached)"},
    412: {"model": ErrorBody, "description": "If-Match names a version the plan is no longer at (or it is closed)"},
    422: {"model": ErrorBody, "description": "Invalid body"},
    428: {"model": ErrorBody, "description": "If-Match is missing"},
}

IfMatch = Annotated[
    str | None,
    Header(
        description='the plan version the change is based on, as its ETag (e.g. "3")',
        max_length=200,
        pattern=r'^(W/)?"?[0-9]{1,12}"?$',
    ),
]


def etag_of(version: int) -> str:
    """Return the ETag of a plan version: the version number, quoted.

    Examples
    --------
    >>> etag_of(3)
    '"3"'
    """
    return f'"{int(version)}"'


_TAG = re.compile(r'\s*(?:W/)?"?(\d{1,12})"?\s*')


def _expected_version(if_match: str | None, plan_id: str) -> int:
    if if_match is None or not if_match.strip():
        msg = f'plan {plan_id!r} changes only with If-Match: send the ETag of the version you saw (e.g. If-Match: "3")'
        raise PreconditionRequired(msg)
    found = _TAG.fullmatch(if_match)
    if found is None:
        msg = f"If-Match {if_match[:40]!r} is not a plan ETag; send the ETag of GET /plans/{plan_id}"
        raise EditConflict(msg, expected=if_match, actual=None)
    return int(found.group(1))


def _author(principal: Principal) -> str:
    return f"api:{principal.role.label}" if principal.role is not None else "api:anonymous"


def _record(info: PlanInfo) -> PlanRecord:
    return PlanRecord(**info.__dict__)


def grids_geojson(grids: gpd.GeoDataFrame) -> str:
    """Return a grid layer as the text of a GeoJSON FeatureCollection in WGS-84 (NaN as null).

    Text, not a dictionary: a plan's thousand grids are written once (GEOS writes the
    geometries) instead of built as Python objects and serialised again, which under
    load was most of an edit's time.
    """
    out = grids if grids.crs is None or grids.crs.to_epsg() == 4326 else grids.to_crs(4326)
    return json_text({"type": "FeatureCollection"}, features="[" + ",".join(feature_texts(out)) + "]")


def _json_response(model: BaseModel, etag: str, **raw: str) -> Response:
    """Answer ``model`` as JSON, with members ``raw`` spliced in as JSON text, and its ETag."""
    doc = model.model_dump(mode="json", exclude=set(raw))
    return Response(json_text(doc, **raw), media_type="application/json", headers={"ETag": etag})


def _frame_records(frame: Any) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", date_format="iso", default_handler=str))


@router.post(
    "",
    status_code=201,
    dependencies=[Depends(require_planner), Depends(writes_first)],
    response_model=PlanCreated,
    responses={422: {"model": ErrorBody, "description": "Invalid body"}},
    summary="Start a plan from the current network",
)
@on_write_threads
def create_plan(body: NewPlan, store: StoreDep, principal: PrincipalDep, response: Response) -> PlanCreated:
    """Copy the current grid network into a new plan at version 0."""
    info = new_plan(store, body.name, author=_author(principal))
    response.headers["ETag"] = etag_of(info.version)
    response.headers["Location"] = f"/plans/{info.plan_id}"
    return PlanCreated(plan_id=info.plan_id, version=info.version)


@router.get("", dependencies=[Depends(require_viewer)], response_model=list[PlanRecord], summary="List the plans")
def get_plans(store: StoreDep) -> list[PlanRecord]:
    """Return every plan (open, committed, discarded), oldest first."""
    return [PlanRecord(**row) for row in list_plans(store).to_dict(orient="records")]


@router.get("/{plan_id}", dependencies=[Depends(require_viewer)], response_model=PlanDetail, summary="One plan")
def get_plan(plan_id: str, store: StoreDep) -> Response:
    """Return the plan's record and, while it is open, its grids."""
    info = store.plan_info(plan_id)
    grids = "null"
    if info.status == "open":
        frame, info = store.read_plan(plan_id)
        grids = grids_geojson(frame)
    return _json_response(PlanDetail(plan=_record(info), grids=None), etag_of(info.version), grids=grids)


@router.get(
    "/{plan_id}/diff",
    dependencies=[Depends(require_viewer)],
    response_model=dict[str, Any],
    responses={409: {"model": ErrorBody, "description": "The plan is not open"}},
    summary="What committing the plan would change",
)
def get_diff(plan_id: str, store: StoreDep, response: Response) -> dict[str, Any]:
    """Return :func:`geogrid.plans.diff_plan`: summary, impact table, grids, area and points moved."""
    info = store.plan_info(plan_id)
    if info.status != "open":
        msg = f"plan {plan_id!r} is {info.status}; only an open plan has a diff"
        raise HTTPException(status_code=409, detail=msg)
    diff = diff_plan(store, plan_id)
    response.headers["ETag"] = etag_of(info.version)
    return {
        "plan_id": plan_id,
        "version": info.version,
        "summary": diff.summary,
        "impact": _frame_records(diff.impact_table()),
        "grids": _frame_records(diff.grids),
        "area_moved": _frame_records(diff.area_moved),
        "incidents": _frame_records(diff.incidents),
        "cameras": _frame_records(diff.cameras),
    }


def _open_info(store: Store, plan_id: str) -> PlanInfo:
    info = store.plan_info(plan_id)
    if info.status != "open":
        msg = f"plan {plan_id!r} is {info.status}; only open plans can be read, edited or committed"
        raise EditConflict(msg, expected=None, actual=info.version)
    return info


@router.post(
    "/{plan_id}/edits",
    dependencies=[Depends(require_planner), Depends(writes_first)],
    response_model=EditResult,
    responses=_CHANGE_ERRORS,
    summary="Apply one edit to the plan",
)
@on_write_threads
def post_edit(
    plan_id: str,
    body: Annotated[EditBody, Body()],
    store: StoreDep,
    principal: PrincipalDep,
    if_match: IfMatch = None,
) -> Response:
    """Apply a topology-safe edit (``op``: transfer_area, reshape_boundary, split_grid, ...) to the plan."""
    expected = _expected_version(if_match, plan_id)
    _open_info(store, plan_id)
    operation, params = edit_params(body)
    info, cs = edit_plan(store, plan_id, operation, author=_author(principal), expected_version=expected, **params)
    grids, read = store.read_plan(plan_id)
    result = EditResult(
        plan_id=plan_id,
        version=info.version,
        summary=cs.summary(),
        added=list(cs.added),
        removed=list(cs.removed),
        changed=list(cs.changed),
        grids={},
    )
    return _json_response(result, etag_of(read.version), grids=grids_geojson(grids))


@router.post(
    "/{plan_id}/commit",
    dependencies=[Depends(require_admin), Depends(writes_first)],
    response_model=CommitResult,
    responses={
        **_CHANGE_ERRORS,
        409: {
            "model": ErrorBody,
            "description": "The plan's grids are unsound (findings attached), or the network moved on since the "
            "plan was copied from it (NetworkChanged: start a new plan from the current network)",
        },
    },
    summary="Make the plan the current network",
)
@on_write_threads
def post_commit(
    plan_id: str, store: StoreDep, principal: PrincipalDep, response: Response, if_match: IfMatch = None
) -> CommitResult:
    """Commit the plan as a new network version (checked with ``check_grids`` first)."""
    expected = _expected_version(if_match, plan_id)
    _open_info(store, plan_id)
    version = commit_plan(store, plan_id, author=_author(principal), expected_version=expected)
    info = store.plan_info(plan_id)
    response.headers["ETag"] = etag_of(info.version)
    return CommitResult(
        plan_id=plan_id, plan_version=info.version, network_version=version.version, valid_from=version.valid_from
    )


@router.delete(
    "/{plan_id}",
    dependencies=[Depends(require_planner), Depends(writes_first)],
    response_model=PlanRecord,
    responses=_CHANGE_ERRORS,
    summary="Discard the plan",
)
@on_write_threads
def delete_plan(
    plan_id: str, store: StoreDep, principal: PrincipalDep, response: Response, if_match: IfMatch = None
) -> PlanRecord:
    """Discard an open plan (the network is untouched; the edit log keeps its history)."""
    expected = _expected_version(if_match, plan_id)
    info = discard_plan(store, plan_id, author=_author(principal), expected_version=expected)
    response.headers["ETag"] = etag_of(info.version)
    return _record(info)
