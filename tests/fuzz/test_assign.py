"""CI lane of the "assign" family: fixed seeds, every count must be zero."""

from __future__ import annotations

import pytest

from tests.fuzz.assign import run_case

SEEDS = range(80)  # about 30 s on one core


@pytest.mark.parametrize("seed", SEEDS)
def test_assignment_equals_the_rule(seed):
    out = run_case(seed)
    assert not out.failed, f"seed {seed} ({out.generator}): {out.counts}\n" + "\n".join(out.details[:10])
