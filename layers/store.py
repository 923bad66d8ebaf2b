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
import json
import os
import shutil
import sqlite3
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pyogrio

from layers.errors import StoreError
from layers.schema import SCHEMAS, STORAGE_CRS, LayerKind, coerce_dtypes

__all__ = ["SCHEMA_VERSION", "GeoPackageStore", "Store", "open_store"]

SCHEMA_VERSION = 1
"""Version of the on-disk layout written into the store's metadata."""

_META_TABLE = "geogrid_metadata"
_KINDS = {k.value for k in LayerKind}


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
        return [str(n) for n in info[:, 0] if str(n) != _META_TABLE]

    def read(self, name: str, *, bbox: tuple[float, float, float, float] | None = None) -> gpd.GeoDataFrame:
        """Read layer ``name``; the standard kinds come back with their canonical dtypes."""
        self._require()
        names = self.layer_names()
        if name not in names:
            msg = f"store {self.path} has no layer {name!r}; it has: {', '.join(names) or 'none'}"
            raise StoreError(msg)
        try:
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Path]:
        """Yield a temporary copy of the file to modify; on success it replaces the original.

        The copy lives in the same directory (so the final rename is atomic), is
        fsynced before the rename, and is removed if anything fails. Writers are
        serialised by an advisory lock; the original is never modified in place.
        """
        with self._write_lock():
            fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp.gpkg", dir=self.path.parent)
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                if self.path.exists():
                    shutil.copyfile(self.path, tmp)
                else:
                    tmp.unlink()
                yield tmp
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
        from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

        from layers.postgis import PostGISStore

        parts = urlsplit(loc)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        schema = query.pop("schema", "geogrid")
        return PostGISStore(urlunsplit(parts._replace(query=urlencode(query))), schema=schema)
    return GeoPackageStore(loc)
