"""geogrid layers: the nouns (grid, incident and camera layers), their schemas, I/O and storage.

This floor imports neither :mod:`geogrid` nor :mod:`api`.
"""

from layers.crs import ensure_crs, is_storage_crs, metric_crs
from layers.errors import (
    CRSError,
    EditConflict,
    GeogridError,
    GeogridWarning,
    InputTooLargeError,
    NetworkChanged,
    NotFoundError,
    OutsideCRSAreaWarning,
    Problem,
    SchemaError,
    StoreError,
    TopologyError,
    ValidationError,
)
from layers.schema import CAMERAS, GRIDS, INCIDENTS, SCHEMAS, STORAGE_CRS, LayerKind, LayerSchema
from layers.store import GeoPackageStore, PlanInfo, Store, VersionInfo, open_store

__all__ = [
    "CAMERAS",
    "GRIDS",
    "INCIDENTS",
    "SCHEMAS",
    "STORAGE_CRS",
    "CRSError",
    "EditConflict",
    "GeoPackageStore",
    "GeogridError",
    "GeogridWarning",
    "InputTooLargeError",
    "LayerKind",
    "LayerSchema",
    "NetworkChanged",
    "NotFoundError",
    "OutsideCRSAreaWarning",
    "PlanInfo",
    "Problem",
    "SchemaError",
    "Store",
    "StoreError",
    "TopologyError",
    "ValidationError",
    "VersionInfo",
    "ensure_crs",
    "is_storage_crs",
    "metric_crs",
    "open_store",
]
