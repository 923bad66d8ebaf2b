"""geogrid: grid-based urban governance.

Map a city's nested grid hierarchy, keep its boundaries sound, and analyse the
incidents and camera coverage inside it.
"""

from geogrid.assignment import GridLocator, assign_points, assign_points_chunked, assign_points_dask, assign_xy
from geogrid.coverage import blind_spots, camera_views, grid_coverage, rank_blind_hotspots, unseen_incidents
from geogrid.demo import DemoDistrict, build_demo, demo_store, write_demo
from geogrid.edits import (
    EDIT_OPERATIONS,
    ChangeSet,
    apply_edit,
    merge_grids,
    reparent,
    reshape_boundary,
    split_grid,
    transfer_area,
    update_attributes,
)
from geogrid.hierarchy import FINDING_KINDS, CheckResult, check_grids
from geogrid.hotspots import (
    EHSA_CATEGORIES,
    KernelDensity,
    KnoxResult,
    adjust_fdr,
    closing_time_hotspots,
    emerging_hotspots,
    gi_star,
    incident_hotspots,
    kernel_density,
    knox_test,
    local_moran,
    mann_kendall,
)
from geogrid.maps import escape_text, grid_map, render_offline
from geogrid.placement import PlacementResult, candidate_sites, demand_points, place_cameras, suggest_reaim
from geogrid.plans import (
    PlanDiff,
    commit_plan,
    diff_grids,
    diff_plan,
    discard_plan,
    edit_plan,
    grids_at,
    list_plans,
    new_plan,
    plan_log,
)
from geogrid.repair import RepairResult, repair_grids
from geogrid.stats import STAT_COLUMNS, grid_stats, smooth_rates
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
    "EDIT_OPERATIONS",
    "EHSA_CATEGORIES",
    "FINDING_KINDS",
    "STAT_COLUMNS",
    "CRSError",
    "ChangeSet",
    "CheckResult",
    "DemoDistrict",
    "EditConflict",
    "GeoPackageStore",
    "GeogridError",
    "GridLocator",
    "InputTooLargeError",
    "KernelDensity",
    "KnoxResult",
    "NotFoundError",
    "PlacementResult",
    "PlanDiff",
    "RepairResult",
    "SchemaError",
    "StoreError",
    "TopologyError",
    "ValidationError",
    "__version__",
    "adjust_fdr",
    "apply_edit",
    "assign_points",
    "assign_points_chunked",
    "assign_points_dask",
    "assign_xy",
    "blind_spots",
    "build_demo",
    "camera_views",
    "candidate_sites",
    "check_grids",
    "closing_time_hotspots",
    "commit_plan",
    "demand_points",
    "demo_store",
    "diff_grids",
    "diff_plan",
    "discard_plan",
    "edit_plan",
    "emerging_hotspots",
    "escape_text",
    "gi_star",
    "grid_coverage",
    "grid_map",
    "grid_stats",
    "grids_at",
    "incident_hotspots",
    "kernel_density",
    "knox_test",
    "list_plans",
    "local_moran",
    "mann_kendall",
    "merge_grids",
    "metric_crs",
    "new_plan",
    "open_store",
    "place_cameras",
    "plan_log",
    "rank_blind_hotspots",
    "read_layer",
    "render_offline",
    "repair_grids",
    "reparent",
    "reshape_boundary",
    "smooth_rates",
    "split_grid",
    "suggest_reaim",
    "transfer_area",
    "unseen_incidents",
    "update_attributes",
    "validate_layer",
    "write_demo",
    "write_layer",
]
