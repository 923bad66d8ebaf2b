"""geogrid: grid-based urban governance.

Map a city's nested grid hierarchy, keep its boundaries sound, and analyse the
incidents and camera coverage inside it.
"""

from layers import (
    CRSError,
    EditConflict,
    GeogridError,
    GeoPackageStore,
    InputTooLargeError,
    NotFoundError,
    SchemaError,
    StoreError,
    TopologyError,
    ValidationError,
    metric_crs,
    open_store,
)

__version__ = "0.1.0"

__all__ = [
    "CRSError",
    "EditConflict",
    "GeoPackageStore",
    "GeogridError",
    "InputTooLargeError",
    "NotFoundError",
    "SchemaError",
    "StoreError",
    "TopologyError",
    "ValidationError",
    "__version__",
    "metric_crs",
    "open_store",
]
