"""Layer schemas: the columns, dtypes, enums and CRS rules of the three layer kinds.

A schema is data, so readers, validators, writers, the API and the docs all use the
same definition. Geometry is always in the ``geometry`` column.

Storage CRS is WGS-84 (EPSG:4326); CGCS2000 (EPSG:4490) is accepted as equivalent
for display (the two differ by centimetres). Measurements happen in an explicit
metric CRS (see :func:`layers.crs.metric_crs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

__all__ = [
    "CAMERAS",
    "CAMERA_STATUSES",
    "GRIDS",
    "INCIDENTS",
    "INCIDENT_SOURCES",
    "INCIDENT_STATUSES",
    "SCHEMAS",
    "STORAGE_CRS",
    "WORKLOAD_COLUMNS",
    "Column",
    "LayerKind",
    "LayerSchema",
    "coerce_dtypes",
]

STORAGE_CRS = "EPSG:4326"
"""The CRS every layer is stored in."""

EQUIVALENT_GEOGRAPHIC_CRS = ("EPSG:4326", "EPSG:4490")
"""Geographic CRSs treated as WGS-84 for storage (CGCS2000 differs by centimetres)."""


class LayerKind(StrEnum):
    """The three kinds of layer geogrid stores."""

    GRIDS = "grids"
    INCIDENTS = "incidents"
    CAMERAS = "cameras"


DType = Literal["str", "int", "float", "datetime", "bool"]


@dataclass(frozen=True)
class Column:
    """One attribute column of a layer.

    Parameters
    ----------
    name
        Column name (snake_case, with units where they apply).
    dtype
        Logical type: ``str``, ``int``, ``float``, ``datetime`` (timezone-aware) or ``bool``.
    required
        Whether the column must be present.
    nullable
        Whether values may be missing.
    choices
        Allowed values for enumerations.
    min, max
        Inclusive bounds for numbers (``min_exclusive`` makes ``min`` exclusive).
    description
        One line for documentation and error messages.
    """

    name: str
    dtype: DType
    required: bool = True
    nullable: bool = False
    choices: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    description: str = ""


@dataclass(frozen=True)
class LayerSchema:
    """The schema of one layer kind."""

    kind: LayerKind
    id_column: str
    geometry_types: tuple[str, ...]
    columns: tuple[Column, ...]
    description: str = ""
    extra_columns_allowed: bool = True
    _by_name: dict[str, Column] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})

    def column(self, name: str) -> Column:
        """Return the column called ``name``."""
        return self._by_name[name]

    @property
    def names(self) -> list[str]:
        """All declared column names, in order."""
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        """Names of the required columns."""
        return [c.name for c in self.columns if c.required]


WORKLOAD_COLUMNS = ("households", "population", "shops")
"""Optional per-grid workload counts, re-apportioned by area when grids are redrawn."""

INCIDENT_SOURCES = ("grid_worker", "hotline", "snapshot", "camera", "other")
INCIDENT_STATUSES = ("reported", "accepted", "dispatched", "handling", "closed", "cancelled")
CAMERA_STATUSES = ("online", "offline")

GRIDS = LayerSchema(
    kind=LayerKind.GRIDS,
    id_column="grid_id",
    geometry_types=("Polygon", "MultiPolygon"),
    description="Nested grids of every level: district, street, community, basic grid, ...",
    columns=(
        Column("grid_id", "str", description="unique id of the grid"),
        Column("parent_id", "str", nullable=True, description="grid_id of the parent; null on level 0"),
        Column("level", "int", min=0, description="0 = top level, increasing downwards"),
        Column(
            "level_name", "str", required=False, nullable=True, description="e.g. district / street / community / grid"
        ),
        Column("name", "str", required=False, nullable=True, description="display name (UTF-8)"),
        Column("households", "int", required=False, nullable=True, min=0, description="households in the grid"),
        Column("population", "int", required=False, nullable=True, min=0, description="residents in the grid"),
        Column("shops", "int", required=False, nullable=True, min=0, description="shops in the grid"),
    ),
)

INCIDENTS = LayerSchema(
    kind=LayerKind.INCIDENTS,
    id_column="incident_id",
    geometry_types=("Point",),
    description="Reported events: time, category, source, status, closing time, free text.",
    columns=(
        Column("incident_id", "str", description="unique id of the incident"),
        Column("reported_at", "datetime", description="when it was reported (timezone-aware)"),
        Column(
            "closed_at",
            "datetime",
            required=False,
            nullable=True,
            description="when it was closed; not before reported_at",
        ),
        Column("category", "str", description="what kind of matter, e.g. 环境卫生"),
        Column("source", "str", choices=INCIDENT_SOURCES, description="who reported it"),
        Column("status", "str", choices=INCIDENT_STATUSES, description="workflow status"),
        Column(
            "description", "str", required=False, nullable=True, description="free text written by citizens: untrusted"
        ),
    ),
)

CAMERAS = LayerSchema(
    kind=LayerKind.CAMERAS,
    id_column="camera_id",
    geometry_types=("Point",),
    description="Cameras: position, heading, field of view and useful range.",
    columns=(
        Column("camera_id", "str", description="unique id of the camera"),
        Column("heading_deg", "float", min=0, max=360, description="0 = north, clockwise"),
        Column("fov_deg", "float", min=0, max=360, min_exclusive=True, description="field of view; 360 = dome"),
        Column("range_m", "float", min=0, min_exclusive=True, description="useful range in metres"),
        Column("status", "str", choices=CAMERA_STATUSES, description="online or offline"),
        Column("owner", "str", required=False, nullable=True, description="department that owns the feed"),
    ),
)

SCHEMAS: dict[LayerKind, LayerSchema] = {s.kind: s for s in (GRIDS, INCIDENTS, CAMERAS)}
"""Schema of each layer kind."""


def coerce_dtypes(gdf: object, schema: LayerSchema) -> object:
    """Cast the declared columns of ``gdf`` to their canonical pandas dtypes, in place.

    Strings become pandas ``string`` dtype, ints nullable ``Int64``, floats ``float64``,
    datetimes timezone-aware UTC. Missing optional columns are left absent. This is
    a cast, not a validation: call it on data that has passed validation or that was
    read back from a store.
    """
    import pandas as pd

    for col in schema.columns:
        if col.name not in gdf.columns:  # type: ignore[attr-defined]
            continue
        s = gdf[col.name]  # type: ignore[index]
        if col.dtype == "str":
            gdf[col.name] = s.astype("string")  # type: ignore[index]
        elif col.dtype == "int":
            gdf[col.name] = pd.to_numeric(s).astype("Int64")  # type: ignore[index]
        elif col.dtype == "float":
            gdf[col.name] = pd.to_numeric(s).astype("float64")  # type: ignore[index]
        elif col.dtype == "datetime":
            gdf[col.name] = pd.to_datetime(s, utc=True, format="ISO8601")  # type: ignore[index]
        elif col.dtype == "bool":
            gdf[col.name] = s.astype("boolean")  # type: ignore[index]
    return gdf
