"""CI lane of the ``repair`` family: fixed seeds, every count must be zero (see tests/fuzz/__init__.py)."""

from __future__ import annotations

import pytest

from tests.fuzz.repair import run_case

# 367: a child vertex a hair from a parent vertex the level above moved.
# 15: an open bug, kept visible: a notch narrower than snap_m cut into the outline where two basic
# grids of different parents meet. The default (incremental) repair leaves the sound layer as it
# is; the full rebuild (the internal reference path, incremental=False) snaps the notch's mouth
# shut and clips 12.7 m² of G0044. The parent rings are the only snap anchors and the two mouth
# vertices lie on different ones; the outline should own them both. Strict: passes once fixed.
KNOWN = pytest.param(15, marks=pytest.mark.xfail(strict=True, reason="full rebuild snaps an outline notch shut"))
SEEDS = [*range(0, 15), KNOWN, *range(16, 100), 367]


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_repair_matches_the_reference(seed: int) -> None:
    out = run_case(seed)
    assert not out.failed, f"{out.generator} (seed {seed}):\n" + "\n".join(out.details)
