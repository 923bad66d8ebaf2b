"""CQL2 filters (OGC API – Features Part 3) evaluated on a layer, strictly.

The text (``filter-lang=cql2-text``, the default) or JSON (``cql2-json``) is parsed
by the ``cql2`` library into CQL2 JSON; this module evaluates that tree on a
GeoDataFrame column by column. It supports the *Basic CQL2* conformance class and
nothing more:

- comparisons ``=``, ``<>``, ``<``, ``<=``, ``>``, ``>=`` between a queryable and a
  literal (or two queryables of one kind),
- ``AND``, ``OR``, ``NOT`` (three-valued: a comparison with a missing value is
  unknown, and ``NOT unknown`` is still unknown, so the feature is left out),
- ``IS NULL`` / ``IS NOT NULL``.

Literals must match the queryable's type: numbers for ``level``, quoted strings for
text, ``TIMESTAMP('2025-03-01T00:00:00Z')`` for ``reported_at``. Anything else –
``LIKE``, ``IN``, ``BETWEEN``, arithmetic, functions, spatial or temporal operators,
a property that is not a queryable, a type mismatch – is refused with a message
naming it (HTTP 400), never silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

import numpy as np
import pandas as pd

import geopandas as gpd

__all__ = ["FILTER_LANGS", "FilterError", "Queryable", "compile_filter"]

FILTER_LANGS = ("cql2-text", "cql2-json")
"""The values ``filter-lang`` accepts."""

Kind = Literal["str", "int", "float", "datetime", "bool"]

_COMPARE: Mapping[str, Callable[[Any, Any], Any]] = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class FilterError(ValueError):
    """A filter that cannot be parsed or uses what is not supported (HTTP 400)."""


@dataclass(frozen=True)
class Queryable:
    """A property a filter may name: its column and its type."""

    name: str
    kind: Kind


_Evaluated = Any
"""A three-valued result per row (a pandas ``BooleanArray``): True, False or NA (unknown)."""


def compile_filter(
    text: str, queryables: Mapping[str, Queryable], *, lang: str = "cql2-text"
) -> Callable[[gpd.GeoDataFrame], np.ndarray]:
    """Parse a CQL2 filter and return a function giving the boolean mask of the rows it keeps.

    Parameters
    ----------
    text
        The filter, in CQL2 text or CQL2 JSON.
    queryables
        The properties the filter may name.
    lang
        ``cql2-text`` or ``cql2-json``.

    Raises
    ------
    FilterError
        The text does not parse, or uses an operator, property or literal type that is not supported.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> df = gpd.GeoDataFrame({"level": [1, 2, 3]}, geometry=[shapely.Point(0, 0)] * 3)
    >>> keep = compile_filter("level >= 2 AND NOT level = 3", {"level": Queryable("level", "int")})
    >>> keep(df).tolist()
    [False, True, False]
    """
    import cql2

    try:
        expr = cql2.parse_text(text) if lang == "cql2-text" else cql2.parse_json(text)
    except (cql2.ParseError, cql2.ValidationError, ValueError) as err:
        first = str(err).strip().splitlines()
        msg = f"filter {text!r} is not valid {lang}: {' '.join(line.strip() for line in first)[:400]}"
        raise FilterError(msg) from err
    tree = expr.to_json()
    _check(tree, queryables)

    def keep(frame: gpd.GeoDataFrame) -> np.ndarray:
        result = _evaluate(tree, frame, queryables)
        return np.asarray(result.fillna(False), dtype=bool)

    return keep


def _refuse(what: str) -> NoReturn:
    msg = (
        f"the filter uses {what}, which this server does not support: it supports Basic CQL2 "
        "(=, <>, <, <=, >, >=, AND, OR, NOT, IS NULL) on the collection's queryables"
    )
    raise FilterError(msg)


def _literal_kind(node: Any) -> Kind | None:
    """Return the kind of a literal node; None if it is not a literal."""
    if isinstance(node, bool):
        return "bool"
    if isinstance(node, int | float):
        return "float"
    if isinstance(node, str):
        return "str"
    if isinstance(node, dict) and set(node) == {"timestamp"}:
        return "datetime"
    return None


def _operand_kind(node: Any, queryables: Mapping[str, Queryable]) -> Kind:
    if isinstance(node, dict) and set(node) == {"property"}:
        name = node["property"]
        if name not in queryables:
            msg = f"the filter names {name!r}, which is not a queryable; the queryables are: {', '.join(queryables)}"
            raise FilterError(msg)
        return queryables[name].kind
    kind = _literal_kind(node)
    if kind is None:
        if isinstance(node, dict) and "date" in node:
            msg = "DATE(...) compared with a date-time is ambiguous: write TIMESTAMP('2025-03-01T00:00:00Z')"
            raise FilterError(msg)
        if isinstance(node, dict) and "op" in node:
            _refuse(f"the operator {node['op']!r} inside a comparison")
        _refuse(f"the value {node!r}")
    return kind


def _comparable(a: Kind, b: Kind) -> bool:
    numeric = {"int", "float"}
    return a == b or (a in numeric and b in numeric)


def _check(node: Any, queryables: Mapping[str, Queryable]) -> None:
    """Raise FilterError unless ``node`` is a Basic CQL2 predicate on ``queryables`` with matching types."""
    if isinstance(node, bool):
        return
    if not isinstance(node, dict) or "op" not in node:
        _refuse(f"{node!r} where a predicate was expected")
    op, args = node["op"], node.get("args", [])
    if op in ("and", "or"):
        for a in args:
            _check(a, queryables)
    elif op == "not":
        _check(args[0], queryables)
    elif op == "isNull":
        _operand_kind(args[0], queryables)
        if not (isinstance(args[0], dict) and "property" in args[0]):
            _refuse("IS NULL on a literal")
    elif op in _COMPARE:
        left, right = (_operand_kind(a, queryables) for a in args)
        if not _comparable(left, right):
            msg = f"the filter compares a {left} with a {right} in {op!r}: use a literal of the queryable's type"
            raise FilterError(msg)
        if left == "bool" and op not in ("=", "<>"):
            _refuse(f"{op!r} on a boolean")
    else:
        _refuse(f"the operator {op!r}")


def _column(frame: gpd.GeoDataFrame, q: Queryable) -> pd.Series:
    if q.name in frame.columns:
        return frame[q.name]
    return pd.Series(pd.NA, index=frame.index, dtype=object)  # an optional column the layer lacks: all missing


_FILL: Mapping[str, Any] = {"str": "", "int": 0.0, "float": 0.0, "bool": False}


def _operand(node: Any, frame: gpd.GeoDataFrame, queryables: Mapping[str, Queryable]) -> tuple[Any, np.ndarray]:
    """Return the operand's values (missing ones filled with a placeholder of the type) and where they are missing."""
    if isinstance(node, dict) and "property" in node:
        q = queryables[node["property"]]
        col = _column(frame, q)
        missing = col.isna().to_numpy()
        if q.kind == "datetime":
            stamps = pd.to_datetime(col, utc=True)
            values: Any = stamps.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")  # NaT where missing
        elif q.kind in ("int", "float"):
            values = pd.to_numeric(col).astype("float64").fillna(0.0).to_numpy()
        elif q.kind == "bool":
            values = col.astype(object).where(~missing, False).astype(bool).to_numpy()
        else:
            values = col.astype(object).where(~missing, "").astype(str).to_numpy()
        return values, missing
    if isinstance(node, dict) and "timestamp" in node:
        try:
            stamp = pd.Timestamp(node["timestamp"])
        except ValueError as err:
            msg = f"TIMESTAMP({node['timestamp']!r}) is not an RFC 3339 date-time"
            raise FilterError(msg) from err
        if stamp.tzinfo is None:
            msg = f"TIMESTAMP({node['timestamp']!r}) has no time zone: add Z"
            raise FilterError(msg)
        return np.datetime64(stamp.tz_convert("UTC").tz_localize(None).as_unit("ns")), np.zeros(len(frame), dtype=bool)
    return node, np.zeros(len(frame), dtype=bool)


def _known(values: np.ndarray, unknown: np.ndarray) -> _Evaluated:
    out = pd.array(values.astype(bool), dtype="boolean")
    out[unknown] = pd.NA
    return out


def _evaluate(node: Any, frame: gpd.GeoDataFrame, queryables: Mapping[str, Queryable]) -> _Evaluated:
    n = len(frame)
    if isinstance(node, bool):
        return pd.array(np.full(n, node), dtype="boolean")
    op, args = node["op"], node.get("args", [])
    if op in ("and", "or"):
        parts = [_evaluate(a, frame, queryables) for a in args]
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if op == "and" else (out | p)
        return out
    if op == "not":
        return ~_evaluate(args[0], frame, queryables)
    if op == "isNull":
        _, missing = _operand(args[0], frame, queryables)
        return pd.array(missing, dtype="boolean")
    (a, a_missing), (b, b_missing) = (_operand(x, frame, queryables) for x in args)
    unknown = a_missing | b_missing
    values = np.asarray(_COMPARE[op](a, b), dtype=bool)
    if values.shape != (n,):  # two literals: the same answer for every row
        values = np.full(n, bool(values))
    return _known(values, unknown)
