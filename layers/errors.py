"""The one error hierarchy of geogrid.

Every class also subclasses the matching built-in, so callers may catch either
(``except geogrid.CRSError`` or ``except ValueError``). Messages name the
offending values and say how to fix them.

The hierarchy lives in the lowest floor (``layers``) so that every floor can
raise it; ``geogrid`` and ``api`` re-export it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "CRSError",
    "EditConflict",
    "GeogridError",
    "GeogridWarning",
    "InputTooLargeError",
    "NetworkChanged",
    "NotFoundError",
    "OutsideCRSAreaWarning",
    "Problem",
    "SchemaError",
    "StoreError",
    "TopologyError",
    "ValidationError",
    "format_ids",
]


class GeogridError(Exception):
    """Base class of every error geogrid raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One problem found in an input.

    Parameters
    ----------
    kind
        A short machine-readable tag, e.g. ``"duplicate_id"``, ``"empty_geometry"``.
    message
        What is wrong and how to fix it, in one sentence.
    rows
        The 0-based row positions in the input that have the problem (may be empty
        for file-level problems).
    ids
        The ids of those rows where known.
    """

    kind: str
    message: str
    rows: tuple[int, ...] = field(default_factory=tuple)
    ids: tuple[str, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        where = ""
        if self.rows and " row" not in self.message:  # messages that name their rows say so themselves
            shown = ", ".join(str(r) for r in self.rows[:10])
            more = f" (+{len(self.rows) - 10} more)" if len(self.rows) > 10 else ""
            where = f" [rows {shown}{more}]"
        return f"{self.kind}: {self.message}{where}"


class ValidationError(GeogridError, ValueError):
    """An input failed validation at the door.

    Collects every problem of the input, so the user can fix them all at once.

    Parameters
    ----------
    source
        What was being read (a file name or a layer kind).
    problems
        Every problem found.
    """

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems: tuple[Problem, ...] = tuple(problems)
        lines = [f"{source}: {len(self.problems)} problem(s) found:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))

    @property
    def kinds(self) -> set[str]:
        """The distinct problem kinds."""
        return {p.kind for p in self.problems}


class SchemaError(ValidationError):
    """Required columns are missing or have the wrong type."""


class CRSError(GeogridError, ValueError):
    """A CRS is missing, unknown, mixed with another, or unsuitable (e.g. not metric)."""


class InputTooLargeError(GeogridError, ValueError):
    """An input exceeds a configured safety limit (nesting depth, vertices, bytes)."""


class TopologyError(GeogridError, ValueError):
    """An operation needs a valid coverage/hierarchy, or would break one.

    Parameters
    ----------
    message
        What is wrong and how to fix it.
    findings
        Optional findings (a GeoDataFrame as returned by the checks) that show where.
    """

    def __init__(self, message: str, findings: object | None = None) -> None:
        super().__init__(message)
        self.findings = findings


class EditConflict(GeogridError):  # noqa: N818  (the name the style guide gives)
    """An edit was based on a stale version; nothing was changed.

    Parameters
    ----------
    message
        Explanation, naming the expected and the actual version.
    expected, actual
        The version the caller based the edit on and the current version.
    """

    def __init__(self, message: str, expected: object = None, actual: object = None) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class NetworkChanged(EditConflict):
    """The grid network moved on since a plan was copied from it (or a write was based on it).

    The caller's version of the plan may well be current: what is stale is the network it
    was drawn on (another plan was committed, or grids were imported or replaced since).
    Nothing was changed; start a new plan from the current network and redo the edits.
    """


class NotFoundError(GeogridError, KeyError):
    """A named thing (grid id, plan id, layer) does not exist."""

    def __str__(self) -> str:
        # KeyError quotes its argument; we want the plain message.
        return str(self.args[0]) if self.args else ""


class StoreError(GeogridError, OSError):
    """A store cannot be opened, read or written (not a GeoPackage, locked, wrong schema)."""


class GeogridWarning(UserWarning):
    """Base class of every warning geogrid gives: the result is still correct, but look."""


class OutsideCRSAreaWarning(GeogridWarning):
    """Projected coordinates lie outside the nominal area of use of their CRS; the data is accepted.

    Real data uses a transverse Mercator zone a few degrees beyond its strip; the projection is
    still exact there, only its scale error grows. The message names the rows and how far (km)
    they lie beyond the area. Silence it, once you have looked, with
    ``warnings.filterwarnings("ignore", category=OutsideCRSAreaWarning)``.
    """


def format_ids(ids: Iterable[object], limit: int = 10) -> str:
    """Format a list of ids for an error message, eliding after ``limit``.

    Examples
    --------
    >>> format_ids(["a", "b", "c"], limit=2)
    "'a', 'b' (+1 more)"
    """
    ids = list(ids)
    shown = ", ".join(repr(str(i)) for i in ids[:limit])
    if len(ids) > limit:
        shown += f" (+{len(ids) - limit} more)"
    return shown
