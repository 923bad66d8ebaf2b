"""CI lane of the "coverage" family: fixed seeds, grid coverage within 0.1 % of the reference."""

from __future__ import annotations

import pytest

from tests.fuzz.coverage import run_case

OPEN_BUG = pytest.param(
    1_003_960,
    marks=pytest.mark.xfail(
        strict=True,
        reason=(
            "open: GEOS 'TopologyException: Ring edge missing' in occlude_exact's fine view minus shadow "
            "(found by the long lane); a 1 µm snap-rounding retry fails too, and make_valid of the inputs "
            "leaves two grids 0.5-0.8 % high, so the shadow itself is suspect"
        ),
    ),
)
SEEDS = [*range(100), OPEN_BUG]
"""About 40 s on one core."""


@pytest.mark.parametrize("seed", SEEDS)
def test_coverage_case(seed):
    out = run_case(seed)
    assert not out.failed, f"seed {seed} ({out.generator}): " + "; ".join(out.details[:5])
