"""CI lane of the ``edits`` family: fixed seeds, every count must be zero (see :mod:`tests.fuzz.edits`)."""

from __future__ import annotations

import pytest

from tests.fuzz.edits import KINDS, run_case

SEEDS = range(2 * len(KINDS) * 4)  # every edit kind once in each CRS and encoding
# seeds of the long lane that once failed (engine or generator); 1000437: a reshape line only 0.24 m
# beyond the outline (within snap_m) was expected refused; 5000491, 5001463: a transfer_area region far
# from the receiving grid but thinner than snap_m, accepted as a silent no-op; 9212353: a reshape vertex
# 0.97 m beyond the outline (snapped back onto it) was expected refused, now borderline; 9306180,
# 9318144: a transfer leaving a crumb of a neighbour thinner than snap_m, which the edit gives away;
# 9411720: a transfer (cascade=False) reaching a grid of another parent was expected accepted;
# 9818472: a level-1 transfer cutting a child of the giving street in two was expected accepted
FOUND = (550, 841, 988, 2676, 1000437, 5000491, 5001463, 9212353, 9306180, 9318144, 9411720, 9818472)
CHECK_FOUND = (1323, 2176)  # a sound split the check once called an edge_mismatch (a flag on the outline)
# 8000065: a reshape line's end noded into two grids in two floating-point forms 5.8e-11 m apart; the
# guard rightly saw an edge_mismatch (the result was no coverage); the engine now welds such vertices;
# 9103321: welding collapsed a ring of rounding size (a GEOS crash), now all grids or none are welded
# 9206665 (found by the 36-minute lane of 2026-12-07): two streets one ULP apart left their district a
# hole of zero area, whose collapse made the all-or-none weld give up; collapsed rings are now dropped
WELD_FOUND = (8000065, 9103321, 9206665)
OPEN: dict[int, str] = {}  # seeds that fail today, each with its reason (strict xfails)


@pytest.mark.parametrize(
    "seed",
    [
        *SEEDS,
        *FOUND,
        *CHECK_FOUND,
        *WELD_FOUND,
        *(pytest.param(s, marks=pytest.mark.xfail(strict=True, reason=f"open: {why}")) for s, why in OPEN.items()),
    ],
)
def test_edit_case(seed: int) -> None:
    out = run_case(seed)
    assert not out.failed, f"seed {seed} ({out.generator}): {out.counts}\n" + "\n".join(out.details)
