"""Guards that run before any geometry is built: size, nesting depth, vertex count.

GEOS crashes the process (segfault) on deeply nested GeometryCollections (GEOS #1487:
WKT depth ~40,000, WKB depth ~15,000), Python's ``json`` module raises RecursionError
on deep JSON, and a noisy 1M-vertex polygon keeps ``make_valid`` busy for minutes
before failing with ``bad_alloc``. So inputs are measured on their bytes first:

- the bracket depth of a GeoJSON text, with a vectorised numpy scan that skips
  string literals (no JSON parser, no recursion);
- the nesting depth and vertex count of each WKB geometry, by walking its headers
  with an explicit stack (cost per ring, not per vertex; no shapely object built).

Only inputs that pass are handed to GDAL's GeoJSON parser or to shapely.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from layers.errors import InputTooLargeError

__all__ = ["Limits", "check_file_size", "check_json_depth", "check_wkb", "json_max_depth", "wkb_stats"]


@dataclass(frozen=True)
class Limits:
    """Safety limits applied to every input before geometries are built.

    Parameters
    ----------
    max_depth
        Deepest nesting allowed: brackets in a GeoJSON text (a FeatureCollection of
        MultiPolygons needs 8) and geometries inside geometry collections in WKB (a
        plain polygon is 1). GEOS crashes at depths in the thousands; 32 leaves room
        for any real file.
    max_vertices
        Most vertices in one feature. 200,000 is ~7 times a district boundary surveyed
        every metre along a 30 km perimeter; ``make_valid`` on a noisy 1M-vertex
        polygon ran for minutes and then failed to allocate memory.
    max_features
        Most features (rows) in one input: 20 million (Hongqiao recorded 4.18 million
        incidents in four and a half years).
    max_file_bytes
        Largest input file: 2 GiB.

    Examples
    --------
    >>> Limits().max_depth
    32
    >>> Limits(max_vertices=1_000).max_vertices
    1000
    """

    max_depth: int = 32
    max_vertices: int = 200_000
    max_features: int = 20_000_000
    max_file_bytes: int = 2 * 1024**3

    def __post_init__(self) -> None:
        for name in ("max_depth", "max_vertices", "max_features", "max_file_bytes"):
            if int(getattr(self, name)) < 1:
                msg = f"Limits.{name} must be a positive integer, got {getattr(self, name)!r}"
                raise ValueError(msg)


def check_file_size(path: str | os.PathLike[str], limits: Limits) -> int:
    """Raise InputTooLargeError if the file at ``path`` exceeds ``limits.max_file_bytes``; return its size.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     _ = f.write(b"12345"); f.flush()
    ...     check_file_size(f.name, Limits())
    5
    """
    size = Path(path).stat().st_size
    if size > limits.max_file_bytes:
        msg = (
            f"{path} is {size:,} bytes, more than the limit of {limits.max_file_bytes:,}: "
            "split the file, or raise the limit with Limits(max_file_bytes=...) / --max-file-bytes"
        )
        raise InputTooLargeError(msg)
    return size


_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[ord("[")] = 1
_OPEN[ord("{")] = 1
_OPEN[ord("]")] = -1
_OPEN[ord("}")] = -1
_QUOTE = ord('"')
_BACKSLASH = ord("\\")
_CHUNK = 1 << 24


def json_max_depth(buf: bytes | bytearray | memoryview | mmap.mmap) -> tuple[int, int]:
    """Return (deepest bracket nesting, byte offset where it is first reached) of a JSON text.

    Brackets inside string literals do not count. The scan is vectorised (numpy, in
    16 MiB chunks) and never recurses, so it is safe on any input.

    Examples
    --------
    >>> json_max_depth(b'{"a": [[1, 2]], "b": "[[[["}')
    (3, 7)
    >>> json_max_depth(b"[" * 50_000 + b"]" * 50_000)[0]
    50000
    """
    arr = np.frombuffer(buf, dtype=np.uint8)
    n = arr.size
    quotes = np.flatnonzero(arr == _QUOTE)
    if quotes.size:
        # A quote preceded by an odd run of backslashes is escaped (rare: checked one by one).
        suspect = quotes[(quotes > 0) & (arr[np.maximum(quotes - 1, 0)] == _BACKSLASH)]
        escaped = []
        for q in suspect.tolist():
            k = q - 1
            while k >= 0 and arr[k] == _BACKSLASH:
                k -= 1
            if (q - 1 - k) % 2 == 1:
                escaped.append(q)
        if escaped:
            quotes = np.setdiff1d(quotes, np.asarray(escaped, dtype=quotes.dtype), assume_unique=True)
    best, best_at = 0, 0
    depth_carry = 0
    parity_carry = 0
    qi = 0
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        chunk = arr[start:stop]
        delta = _OPEN[chunk].astype(np.int32)
        # mask out string literals: positions after an odd number of real quotes
        qj = int(np.searchsorted(quotes, stop, side="left"))
        marks = np.zeros(stop - start, dtype=np.uint8)
        marks[quotes[qi:qj] - start] = 1
        inside = (np.cumsum(marks, dtype=np.uint8) + parity_carry) & 1
        delta[inside.astype(bool)] = 0
        parity_carry = (parity_carry + (qj - qi)) & 1
        qi = qj
        depth = np.cumsum(delta, dtype=np.int64) + depth_carry
        if depth.size:
            k = int(np.argmax(depth))
            if depth[k] > best:
                best, best_at = int(depth[k]), start + k
            depth_carry = int(depth[-1])
    return best, best_at


def check_json_depth(path: str | os.PathLike[str], limits: Limits) -> None:
    """Raise InputTooLargeError if the JSON text at ``path`` nests deeper than ``limits.max_depth``.

    The file is memory-mapped, not loaded.
    """
    p = Path(path)
    if p.stat().st_size == 0:
        return
    with open(p, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        depth, at = json_max_depth(mm)
    if depth > limits.max_depth:
        msg = (
            f"{p.name} nests brackets {depth} deep (first at byte {at:,}), more than the limit of "
            f"{limits.max_depth}: a GeoJSON FeatureCollection of polygons needs 8. Deeply nested "
            "GeometryCollections crash the geometry engine, so the file is refused before parsing; "
            "flatten the collections, or raise the limit with Limits(max_depth=...) / --max-depth"
        )
        raise InputTooLargeError(msg)


class MalformedWKBError(ValueError):
    """A WKB value is truncated or has an unknown geometry type."""


_U32 = {1: struct.Struct("<I"), 0: struct.Struct(">I")}


def wkb_stats(buf: bytes, *, max_depth: int, max_vertices: int) -> tuple[int, int]:
    """Return (vertex count, nesting depth) of one WKB geometry without building it.

    ISO (type + 1000/2000/3000) and extended (0x80000000 Z / 0x40000000 M / 0x20000000
    SRID flags) WKB are understood, curves and surfaces included. The walk uses an
    explicit stack and stops early once ``max_depth`` or ``max_vertices`` is exceeded
    (the counts returned are then lower bounds above the limit).

    Raises
    ------
    MalformedWKBError
        If the bytes are truncated or hold an unknown type.

    Examples
    --------
    >>> import shapely
    >>> wkb_stats(shapely.box(0, 0, 1, 1).wkb, max_depth=32, max_vertices=100)
    (5, 1)
    >>> gc = shapely.GeometryCollection([shapely.GeometryCollection([shapely.Point(0, 0)])])
    >>> wkb_stats(gc.wkb, max_depth=32, max_vertices=100)
    (1, 3)
    """
    size = len(buf)
    pos = 0
    vertices = 0
    depth = 0
    stack = [1]
    try:
        while stack:
            if stack[-1] == 0:
                stack.pop()
                continue
            stack[-1] -= 1
            level = len(stack)
            if level > depth:
                depth = level
                if depth > max_depth:
                    return vertices, depth
            order = buf[pos]
            if order not in (0, 1):
                msg = f"bad byte-order mark {order} at byte {pos}"
                raise MalformedWKBError(msg)
            u32 = _U32[order]
            (code,) = u32.unpack_from(buf, pos + 1)
            pos += 5
            has_z = bool(code & 0x80000000)
            has_m = bool(code & 0x40000000)
            if code & 0x20000000:
                pos += 4
            code &= 0x0FFFFFFF
            base, iso = code % 1000, code // 1000
            dims = 2 + (has_z or iso in (1, 3)) + (has_m or iso in (2, 3))
            if base == 1:
                vertices += 1
                pos += 8 * dims
            elif base in (2, 8):
                (count,) = u32.unpack_from(buf, pos)
                pos += 4 + 8 * dims * count
                vertices += count
            elif base in (3, 17):
                (rings,) = u32.unpack_from(buf, pos)
                pos += 4
                for _ in range(rings):
                    (count,) = u32.unpack_from(buf, pos)
                    pos += 4 + 8 * dims * count
                    vertices += count
                    if pos > size:
                        break
            elif base in (4, 5, 6, 7, 9, 10, 11, 12, 15, 16):
                (count,) = u32.unpack_from(buf, pos)
                pos += 4
                stack.append(count)
            else:
                msg = f"unknown WKB geometry type {code} at byte {pos - 5}"
                raise MalformedWKBError(msg)
            if pos > size:
                msg = f"WKB truncated: needs more than its {size} bytes"
                raise MalformedWKBError(msg)
            if vertices > max_vertices:
                return vertices, depth
    except (struct.error, IndexError) as err:
        msg = f"WKB truncated: needs more than its {size} bytes"
        raise MalformedWKBError(msg) from err
    return vertices, depth


def check_wkb(
    wkbs: Sequence[bytes | None] | np.ndarray, limits: Limits, *, source: str, ids: Sequence[object] | None = None
) -> np.ndarray:
    r"""Check every WKB value against ``limits`` before it is parsed; return a mask of malformed rows.

    Raises
    ------
    InputTooLargeError
        Naming the rows (0-based) and ids whose geometry nests deeper than
        ``limits.max_depth`` or has more than ``limits.max_vertices`` vertices.

    Examples
    --------
    >>> import shapely
    >>> check_wkb([shapely.box(0, 0, 1, 1).wkb, None, b"\x01\x07"], Limits(), source="t").tolist()
    [False, False, True]
    """
    n = len(wkbs)
    malformed = np.zeros(n, dtype=bool)
    # A value shorter than 9 bytes per level cannot nest past max_depth, and one shorter
    # than 16 bytes per vertex cannot exceed max_vertices: such values need no walk.
    floor = min(9 * limits.max_depth, 16 * limits.max_vertices)
    too_deep: list[tuple[int, int]] = []
    too_many: list[tuple[int, int]] = []
    for i, w in enumerate(wkbs):
        if w is None:
            continue
        if len(w) <= floor and len(w) >= 21:
            continue
        try:
            vertices, depth = wkb_stats(w, max_depth=limits.max_depth, max_vertices=limits.max_vertices)
        except MalformedWKBError:
            malformed[i] = True
            continue
        if depth > limits.max_depth:
            too_deep.append((i, depth))
        elif vertices > limits.max_vertices:
            too_many.append((i, vertices))
    if too_deep or too_many:
        parts = []

        def where(rows: list[tuple[int, int]]) -> str:
            shown = []
            for i, _ in rows[:10]:
                label = f"row {i}"
                if ids is not None:
                    label += f" (id {ids[i]!r})"
                shown.append(label)
            more = f" (+{len(rows) - 10} more)" if len(rows) > 10 else ""
            return ", ".join(shown) + more

        if too_deep:
            parts.append(
                f"geometries nested more than {limits.max_depth} deep at {where(too_deep)}: "
                "deeply nested GeometryCollections crash the geometry engine; flatten them "
                "(or raise Limits(max_depth=...) / --max-depth)"
            )
        if too_many:
            worst = max(v for _, v in too_many)
            parts.append(
                f"features with more than {limits.max_vertices:,} vertices (up to {worst:,}+) at "
                f"{where(too_many)}: simplify them first (e.g. shapely.simplify with a tolerance "
                "in metres), or raise the limit with Limits(max_vertices=...) / --max-vertices"
            )
        msg = f"{source}: " + "; ".join(parts)
        raise InputTooLargeError(msg)
    return malformed
