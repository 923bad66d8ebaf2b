"""CI lane of the ``repair`` family: fixed seeds, every count must be zero (see tests/fuzz/__init__.py)."""

from __future__ import annotations

import pytest

from tests.fuzz.repair import run_case

SEEDS = [*range(0, 100), 367]  # 367: a child vertex a hair from a parent vertex the level above moved


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_repair_matches_the_reference(seed: int) -> None:
    out = run_case(seed)
    assert not out.failed, f"{out.generator} (seed {seed}):\n" + "\n".join(out.details)
