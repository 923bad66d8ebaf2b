"""Assign points (incidents) to the grid that holds them, at every level, in one pass.

The rule for points on a boundary
---------------------------------
Grids are taken as **closed** polygons: a point on a grid's boundary belongs to it. A point that
lies on the boundary shared by several grids of a level goes to the one with the **lowest
grid_id** (string order) among them. So every point inside the jurisdiction, boundary or not,
gets exactly one grid per level, and the answer does not depend on the row order of the grids.
A point outside every grid of a level gets NaN (missing) there; ``outside`` is True when it lies in no
grid of any requested level. Such points are kept and flagged, never dropped.

``geopandas.sjoin(predicate="within")`` agrees with this everywhere except on boundaries, where
it drops the point (a point on a boundary is not *within* either grid).

How it is fast
--------------
Only the finest requested level is located by geometry; coarser levels follow through
``parent_id`` when the hierarchy nests exactly (see ``nested``), by an integer take on the finest
level's positions; otherwise each level is located by geometry on its own. Parent links only
answer points the finest level certifies to lie inside one grid: the few points it leaves to
shapely (all those on or within rounding of a boundary) are located on every derived level by the
rule itself, since on a shared boundary the lowest grid_id of a coarse level need not be the
parent of the finest level's winner. Locating uses an
*owner raster* (:class:`GridLocator`): a fine raster of cells over the grids, each cell wholly
inside one grid storing that grid's index, so most points are answered by one array lookup. A
point in a cell that a boundary crosses is decided by orientation tests against the few segments
clipped to that cell, with a certified error bound; the rare point that lies on (or within
rounding of) a segment goes to prepared ``shapely.intersects_xy`` against the cell's candidates.
Points are read and located in chunks of about 1e5 by one compiled (numba) loop, and each
``grid_id`` column is a pandas Categorical over the level's grid_ids built from the integer
positions: no Point objects, no Python string per point. The first call in a fresh environment
compiles the kernels (a few seconds); numba caches them on disk for every later process.

Grid versions
-------------
When the grids carry ``valid_from`` / ``valid_to`` columns (timestamps, ``valid_to`` exclusive,
missing = open) and ``time`` names a column of the points, each point is assigned with the grids
valid at its time. Without ``time`` only the current grids (``valid_to`` missing) are used.
Without those columns, ``time`` is ignored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

import geopandas as gpd
import shapely

from geogrid._assign_impl import (
    _CHUNK,
    OwnerRaster,
    boundaries_add_up,
    build_owner_raster,
    lowest_holder,
    ring_segments,
)
from layers.errors import CRSError, SchemaError, format_ids

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = [
    "GridLocator",
    "assign_points",
    "assign_points_chunked",
    "assign_points_dask",
    "assign_xy",
    "grid_positions",
]

VALID_FROM = "valid_from"
VALID_TO = "valid_to"
_NESTING_RTOL = 1e-9


class GridLocator:
    """A reusable index answering "which polygon holds this point?" for many points.

    Parameters
    ----------
    polygons
        Polygons or MultiPolygons (missing or empty entries hold no point). Positions in this
        array are the answers.

    Notes
    -----
    Build once, call :meth:`locate` for every chunk: building costs about as much as locating
    a few million points. The raster and the tables of its boundary cells take :attr:`nbytes`
    bytes (about 140 MB for 100,000 Voronoi grids). The first locator in a fresh install compiles its
    numba kernels (about 6 s); they are cached on disk for later processes.

    Examples
    --------
    >>> import numpy as np, shapely
    >>> loc = GridLocator([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)])
    >>> loc.locate(np.array([0.5, 1.0, 1.5, 3.0]), np.array([0.5, 0.5, 0.5, 0.5])).tolist()
    [0, 0, 1, -1]
    """

    def __init__(self, polygons: Sequence[Any] | npt.NDArray[np.object_]) -> None:
        self._raster: OwnerRaster = build_owner_raster(np.asarray(polygons, dtype=object))

    @property
    def nbytes(self) -> int:
        """Memory held by the index (raster and boundary-cell tables), in bytes."""
        return self._raster.nbytes

    @property
    def stats(self) -> dict[str, float]:
        """Raster cells, boundary (special) cells and their tables' sizes, and cell size."""
        return dict(self._raster.stats)

    def locate(self, x: npt.ArrayLike, y: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Position of the polygon holding each point; -1 outside all (NaN coordinates too).

        On a boundary shared by several polygons the lowest position wins.
        """
        xa = np.ascontiguousarray(x, dtype=np.float64).ravel()
        ya = np.ascontiguousarray(y, dtype=np.float64).ravel()
        if xa.shape != ya.shape:
            msg = f"x and y differ in length: {xa.size} and {ya.size}"
            raise ValueError(msg)
        return self._raster.locate(xa, ya)


def assign_xy(
    x: npt.ArrayLike, y: npt.ArrayLike, polygons: Sequence[Any] | npt.NDArray[np.object_]
) -> npt.NDArray[np.int64]:
    """Locate points among polygons: the pure core of :func:`assign_points`.

    Parameters
    ----------
    x, y
        Point coordinates, in the polygons' CRS.
    polygons
        Polygons or MultiPolygons; treated as closed sets.

    Returns
    -------
    numpy.ndarray
        For each point the position of the polygon holding it, -1 if none. A point on the
        boundary of several polygons gets the lowest position among them.

    Examples
    --------
    >>> import shapely
    >>> assign_xy([0.5, 1.0, 5.0], [0.5, 0.5, 5.0], [shapely.box(1, 0, 2, 1), shapely.box(0, 0, 1, 1)]).tolist()
    [1, 0, -1]
    """
    return GridLocator(polygons).locate(x, y)


def grid_positions(grid_ids: pd.Series, ids: Sequence[Any] | npt.NDArray[Any] | pd.Index) -> npt.NDArray[np.int64]:
    """Position in ``ids`` of each value of a ``grid_id_<level>`` column; -1 where missing or not in ``ids``.

    Reads a Categorical column (as :func:`assign_points` gives) through its codes: one lookup per
    grid, not per point. Any other column is matched value by value.

    Examples
    --------
    >>> import pandas as pd
    >>> col = pd.Series(pd.Categorical(["b", None, "a"], categories=["a", "b", "c"]))
    >>> grid_positions(col, ["c", "b", "a"]).tolist()
    [1, -1, 2]
    """
    index = pd.Index(np.asarray(ids, dtype=object).astype(str), dtype=object)
    if isinstance(grid_ids.dtype, pd.CategoricalDtype):
        codes = grid_ids.cat.codes.to_numpy()
        per_cat = np.append(index.get_indexer(grid_ids.cat.categories.astype(str).to_numpy(dtype=object)), -1)
        return per_cat[codes].astype(np.int64)  # code -1 (missing) picks the appended -1
    values = grid_ids.astype(object).to_numpy()
    found = index.get_indexer(np.where(pd.isna(values), None, values.astype(str)))
    return found.astype(np.int64)


# -- the adapter ------------------------------------------------------------------------------
@dataclass
class _LevelPlan:
    """How one level is answered: by its own locator or through the finest level's parents."""

    level: int
    ids: npt.NDArray[np.object_]  # grid_ids of the level, sorted
    locator: GridLocator | None  # None: derived from the finest level
    from_finest: npt.NDArray[np.int64] | None  # finest position -> position in ids (-1 none)
    # position + 1 -> category code, when the categories span other grid versions too (else None)
    to_category: npt.NDArray[np.int32] | None = None
    polygons: npt.NDArray[np.object_] | None = None  # a derived level's grids, for its boundary points
    _tree: shapely.STRtree | None = None

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_tree"] = None  # rebuilt on demand
        return state

    def locate_chunk(
        self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """Positions in ``ids`` (-1: none), and which points were decided by shapely."""
        assert self.locator is not None
        return self.locator._raster.locate_chunk_flagged(x, y)

    def locate_exactly(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.int32]:
        """Locate points the parent links cannot settle on this derived level, by the rule, with shapely."""
        assert self.polygons is not None
        if self._tree is None:
            self._tree = shapely.STRtree(self.polygons)
        return lowest_holder(self._tree, self.polygons.size, x, y)


@dataclass
class _Plan:
    levels: list[int]
    plans: dict[int, _LevelPlan]

    def assign(self, geoms: npt.NDArray[np.object_]) -> dict[int, npt.NDArray[np.int32]]:
        """Position of each point's grid on every level (-1: none), chunk by chunk.

        Small chunks keep every temporary in reused memory; only the answers span all points.
        """
        n = geoms.size
        finest = self.levels[-1]
        out = {lv: np.empty(n, dtype=np.int32) for lv in self.levels}
        # derived levels: finest position + 1 -> position in the level (entry 0: no grid)
        derived = {
            lv: np.concatenate(([-1], p.from_finest)).astype(np.int32)
            for lv, p in self.plans.items()
            if p.locator is None and p.from_finest is not None
        }
        for start in range(0, n, _CHUNK):
            stop = min(start + _CHUNK, n)
            x, y = _xy_chunk(geoms[start:stop], start)
            base, decided = self.plans[finest].locate_chunk(x, y)
            out[finest][start:stop] = base
            for lv in self.levels[:-1]:
                if lv in derived:
                    got = derived[lv][base + 1]
                    # Points shapely decided at the finest level may lie on a boundary, where the
                    # lowest grid_id of this level need not be the parent of the finest winner:
                    # locate those few here by the rule itself.
                    if decided.size:
                        got[decided] = self.plans[lv].locate_exactly(x[decided], y[decided])
                    out[lv][start:stop] = got
                else:
                    out[lv][start:stop] = self.plans[lv].locate_chunk(x, y)[0]
        return out


def _check_crs(points_crs: object, grids_crs: object) -> None:
    if points_crs is None and grids_crs is None:
        return
    if points_crs is None or grids_crs is None or not _crs_equal(points_crs, grids_crs):
        msg = (
            f"points have CRS {_crs_name(points_crs)} but grids have CRS {_crs_name(grids_crs)}: "
            "bring them to one CRS first, e.g. points.to_crs(grids.crs)"
        )
        raise CRSError(msg)


def _crs_equal(a: object, b: object) -> bool:
    from pyproj import CRS

    return bool(CRS.from_user_input(a).equals(CRS.from_user_input(b), ignore_axis_order=True))


def _crs_name(crs: object) -> str:
    if crs is None:
        return "None (not set)"
    from pyproj import CRS

    c = CRS.from_user_input(crs)
    epsg = c.to_epsg()
    return f"EPSG:{epsg}" if epsg else c.name


def _require_columns(grids: pd.DataFrame, needed: Sequence[str]) -> None:
    missing = [c for c in needed if c not in grids.columns]
    if missing:
        from layers.errors import Problem

        msg = f"grids lack the column(s) {', '.join(missing)}: rename yours or read them with layers.io.read_layer"
        source = "grids"
        raise SchemaError(source, [Problem("missing_column", msg)])


def _nests_exactly(
    finest: gpd.GeoDataFrame, coarse: gpd.GeoDataFrame, anc: npt.NDArray[np.int64], cache: dict[str, Any]
) -> bool:
    """Whether ``coarse`` is tiled exactly by its descendants in ``finest`` (``anc``: finest -> coarse).

    Then a point the finest level's locator certifies to lie inside one grid (off every boundary)
    lies inside that grid's ancestor and in no other coarse grid, so the parent link gives the
    rule's answer; points it leaves to shapely (boundary points among them) are located on the
    coarse level by the rule. Holds when every finest grid has an ancestor, every coarse grid
    has a descendant, the coarse grids do not overlap (``shapely.coverage_is_valid``) and each
    coarse grid's boundary segments are exactly the sum of its descendants' (see
    :func:`geogrid._assign_impl.boundaries_add_up`): same vertices, bit for bit, as a dissolve
    gives them. Anything else locates the level by geometry: correct, a little slower.
    """
    if (anc < 0).any() or (np.bincount(anc, minlength=len(coarse)) == 0).any():
        return False
    fg = np.asarray(finest.geometry.array)
    cg = np.asarray(coarse.geometry.array)
    # cheap first: the areas must add up before the segments are compared bit for bit
    sums = np.bincount(anc, weights=shapely.area(fg), minlength=len(coarse))
    if not np.allclose(sums, shapely.area(cg), rtol=_NESTING_RTOL, atol=0.0):
        return False
    if "segments" not in cache:  # the finest level's segments serve every coarser level
        cache["segments"] = ring_segments(fg)
    return boundaries_add_up(cache["segments"], cg, anc) and bool(shapely.coverage_is_valid(cg))


def _ancestors(
    grids: gpd.GeoDataFrame, finest_ids: npt.NDArray[np.object_], level: int, ids: npt.NDArray[np.object_]
) -> npt.NDArray[np.int64]:
    """Position in ``ids`` (grids of ``level``) of each finest grid's ancestor at that level, -1 if none."""
    all_ids = grids["grid_id"].to_numpy(dtype=object)
    index = pd.Index(all_ids)
    first = ~index.duplicated()  # a repeated grid_id: its first row speaks for it
    index, all_ids = pd.Index(all_ids[first]), all_ids[first]
    parent = index.get_indexer(grids["parent_id"].to_numpy(dtype=object)[first]) if "parent_id" in grids else None
    lv = grids["level"].to_numpy(dtype="int64")[first]
    cur = index.get_indexer(finest_ids)
    if parent is not None:
        for _ in range(64):  # deeper than any real hierarchy; stops cycles
            step = (cur >= 0) & (lv[cur] != level)
            if not step.any():
                break
            cur = np.where(step, parent[cur], cur)
    at_level = (cur >= 0) & (lv[cur] == level)
    found = np.full(cur.size, -1, dtype=np.int64)
    found[at_level] = pd.Index(ids).get_indexer(all_ids[cur[at_level]])
    return found


def _plan(grids: gpd.GeoDataFrame, levels: Sequence[int] | None, nested: bool | Literal["auto"]) -> _Plan:
    _require_columns(grids, ["grid_id", "level"])
    wanted = _plan_levels(grids, levels)
    by_level: dict[int, gpd.GeoDataFrame] = {}
    for lv in wanted:
        g = grids[grids["level"] == lv]
        g = g.iloc[np.argsort(g["grid_id"].to_numpy(dtype=str), kind="stable")]
        dup = g["grid_id"][g["grid_id"].duplicated()]
        if len(dup):
            msg = f"grid_id not unique on level {lv}: {format_ids(dup.unique())}; give each grid its own id"
            raise ValueError(msg)
        by_level[lv] = g
    finest = wanted[-1]
    fg = by_level[finest]
    f_ids = fg["grid_id"].to_numpy(dtype=object)
    plans = {finest: _LevelPlan(finest, f_ids, GridLocator(np.asarray(fg.geometry.array)), None)}
    cache: dict[str, Any] = {}
    for lv in wanted[:-1]:
        g = by_level[lv]
        ids = g["grid_id"].to_numpy(dtype=object)
        anc = None
        if nested is not False and "parent_id" in grids.columns:
            anc = _ancestors(grids, f_ids, lv, ids)
            if nested == "auto" and not _nests_exactly(fg, g, anc, cache):
                anc = None
        if anc is None:
            plans[lv] = _LevelPlan(lv, ids, GridLocator(np.asarray(g.geometry.array)), None)
        else:
            plans[lv] = _LevelPlan(lv, ids, None, anc, polygons=np.asarray(g.geometry.array))
    return _Plan(wanted, plans)


def _categories(plans: Sequence[_Plan], levels: Sequence[int]) -> dict[int, pd.CategoricalDtype]:
    """Per level, one categorical dtype over the grid_ids of every plan (every grid version), sorted.

    Each plan's level whose ids are not exactly those categories gets its ``to_category`` table.
    """
    out = {}
    for lv in levels:
        ids = np.unique(np.concatenate([p.plans[lv].ids.astype(str) for p in plans]))
        cats = pd.Index(ids, dtype="str")
        out[lv] = pd.CategoricalDtype(cats, ordered=False)
        for p in plans:
            mine = p.plans[lv].ids.astype(str)
            if len(mine) != len(ids) or not np.array_equal(mine, ids):
                p.plans[lv].to_category = np.concatenate(([-1], cats.get_indexer(mine))).astype(np.int32)
    return out


def _to_frame(
    plan: _Plan, codes: dict[int, npt.NDArray[np.int32]], index: pd.Index, dtypes: dict[int, pd.CategoricalDtype]
) -> pd.DataFrame:
    cols: dict[str, Any] = {}
    outside = np.ones(len(index), dtype=bool)
    for lv in plan.levels:
        c = codes[lv]
        outside &= c < 0
        to_category = plan.plans[lv].to_category
        if to_category is not None:  # this plan is one grid version among several
            c = to_category[c + 1]
        # integer codes over the level's grid_ids: no string per point
        cols[f"grid_id_{lv}"] = pd.Categorical.from_codes(c, dtype=dtypes[lv])
    cols["outside"] = outside
    return pd.DataFrame(cols, index=index, copy=False)


def _geoms(points: gpd.GeoDataFrame | gpd.GeoSeries) -> npt.NDArray[np.object_]:
    return np.asarray(points.geometry.array) if isinstance(points, gpd.GeoDataFrame) else np.asarray(points.array)


def _xy_chunk(
    geoms: npt.NDArray[np.object_], first_row: int = 0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Coordinates of Points (NaN for missing or empty ones); refuses other geometry types."""
    try:
        x, y = shapely.get_x(geoms), shapely.get_y(geoms)  # NaN for missing and non-points
    except shapely.errors.GEOSException:  # empty points: the careful path
        return _xy(geoms, first_row)
    odd = np.flatnonzero(np.isnan(x))
    if odd.size:
        kinds = shapely.get_type_id(geoms[odd])
        bad = odd[(kinds != 0) & (kinds != -1)]
        if bad.size:
            msg = (
                f"points must be Points; rows {format_ids((bad + first_row).tolist())} are not: "
                "take centroids first if you mean that"
            )
            raise ValueError(msg)
    return x, y


def _xy(geoms: npt.NDArray[np.object_], first_row: int = 0) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    kinds = shapely.get_type_id(geoms)
    bad = np.flatnonzero((kinds != 0) & (kinds != -1))
    if bad.size:
        msg = (
            f"points must be Points; rows {format_ids((bad + first_row).tolist())} are not: "
            "take centroids first if you mean that"
        )
        raise ValueError(msg)
    x = np.full(geoms.size, np.nan)
    y = np.full(geoms.size, np.nan)
    coords, where = shapely.get_coordinates(geoms, return_index=True)  # one pass; empty points have none
    x[where] = coords[:, 0]
    y[where] = coords[:, 1]
    return x, y


def _versions(grids: gpd.GeoDataFrame) -> bool:
    return VALID_FROM in grids.columns or VALID_TO in grids.columns


def _active(grids: gpd.GeoDataFrame, at: pd.Timestamp | None) -> gpd.GeoDataFrame:
    vf = pd.to_datetime(grids[VALID_FROM], utc=True) if VALID_FROM in grids.columns else None
    vt = pd.to_datetime(grids[VALID_TO], utc=True) if VALID_TO in grids.columns else None
    keep = np.ones(len(grids), dtype=bool)
    if at is None:
        if vt is not None:
            keep &= vt.isna().to_numpy()
        return grids[keep]
    if vf is not None:
        keep &= (vf.isna() | (vf <= at)).to_numpy()
    if vt is not None:
        keep &= (vt.isna() | (vt > at)).to_numpy()
    return grids[keep]


class _Assigner:
    """The plan(s) for a grid layer; reused across the chunks of a larger-than-memory input."""

    def __init__(
        self,
        grids: gpd.GeoDataFrame,
        levels: Sequence[int] | None,
        nested: bool | Literal["auto"],
        time: str | None,
    ) -> None:
        self.crs = grids.crs
        self.time = time if _versions(grids) else None
        self.epochs: list[tuple[pd.Timestamp | None, _Plan]] = []
        if self.time is None:
            self.current = _plan(_active(grids, None), levels, nested)
            self.levels = self.current.levels
            self.dtypes = _categories([self.current], self.levels)
            return
        cuts = pd.concat(
            [pd.to_datetime(grids[c], utc=True) for c in (VALID_FROM, VALID_TO) if c in grids.columns]
        ).dropna()
        self.cuts = sorted(pd.unique(cuts))
        self.current = _plan(_active(grids, None), levels, nested)
        self.levels = self.current.levels
        before = self.cuts[0] - pd.Timedelta(1, "ns") if self.cuts else None
        starts: list[pd.Timestamp | None] = [before, *self.cuts]
        for s in starts:
            active = _active(grids, s)
            self.epochs.append((s, _plan(active, self.levels, nested) if len(active) else self.current))
        self.dtypes = _categories([self.current, *(p for _, p in self.epochs)], self.levels)

    def __call__(self, points: gpd.GeoDataFrame | gpd.GeoSeries) -> pd.DataFrame:
        _check_crs(points.crs, self.crs)
        geoms = _geoms(points)
        if self.time is None or not isinstance(points, gpd.GeoDataFrame) or self.time not in points.columns:
            if self.time is not None:
                msg = f"points have no column {self.time!r} (time=): name their reported-at column"
                raise KeyError(msg)
            return _to_frame(self.current, self.current.assign(geoms), points.index, self.dtypes)
        t = pd.to_datetime(points[self.time], utc=True).to_numpy()
        frames = []
        order = np.arange(len(points))
        epoch = np.searchsorted(np.asarray(self.cuts, dtype=t.dtype), t, side="right")
        epoch[pd.isna(t)] = -1  # no time: the current grids
        for e in np.unique(epoch):
            sel = order[epoch == e]
            plan = self.current if e < 0 else self.epochs[int(e)][1]
            codes = plan.assign(geoms[sel])
            frames.append(_to_frame(plan, codes, points.index[sel], self.dtypes).set_axis(sel, axis=0))
        out = pd.concat(frames).sort_index()
        out.index = points.index
        return out


def assign_points(
    points: gpd.GeoDataFrame | gpd.GeoSeries,
    grids: gpd.GeoDataFrame,
    *,
    levels: Sequence[int] | None = None,
    nested: bool | Literal["auto"] = "auto",
    time: str | None = None,
    method: Literal["fast", "reference"] = "fast",
) -> pd.DataFrame:
    """Assign each point to its grid at every requested level.

    Parameters
    ----------
    points
        Point geometries (incidents), in the same CRS as ``grids``. Missing or empty
        geometries are outside.
    grids
        The grid layer: ``grid_id``, ``level``, ``parent_id`` and polygon geometry; optional
        ``valid_from`` / ``valid_to`` (see the module notes on grid versions).
    levels
        Levels to assign (default: every level present).
    nested
        ``"auto"`` (default): derive coarser levels from the finest through ``parent_id`` when
        the level is tiled exactly by its descendants (every finest grid has an ancestor, the
        level has no overlaps, and each grid's boundary is made of its descendants' boundary
        segments, vertex for vertex, as a dissolve leaves them); otherwise locate that level by
        geometry. Either way every level follows the boundary rule: a point on a boundary is
        located on each level by the rule, not through its finest grid's parent. ``True``
        trusts ``parent_id`` without the test for points off every finest boundary; ``False``
        always locates every level by geometry.
    time
        Column of ``points`` with the time to pick grid versions by; ignored when the grids
        have no ``valid_from`` / ``valid_to``.
    method
        ``"fast"`` (default): the owner raster and, where the levels nest, the parent links.
        ``"reference"``: :func:`geogrid.reference.assign_points` on each level (plain
        GEOS ``intersects``, then the lowest grid_id), to double-check the fast answer; the same
        columns and dtypes, many times slower. ``nested`` does not apply.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``points``: one column ``grid_id_<level>`` per level and a boolean
        ``outside``. The grid_id columns are Categorical with every grid_id of the level as a
        category (so ``value_counts()`` lists grids without points too), NaN outside every grid
        of that level; ``.astype(str)`` gives plain strings. On a boundary
        shared by several grids the lowest ``grid_id`` wins (see the module notes).

    Raises
    ------
    CRSError
        If points and grids have different CRSs (or only one has a CRS).
    ValueError
        If a requested level is absent, a grid_id repeats within a level, or a geometry is
        not a Point.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> grids = gpd.GeoDataFrame(
    ...     {"grid_id": ["D", "A", "B"], "parent_id": [None, "D", "D"], "level": [0, 1, 1]},
    ...     geometry=[shapely.box(0, 0, 2, 1), shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)],
    ...     crs="EPSG:3857")
    >>> pts = gpd.GeoSeries.from_xy([0.5, 1.0, 1.5, 9.0], [0.5, 0.5, 0.5, 9.0], crs="EPSG:3857")
    >>> assign_points(pts, grids)
      grid_id_0 grid_id_1  outside
    0         D         A    False
    1         D         A    False
    2         D         B    False
    3       NaN       NaN     True
    """
    if method == "reference":
        return _assign_by_reference(points, grids, levels, time)
    if method != "fast":
        msg = f"method must be 'fast' or 'reference', got {method!r}"
        raise ValueError(msg)
    return _Assigner(grids, levels, nested, time)(points)


def _assign_by_reference(
    points: gpd.GeoDataFrame | gpd.GeoSeries, grids: gpd.GeoDataFrame, levels: Sequence[int] | None, time: str | None
) -> pd.DataFrame:
    """``method="reference"``: the plain rule per level, with the fast path's columns and dtypes."""
    from geogrid._reference_assign import assign_points_reference

    _check_crs(points.crs, grids.crs)
    _require_columns(grids, ["grid_id", "level"])
    wanted = _plan_levels(grids, levels)
    current = _active(grids, None)
    if not _versions(grids) or time is None:
        out = assign_points_reference(points, current, levels=wanted)
    else:
        if not isinstance(points, gpd.GeoDataFrame) or time not in points.columns:
            msg = f"points have no column {time!r} (time=): name their reported-at column"
            raise KeyError(msg)
        cuts = sorted(
            pd.unique(
                pd.concat(
                    [pd.to_datetime(grids[c], utc=True) for c in (VALID_FROM, VALID_TO) if c in grids.columns]
                ).dropna()
            )
        )
        t = pd.to_datetime(points[time], utc=True).to_numpy()
        epoch = np.searchsorted(np.asarray(cuts, dtype=t.dtype), t, side="right")
        epoch[pd.isna(t)] = -1
        starts: list[pd.Timestamp | None] = [cuts[0] - pd.Timedelta(1, "ns") if cuts else None, *cuts]
        frames = []
        for e in np.unique(epoch):
            sel = np.flatnonzero(epoch == e)
            active = current if e < 0 else _active(grids, starts[int(e)])
            if not len(active):
                active = current
            frames.append(assign_points_reference(points.iloc[sel], active, levels=wanted).set_axis(sel, axis=0))
        out = pd.concat(frames).sort_index()
        out.index = points.index
    for lv in wanted:
        ids = grids.loc[grids["level"] == lv, "grid_id"].astype(str).unique()
        out[f"grid_id_{lv}"] = pd.Categorical(out[f"grid_id_{lv}"], categories=pd.Index(np.sort(ids), dtype="str"))
    return out


def _plan_levels(grids: gpd.GeoDataFrame, levels: Sequence[int] | None) -> list[int]:
    """Return the requested levels, sorted; refuse levels the grids do not have."""
    have = sorted(int(v) for v in pd.unique(grids["level"].dropna()))
    wanted = have if levels is None else sorted({int(v) for v in levels})
    missing = [lv for lv in wanted if lv not in have]
    if missing or not wanted:
        msg = f"grids have no level {', '.join(map(str, missing)) or '(none given)'}; levels present: {have}"
        raise ValueError(msg)
    return wanted


# -- larger than memory -------------------------------------------------------------------------
def _iter_file(path: Path, chunksize: int, layer: str | None, columns: list[str]) -> Iterator[gpd.GeoDataFrame]:
    suffix = path.suffix.lower()
    start = 0
    if suffix in (".parquet", ".geoparquet"):
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        meta = pf.schema_arrow.metadata or {}
        import json

        geo = json.loads(meta.get(b"geo", b"{}"))
        geom_col = geo.get("primary_column", "geometry")
        crs = geo.get("columns", {}).get(geom_col, {}).get("crs", "OGC:CRS84") if geo else None
        for batch in pf.iter_batches(batch_size=chunksize, columns=[*columns, geom_col]):
            df = batch.to_pandas()
            geom = shapely.from_wkb(df.pop(geom_col).to_numpy())
            gdf = gpd.GeoDataFrame(df, geometry=geom, crs=_parquet_crs(crs))
            gdf.index = pd.RangeIndex(start, start + len(gdf))
            start += len(gdf)
            yield gdf
        return
    import pyogrio

    info = pyogrio.read_info(path, layer=layer)
    total = int(info["features"])
    for skip in range(0, max(total, 0), chunksize):
        gdf = pyogrio.read_dataframe(
            path, layer=layer, columns=columns, skip_features=skip, max_features=chunksize, use_arrow=True
        )
        gdf.index = pd.RangeIndex(skip, skip + len(gdf))
        yield gdf


def _parquet_crs(crs: object) -> object:
    if crs is None:
        return "OGC:CRS84"
    if isinstance(crs, dict):
        from pyproj import CRS

        return CRS.from_json_dict(crs)
    return crs


def assign_points_chunked(
    source: str | os.PathLike[str] | Iterable[gpd.GeoDataFrame],
    grids: gpd.GeoDataFrame,
    *,
    chunksize: int = 1_000_000,
    layer: str | None = None,
    levels: Sequence[int] | None = None,
    nested: bool | Literal["auto"] = "auto",
    time: str | None = None,
) -> Iterator[pd.DataFrame]:
    """Assign points that do not fit in memory, chunk by chunk, with one index built once.

    Parameters
    ----------
    source
        A vector file of points read in chunks (GeoPackage or any OGR format through pyogrio's
        ``skip_features``/``max_features``; GeoParquet through pyarrow record batches), or an
        iterable of point GeoDataFrames (e.g. your own reader).
    grids
        The grid layer, as for :func:`assign_points`.
    chunksize
        Features per chunk read from a file.
    layer
        Layer of a multi-layer file (default: the first).
    levels, nested, time
        As for :func:`assign_points`.

    Yields
    ------
    pandas.DataFrame
        The assignment of each chunk, as :func:`assign_points` returns it. For a file the index
        is the feature's position in the file (0-based), as ``pyogrio.read_dataframe`` gives it;
        ``pandas.concat`` of all chunks equals the in-memory result.

    Examples
    --------
    >>> import geopandas as gpd, shapely, pandas as pd
    >>> grids = gpd.GeoDataFrame({"grid_id": ["A"], "parent_id": [None], "level": [0]},
    ...                          geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:3857")
    >>> chunks = [gpd.GeoSeries.from_xy([0.5], [0.5], crs="EPSG:3857"),
    ...           gpd.GeoSeries.from_xy([2.0], [2.0], index=[1], crs="EPSG:3857")]
    >>> pd.concat(assign_points_chunked(chunks, grids))["outside"].tolist()
    [False, True]
    """
    if chunksize < 1:
        msg = f"chunksize must be >= 1, got {chunksize}"
        raise ValueError(msg)
    assigner = _Assigner(grids, levels, nested, time)
    if isinstance(source, str | os.PathLike):
        chunks: Iterable[gpd.GeoDataFrame] = _iter_file(Path(source), chunksize, layer, [time] if time else [])
    else:
        chunks = source
    for chunk in chunks:
        yield assigner(chunk)


def assign_points_dask(
    ddf: dd.DataFrame,
    grids: gpd.GeoDataFrame,
    *,
    levels: Sequence[int] | None = None,
    nested: bool | Literal["auto"] = "auto",
    time: str | None = None,
) -> dd.DataFrame:
    """Assign the points of a dask-geopandas GeoDataFrame, partition by partition.

    The index is built once here and shipped to every partition (``map_partitions``).
    Needs the optional ``dask-geopandas`` package.

    Parameters
    ----------
    ddf
        A ``dask_geopandas.GeoDataFrame`` of points.
    grids
        The grid layer, as for :func:`assign_points`.
    levels, nested, time
        As for :func:`assign_points`.

    Returns
    -------
    dask.dataframe.DataFrame
        Lazy; ``.compute()`` gives what :func:`assign_points` gives on the whole data.

    Examples
    --------
    >>> import geopandas as gpd, shapely, dask_geopandas
    >>> grids = gpd.GeoDataFrame({"grid_id": ["A"], "parent_id": [None], "level": [0]},
    ...                          geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:3857")
    >>> pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy([0.5, 2.0], [0.5, 2.0]), crs="EPSG:3857")
    >>> assign_points_dask(dask_geopandas.from_geopandas(pts, npartitions=2), grids).compute()["outside"].tolist()
    [False, True]
    """
    assigner = _Assigner(grids, levels, nested, time)
    _check_crs(ddf.crs, grids.crs)
    meta = _to_frame(
        assigner.current, {lv: np.zeros(0, np.int32) for lv in assigner.levels}, ddf._meta.index, assigner.dtypes
    )
    return ddf.map_partitions(assigner, meta=meta)
