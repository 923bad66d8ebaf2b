"""Storage backends. The GeoPackage file is the embedded default: QGIS opens it directly.

The engine talks to a store only through :class:`Store`, so a PostGIS backend can
follow without touching the engine.

Writes to a :class:`GeoPackageStore` are SQLite transactions on the file itself, in WAL
mode: a write changes only the layers it names (a plan edit rewrites the plan, not the
45 MB file), readers never wait for a writer, one writer at a time holds SQLite's own
lock, and a writer killed at any point leaves the file as it was or fully updated. The
file keeps its mode and owner; a read-only store is refused with StoreError. New layer
content is built by GDAL in a private GeoPackage first and then installed in the
transaction.

Every change to the network becomes a version: writing ``grids`` (``geogrid import``)
stores a new version as a commit does. Triggers refuse row edits of ``grids``, of the
stored versions and of plans from any other client (QGIS); a ``grids`` table replaced
outside geogrid (its triggers gone) is found by the next writer and recorded as a
version by ``outside geogrid``, so a plan copied from the older network cannot be
committed over it. Reads pass every geometry through the same depth and size guards as
imports before GEOS sees it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import sqlite3
import stat
import sys
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import pyogrio
import shapely

from layers._guards import Limits, check_wkb
from layers.errors import (
    EditConflict,
    InputTooLargeError,
    NetworkChanged,
    NotFoundError,
    Problem,
    StoreError,
    ValidationError,
    format_ids,
)
from layers.schema import SCHEMAS, STORAGE_CRS, LayerKind, coerce_dtypes

__all__ = ["SCHEMA_VERSION", "GeoPackageStore", "PlanInfo", "Store", "VersionInfo", "file_lock", "open_store"]

SCHEMA_VERSION = 1
"""Version of the on-disk layout written into the store's metadata."""

_META_TABLE = "geogrid_metadata"
_KINDS = {k.value for k in LayerKind}
_PLANS = "geogrid_plans"
_VERSIONS = "geogrid_versions"
_LOG = "geogrid_edit_log"
_HIDDEN_PREFIX = "geogrid_"
_INTERNAL_TYPE = "geogrid_internal"
"""``gpkg_contents.data_type`` of geogrid's own tables: GDAL, QGIS and ArcGIS list only features,
attributes and tiles, so plans, versions and the edit log are not offered to GIS users as layers."""
_INTERNAL_EXTENSION = "geogrid_internal_tables"
_PLAN_STATUSES = ("open", "committed", "discarded")
_WHAT_VERSIONS, _WHAT_PLANS, _WHAT_LOG = "versions", "plans", "the edit log"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class PlanInfo:
    """A plan: a draft copy of the grid network that planners edit.

    Attributes
    ----------
    plan_id, name
        Id (``p1``, ``p2``...) and display name.
    status
        ``open``, ``committed`` or ``discarded``.
    version
        Incremented by every change; an edit must name the version it was based on.
    base_version
        The network version the plan was copied from.
    created_by, created_at, updated_at
        Who made it and when (ISO 8601, UTC).
    """

    plan_id: str
    name: str
    status: str
    version: int
    base_version: int
    created_by: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class VersionInfo:
    """A committed version of the grid network and the period it was valid.

    ``valid_from`` is None for the first version (valid since the beginning);
    ``valid_to`` is None for the current one.
    """

    version: int
    valid_from: str | None
    valid_to: str | None
    plan_id: str | None
    committed_by: str | None


_EDIT_LOG_COLUMNS = ("seq", "at", "author", "plan_id", "operation", "parameters", "version_before", "version_after")
"""Columns of :meth:`Store.edit_log`, in order (every backend returns these)."""


def _refuse_unless_open_at(info: PlanInfo, plan_id: str, expected_version: int) -> None:
    """Raise EditConflict unless the plan is open and at ``expected_version`` (shared by the backends)."""
    if info.status != "open":
        msg = f"plan {plan_id!r} is {info.status}: nothing was changed"
        raise EditConflict(msg, expected=expected_version, actual=info.version)
    if info.version != int(expected_version):
        msg = (
            f"plan {plan_id!r} is at version {info.version}, but the edit was based on version "
            f"{expected_version}: someone else changed it. Nothing was changed; reload the plan and redo the edit"
        )
        raise EditConflict(msg, expected=expected_version, actual=info.version)


def _refuse_unless_based_on(info: PlanInfo, current: int) -> None:
    """Raise EditConflict unless the plan was copied from network version ``current`` (shared by the backends)."""
    if info.base_version != current:
        msg = (
            f"plan {info.plan_id!r} was copied from network version {info.base_version}, but version "
            f"{current} has been committed since: nothing was changed. Start a new plan from the "
            "current network and redo the edits (geogrid plan diff shows them)"
        )
        raise NetworkChanged(msg, expected=info.base_version, actual=current)


def _refuse_unless_network_at(current: int, based_on: int) -> None:
    """Raise EditConflict unless the network is still at version ``based_on`` (shared by the backends)."""
    if current != based_on:
        msg = (
            f"the grid network is at version {current}, but this write was based on version {based_on}: "
            "it changed meanwhile (a commit, an import, an edit outside geogrid). Nothing was written; "
            "read the current network and redo the change"
        )
        raise NetworkChanged(msg, expected=based_on, actual=current)


def _refuse_internal_names(layers: Mapping[str, Any]) -> None:
    """Raise StoreError for layer names of geogrid's own tables: plans, versions and the log are not written as layers."""
    reserved = sorted(name for name in layers if str(name).startswith(_HIDDEN_PREFIX))
    if reserved:
        msg = (
            f"layer name(s) {', '.join(map(repr, reserved))} start with {_HIDDEN_PREFIX!r}, which geogrid keeps for "
            "its plans, versions and edit log: choose another name"
        )
        raise StoreError(msg)


_PLAN_STATEMENTS = (
    f"""CREATE TABLE IF NOT EXISTS {_PLANS} (
    plan_id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, version INTEGER NOT NULL,
    base_version INTEGER NOT NULL, created_by TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {_VERSIONS} (
    version INTEGER PRIMARY KEY, valid_from TEXT, valid_to TEXT, plan_id TEXT, committed_by TEXT)""",
    f"""CREATE TABLE IF NOT EXISTS {_LOG} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, author TEXT NOT NULL, plan_id TEXT,
    operation TEXT NOT NULL, parameters TEXT NOT NULL, version_before INTEGER, version_after INTEGER)""",
    f"""CREATE TRIGGER IF NOT EXISTS {_LOG}_no_update BEFORE UPDATE ON {_LOG}
    BEGIN SELECT RAISE(ABORT, 'the edit log is append-only'); END""",
    f"""CREATE TRIGGER IF NOT EXISTS {_LOG}_no_delete BEFORE DELETE ON {_LOG}
    BEGIN SELECT RAISE(ABORT, 'the edit log is append-only'); END""",
    f"CREATE TABLE IF NOT EXISTS {_META_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS geogrid_layer_stamps (layer TEXT PRIMARY KEY, n INTEGER NOT NULL)",
)
"""geogrid's own tables, created by every writer if missing (one statement each: no implicit COMMIT)."""


