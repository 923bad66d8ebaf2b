"""Differential testing: every fast engine answer against the reference (:mod:`geogrid.reference`).

Each family module (``tests/fuzz/check.py``, ``assign.py``, ``coverage.py``, ``edits.py``,
``repair.py``...) defines ``FAMILY`` and ``COLUMNS`` (its failure columns) and ``run_case(seed) -> Outcome``: one seeded case, built by
one of the family's generators, compared with the reference. The same function serves the CI lane
(``tests/fuzz/test_lane.py``, fixed seeds, every count must be zero) and the long lane::

    python -m tests.fuzz --minutes 60            # all families, writes CORRECTNESS.md counts

A failing seed is reproduced with ``python -m tests.fuzz --family check --seed 123 -v``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FAMILIES", "Outcome"]

FAMILIES = ("check", "repair", "edits", "assign", "coverage")
"""Family modules, in report order (a missing module is skipped by the runner and the lane)."""


@dataclass
class Outcome:
    """What one case found.

    ``generator`` names the input (e.g. ``"voronoi/utm/exclave/multipolygon"``); ``counts`` maps a
    column (``"crash"``, ``"missed"``, ``"false_alarm"``...) to how often it happened in this case
    (0 when fine); ``details`` says what went wrong, enough to debug from the seed.
    """

    family: str
    seed: int
    generator: str
    counts: dict[str, int] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """True when any count is non-zero."""
        return any(v for v in self.counts.values())

    def fail(self, column: str, detail: str) -> None:
        """Count one failure of ``column`` and say why."""
        self.counts[column] = self.counts.get(column, 0) + 1
        self.details.append(f"{column}: {detail}")
