"""geogrid: grid-based urban governance.

Map a city's nested grid hierarchy, keep its boundaries sound, and analyse the
incidents and camera coverage inside it.
"""

from geogrid.demo import DemoDistrict, build_demo, demo_store, write_demo
from geogrid.hierarchy import FINDING_KINDS, CheckResult, check_grids
from geogrid.maps import escape_text, grid_map, render_offline
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
from layers.io import read_layer, write_layer
from layers.validate import validate_layer

__version__ = "0.1.0"

__all__ = [
    "FINDING_KINDS",
    "CRSError",
    "CheckResult",
    "DemoDistrict",
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
    "build_demo",
    "check_grids",
    "demo_store",
    "escape_text",
    "grid_map",
    "metric_crs",
    "open_store",
    "read_layer",
    "render_offline",
    "validate_layer",
    "write_demo",
    "write_layer",
]
