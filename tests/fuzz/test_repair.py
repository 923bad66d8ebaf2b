"""CI lane of the ``repair`` differential family: fixed seeds, every count must be zero."""

from __future__ import annotations

import pytest

from tests.fuzz.repair import run_case

SEEDS = range(100)


@pytest.mark.parametrize("seed", SEEDS)
def test_repair_matches_the_reference(seed: int) -> None:
    outcome = run_case(seed)
    assert not outcome.failed, f"seed {seed} ({outcome.generator}): " + "\n".join(outcome.details)
