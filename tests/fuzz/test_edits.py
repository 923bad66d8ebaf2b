"""CI lane of the ``edits`` family: fixed seeds, every count must be zero (see :mod:`tests.fuzz.edits`)."""

from __future__ import annotations

import pytest

from tests.fuzz.edits import KINDS, run_case

SEEDS = range(2 * len(KINDS) * 4)  # every edit kind once in each CRS and encoding
FOUND = (550, 841, 988, 2676)  # seeds of the long lane that once failed (engine or generator)
# Seeds 1323 and 2176 (split lines crossing an edge at a shallow angle) give a sound
# result that check_grids calls an edge_mismatch (issue 11, class 4): check_false_alarm until the
# check is fixed; add them here then.


@pytest.mark.parametrize("seed", [*SEEDS, *FOUND])
def test_edit_case(seed: int) -> None:
    out = run_case(seed)
    assert not out.failed, f"seed {seed} ({out.generator}): {out.counts}\n" + "\n".join(out.details)