class Store(ABC):
    """What the engine needs from a storage backend.

    Layers are addressed by name; the three standard kinds are ``"grids"``,
    ``"incidents"`` and ``"cameras"``, and backends may hold extra layers (streets,
    buildings, plans, versions).
    """

    @abstractmethod
    def layer_names(self) -> list[str]:
        """Names of the layers the store holds."""

    def has(self, name: str) -> bool:
        """Whether the store holds a layer called ``name``."""
        return name in self.layer_names()

    @abstractmethod
    def read(self, name: str, *, bbox: tuple[float, float, float, float] | None = None) -> gpd.GeoDataFrame:
        """Read one layer (in the storage CRS), optionally only features within ``bbox`` (lon/lat)."""

    def count(self, name: str) -> int:
        """Return the number of rows of layer ``name`` (0 if the store has no such layer), without reading them."""
        return len(self.read(name)) if self.has(name) else 0

    @abstractmethod
    def write(
        self,
        layers: Mapping[str, gpd.GeoDataFrame],
        *,
        metadata: Mapping[str, Any] | None = None,
        author: str | None = None,
        based_on: int | None = None,
    ) -> None:
        """Replace the given layers (others stay) in one atomic step.

        Writing ``grids`` stores it as a new version of the network, by ``author``. With
        ``based_on``, the write is refused (EditConflict, nothing changed) unless the
        network is still at that version: what was read and changed is not written over a
        newer network.
        """

    def write_chunks(
        self,
        name: str,
        parts: Iterable[gpd.GeoDataFrame],
        *,
        mode: str = "replace",
        metadata: Mapping[str, Any] | None = None,
        source: str | None = None,
    ) -> int:
        """Write point layer ``name`` given in parts, replacing it or appending to it, in one transaction.

        Memory is bounded by a part; if the parts raise, an appended id is already stored,
        or the writer dies, the layer is left as it was. Returns the layer's row count.
        """
        what = "writing a layer in parts"
        raise self._unsupported(what)

    def layer_stamp(self, name: str) -> Hashable | None:
        """Return a token that changes whenever layer ``name`` changes (None: this backend cannot tell)."""
        return None

    @abstractmethod
    def metadata(self) -> dict[str, Any]:
        """Store metadata: schema version, created/updated timestamps, and user keys."""

    # -- plans and versions (backends that support editing override these) --------------
    def _unsupported(self, what: str) -> StoreError:
        msg = f"{type(self).__name__} does not support {what} yet: use a GeoPackage store"
        return StoreError(msg)

    def network_version(self) -> int:
        """Return the number of the current committed version of the grid network (1 before any commit)."""
        raise self._unsupported(_WHAT_VERSIONS)

    def versions(self) -> list[VersionInfo]:
        """List every committed version with its validity period, oldest first (empty before any commit)."""
        raise self._unsupported(_WHAT_VERSIONS)

    @staticmethod
    def _version_layer(version: int) -> str:
        """Return the hidden layer holding the grids of a committed ``version``."""
        return f"{_HIDDEN_PREFIX}grids_v{int(version)}"

    def _describe(self) -> str:
        """Name the store in messages."""
        return repr(self)

    def read_version(self, version: int) -> gpd.GeoDataFrame:
        """Read the grid layer as it was in ``version`` (the current layer for the current version)."""
        known = {v.version for v in self.versions()}
        if not known and int(version) == 1:
            return self.read("grids")
        if int(version) not in known:
            msg = f"{self._describe()} has no version {version}; versions: {sorted(known) or [1]}"
            raise NotFoundError(msg)
        return self.read(self._version_layer(version))

    def plans(self) -> list[PlanInfo]:
        """List every plan (open, committed or discarded), oldest first."""
        raise self._unsupported(_WHAT_PLANS)

    def plan_info(self, plan_id: str) -> PlanInfo:
        """Return one plan's record; NotFoundError if there is none."""
        raise self._unsupported(_WHAT_PLANS)

    def create_plan(self, name: str, *, author: str) -> PlanInfo:
        """Copy the current grid network into a new open plan (version 0)."""
        raise self._unsupported(_WHAT_PLANS)

    def read_plan(self, plan_id: str) -> tuple[gpd.GeoDataFrame, PlanInfo]:
        """Read an open plan's grid layer and its record together (consistent)."""
        raise self._unsupported(_WHAT_PLANS)

    def save_plan(
        self,
        plan_id: str,
        grids: gpd.GeoDataFrame,
        *,
        expected_version: int,
        author: str,
        operation: str,
        parameters: Mapping[str, Any],
    ) -> PlanInfo:
        """Replace a plan's grids if it is still at ``expected_version`` (else EditConflict, nothing changed).

        Logs the edit and increments the version, in one atomic step.
        """
        raise self._unsupported(_WHAT_PLANS)

    def discard_plan(self, plan_id: str, *, expected_version: int, author: str) -> PlanInfo:
        """Discard an open plan at ``expected_version``; the network is untouched."""
        raise self._unsupported(_WHAT_PLANS)

    def commit_plan(self, plan_id: str, *, expected_version: int, author: str) -> VersionInfo:
        """Make an open plan at ``expected_version`` the current network, as a new version.

        Raises EditConflict if the plan moved on, or the network was committed since the
        plan was copied from it. Validation of the grids is the caller's job.
        """
        raise self._unsupported(_WHAT_PLANS)

    def edit_log(self, plan_id: str | None = None) -> pd.DataFrame:
        """Read the append-only edit log (who, when, operation, parameters, version before/after)."""
        raise self._unsupported(_WHAT_LOG)


