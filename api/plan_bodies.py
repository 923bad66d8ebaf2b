"""Request and response bodies of the plan routes, checked at the door.

An edit body names its operation in ``op`` (one of :data:`geogrid.edits.EDIT_OPERATIONS`)
and carries that operation's parameters; geometries are GeoJSON in WGS-84 (lon, lat).
Anything else, a missing parameter or a geometry that is not a valid polygon or line
is refused (422) with the field named, before the store is touched.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

import geopandas as gpd
import shapely

from geogrid.plans import PLAN_NAME_MAX

__all__ = [
    "MAX_VERTICES",
    "CommitResult",
    "EditBody",
    "EditResult",
    "GeoJSONLine",
    "GeoJSONPolygon",
    "NewPlan",
    "PlanCreated",
    "PlanDetail",
    "PlanRecord",
    "edit_params",
]

MAX_VERTICES = 10_000
"""Most vertices an edit geometry may have (a drawn boundary has tens)."""

_Id = Annotated[str, Field(min_length=1, max_length=100)]
Position = tuple[float, float]


def _check_position(p: Position) -> None:
    lon, lat = p
    if not (math.isfinite(lon) and math.isfinite(lat)):
        msg = f"coordinate {list(p)} is not finite"
        raise ValueError(msg)
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        msg = f"coordinate {list(p)} is outside WGS-84 lon/lat ranges: send [lon, lat] in degrees"
        raise ValueError(msg)


def _valid(geom: shapely.Geometry) -> shapely.Geometry:
    if not shapely.is_valid(geom):
        msg = f"invalid geometry: {shapely.is_valid_reason(geom)}"
        raise ValueError(msg)
    return geom


class _Geometry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def to_shapely(self) -> shapely.Geometry:
        """Return the geometry as shapely (lon/lat)."""
        return shapely.geometry.shape(self.model_dump())


def _ring(ring: list[Position]) -> list[Position]:
    if len(ring) < 4:
        msg = f"a polygon ring needs at least 4 positions, got {len(ring)}"
        raise ValueError(msg)
    if ring[0] != ring[-1]:
        msg = "a polygon ring must end where it starts"
        raise ValueError(msg)
    return ring


class GeoJSONPolygon(_Geometry):
    """A GeoJSON Polygon in WGS-84 (lon, lat)."""

    type: Literal["Polygon"]
    coordinates: Annotated[
        list[Annotated[list[Position], Field(min_length=4), AfterValidator(_ring)]], Field(min_length=1, max_length=100)
    ]

    def model_post_init(self, context: Any) -> None:
        """Check ranges, size and validity."""
        points = [p for ring in self.coordinates for p in ring]
        _check_size(points)
        _valid(self.to_shapely())


class GeoJSONLine(_Geometry):
    """A GeoJSON LineString in WGS-84 (lon, lat)."""

    type: Literal["LineString"]
    coordinates: Annotated[list[Position], Field(min_length=2)]

    def model_post_init(self, context: Any) -> None:
        """Check ranges, size and validity."""
        _check_size(self.coordinates)
        if shapely.length(self.to_shapely()) == 0:
            msg = "the line has zero length"
            raise ValueError(msg)


def _check_size(points: list[Position]) -> None:
    if len(points) > MAX_VERTICES:
        msg = f"the geometry has {len(points)} vertices; at most {MAX_VERTICES} are accepted"
        raise ValueError(msg)
    for p in points:
        _check_position(p)


class _Edit(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TransferArea(_Edit):
    """Move ``region`` to ``to_grid`` from whichever grids of its level held it."""

    op: Literal["transfer_area"]
    region: GeoJSONPolygon
    to_grid: _Id
    cascade: bool = False
    clip: bool = False


class ReshapeBoundary(_Edit):
    """Redraw the shared boundary of ``grid_a`` and ``grid_b`` along ``line``."""

    op: Literal["reshape_boundary"]
    grid_a: _Id
    grid_b: _Id
    line: GeoJSONLine
    cascade: bool = False


class SplitGrid(_Edit):
    """Cut ``grid_id`` along ``line`` into new grids."""

    op: Literal["split_grid"]
    grid_id: _Id
    line: GeoJSONLine
    new_ids: Annotated[list[_Id], Field(min_length=2, max_length=50)] | None = None


class MergeGrids(_Edit):
    """Merge grids of one level into one."""

    op: Literal["merge_grids"]
    ids: Annotated[list[_Id], Field(min_length=2, max_length=200)]
    new_id: _Id | None = None
    cascade: bool = False


class Reparent(_Edit):
    """Move ``grid_id`` (with its children) to ``new_parent``."""

    op: Literal["reparent"]
    grid_id: _Id
    new_parent: _Id
    cascade: bool = False


class UpdateAttributes(_Edit):
    """Set names and workloads of one grid."""

    op: Literal["update_attributes"]
    grid_id: _Id
    values: Annotated[dict[str, str | int | float | None], Field(min_length=1, max_length=20)]


EditBody = Annotated[
    TransferArea | ReshapeBoundary | SplitGrid | MergeGrids | Reparent | UpdateAttributes,
    Field(discriminator="op"),
]
"""One edit: the operation in ``op`` and its parameters."""


def edit_params(body: BaseModel) -> tuple[str, dict[str, Any]]:
    """Return ``(operation, parameters)`` for :func:`geogrid.plans.edit_plan`; geometries as GeoSeries in WGS-84."""
    params: dict[str, Any] = {}
    for name in type(body).model_fields:
        value = getattr(body, name)
        if name == "op":
            continue
        if isinstance(value, _Geometry):
            value = gpd.GeoSeries([value.to_shapely()], crs="EPSG:4326")
        params[name] = value
    return str(body.op), params  # type: ignore[attr-defined]


class NewPlan(BaseModel):
    """A new plan: its display name."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=PLAN_NAME_MAX)]


class PlanCreated(BaseModel):
    """The id and version of a new plan."""

    plan_id: str
    version: int


class PlanRecord(BaseModel):
    """A plan's record."""

    plan_id: str
    name: str
    status: str
    version: int
    base_version: int
    created_by: str
    created_at: str
    updated_at: str


class PlanDetail(BaseModel):
    """A plan's record and, while it is open, its grids (GeoJSON, WGS-84)."""

    plan: PlanRecord
    grids: dict[str, Any] | None


class EditResult(BaseModel):
    """What an edit changed, the plan's new version and its grids."""

    plan_id: str
    version: int
    summary: str
    added: list[str]
    removed: list[str]
    changed: list[str]
    grids: dict[str, Any]


class CommitResult(BaseModel):
    """The network version a commit made current."""

    plan_id: str
    plan_version: int
    network_version: int
    valid_from: str | None
