"""CI lane of the ``check`` family: fixed seeds, every count must be zero (see tests/fuzz/__init__.py)."""

from __future__ import annotations

import pytest

from tests.fuzz.check import run_case

SEEDS = range(0, 120)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_check_equals_the_reference(seed):
    out = run_case(seed)
    assert not out.failed, f"{out.generator} (seed {seed}):\n" + "\n".join(out.details)