class GeoPackageStore(Store):
    """A GeoPackage file holding the grid, incident and camera layers.

    Parameters
    ----------
    path
        The ``.gpkg`` file. It need not exist yet; the first :meth:`write` creates it.

    Examples
    --------
    >>> import tempfile, pathlib, geopandas as gpd, shapely
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.gpkg"
    >>> store = GeoPackageStore(p)
    >>> g = gpd.GeoDataFrame({"grid_id": ["a"], "parent_id": [None], "level": [0]},
    ...                      geometry=[shapely.box(117, 39, 117.01, 39.01)], crs="EPSG:4326")
    >>> store.write({"grids": g})
    >>> store.read("grids")["grid_id"].tolist()
    ['a']
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"GeoPackageStore({str(self.path)!r})"

    # -- reading -----------------------------------------------------------------
    def _require(self) -> None:
        if not self.path.exists():
            msg = (
                f"store {self.path} does not exist: create it with `geogrid demo {self.path}` "
                f"or `geogrid import ... --into {self.path}`"
            )
            raise StoreError(msg)

    def _layers(self, con: sqlite3.Connection, *, internal: bool = False) -> list[str]:
        """Return the layers registered in the file (with ``internal``, geogrid's hidden ones too)."""
        types = ("features", "attributes", _INTERNAL_TYPE if internal else "features")
        try:
            rows = con.execute(
                "SELECT table_name FROM gpkg_contents WHERE data_type IN (?, ?, ?) ORDER BY rowid", types
            ).fetchall()
        except sqlite3.DatabaseError as err:
            msg = f"{self.path} is not a readable GeoPackage: {err}"
            raise StoreError(msg) from err
        return [str(r[0]) for r in rows]

    def layer_names(self) -> list[str]:
        """Names of the spatial and attribute layers in the file."""
        if not self.path.exists():
            return []
        with contextlib.closing(self._ro()) as con:
            return [n for n in self._layers(con) if not n.startswith(_HIDDEN_PREFIX)]

    def read(self, name: str, *, bbox: tuple[float, float, float, float] | None = None) -> gpd.GeoDataFrame:
        """Read layer ``name``; the standard kinds come back with their canonical dtypes.

        Read with SQLite in one snapshot (never through GDAL: GDAL carries its own copy of
        SQLite, and two copies in one process release each other's file locks), every
        geometry through the door's guards before it is parsed.
        """
        with contextlib.closing(self._ro()) as con:
            con.execute("BEGIN")
            gdf = self._read_table(con, name, bbox=bbox)
        if name in _KINDS:
            coerce_dtypes(gdf, SCHEMAS[LayerKind(name)])
        return gdf

    def count(self, name: str) -> int:
        """Return the number of rows of layer ``name`` (0 if there is no such layer): one SQL count."""
        if not self.path.exists() or not self.has(name):
            return 0
        rows = self._query(f"SELECT count(*) FROM {_quote(name)}")
        return int(rows[0][0]) if rows else 0

    def _read_table(
        self, con: sqlite3.Connection, name: str, *, bbox: tuple[float, float, float, float] | None = None
    ) -> gpd.GeoDataFrame:
        """Read one layer on ``con`` (inside the caller's read transaction), in ``fid`` order."""
        layers = self._layers(con, internal=True)
        if name not in layers:
            names = [n for n in layers if not n.startswith(_HIDDEN_PREFIX)]
            msg = f"store {self.path} has no layer {name!r}; it has: {', '.join(names) or 'none'}"
            raise StoreError(msg)
        info = con.execute(f"PRAGMA table_info({_quote(name)})").fetchall()
        reg = con.execute(
            "SELECT g.column_name, s.organization, s.organization_coordsys_id, s.definition "
            "FROM gpkg_geometry_columns g LEFT JOIN gpkg_spatial_ref_sys s ON s.srs_id = g.srs_id "
            "WHERE lower(g.table_name) = lower(?)",
            (name,),
        ).fetchone()
        geom_col = None if reg is None else str(reg[0])
        fid = next((str(r[1]) for r in info if r[5] == 1 and str(r[2]).upper() == "INTEGER"), None)
        fields = [(str(r[1]), str(r[2]).upper()) for r in info if str(r[1]) not in (fid, geom_col)]
        select = [_quote(fid) if fid else "rowid"] + [_quote(c) for c, _ in fields]
        select += [_quote(geom_col)] if geom_col else []
        sql = f"SELECT {', '.join(select)} FROM {_quote(name)}"
        params: tuple[Any, ...] = ()
        rtree = f"rtree_{name}_{geom_col}"
        if bbox is not None and geom_col and fid:
            has_rtree = con.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (rtree,)
            ).fetchone()
            if has_rtree:
                sql += (
                    f" WHERE {_quote(fid)} IN (SELECT id FROM {_quote(rtree)} "
                    "WHERE maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?)"
                )
                x0, y0, x1, y1 = (float(v) for v in bbox)
                params = (x0, x1, y0, y1)
        if fid:
            sql += f" ORDER BY {_quote(fid)}"
        rows = con.execute(sql, params).fetchall()
        data = {c: _column([r[i + 1] for r in rows], kind) for i, (c, kind) in enumerate(fields)}
        frame = pd.DataFrame(data, columns=[c for c, _ in fields])
        if not geom_col:
            return gpd.GeoDataFrame(frame)
        wkbs: list[bytes | None] = [None if r[-1] is None else _wkb_of(bytes(r[-1])) for r in rows]
        try:  # the door's guard, before GEOS parses anything (a 20,000-deep collection crashes it)
            check_wkb(wkbs, Limits(), source=f"layer {name!r} of store {self.path}", ids=[f"fid {r[0]}" for r in rows])
        except InputTooLargeError as err:
            msg = (
                f"{err}. The store holds geometries geogrid refuses to parse: fix or delete those features "
                "(e.g. in QGIS), then retry"
            )
            raise StoreError(msg) from err
        arr = np.empty(len(wkbs), dtype=object)
        arr[:] = wkbs
        geoms = shapely.from_wkb(arr, on_invalid="ignore")
        crs: Any = None
        if reg is not None and reg[1] is not None:
            crs = f"{reg[1]}:{reg[2]}" if str(reg[1]).upper() == "EPSG" else reg[3]
        gdf = gpd.GeoDataFrame(frame, geometry=geoms, crs=crs)
        if bbox is not None and geom_col and not params:  # no R-tree: filter on the bounds here
            gdf = gdf[gdf.intersects(shapely.box(*bbox))].reset_index(drop=True)
        return gdf

    def metadata(self) -> dict[str, Any]:
        """Metadata stored in the ``geogrid_metadata`` table (empty for a new file)."""
        if not self.path.exists():
            return {}
        with contextlib.closing(self._ro()) as con:
            try:
                rows = con.execute(f"SELECT key, value FROM {_META_TABLE}").fetchall()
            except sqlite3.DatabaseError:
                return {}
        return {k: json.loads(v) for k, v in rows}

    # -- writing -----------------------------------------------------------------
    def _refuse_read_only(self) -> None:
        """Raise StoreError if the store (or its directory, which holds SQLite's journal) may not be written."""
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if self.path.exists():
            st = self.path.stat()
            if st.st_mode & 0o222 == 0 or not os.access(self.path, os.W_OK):
                msg = (
                    f"store {self.path} is read-only (mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}): "
                    "nothing was written. Make it writable for this user (chmod u+w) or write to a copy"
                )
                raise StoreError(msg)
        if not os.access(folder, os.W_OK):
            msg = (
                f"the folder {folder} of store {self.path} is not writable for this user: nothing was written. "
                "SQLite keeps its journal next to the file: make the folder writable"
            )
            raise StoreError(msg)

    @staticmethod
    def _os_failure(err: BaseException, path: Path) -> StoreError:
        """Turn a disk-full or permission failure of a write into a StoreError that says which."""
        text = str(err)
        full = (isinstance(err, OSError) and err.errno == errno.ENOSPC) or "full" in text.lower()
        if full:
            msg = f"the disk holding {path} is full ({text}): nothing was written. Free space and retry"
        elif (isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EPERM, errno.EROFS)) or any(
            s in text.lower() for s in ("readonly", "read-only", "permission", "unable to open")
        ):
            msg = f"{path} cannot be written ({text}): nothing was written. Check its permissions"
        else:
            msg = f"writing {path} failed ({text}): nothing was written"
        return StoreError(msg)

    def _connect(self) -> sqlite3.Connection:
        """Open the file for writing: WAL journal (readers never wait for a writer), autocommit until BEGIN."""
        con = sqlite3.connect(self.path, timeout=_BUSY_SECONDS, isolation_level=None)
        try:
            mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                msg = f"store {self.path} could not switch to WAL journaling (got {mode!r})"
                raise StoreError(msg)
            con.execute("PRAGMA synchronous=FULL")
        except BaseException:
            con.close()
            raise
        return con

    @contextlib.contextmanager
    def _writing(
        self,
        staged: Mapping[str, gpd.GeoDataFrame] | None = None,
        *,
        streamed: Mapping[str, Iterable[gpd.GeoDataFrame]] | None = None,
    ) -> Iterator[_Tx]:
        """Yield one SQLite transaction on the store (BEGIN IMMEDIATE: one writer at a time).

        ``staged`` layers are first written to a private GeoPackage in the temporary
        folder (GDAL builds their tables, R-trees and registrations there); the body
        installs them with :meth:`_Tx.install` (or appends them, :meth:`_Tx.append_staged`);
        ``streamed`` layers come in parts, each added to the private GeoPackage as it
        arrives (memory bounded by a part; see :func:`_stage_parts`). The body's changes commit together or
        not at all: a writer killed at any point leaves the store as it was or fully
        updated, its file mode and owner untouched. Disk-full and permission failures
        become StoreError naming the cause.
        """
        self._refuse_read_only()
        with contextlib.ExitStack() as stack:
            tmp_root = Path(tempfile.gettempdir())
            _sweep_stale(tmp_root, "geogrid-stage-")  # what writers killed before their cleanup left behind
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix=_owned("geogrid-stage-"), dir=tmp_root))
            stage = Path(folder) / "staged.gpkg"
            try:
                for name, gdf in (staged or {}).items():
                    _write_gpkg_layer(stage, name, gdf)
                for name, parts in (streamed or {}).items():
                    _stage_parts(stage, name, parts)
                if not self.path.exists():
                    self._create()
                con = stack.enter_context(contextlib.closing(self._connect()))
                if staged or streamed:
                    con.execute("ATTACH DATABASE ? AS staged", (str(stage),))
                con.execute("BEGIN IMMEDIATE")  # first, on its own: record edits made outside geogrid
                try:
                    _Tx(self, con).adopt_outside_edits()
                    _hide_internal_tables(con)
                    con.execute("COMMIT")
                except BaseException:
                    if con.in_transaction:
                        con.execute("ROLLBACK")
                    raise
                con.execute("BEGIN IMMEDIATE")
                try:
                    yield _Tx(self, con)
                    _hide_internal_tables(con)
                    con.execute("COMMIT")
                except BaseException:
                    if con.in_transaction:
                        con.execute("ROLLBACK")
                    raise
            except (OSError, sqlite3.DatabaseError, pyogrio.errors.DataSourceError) as err:
                if isinstance(err, StoreError):
                    raise
                raise self._os_failure(err, self.path) from err

    def _create(self) -> None:
        """Create a new, empty GeoPackage at the store's path (atomically: another creator may win)."""
        _sweep_stale(self.path.parent, f".{self.path.name}.", ".new.gpkg")
        fd, tmp_name = tempfile.mkstemp(prefix=_owned(f".{self.path.name}."), suffix=".new.gpkg", dir=self.path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        tmp.unlink()
        try:
            empty = gpd.GeoDataFrame({"x": [1]}, geometry=[None], crs=STORAGE_CRS)
            pyogrio.write_dataframe(empty, tmp, layer="_geogrid_empty", driver="GPKG")
            with contextlib.closing(sqlite3.connect(tmp, isolation_level=None)) as con:
                con.execute("BEGIN")
                _drop_layer(con, "_geogrid_empty")
                con.execute("COMMIT")
                con.execute("PRAGMA journal_mode=WAL")
            with contextlib.suppress(FileExistsError):
                os.link(tmp, self.path)  # never replaces a store another writer created meanwhile
        finally:
            tmp.unlink(missing_ok=True)

    def write(
        self,
        layers: Mapping[str, gpd.GeoDataFrame],
        *,
        metadata: Mapping[str, Any] | None = None,
        author: str | None = None,
        based_on: int | None = None,
    ) -> None:
        """Replace ``layers`` atomically and update metadata (``updated_at``, user keys).

        Writing the ``grids`` layer makes it a new version of the network (the first
        one is version 1): plans copied from an older version can no longer be committed
        over it, and :func:`geogrid.plans.grids_at` finds it.
        """
        _refuse_internal_names(layers)
        for name, gdf in layers.items():
            if gdf.crs is None:
                msg = f"layer {name!r} has no CRS; the store keeps {STORAGE_CRS}: set it before writing"
                raise StoreError(msg)
        with self._writing(layers) as tx:
            tx.adopt_outside_edits()
            before = tx.current_version() if "grids" in layers and tx.has_table("grids") else None
            if based_on is not None and "grids" in layers:
                _refuse_unless_network_at(before or 1, int(based_on))
            for name in layers:
                tx.install(name)
            extra = dict(metadata or {})
            if "grids" in layers:
                at = _now()
                if before is None:
                    tx.record_version(1, at=None, plan_id=None, author=author)
                    extra["network_version"] = 1
                else:
                    tx.record_version(before + 1, at=at, plan_id=None, author=author)
                    tx.log(author or "import", None, "import", {"network_version": before + 1}, None, None, at)
                    extra["network_version"] = before + 1
            tx.write_metadata(extra)

    def write_chunks(
        self,
        name: str,
        parts: Iterable[gpd.GeoDataFrame],
        *,
        mode: str = "replace",
        metadata: Mapping[str, Any] | None = None,
        source: str | None = None,
    ) -> int:
        """Write layer ``name`` given in parts (incidents, cameras) in one transaction; return its row count.

        The streamed form of :meth:`write` for large point layers: each part is staged as
        it arrives (memory bounded by a part), then the layer is replaced (``mode="replace"``)
        or the rows are appended after the stored ones, in their order (``"append"``), in
        one SQLite transaction. If the parts raise (a problem found at the door), a new id
        is already in the layer, or the writer is killed, the store is left exactly as it
        was. The grid network is written whole, with :meth:`write` (it is a version).

        Raises
        ------
        ValidationError
            If an appended id is already in the layer (``id_exists``, naming the rows of
            the parts, 0-based), or whatever the parts raise.
        StoreError
            For ``grids``, an unknown ``mode``, or a write that fails.
        """
        if name == "grids" or mode not in ("replace", "append"):
            msg = f"write_chunks writes point layers with mode 'replace' or 'append', not {name!r} / {mode!r}"
            raise StoreError(msg)
        _refuse_internal_names({name: None})
        with self._writing(streamed={name: parts}) as tx:
            tx.adopt_outside_edits()
            if mode == "append" and tx.has_table(name):
                tx.append_staged(name, source=source or name)
            else:
                tx.install(name)
                if tx.has_table(_STAGED_MORE, "staged"):
                    tx.append_staged(name, source=source or name, first=False)
            tx.write_metadata(dict(metadata or {}))
            return int(tx.con.execute(f"SELECT count(*) FROM main.{_quote(name)}").fetchone()[0])

    def layer_stamp(self, name: str) -> Hashable | None:
        """Return a token that changes whenever layer ``name`` changes (for caches).

        A geogrid write bumps the layer's own counter, so writing a plan leaves the
        stamps of ``grids``, ``incidents`` and ``cameras`` alone. Edits from outside
        (QGIS) bump it through triggers; if those triggers are gone (the table was
        replaced outside geogrid), the stamp falls back to the file's state, which
        changes on every write.
        """
        if not self.path.exists():
            return None
        with contextlib.closing(self._ro()) as con:
            try:
                row = con.execute(f"SELECT n FROM {_STAMPS} WHERE layer = ?", (name,)).fetchone()
                present = con.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND lower(name) = lower(?)", (name,)
                ).fetchone()
                guarded = {
                    r[0]
                    for r in con.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (name,)
                    )
                }
            except sqlite3.OperationalError:
                row, present, guarded = None, True, set()
        if present is None:
            return ("absent", None if row is None else int(row[0]))
        if row is not None and set(_guard_names(name)) <= guarded:
            return ("stamp", int(row[0]))
        files = []
        for p in (self.path, self.path.with_name(self.path.name + "-wal")):
            with contextlib.suppress(OSError):
                st = p.stat()
                files.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return ("file", *files)

    # -- plans and versions --------------------------------------------------------
    def _all_layers(self) -> list[str]:
        """Every table of the file, geogrid's internal ones included."""
        if not self.path.exists():
            return []
        with contextlib.closing(self._ro()) as con:
            return self._layers(con, internal=True)

    @staticmethod
    def _plan_layer(plan_id: str) -> str:
        return f"{_HIDDEN_PREFIX}plan_{plan_id}"

    def _describe(self) -> str:
        return f"store {self.path}"

    def _ro(self) -> sqlite3.Connection:
        """Open the file for reading (autocommit: BEGIN for one snapshot across several statements)."""
        self._require()
        return sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=_BUSY_SECONDS, isolation_level=None
        )

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with contextlib.closing(self._ro()) as con:
            try:
                return con.execute(sql, params).fetchall()
            except sqlite3.OperationalError as err:
                if "no such table" in str(err):
                    return []
                raise

    @staticmethod
    def _plan_of(row: tuple[Any, ...]) -> PlanInfo:
        return PlanInfo(str(row[0]), str(row[1]), str(row[2]), int(row[3]), int(row[4]), str(row[5]), row[6], row[7])

    @staticmethod
    def _version_of(row: tuple[Any, ...]) -> VersionInfo:
        return VersionInfo(int(row[0]), row[1], row[2], row[3], row[4])

    def network_version(self) -> int:
        """Return the number of the current committed version of the grid network (1 before any commit)."""
        if not self.path.exists():
            return 1
        rows = self._query(f"SELECT max(version) FROM {_VERSIONS}")
        return int(rows[0][0]) if rows and rows[0][0] is not None else 1

    def versions(self) -> list[VersionInfo]:
        """List every committed version with its validity period, oldest first (empty before any commit)."""
        if not self.path.exists():
            return []
        rows = self._query(
            f"SELECT version, valid_from, valid_to, plan_id, committed_by FROM {_VERSIONS} ORDER BY version"
        )
        return [self._version_of(r) for r in rows]

    def plans(self) -> list[PlanInfo]:
        """List every plan (open, committed or discarded), oldest first."""
        if not self.path.exists():
            return []
        rows = self._query(f"SELECT * FROM {_PLANS} ORDER BY created_at, plan_id")
        return [self._plan_of(r) for r in rows]

    def plan_info(self, plan_id: str) -> PlanInfo:
        """Return one plan's record; NotFoundError if there is none."""
        rows = self._query(f"SELECT * FROM {_PLANS} WHERE plan_id = ?", (str(plan_id),)) if self.path.exists() else []
        if not rows:
            known = [p.plan_id for p in self.plans()]
            msg = f"store {self.path} has no plan {plan_id!r}; plans: {', '.join(known) or 'none'} (geogrid plan list)"
            raise NotFoundError(msg)
        return self._plan_of(rows[0])

    def read_plan(self, plan_id: str) -> tuple[gpd.GeoDataFrame, PlanInfo]:
        """Read an open plan's grid layer and its record together (one snapshot: consistent)."""
        self.plan_info(plan_id)  # NotFoundError naming the plans
        with contextlib.closing(self._ro()) as con:
            con.execute("BEGIN")
            info = self._plan_of(con.execute(f"SELECT * FROM {_PLANS} WHERE plan_id = ?", (str(plan_id),)).fetchone())
            if info.status != "open":
                msg = f"plan {plan_id!r} is {info.status}; only open plans can be read or edited"
                raise StoreError(msg)
            grids = self._read_table(con, self._plan_layer(plan_id))
        return grids, info

    @staticmethod
    def _log(
        con: sqlite3.Connection,
        author: str,
        plan_id: str | None,
        operation: str,
        parameters: Mapping[str, Any],
        before: int | None,
        after: int | None,
        at: str,
    ) -> None:
        con.execute(
            f"INSERT INTO {_LOG} (at, author, plan_id, operation, parameters, version_before, version_after) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                at,
                str(author),
                plan_id,
                operation,
                json.dumps(dict(parameters), ensure_ascii=False, default=str),
                before,
                after,
            ),
        )

    def create_plan(self, name: str, *, author: str) -> PlanInfo:
        """Copy the current grid network into a new open plan (version 0).

        The copy, the base version and the plan's id are taken in one transaction under
        the writer's lock, so a commit running meanwhile is either wholly before the copy
        or wholly after it.
        """
        self._require()
        at = _now()
        with self._writing() as tx:
            tx.adopt_outside_edits()
            if not tx.has_table("grids"):
                msg = f"store {self.path} has no layer 'grids'; it has: {', '.join(self.layer_names()) or 'none'}"
                raise StoreError(msg)
            ids = [r[0] for r in tx.con.execute(f"SELECT plan_id FROM {_PLANS}")]
            plan_id = f"p{1 + max((int(i[1:]) for i in ids if i[1:].isdigit()), default=0)}"
            base = tx.current_version()
            tx.copy_hidden("grids", self._plan_layer(plan_id))
            tx.con.execute(
                f"INSERT INTO {_PLANS} VALUES (?, ?, 'open', 0, ?, ?, ?, ?)",
                (plan_id, str(name), int(base), str(author), at, at),
            )
            tx.log(author, plan_id, "create", {"name": name, "base_version": int(base)}, None, 0, at)
        return self.plan_info(plan_id)

    def save_plan(
        self,
        plan_id: str,
        grids: gpd.GeoDataFrame,
        *,
        expected_version: int,
        author: str,
        operation: str,
        parameters: Mapping[str, Any],
    ) -> PlanInfo:
        """Replace a plan's grids if it is still at ``expected_version`` (else EditConflict, nothing changed).

        Logs the edit and increments the version, in one atomic step (a conditional update
        in one SQLite transaction). Only the plan's own layer is rewritten: the served
        network and its caches are untouched.
        """
        if grids.crs is None:
            msg = "the plan's grids have no CRS; the store keeps EPSG:4326: set it before saving"
            raise StoreError(msg)
        current = self.plan_info(plan_id)  # cheap early conflict check: nothing staged
        _refuse_unless_open_at(current, plan_id, expected_version)
        at = _now()
        layer = self._plan_layer(plan_id)
        with self._writing({layer: grids}) as tx:
            tx.checked(plan_id, expected_version)
            tx.install(layer)
            v = int(expected_version)
            tx.con.execute(
                f"UPDATE {_PLANS} SET version = ?, updated_at = ? WHERE plan_id = ? AND version = ?",
                (v + 1, at, plan_id, v),
            )
            tx.log(author, plan_id, operation, parameters, v, v + 1, at)
        return self.plan_info(plan_id)

    def _checked_info(self, info: PlanInfo, plan_id: str, expected_version: int) -> None:
        _refuse_unless_open_at(info, plan_id, expected_version)

    def discard_plan(self, plan_id: str, *, expected_version: int, author: str) -> PlanInfo:
        """Discard an open plan at ``expected_version``; the network is untouched."""
        self._checked_info(self.plan_info(plan_id), plan_id, expected_version)
        at = _now()
        with self._writing() as tx:
            tx.checked(plan_id, expected_version)
            v = int(expected_version)
            tx.con.execute(
                f"UPDATE {_PLANS} SET status = 'discarded', version = ?, updated_at = ? WHERE plan_id = ?",
                (v + 1, at, plan_id),
            )
            tx.drop(self._plan_layer(plan_id))
            tx.log(author, plan_id, "discard", {}, v, v + 1, at)
        return self.plan_info(plan_id)

    def commit_plan(self, plan_id: str, *, expected_version: int, author: str) -> VersionInfo:
        """Make an open plan at ``expected_version`` the current network, as a new version.

        In one transaction: the ``grids`` layer is replaced, the new version is stored with
        ``valid_from`` = now and the previous one gets ``valid_to`` = now, the plan is
        marked committed and the commit is logged. EditConflict if the plan moved on, or
        the network got a new version (a commit, an import, an edit outside geogrid)
        since this plan was copied from it.
        """
        info = self.plan_info(plan_id)
        self._checked_info(info, plan_id, expected_version)
        grids, read_info = self.read_plan(plan_id)
        if read_info.version != int(expected_version):
            self._checked_info(read_info, plan_id, expected_version)
        at = _now()
        with self._writing({"grids": grids}) as tx:
            tx.adopt_outside_edits()
            info = tx.checked(plan_id, expected_version)
            current = tx.current_version()
            _refuse_unless_based_on(info, current)
            tx.install("grids")
            tx.record_version(current + 1, at=at, plan_id=plan_id, author=author)
            v = int(expected_version)
            tx.con.execute(
                f"UPDATE {_PLANS} SET status = 'committed', version = ?, updated_at = ? WHERE plan_id = ?",
                (v + 1, at, plan_id),
            )
            tx.drop(self._plan_layer(plan_id))
            tx.log(author, plan_id, "commit", {"network_version": current + 1}, v, v + 1, at)
            tx.write_metadata({"network_version": current + 1})
        return self._version_of((current + 1, at, None, plan_id, str(author)))

    def edit_log(self, plan_id: str | None = None) -> pd.DataFrame:
        """Read the append-only edit log (who, when, operation, parameters, version before/after), oldest first."""
        cols = list(_EDIT_LOG_COLUMNS)
        if not self.path.exists():
            return pd.DataFrame(columns=cols)
        where, params = ("", ()) if plan_id is None else (" WHERE plan_id = ?", (str(plan_id),))
        rows = self._query(f"SELECT {', '.join(cols)} FROM {_LOG}{where} ORDER BY seq", params)
        df = pd.DataFrame(rows, columns=cols)
        df["parameters"] = [json.loads(p) for p in df["parameters"]]
        return df


