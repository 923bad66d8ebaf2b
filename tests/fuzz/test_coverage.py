"""CI lane of the "coverage" family: fixed seeds, grid coverage within 0.1 % of the reference."""

from __future__ import annotations

import pytest

from tests.fuzz.coverage import run_case

SEEDS = [*range(100), 1_003_960]
"""About 40 s on one core. Seed 1003960: a shadow GEOS united into an invalid polygon (test_coverage_kernel)."""


@pytest.mark.parametrize("seed", SEEDS)
def test_coverage_case(seed):
    out = run_case(seed)
    assert not out.failed, f"seed {seed} ({out.generator}): " + "; ".join(out.details[:5])
