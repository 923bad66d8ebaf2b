"""CI lane of the ``repair`` family: fixed seeds, every count must be zero (see tests/fuzz/__init__.py)."""

from __future__ import annotations

import pytest

from tests.fuzz.repair import run_case

# 367: a child vertex a hair from a parent vertex the level above moved; 15: a notch narrower than
# snap_m cut into the outline where grids of different parents meet (the full rebuild snapped it shut).
# Found by the long lane: 3000623 (a seam on one side of a notch snapped to the other side),
# 1000540 (a rounding-noise gap refused by the full rebuild only), 3001305 and 3001935 (a vertex the
# parents gained, on a kept child of the other parent), 1000710, 1002112 and 3000530 (a hole punched
# into an invalid grid: the generator), 1000115, 1001031, 1001915, 1001951, 1002115 (fixed before).
LONG_LANE = (1000115, 1000540, 1000710, 1001031, 1001915, 1001951, 1002112, 1002115)
LONG_LANE_3 = (3000530, 3000623, 3001305, 3001935)
# Fixed since: 5000139 (a face's point_on_surface on a neighbour's side of a near-zero-width spike),
# 5001131 and, from the discovery lane, 6001423 (two vertices whose edges were all in place snapped
# together on a sound layer: an enclave between districts, a notch); 7500110 (the generator gave two
# duplicates of one grid the same id when a deletion came between: a ValidationError, counted a crash).
LONG_LANE_5 = (5000139, 5001131, 6001423, 7500110)
# Open: found by the 60-minute lane of 2026-12-07 on the final code (CORRECTNESS.md); each fails today.
OPEN = {
    5001073: "incremental path != full rebuild at an outline notch (geometry of one grid)",
    5002228: "incremental != full: 'noded' against 'overlap_resolved' in the log (enclave)",
    5003205: "incremental != full: 'noded' against 'overlap_resolved' in the log (enclave between)",
    5003309: "incremental != full: 'noded' against 'overlap_resolved' in the log (enclave between)",
    5003837: "incremental != full: 'noded' against 'overlap_resolved' in the log (enclave between)",
    5004354: "incremental != full: an 'overlap_resolved' only one path logs (enclave)",
    5004867: "incremental != full: 'noded' against 'overlap_resolved' in the log (enclave between)",
    5005254: "incremental != full: an 'overlap_resolved' only one path logs (translate + reparent)",
}
SEEDS = [
    *range(0, 100),
    367,
    *LONG_LANE,
    *LONG_LANE_3,
    *LONG_LANE_5,
    *(pytest.param(s, marks=pytest.mark.xfail(strict=True, reason=f"open: {why}")) for s, why in OPEN.items()),
]


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_repair_matches_the_reference(seed: int) -> None:
    out = run_case(seed)
    assert not out.failed, f"{out.generator} (seed {seed}):\n" + "\n".join(out.details)