_BUSY_SECONDS = 60.0
"""How long a writer waits for another writer's transaction before giving up."""

_STAMPS = "geogrid_layer_stamps"
_OUTSIDE = "outside geogrid"
_ENVELOPE_BYTES = (0, 32, 48, 48, 64)


def _quote(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _guard_names(name: str) -> tuple[str, str, str]:
    return tuple(f"{_HIDDEN_PREFIX}guard_{name}_{op}" for op in ("insert", "update", "delete"))  # type: ignore[return-value]


def _protected(name: str) -> str | None:
    """Return why rows of layer ``name`` may change only through geogrid (None: anyone may edit them)."""
    if name == "grids":
        return (
            "the grids layer is the committed network and changes only through geogrid: edit it in a plan "
            "(geogrid plan new, or the planner page) or replace it with geogrid import --kind grids"
        )
    if name.startswith(f"{_HIDDEN_PREFIX}grids_v"):
        return f"{name} is a stored version of the grid network: history cannot be edited"
    if name.startswith(f"{_HIDDEN_PREFIX}plan_"):
        return f"{name} is a geogrid plan: edit it through geogrid (the planner page or geogrid plan edit)"
    return None


def _wkb_of(blob: bytes) -> bytes:
    """Return the WKB inside a GeoPackage geometry blob (after its header and envelope)."""
    if blob[:2] != b"GP" or len(blob) < 8:
        return blob
    env = (blob[3] >> 1) & 0x07
    return blob[8 + (_ENVELOPE_BYTES[env] if env < len(_ENVELOPE_BYTES) else 0) :]


def _column(values: list[Any], kind: str) -> Any:
    """Turn one SQLite column of a GeoPackage layer into a pandas array of the type its declaration names."""
    if kind in ("INTEGER", "INT", "MEDIUMINT", "SMALLINT", "TINYINT"):
        if any(v is None for v in values):
            return pd.array(values, dtype="Int64")
        return np.asarray(values, dtype=np.int64)
    if kind in ("REAL", "FLOAT", "DOUBLE"):
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    if kind == "BOOLEAN":
        if any(v is None for v in values):
            return pd.array([None if v is None else bool(v) for v in values], dtype="boolean")
        return np.asarray(values, dtype=bool)
    if kind == "DATETIME":
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
    if kind == "DATE":
        return pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601")
    return values  # text: pandas infers the dtype, as for the PostGIS store's rows


def _drop_layer(con: sqlite3.Connection, name: str) -> None:
    """Delete a GeoPackage layer and its registrations (contents, geometry column, R-tree)."""
    for (rtree,) in con.execute(
        "SELECT name FROM main.sqlite_master WHERE type = 'table' AND lower(name) LIKE lower(?) AND sql LIKE "
        "'CREATE VIRTUAL TABLE%'",
        (f"rtree_{name}_%",),
    ).fetchall():
        con.execute(f"DROP TABLE IF EXISTS main.{_quote(rtree)}")
    con.execute(f"DROP TABLE IF EXISTS main.{_quote(name)}")
    for table in ("gpkg_contents", "gpkg_geometry_columns", "gpkg_extensions", "gpkg_ogr_contents"):
        with contextlib.suppress(sqlite3.OperationalError):
            con.execute(f"DELETE FROM main.{table} WHERE lower(table_name) = lower(?)", (name,))


def _write_gpkg_layer(path: Path, name: str, gdf: gpd.GeoDataFrame) -> None:
    out = gdf if gdf.crs.to_epsg() in (4326, 4490) else gdf.to_crs(STORAGE_CRS)
    pyogrio.write_dataframe(out, path, layer=name, driver="GPKG", use_arrow=False, layer_options={"OVERWRITE": "YES"})


def _owned(prefix: str) -> str:
    """``prefix`` + this host and process, for temporary files :func:`_sweep_stale` may remove once it died."""
    return f"{prefix}{_HOST}-{os.getpid()}-"


def _sweep_stale(folder: Path, prefix: str, suffix: str = "") -> None:
    """Remove the temporary files and folders of writers that died in ``folder`` (kill -9, power loss).

    Only entries named by :func:`_owned` on this host whose process no longer exists: a staging
    folder of a killed 10-million-row import holds gigabytes. A process of another host (a shared
    folder) or a live one is never touched; a failure to remove is ignored.
    """
    head = f"{prefix}{_HOST}-"
    try:
        entries = [e for e in folder.iterdir() if e.name.startswith(head) and e.name.endswith(suffix)]
    except OSError:
        return
    for entry in entries:
        pid = entry.name[len(head) :].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but another user's
        return True
    return True


_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:40] or "host"
_STAGED_MORE = "geogrid_staged_more"
_STAGED_BOUNDS = "geogrid_staged_bounds"


