"""Reference implementations: the specification every fast path of geogrid must equal.

Each function here is short, slow and obviously correct: built from plain GEOS (shapely)
and pandas calls with no shortcut, so that a verdict of the engine can be double-checked
by anyone, and so that the tests can compare the two on generated and real inputs
(``tests/fuzz``; results in CORRECTNESS.md). Use them on hundreds or a few thousand
grids; the engine's own functions are the ones to use on a city.

==========================  ====================================================
reference                   fast path it specifies
==========================  ====================================================
:func:`check_grids`         :func:`geogrid.check_grids` (area defects per level,
                            nesting, validity; not ``edge_mismatch`` lines)
:func:`assign_points`       :func:`geogrid.assign_points` (the boundary rule on
                            every level: lowest grid_id among closed grids)
:func:`covered_area`        :func:`geogrid.grid_coverage` ``covered_m2`` (fine
                            inscribed / circumscribed arcs: a bracket)
:func:`verify_edit`         the edits (:func:`geogrid.split_grid`, ``merge_grids``,
                            ``transfer_area``...): the post-conditions an accepted
                            edit must meet, as a list of what is broken
==========================  ====================================================

:func:`geogrid.repair_grids` is held to :func:`check_grids`: every defect it leaves must
be among its refusals.
"""

from __future__ import annotations

from geogrid._reference_assign import assign_points_reference as assign_points
from geogrid._reference_check import check_grids_reference as check_grids
from geogrid._reference_check import jurisdiction_reference as jurisdiction
from geogrid._reference_coverage import reference_covered_area as covered_area
from geogrid._reference_edits import verify_edit

__all__ = ["assign_points", "check_grids", "covered_area", "jurisdiction", "verify_edit"]
