"""geogrid: grid-based urban governance.

Map a city's nested grid hierarchy, keep its boundaries sound, and analyse the
incidents and camera coverage inside it.
"""

from geogrid.hierarchy import FINDING_KINDS, CheckResult, check_grids
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
    "FINDING_KINDS",
    "CRSError",
    "CheckResult",
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
    "check_grids",
    "metric_crs",
    "open_store",
]