def _stage_parts(path: Path, name: str, parts: Iterable[gpd.GeoDataFrame]) -> None:
    """Stage a layer given in parts in the private GeoPackage ``path``, in memory bounded by a part.

    The first part becomes the GDAL layer ``name`` with its R-tree (GDAL creates the
    table, index and registrations). The others go to the layer ``_STAGED_MORE`` without
    an R-tree, their bounds to the plain table ``_STAGED_BOUNDS`` (GDAL appending to an
    indexed layer updates the R-tree row by row: 4x slower); the transaction copies them
    after the first part (:meth:`_Tx.append_staged`).
    """
    n = 0
    for part in parts:
        if n == 0:
            _write_gpkg_layer(path, name, part)
        else:
            out = part if part.crs.to_epsg() in (4326, 4490) else part.to_crs(STORAGE_CRS)
            pyogrio.write_dataframe(
                out,
                path,
                layer=_STAGED_MORE,
                driver="GPKG",
                use_arrow=True,
                append=n > 1,
                layer_options={"SPATIAL_INDEX": "NO"} if n == 1 else None,
            )
            b = shapely.bounds(out.geometry.to_numpy())
            with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as con:
                con.execute("BEGIN")
                if n == 1:
                    con.execute(f"CREATE TABLE {_STAGED_BOUNDS} (id INTEGER PRIMARY KEY, minx, maxx, miny, maxy)")
                start = int(con.execute(f"SELECT coalesce(max(id), 0) FROM {_STAGED_BOUNDS}").fetchone()[0])
                ids = np.arange(start + 1, start + 1 + len(b))
                con.executemany(
                    f"INSERT INTO {_STAGED_BOUNDS} VALUES (?, ?, ?, ?, ?)",
                    zip(
                        ids.tolist(),
                        b[:, 0].tolist(),
                        b[:, 2].tolist(),
                        b[:, 1].tolist(),
                        b[:, 3].tolist(),
                        strict=True,
                    ),
                )
                con.execute("COMMIT")
        n += 1
    if n == 0:
        msg = f"no rows to write to layer {name!r}"
        raise StoreError(msg)


