"""A CSV layer read, checked and converted part by part, in memory bounded by the part size.

The engine of :func:`layers.io.read_layer_chunks`. Every door check of
:func:`layers.io.read_layer` runs on each part, with the rows named as positions in the
whole file and with the file's line numbers; what needs the whole file is kept compact:
duplicate ids are found through sorted 64-bit hashes of the ids (12 bytes a row), warnings
are given once, and a uniform sample of the points is kept for hints that look at the
whole layer (:func:`layers.validate.datum_shift_hint`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from layers._guards import Limits
from layers.datum import to_wgs84
from layers.errors import OutsideCRSAreaWarning, Problem, ValidationError, format_ids
from layers.io import _apply_mapping, _csv_crs, _csv_points, _csv_xy_columns, _iter_csv_parts
from layers.schema import SCHEMAS, LayerKind
from layers.validate import _to_str, _where, check_frame, finish_frame

__all__ = ["DEFAULT_CHUNK_ROWS", "LayerChunks"]

DEFAULT_CHUNK_ROWS = 50_000
"""Rows per part: ~100-150 MB of working memory for a typical incident CSV (checks, conversion, staging)."""

_SAMPLE_SIZE = 100_000
_MERGE_CAP = 2_000_000  # rows of one sorted run of id hashes (a merge copies at most two runs)


class _SeenIds:
    """The ids of the rows read so far, as sorted runs of 64-bit hashes with their rows.

    :meth:`add` returns, for each new id, the row where it was seen first (-1: new). Runs
    are merged pairwise while they stay below 2 M rows, so a lookup costs a few binary
    searches and a merge never copies more than one capped run.
    """

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, hashes: np.ndarray, rows: np.ndarray) -> np.ndarray:
        first = np.full(hashes.size, -1, dtype=np.int64)
        for run_h, run_r in self.runs:
            if not run_h.size or not hashes.size:
                continue
            pos = np.minimum(np.searchsorted(run_h, hashes), run_h.size - 1)
            hit = (run_h[pos] == hashes) & (first < 0)
            first[hit] = run_r[pos[hit]]
        order = np.argsort(hashes, kind="stable")
        h, r = hashes[order], rows[order].astype(np.uint32)
        same = np.flatnonzero(h[1:] == h[:-1]) + 1  # later rows of a hash repeated in this part
        if same.size:
            head = np.maximum.accumulate(np.where(np.r_[True, h[1:] != h[:-1]], np.arange(h.size), 0))
            inner = r[head[same]].astype(np.int64)
            slot = order[same]
            first[slot] = np.where(first[slot] < 0, inner, first[slot])
        self.runs.append((h, r))
        while len(self.runs) > 1 and self.runs[-2][0].size <= self.runs[-1][0].size * 2:
            (h1, r1), (h2, r2) = self.runs[-2], self.runs[-1]
            if h1.size + h2.size > _MERGE_CAP:
                break
            hh = np.concatenate([h1, h2])
            o = np.argsort(hh, kind="stable")
            self.runs[-2:] = [(hh[o], np.concatenate([r1, r2])[o])]
        return first


def _problem_key(p: Problem) -> tuple[str, str]:
    """Return what makes problems of two parts one problem: the kind and what the message says is wrong."""
    head = re.match(r"[^'(]*?(?= at rows? |'|\(|$)", p.message)
    return (p.kind, head.group(0) if head else p.message)


def _newlines(text: pd.DataFrame) -> np.ndarray | None:
    """Line breaks inside the cells of each row (None: there are none)."""
    per_row: np.ndarray | None = None
    for col in text.columns:
        s = text[col]
        if not s.str.contains("\n", regex=False).fillna(False).any():
            continue
        count = s.str.count("\n").fillna(0).to_numpy(dtype=np.int64)
        per_row = count if per_row is None else per_row + count
    return per_row


class LayerChunks:
    """Iterate over the canonical parts of a CSV layer (see :func:`layers.io.read_layer_chunks`).

    After a complete iteration, ``rows``, ``source_crs``, ``crs_assumed``, ``datum``,
    ``warnings`` and ``sample`` (a uniform sample of the stored points, at most 100,000)
    describe the whole file. The iteration raises :class:`~layers.errors.ValidationError`
    at its end if any part had a problem; from the first problem on, no more parts are
    yielded (the rest of the file is still checked, so every problem is listed).
    """

    def __init__(
        self,
        path: Path,
        kind: LayerKind,
        *,
        columns: Mapping[str, str],
        crs: object,
        datum: str,
        limits: Limits,
        tz: str | None,
        encoding: str | None,
        chunk_rows: int,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.path, self.kind, self.columns, self.crs = path, kind, dict(columns), crs
        self.datum, self.limits, self.tz, self.encoding = datum, limits, tz, encoding
        self.chunk_rows, self.progress = int(chunk_rows), progress
        self.total_bytes = path.stat().st_size
        self.rows = 0
        self.source_crs: str | None = None
        self.crs_assumed = False
        self.warnings: list[str] = []
        self.sample = np.empty((0, 2))
        self._iterated = False
        self._parts: list[tuple[int, int, np.ndarray | None]] = []  # (first row, line before it, breaks per row)

    def line_of(self, row: int) -> int:
        """Return the line of the file where data row ``row`` (0-based) starts (the header is line 1)."""
        for first, before, breaks in reversed(self._parts):
            if row >= first:
                i = row - first
                extra = 0 if breaks is None else int(breaks[:i].sum())
                return before + 1 + i + extra
        return row + 2

    def _lines(self, rows: tuple[int, ...]) -> str:
        shown = ", ".join(f"{self.line_of(r):,}" for r in rows[:10])
        more = f" (+{len(rows) - 10} more)" if len(rows) > 10 else ""
        return f"line{'s' if len(rows) > 1 else ''} {shown}{more} of the file"

    def __iter__(self) -> Iterator[gpd.GeoDataFrame]:
        if self._iterated:
            msg = "a LayerChunks can be iterated once: call read_layer_chunks again"
            raise RuntimeError(msg)
        self._iterated = True
        source = self.path.name
        kind, schema = self.kind, SCHEMAS[self.kind]
        enc = self.encoding or "utf-8-sig"
        sep = "\t" if self.path.suffix.lower() == ".tsv" else ","
        whole: dict[tuple[str, str], Problem] = {}  # file-level problems, once each
        found: dict[tuple[str, str], list[object]] = {}  # [first problem, more rows, first further row]
        seen = _SeenIds()
        rng = np.random.default_rng(0)
        sample_keys = np.empty(0)
        first_warnings: list[str] | None = None
        later_warned = 0
        xy: dict[str, str | None] | None = None
        use_crs: object = None
        transform = None
        if self.datum != "wgs84":
            d = self.datum

            def transform(coords: np.ndarray) -> np.ndarray:
                lon, lat = to_wgs84(coords[:, 0], coords[:, 1], d)
                return np.column_stack([lon, lat])

        line = offset = 0
        for text in _iter_csv_parts(self.path, enc, sep, self.limits, self.chunk_rows, self.progress):
            problems: list[Problem] = []
            if xy is None:
                line = 1 + sum(str(c).count("\n") for c in text.columns)  # the header's last line
                xy = _csv_xy_columns([str(c) for c in text.columns], self.columns, problems)
                use_crs, self.crs_assumed = _csv_crs(xy, self.crs)
            breaks = _newlines(text)
            self._parts.append((offset, line, breaks))
            n = len(text)
            geoms = _csv_points(text, xy, problems, row_offset=offset)
            frame = text.drop(columns=[c for c in (xy["x"], xy["y"]) if c is not None])
            frame = _apply_mapping(frame, self.columns, kind, problems).reset_index(drop=True)
            checked = check_frame(
                frame,
                geoms,
                kind,
                crs=use_crs,
                tz=self.tz,
                limits=self.limits,
                from_file=True,
                count_vertices=False,
                extra=problems,
                row_offset=offset,
                unique_ids=False,
            )
            if self.datum != "wgs84" and checked.crs is not None and not checked.crs.is_geographic:
                checked.problems.append(
                    Problem(
                        "datum_needs_lonlat",
                        f"--datum {self.datum} converts lon/lat, but the data is in the projected CRS "
                        f"{checked.crs.to_string()}: give the lon/lat file",
                    )
                )
            if schema.id_column in frame.columns:
                checked.problems += self._duplicates(frame[schema.id_column], seen, offset)
            for p in checked.problems:
                if not p.rows:
                    whole.setdefault((p.kind, p.message), p)
                elif (key := _problem_key(p)) not in found:
                    found[key] = [Problem(p.kind, f"{p.message} ({self._lines(p.rows)})", p.rows, p.ids), 0, None]
                else:
                    entry = found[key]
                    entry[1] = int(entry[1]) + len(p.rows)  # type: ignore[call-overload]
                    entry[2] = p.rows[0] if entry[2] is None else entry[2]
            if not whole and not found:
                gdf = finish_frame(
                    frame,
                    geoms,
                    kind,
                    checked,
                    transform=transform,
                    attrs={"source": str(self.path), "datum": self.datum, "crs_assumed": self.crs_assumed},
                    warn=False,
                )
                self.source_crs = gdf.attrs.get("source_crs")
                if gdf.attrs.get("warnings"):
                    if first_warnings is None:
                        first_warnings = list(gdf.attrs["warnings"])
                    else:
                        later_warned += 1
                xy_pts = shapely.get_coordinates(gdf.geometry.to_numpy())
                if xy_pts.shape[0] == n:
                    keys = np.concatenate([sample_keys, rng.random(n)])
                    pts = np.concatenate([self.sample, xy_pts])
                    if keys.size > _SAMPLE_SIZE:
                        keep = np.argpartition(keys, _SAMPLE_SIZE)[:_SAMPLE_SIZE]
                        keep.sort()
                        keys, pts = keys[keep], pts[keep]
                    sample_keys, self.sample = keys, pts
                yield gdf
            offset += n
            line += n + (0 if breaks is None else int(breaks.sum()))
        self.rows = offset
        if whole or found:
            out = list(whole.values())
            for first, more, further in found.values():
                assert isinstance(first, Problem)
                if more:
                    at = int(further)  # type: ignore[call-overload]
                    text = (
                        f"{first.message}; and {more:,} more row(s) further on, the first at row {at} "
                        f"(line {self.line_of(at):,})"
                    )
                    first = Problem(first.kind, text, first.rows, first.ids)
                out.append(first)
            raise ValidationError(source, out)
        if first_warnings:
            for i, text in enumerate(first_warnings):
                more = (
                    f" The same holds in {later_warned} later part(s) of the file." if later_warned and i == 0 else ""
                )
                self.warnings.append(text + more)
                warnings.warn(text + more, OutsideCRSAreaWarning, stacklevel=2)

    def _duplicates(self, column: pd.Series, seen: _SeenIds, offset: int) -> list[Problem]:
        ids = _to_str(column).to_numpy(dtype=object, na_value=None)
        present = np.flatnonzero(pd.notna(ids))
        hashes = pd.util.hash_array(ids[present].astype(str).astype(object))
        first = seen.add(hashes, present + offset)
        again = first >= 0
        if not again.any():
            return []
        id_col = column.name
        later = present[again] + offset
        rows = np.unique(np.concatenate([first[again], later]))
        text_of = dict(zip(later.tolist(), ids[present[again]].tolist(), strict=True))
        for r, f in zip(later.tolist(), first[again].tolist(), strict=True):
            text_of.setdefault(f, text_of[r])
        row_list = tuple(int(r) for r in rows)
        id_list = tuple(str(text_of[r]) for r in row_list)
        values = sorted(set(id_list))
        msg = f"duplicate {id_col} {format_ids(values)} at {_where(row_list, id_list)}: every {id_col} must be unique"
        return [Problem("duplicate_id", msg, row_list, id_list)]
