"""CI lane of the ``repair`` family: fixed seeds, every count must be zero (see tests/fuzz/__init__.py)."""

from __future__ import annotations

import pytest

from tests.fuzz.repair import run_case

# 367: a child vertex a hair from a parent vertex the level above moved; 15: a notch narrower than
# snap_m cut into the outline where grids of different parents meet (the full rebuild snapped it shut).
SEEDS = [*range(0, 100), 367]


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_repair_matches_the_reference(seed: int) -> None:
    out = run_case(seed)
    assert not out.failed, f"{out.generator} (seed {seed}):\n" + "\n".join(out.details)