class _Tx:
    """One write transaction on a GeoPackage store (see :meth:`GeoPackageStore._writing`)."""

    def __init__(self, store: GeoPackageStore, con: sqlite3.Connection) -> None:
        self.store = store
        self.con = con
        for statement in _PLAN_STATEMENTS:
            con.execute(statement)

    def has_table(self, name: str, schema: str = "main") -> bool:
        row = self.con.execute(
            f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND lower(name) = lower(?)", (name,)
        ).fetchone()
        return row is not None

    def current_version(self) -> int:
        row = self.con.execute(f"SELECT max(version) FROM {_VERSIONS}").fetchone()
        return int(row[0]) if row and row[0] is not None else 1

    def checked(self, plan_id: str, expected_version: int) -> PlanInfo:
        """Return the plan's record, or raise EditConflict if it moved on (read under the writer's lock)."""
        row = self.con.execute(f"SELECT * FROM {_PLANS} WHERE plan_id = ?", (str(plan_id),)).fetchone()
        if row is None:
            msg = f"store {self.store.path} has no plan {plan_id!r}"
            raise NotFoundError(msg)
        info = GeoPackageStore._plan_of(row)
        _refuse_unless_open_at(info, plan_id, expected_version)
        return info

    # -- layers ------------------------------------------------------------------
    def bump(self, name: str) -> None:
        self.con.execute(
            f"INSERT INTO {_STAMPS} (layer, n) VALUES (?, 1) ON CONFLICT (layer) DO UPDATE SET n = n + 1", (name,)
        )

    def guard(self, name: str) -> None:
        """(Re)install the triggers on layer ``name``: refuse row edits of protected layers, count the others."""
        why = _protected(name)
        q = _quote(name)
        for trigger, op in zip(_guard_names(name), ("INSERT", "UPDATE", "DELETE"), strict=True):
            self.con.execute(f"DROP TRIGGER IF EXISTS main.{_quote(trigger)}")
            if why is not None:
                text = why.replace("'", "''")
                body = f"BEFORE {op} ON {q} BEGIN SELECT RAISE(ABORT, '{text}'); END"
            else:
                layer = name.replace("'", "''")
                body = f"AFTER {op} ON {q} BEGIN UPDATE {_STAMPS} SET n = n + 1 WHERE layer = '{layer}'; END"
            self.con.execute(f"CREATE TRIGGER main.{_quote(trigger)} {body}")

    def install(self, name: str) -> None:
        """Replace layer ``name`` by the staged one: table, rows, R-tree, registrations and triggers."""
        con = self.con
        ddl = con.execute(
            "SELECT type, name, sql FROM staged.sqlite_master WHERE sql IS NOT NULL AND (lower(tbl_name) = lower(?) "
            "OR (type = 'table' AND lower(name) LIKE lower(?) AND sql LIKE 'CREATE VIRTUAL TABLE%'))",
            (name, f"rtree_{name}_%"),
        ).fetchall()
        _drop_layer(con, name)
        for kind, table, sql in ddl:
            if kind == "table":
                con.execute(sql)
                con.execute(f"INSERT INTO main.{_quote(table)} SELECT * FROM staged.{_quote(table)}")
        for table, sql in con.execute(
            "SELECT name, sql FROM staged.sqlite_master WHERE type = 'table' AND name LIKE 'gpkg%'"
        ).fetchall():
            if not self.has_table(table):
                con.execute(sql)
            if table == "gpkg_spatial_ref_sys":
                con.execute("INSERT OR IGNORE INTO main.gpkg_spatial_ref_sys SELECT * FROM staged.gpkg_spatial_ref_sys")
            elif table in ("gpkg_contents", "gpkg_geometry_columns", "gpkg_extensions", "gpkg_ogr_contents"):
                con.execute(
                    f"INSERT INTO main.{table} SELECT * FROM staged.{table} WHERE lower(table_name) = lower(?)", (name,)
                )
        for kind, _, sql in ddl:
            if kind in ("index", "trigger"):
                con.execute(sql)
        self.guard(name)
        self.bump(name)

    def append_staged(self, name: str, *, source: str, first: bool = True) -> None:
        """Append the staged rows of layer ``name`` after the stored ones (same order; R-tree and counts kept).

        The staged rows are the GDAL layer ``name`` (``first``: with its R-tree) and then the
        rest of the parts, in ``_STAGED_MORE`` with their bounds in ``_STAGED_BOUNDS`` (see
        :meth:`GeoPackageStore._writing`). Refuses (ValidationError) staged ids that the
        layer already holds. The layer's triggers are set aside during the copy (GDAL's
        R-tree triggers call functions only GDAL defines; the R-tree rows are copied
        instead) and put back, all in the transaction.
        """
        con, q = self.con, _quote(name)
        id_col = SCHEMAS[LayerKind(name)].id_column if name in _KINDS else None
        main_cols = {r[1].lower(): r[1] for r in con.execute(f"PRAGMA main.table_info({q})")}
        staged_info = [(r[1], r[2]) for r in con.execute(f"PRAGMA staged.table_info({q})") if r[1] != "fid"]
        geom = {
            schema: con.execute(
                f"SELECT column_name FROM {schema}.gpkg_geometry_columns WHERE lower(table_name) = lower(?)", (name,)
            ).fetchone()
            for schema in ("main", "staged")
        }
        if geom["main"] is None or geom["staged"] is None:
            msg = f"store {self.store.path}: layer {name!r} has no geometry column to append to"
            raise StoreError(msg)
        main_geom, staged_geom = str(geom["main"][0]), str(geom["staged"][0])
        sources: list[tuple[str, str, str]] = []  # (staged table, R-tree rows, ids to skip)
        if first:
            sources.append((name, f"staged.{_quote(f'rtree_{name}_{staged_geom}')}", ""))
        if self.has_table(_STAGED_MORE, "staged"):
            sources.append((_STAGED_MORE, f"staged.{_STAGED_BOUNDS}", ""))
        first_rows = int(con.execute(f"SELECT count(*) FROM staged.{q}").fetchone()[0])
        if id_col is not None and id_col.lower() in main_cols:
            qi = _quote(id_col)
            clash: list[tuple[Any, ...]] = []
            for table, _, _ in sources:
                base = 0 if table == name else first_rows
                clash += con.execute(
                    f"SELECT fid - 1 + ?, {qi} FROM staged.{_quote(table)} WHERE {qi} IN "
                    f"(SELECT {qi} FROM main.{q}) ORDER BY fid",
                    (base,),
                ).fetchall()
            if clash:
                rows = tuple(int(r[0]) for r in clash)
                ids = tuple(str(r[1]) for r in clash)
                msg = (
                    f"{id_col} {format_ids(ids)} already in the store at rows "
                    f"{', '.join(map(str, rows[:10]))}{' ...' if len(rows) > 10 else ''}: give new ids, "
                    "or use --mode replace to replace the whole layer"
                )
                raise ValidationError(source, [Problem("id_exists", msg, rows, ids)])
        pairs: list[tuple[str, str]] = []
        for col, decl in staged_info:
            target = main_geom if col == staged_geom else main_cols.get(col.lower())
            if target is None:
                con.execute(f"ALTER TABLE main.{q} ADD COLUMN {_quote(col)} {decl}")
                target = col
            pairs.append((target, col))
        triggers = con.execute(
            "SELECT name, sql FROM main.sqlite_master WHERE type = 'trigger' AND lower(tbl_name) = lower(?)", (name,)
        ).fetchall()
        for trigger, _ in triggers:
            con.execute(f"DROP TRIGGER main.{_quote(trigger)}")
        dst = ", ".join(_quote(t) for t, _ in pairs)
        src = ", ".join(_quote(c) for _, c in pairs)
        rtree_main = f"rtree_{name}_{main_geom}"
        added = 0
        for table, rtree_rows, _ in sources:
            offset = int(con.execute(f"SELECT coalesce(max(fid), 0) FROM main.{q}").fetchone()[0])
            cur = con.execute(
                f"INSERT INTO main.{q} (fid, {dst}) SELECT fid + ?, {src} FROM staged.{_quote(table)} ORDER BY fid",
                (offset,),
            )
            added += cur.rowcount
            if self.has_table(rtree_main):
                con.execute(
                    f"INSERT INTO main.{_quote(rtree_main)} SELECT id + ?, minx, maxx, miny, maxy FROM {rtree_rows}",
                    (offset,),
                )
        for _, sql in triggers:
            con.execute(sql)
        if self.has_table("gpkg_ogr_contents"):
            con.execute(
                "UPDATE main.gpkg_ogr_contents SET feature_count = feature_count + ? WHERE lower(table_name) = lower(?)",
                (added, name),
            )
        con.execute(
            "UPDATE main.gpkg_contents SET "
            "min_x = min(coalesce(min_x, s.mnx), coalesce(s.mnx, min_x)), "
            "min_y = min(coalesce(min_y, s.mny), coalesce(s.mny, min_y)), "
            "max_x = max(coalesce(max_x, s.mxx), coalesce(s.mxx, max_x)), "
            "max_y = max(coalesce(max_y, s.mxy), coalesce(s.mxy, max_y)) "
            f"FROM (SELECT min(minx) AS mnx, min(miny) AS mny, max(maxx) AS mxx, max(maxy) AS mxy FROM "
            f"(SELECT min_x AS minx, min_y AS miny, max_x AS maxx, max_y AS maxy FROM staged.gpkg_contents "
            f"WHERE lower(table_name) = lower(?) AND ? UNION ALL SELECT min(minx), min(miny), max(maxx), max(maxy) "
            f"FROM {'staged.' + _STAGED_BOUNDS if self.has_table(_STAGED_BOUNDS, 'staged') else '(SELECT NULL AS minx, NULL AS miny, NULL AS maxx, NULL AS maxy)'})) "
            "AS s WHERE lower(main.gpkg_contents.table_name) = lower(?)",
            (name, int(first), name),
        )
        self.guard(name)
        self.bump(name)

    def copy_hidden(self, src: str, dst: str) -> None:
        """Copy layer ``src`` to the hidden layer ``dst`` inside the database (no R-tree: never read by area)."""
        con = self.con
        row = con.execute(
            "SELECT sql FROM main.sqlite_master WHERE type = 'table' AND lower(name) = lower(?)", (src,)
        ).fetchone()
        if row is None:
            msg = f"store {self.store.path} has no layer {src!r}"
            raise StoreError(msg)
        ddl, n = re.subn(
            r"^\s*CREATE\s+TABLE\s+(\"(?:[^\"]|\"\")+\"|'[^']+'|\[[^\]]+\]|`[^`]+`|[^\s(]+)",
            f"CREATE TABLE main.{_quote(dst)}",
            row[0],
            count=1,
            flags=re.IGNORECASE,
        )
        if n != 1:
            msg = f"store {self.store.path}: cannot read the definition of layer {src!r}"
            raise StoreError(msg)
        _drop_layer(con, dst)
        con.execute(ddl)
        con.execute(f"INSERT INTO main.{_quote(dst)} SELECT * FROM main.{_quote(src)}")
        con.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, min_x, min_y, max_x, max_y, "
            "srs_id) SELECT ?, data_type, ?, description, min_x, min_y, max_x, max_y, srs_id FROM gpkg_contents "
            "WHERE lower(table_name) = lower(?)",
            (dst, dst, src),
        )
        con.execute(
            "INSERT INTO gpkg_geometry_columns SELECT ?, column_name, geometry_type_name, srs_id, z, m "
            "FROM gpkg_geometry_columns WHERE lower(table_name) = lower(?)",
            (dst, src),
        )
        if self.has_table("gpkg_ogr_contents"):
            con.execute(
                f"INSERT INTO gpkg_ogr_contents (table_name, feature_count) SELECT ?, count(*) FROM main.{_quote(dst)}",
                (dst,),
            )
        self.guard(dst)
        self.bump(dst)

    def drop(self, name: str) -> None:
        _drop_layer(self.con, name)
        self.bump(name)

    # -- versions, the log, metadata ---------------------------------------------------
    def record_version(self, version: int, *, at: str | None, plan_id: str | None, author: str | None) -> None:
        """Store the current ``grids`` as ``version``, valid from ``at``; the previous version ends at ``at``."""
        if at is not None:
            self.con.execute(f"UPDATE {_VERSIONS} SET valid_to = ? WHERE version = ?", (at, version - 1))
        self.con.execute(
            f"INSERT INTO {_VERSIONS} VALUES (?, ?, NULL, ?, ?)",
            (version, at, plan_id, None if author is None else str(author)),
        )
        self.copy_hidden("grids", Store._version_layer(version))
        self.guard("grids")

    def _same_as_version(self, version: int) -> bool:
        layer = Store._version_layer(version)
        if not self.has_table(layer):
            return False
        cols = [r[1] for r in self.con.execute(f"PRAGMA main.table_info({_quote('grids')})") if r[1] != "fid"]
        vcols = [r[1] for r in self.con.execute(f"PRAGMA main.table_info({_quote(layer)})") if r[1] != "fid"]
        if cols != vcols:
            return False
        sel = ", ".join(_quote(c) for c in cols)
        a, b = _quote("grids"), _quote(layer)
        row = self.con.execute(
            f"SELECT (SELECT count(*) FROM {a}) = (SELECT count(*) FROM {b}) AND NOT EXISTS "
            f"(SELECT {sel} FROM {a} EXCEPT SELECT {sel} FROM {b}) AND NOT EXISTS "
            f"(SELECT {sel} FROM {b} EXCEPT SELECT {sel} FROM {a})"
        ).fetchone()
        return bool(row[0])

    def _guard_other_layers(self) -> None:
        """Give every visible layer without them the triggers that count its outside edits (for caches)."""
        names = [
            r[0]
            for r in self.con.execute(
                "SELECT table_name FROM gpkg_contents WHERE data_type IN ('features', 'attributes') "
                "AND table_name NOT LIKE 'geogrid%' AND lower(table_name) <> 'grids'"
            )
        ]
        guards = {r[0] for r in self.con.execute("SELECT name FROM main.sqlite_master WHERE type = 'trigger'")}
        for name in names:
            if not set(_guard_names(name)) <= guards:
                self.guard(name)
                self.bump(name)

    def adopt_outside_edits(self) -> int | None:
        """Make ``grids`` the current version if it changed outside geogrid; return the new version (or None).

        Row edits are refused by triggers; a table replaced outside geogrid (its triggers
        gone) is compared with the stored current version. A store written before
        versions existed gets its network stored as version 1.
        """
        if not self.has_table("grids"):
            return None
        row = self.con.execute(f"SELECT max(version) FROM {_VERSIONS}").fetchone()
        if row[0] is None:
            self.record_version(1, at=None, plan_id=None, author=None)
            return None
        current = int(row[0])
        guards = {
            r[0]
            for r in self.con.execute(
                "SELECT name FROM main.sqlite_master WHERE type = 'trigger' AND tbl_name = 'grids'"
            )
        }
        self._guard_other_layers()
        if set(_guard_names("grids")) <= guards:
            return None
        if self._same_as_version(current):
            self.guard("grids")
            return None
        self.store._read_table(self.con, "grids")  # a geometry that crashes GEOS is refused, not made a version
        at = _now()
        self.record_version(current + 1, at=at, plan_id=None, author=_OUTSIDE)
        self.log(_OUTSIDE, None, "outside_edit", {"network_version": current + 1}, None, None, at)
        self.bump("grids")
        self.write_metadata({"network_version": current + 1})
        return current + 1

    def log(
        self,
        author: str,
        plan_id: str | None,
        operation: str,
        parameters: Mapping[str, Any],
        before: int | None,
        after: int | None,
        at: str,
    ) -> None:
        GeoPackageStore._log(self.con, author, plan_id, operation, parameters, before, after, at)

    def write_metadata(self, extra: Mapping[str, Any]) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        existing = dict(self.con.execute(f"SELECT key, value FROM {_META_TABLE}").fetchall())
        values: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "updated_at": now, **extra}
        if "created_at" not in existing:
            values["created_at"] = now
        self.con.executemany(
            f"INSERT OR REPLACE INTO {_META_TABLE} (key, value) VALUES (?, ?)",
            [(k, json.dumps(v, ensure_ascii=False, default=str)) for k, v in values.items()],
        )


