"""Storage backends. The GeoPackage file is the embedded default: QGIS opens it directly.

The engine talks to a store only through :class:`Store`, so a PostGIS backend can
follow without touching the engine.

Writes to a :class:`GeoPackageStore` are atomic: the new content is written to a
temporary copy next to the file, flushed to disk and renamed over the original.
A writer killed at any point leaves the file exactly as it was (or fully updated).
Writers are serialised with an advisory lock file; readers never block.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import shutil
import sqlite3
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

import geopandas as gpd
import pyogrio

from layers.errors import EditConflict, NotFoundError, StoreError
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
        raise EditConflict(msg, expected=info.base_version, actual=current)


def _refuse_internal_names(layers: Mapping[str, Any]) -> None:
    """Raise StoreError for layer names of geogrid's own tables: plans, versions and the log are not written as layers."""
    reserved = sorted(name for name in layers if str(name).startswith(_HIDDEN_PREFIX))
    if reserved:
        msg = (
            f"layer name(s) {', '.join(map(repr, reserved))} start with {_HIDDEN_PREFIX!r}, which geogrid keeps for "
            "its plans, versions and edit log: choose another name"
        )
        raise StoreError(msg)


_PLAN_SQL = f"""
CREATE TABLE IF NOT EXISTS {_PLANS} (
    plan_id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, version INTEGER NOT NULL,
    base_version INTEGER NOT NULL, created_by TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {_VERSIONS} (
    version INTEGER PRIMARY KEY, valid_from TEXT, valid_to TEXT, plan_id TEXT, committed_by TEXT);
CREATE TABLE IF NOT EXISTS {_LOG} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, author TEXT NOT NULL, plan_id TEXT,
    operation TEXT NOT NULL, parameters TEXT NOT NULL, version_before INTEGER, version_after INTEGER);
CREATE TRIGGER IF NOT EXISTS {_LOG}_no_update BEFORE UPDATE ON {_LOG}
    BEGIN SELECT RAISE(ABORT, 'the edit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS {_LOG}_no_delete BEFORE DELETE ON {_LOG}
    BEGIN SELECT RAISE(ABORT, 'the edit log is append-only'); END;
"""


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

    @abstractmethod
    def write(self, layers: Mapping[str, gpd.GeoDataFrame], *, metadata: Mapping[str, Any] | None = None) -> None:
        """Replace the given layers (others stay) in one atomic step."""

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

    def layer_names(self) -> list[str]:
        """Names of the spatial and attribute layers in the file."""
        if not self.path.exists():
            return []
        try:
            info = pyogrio.list_layers(self.path)
        except pyogrio.errors.DataSourceError as err:
            msg = f"{self.path} is not a readable GeoPackage: {err}"
            raise StoreError(msg) from err
        return [str(n) for n in info[:, 0] if not str(n).startswith(_HIDDEN_PREFIX)]

    def read(self, name: str, *, bbox: tuple[float, float, float, float] | None = None) -> gpd.GeoDataFrame:
        """Read layer ``name``; the standard kinds come back with their canonical dtypes."""
        self._require()
        names = self.layer_names()
        internal = name.startswith(_HIDDEN_PREFIX) and name in self._all_layers()
        if name not in names and not internal:
            msg = f"store {self.path} has no layer {name!r}; it has: {', '.join(names) or 'none'}"
            raise StoreError(msg)
        try:
            if internal:  # registered as internal: GDAL does not list it as a layer, but reads it by SQL
                gdf = pyogrio.read_dataframe(self.path, sql=f'SELECT * FROM "{name}"', use_arrow=True)
            else:
                gdf = pyogrio.read_dataframe(self.path, layer=name, bbox=bbox, use_arrow=True)
        except pyogrio.errors.DataSourceError as err:
            msg = f"cannot read layer {name!r} from {self.path}: {err}"
            raise StoreError(msg) from err
        if name in _KINDS:
            coerce_dtypes(gdf, SCHEMAS[LayerKind(name)])
        return gdf

    def metadata(self) -> dict[str, Any]:
        """Metadata stored in the ``geogrid_metadata`` table (empty for a new file)."""
        if not self.path.exists():
            return {}
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as con:
            try:
                rows = con.execute(f"SELECT key, value FROM {_META_TABLE}").fetchall()
            except sqlite3.DatabaseError:
                return {}
        return {k: json.loads(v) for k, v in rows}

    # -- writing -----------------------------------------------------------------
    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        with file_lock(self.path.with_name(self.path.name + ".lock")):
            yield

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Path]:
        """Yield a temporary copy of the file to modify; on success it replaces the original.

        The copy lives in the same directory (so the final rename is atomic), is
        fsynced before the rename, and is removed if anything fails. Writers are
        serialised by an advisory lock; the original is never modified in place.
        Copies left behind by a writer that was killed are removed here: whoever holds
        the lock is the only writer, so any other copy is stale.
        """
        with self._write_lock():
            for stale in self.path.parent.glob(f".{glob.escape(self.path.name)}.*.tmp.gpkg*"):
                stale.unlink(missing_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp.gpkg", dir=self.path.parent)
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                if self.path.exists():
                    shutil.copyfile(self.path, tmp)
                else:
                    tmp.unlink()
                yield tmp
                if tmp.exists():
                    _hide_internal_tables(tmp)
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
                dir_fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            finally:
                if tmp.exists():
                    tmp.unlink()

    def write(self, layers: Mapping[str, gpd.GeoDataFrame], *, metadata: Mapping[str, Any] | None = None) -> None:
        """Replace ``layers`` atomically and update metadata (``updated_at``, user keys)."""
        _refuse_internal_names(layers)
        for name, gdf in layers.items():
            if gdf.crs is None:
                msg = f"layer {name!r} has no CRS; the store keeps {STORAGE_CRS}: set it before writing"
                raise StoreError(msg)
        with self.transaction() as tmp:
            for name, gdf in layers.items():
                out = gdf if gdf.crs.to_epsg() in (4326, 4490) else gdf.to_crs(STORAGE_CRS)
                pyogrio.write_dataframe(
                    out,
                    tmp,
                    layer=name,
                    driver="GPKG",
                    use_arrow=False,
                    layer_options={"OVERWRITE": "YES"},
                )
            self._write_metadata(tmp, metadata or {})

    def _write_metadata(self, path: Path, extra: Mapping[str, Any]) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with contextlib.closing(sqlite3.connect(path)) as con, con:
            con.execute(f"CREATE TABLE IF NOT EXISTS {_META_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            existing = dict(con.execute(f"SELECT key, value FROM {_META_TABLE}").fetchall())
            values: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "updated_at": now, **extra}
            if "created_at" not in existing:
                values["created_at"] = now
            con.executemany(
                f"INSERT OR REPLACE INTO {_META_TABLE} (key, value) VALUES (?, ?)",
                [(k, json.dumps(v, ensure_ascii=False, default=str)) for k, v in values.items()],
            )

    # -- plans and versions --------------------------------------------------------
    def _all_layers(self) -> list[str]:
        """Every table of the file, geogrid's internal ones included."""
        if not self.path.exists():
            return []
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as con:
            return [str(r[0]) for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]

    @staticmethod
    def _plan_layer(plan_id: str) -> str:
        return f"{_HIDDEN_PREFIX}plan_{plan_id}"

    def _describe(self) -> str:
        return f"store {self.path}"

    def _ro(self) -> sqlite3.Connection:
        self._require()
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)

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
        """Read an open plan's grid layer and its record together (consistent)."""
        for _ in range(50):
            info = self.plan_info(plan_id)
            if info.status != "open":
                msg = f"plan {plan_id!r} is {info.status}; only open plans can be read or edited"
                raise StoreError(msg)
            try:
                grids = self.read(self._plan_layer(plan_id))
            except StoreError:
                continue  # replaced between the two reads: try again
            if self.plan_info(plan_id).version == info.version:
                return grids, info
        msg = f"plan {plan_id!r} changed 50 times while being read; try again"
        raise StoreError(msg)

    @staticmethod
    def _ensure_tables(con: sqlite3.Connection) -> None:
        con.executescript(_PLAN_SQL)

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

    def _checked(self, con: sqlite3.Connection, plan_id: str, expected_version: int) -> PlanInfo:
        """Inside a transaction: the plan's record, or EditConflict if it moved on."""
        row = con.execute(f"SELECT * FROM {_PLANS} WHERE plan_id = ?", (str(plan_id),)).fetchone()
        if row is None:
            msg = f"store {self.path} has no plan {plan_id!r}"
            raise NotFoundError(msg)
        info = self._plan_of(row)
        _refuse_unless_open_at(info, plan_id, expected_version)
        return info

    def _write_layer(self, path: Path, name: str, gdf: gpd.GeoDataFrame) -> None:
        out = gdf if gdf.crs.to_epsg() in (4326, 4490) else gdf.to_crs(STORAGE_CRS)
        if name.startswith(_HIDDEN_PREFIX) and path.exists():
            # Visible to GDAL again while it overwrites the layer; the transaction hides it at the end.
            with contextlib.closing(sqlite3.connect(path)) as con, con, contextlib.suppress(sqlite3.OperationalError):
                con.execute("UPDATE gpkg_contents SET data_type = 'features' WHERE table_name = ?", (name,))
                con.execute(
                    "DELETE FROM gpkg_extensions WHERE table_name = ? AND extension_name = ?",
                    (name, _INTERNAL_EXTENSION),
                )
        pyogrio.write_dataframe(
            out, path, layer=name, driver="GPKG", use_arrow=False, layer_options={"OVERWRITE": "YES"}
        )

    @staticmethod
    def _drop_layer(con: sqlite3.Connection, name: str) -> None:
        """Delete a GeoPackage layer and its registrations (contents, geometry column, R-tree)."""
        con.execute(f'DROP TABLE IF EXISTS "rtree_{name}_geom"')
        con.execute(f'DROP TABLE IF EXISTS "{name}"')
        for table in ("gpkg_contents", "gpkg_geometry_columns", "gpkg_extensions", "gpkg_ogr_contents"):
            with contextlib.suppress(sqlite3.OperationalError):
                con.execute(f"DELETE FROM {table} WHERE lower(table_name) = lower(?)", (name,))

    def create_plan(self, name: str, *, author: str) -> PlanInfo:
        """Copy the current grid network into a new open plan (version 0)."""
        self._require()
        grids = self.read("grids")
        at = _now()
        with self.transaction() as tmp:
            with contextlib.closing(sqlite3.connect(tmp)) as con, con:
                self._ensure_tables(con)
                ids = [r[0] for r in con.execute(f"SELECT plan_id FROM {_PLANS}")]
                n = 1 + max((int(i[1:]) for i in ids if i[1:].isdigit()), default=0)
                plan_id = f"p{n}"
                base = con.execute(f"SELECT max(version) FROM {_VERSIONS}").fetchone()[0] or 1
            self._write_layer(tmp, self._plan_layer(plan_id), grids)
            with contextlib.closing(sqlite3.connect(tmp)) as con, con:
                con.execute(
                    f"INSERT INTO {_PLANS} VALUES (?, ?, 'open', 0, ?, ?, ?, ?)",
                    (plan_id, str(name), int(base), str(author), at, at),
                )
                self._log(con, author, plan_id, "create", {"name": name, "base_version": int(base)}, None, 0, at)
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
        under the writers' lock).
        """
        if grids.crs is None:
            msg = "the plan's grids have no CRS; the store keeps EPSG:4326: set it before saving"
            raise StoreError(msg)
        current = self.plan_info(plan_id)  # cheap early conflict check: no copy of the file
        self._checked_info(current, plan_id, expected_version)
        at = _now()
        with self.transaction() as tmp:
            with contextlib.closing(sqlite3.connect(tmp)) as con:
                self._checked(con, plan_id, expected_version)
            self._write_layer(tmp, self._plan_layer(plan_id), grids)
            with contextlib.closing(sqlite3.connect(tmp)) as con, con:
                v = int(expected_version)
                con.execute(
                    f"UPDATE {_PLANS} SET version = ?, updated_at = ? WHERE plan_id = ? AND version = ?",
                    (v + 1, at, plan_id, v),
                )
                self._log(con, author, plan_id, operation, parameters, v, v + 1, at)
        return self.plan_info(plan_id)

    def _checked_info(self, info: PlanInfo, plan_id: str, expected_version: int) -> None:
        _refuse_unless_open_at(info, plan_id, expected_version)

    def discard_plan(self, plan_id: str, *, expected_version: int, author: str) -> PlanInfo:
        """Discard an open plan at ``expected_version``; the network is untouched."""
        self._checked_info(self.plan_info(plan_id), plan_id, expected_version)
        at = _now()
        with self.transaction() as tmp, contextlib.closing(sqlite3.connect(tmp)) as con, con:
            self._checked(con, plan_id, expected_version)
            v = int(expected_version)
            con.execute(
                f"UPDATE {_PLANS} SET status = 'discarded', version = ?, updated_at = ? WHERE plan_id = ?",
                (v + 1, at, plan_id),
            )
            self._drop_layer(con, self._plan_layer(plan_id))
            self._log(con, author, plan_id, "discard", {}, v, v + 1, at)
        return self.plan_info(plan_id)

    def commit_plan(self, plan_id: str, *, expected_version: int, author: str) -> VersionInfo:
        """Make an open plan at ``expected_version`` the current network, as a new version.

        In one atomic step: the ``grids`` layer is replaced, the new version is stored with
        ``valid_from`` = now and the previous one gets ``valid_to`` = now (the first commit
        also stores the original network as version 1), the plan is marked committed and
        the commit is logged. EditConflict if the plan moved on, or another plan was
        committed since this one was copied from the network.
        """
        info = self.plan_info(plan_id)
        self._checked_info(info, plan_id, expected_version)
        grids, read_info = self.read_plan(plan_id)
        if read_info.version != int(expected_version):
            self._checked_info(read_info, plan_id, expected_version)
        at = _now()
        with self.transaction() as tmp:
            with contextlib.closing(sqlite3.connect(tmp)) as con, con:
                self._ensure_tables(con)
                info = self._checked(con, plan_id, expected_version)
                current = con.execute(f"SELECT max(version) FROM {_VERSIONS}").fetchone()[0]
                first_commit = current is None
                current = int(current or 1)
                _refuse_unless_based_on(info, current)
            if first_commit:
                old = pyogrio.read_dataframe(tmp, layer="grids", use_arrow=True)
                self._write_layer(tmp, self._version_layer(1), old)
            self._write_layer(tmp, self._version_layer(current + 1), grids)
            self._write_layer(tmp, "grids", grids)
            with contextlib.closing(sqlite3.connect(tmp)) as con, con:
                if first_commit:
                    con.execute(f"INSERT INTO {_VERSIONS} VALUES (1, NULL, NULL, NULL, NULL)")
                con.execute(f"UPDATE {_VERSIONS} SET valid_to = ? WHERE version = ?", (at, current))
                con.execute(
                    f"INSERT INTO {_VERSIONS} VALUES (?, ?, NULL, ?, ?)", (current + 1, at, plan_id, str(author))
                )
                v = int(expected_version)
                con.execute(
                    f"UPDATE {_PLANS} SET status = 'committed', version = ?, updated_at = ? WHERE plan_id = ?",
                    (v + 1, at, plan_id),
                )
                self._drop_layer(con, self._plan_layer(plan_id))
                self._log(con, author, plan_id, "commit", {"network_version": current + 1}, v, v + 1, at)
            self._write_metadata(tmp, {"network_version": current + 1})
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


def _hide_internal_tables(path: Path) -> None:
    """Register geogrid's own tables (``geogrid_*``) in ``gpkg_contents`` as internal, not as layers.

    GDAL (so QGIS) lists the tables registered as features, attributes or tiles, and, when no
    attribute table is registered, every unregistered table too; a table registered with another
    data type (defined by the ``geogrid_internal_tables`` extension, as the GeoPackage
    specification allows) is listed by neither. geogrid reads its hidden layers by SQL.
    """
    with contextlib.closing(sqlite3.connect(path)) as con, con:
        has_contents = con.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('gpkg_contents', 'gpkg_extensions')"
        ).fetchone()[0]
        if has_contents < 2:
            return
        tables = [
            str(r[0])
            for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, 8) = ?", (_HIDDEN_PREFIX,)
            )
        ]
        for table in tables:
            con.execute("UPDATE gpkg_contents SET data_type = ? WHERE table_name = ?", (_INTERNAL_TYPE, table))
            con.execute(
                "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, description) VALUES (?, ?, ?, ?)",
                (table, _INTERNAL_TYPE, table, "geogrid's own table (plans, versions, edit log): not a data layer"),
            )
            con.execute(
                "INSERT INTO gpkg_extensions (table_name, column_name, extension_name, definition, scope) "
                "SELECT ?, NULL, ?, ?, 'read-write' WHERE NOT EXISTS (SELECT 1 FROM gpkg_extensions "
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
    """
    lock = Path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as fh:
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