def _hide_internal_tables(con: sqlite3.Connection) -> None:
    """Register geogrid's own tables (``geogrid_*``) in ``gpkg_contents`` as internal, not as layers.

    GDAL (so QGIS) lists the tables registered as features, attributes or tiles, and, when no
    attribute table is registered, every unregistered table too; a table registered with another
    data type (defined by the ``geogrid_internal_tables`` extension, as the GeoPackage
    specification allows) is listed by neither. geogrid reads its hidden layers by SQL. Runs
    inside the writer's transaction, so the registration commits with the tables.
    """
    has_contents = con.execute(
        "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name IN ('gpkg_contents', 'gpkg_extensions')"
    ).fetchone()[0]
    if has_contents < 2:
        return
    tables = [
        str(r[0])
        for r in con.execute(
            "SELECT name FROM main.sqlite_master WHERE type = 'table' AND substr(name, 1, 8) = ?", (_HIDDEN_PREFIX,)
        )
    ]
    for table in tables:
        con.execute("UPDATE main.gpkg_contents SET data_type = ? WHERE table_name = ?", (_INTERNAL_TYPE, table))
        con.execute(
            "INSERT OR IGNORE INTO main.gpkg_contents (table_name, data_type, identifier, description) "
            "VALUES (?, ?, ?, ?)",
            (table, _INTERNAL_TYPE, table, "geogrid's own table (plans, versions, edit log): not a data layer"),
        )
        con.execute(
            "INSERT INTO main.gpkg_extensions (table_name, column_name, extension_name, definition, scope) "
            "SELECT ?, NULL, ?, ?, 'read-write' WHERE NOT EXISTS (SELECT 1 FROM main.gpkg_extensions "
            "WHERE table_name = ? AND extension_name = ?)",
            (
                table,
                _INTERNAL_EXTENSION,
                "geogrid: a table of plans, versions or the edit log, registered with data_type "
                f"'{_INTERNAL_TYPE}' so that GIS clients do not list it as a layer",
                table,
                _INTERNAL_EXTENSION,
            ),
        )


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the ``with`` block.

    The lock goes with the process: a writer killed while holding it releases it.
    ``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows (where ``fcntl`` does not
    exist).
    """
    lock = Path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as fh:
        if sys.platform == "win32":  # pragma: no cover  (exercised on Windows only)
            import msvcrt

            fh.seek(0)
            while True:
                try:
                    msvcrt.locking(fh.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:  # LK_LOCK gives up after 10 s: keep waiting
                    continue
            try:
                yield
            finally:
                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def open_store(location: str | os.PathLike[str]) -> Store:
    """Open a store: a GeoPackage path, or a PostGIS URL (``postgresql://user@host/db``).

    A PostGIS URL may name the schema with ``?schema=NAME`` (default ``geogrid``).

    Examples
    --------
    >>> open_store("district.gpkg")
    GeoPackageStore('district.gpkg')
    """
    loc = str(location)
    if loc.startswith(("postgresql://", "postgres://")):
        from urllib.parse import parse_qs, urlencode, urlsplit

        from layers.postgis import PostGISStore

        parts = urlsplit(loc)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        schema = query.pop("schema", "geogrid")
        # Not urlunsplit: it drops the "//" of a URL without host ("postgresql:///db?host=/run/postgresql").
        dsn = loc.split("#", 1)[0].split("?", 1)[0] + (f"?{urlencode(query)}" if query else "")
        return PostGISStore(dsn, schema=schema)
    return GeoPackageStore(loc)
