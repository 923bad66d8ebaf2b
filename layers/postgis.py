"""PostGIS store: the same :class:`~layers.store.Store` interface on a PostgreSQL database.

For deployments larger than one GeoPackage file. Each layer is a table in one schema
(default ``geogrid``) with a ``geometry(Geometry, 4326)`` column and a GiST index;
metadata lives in ``<schema>.geogrid_metadata``.

Writes are atomic: every layer of a :meth:`PostGISStore.write` is loaded into a
staging table with ``COPY`` and swapped in with ``ALTER TABLE ... RENAME`` in ONE
transaction (PostgreSQL DDL is transactional), so readers see the old layers or the
new ones, never a mix, and a failed or killed writer changes nothing. Every
identifier is quoted with :mod:`psycopg.sql` and every value is a parameter.

Requires ``psycopg`` (``pip install geogrid[postgis]``) and PostGIS ≥ 3.0.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from layers.errors import StoreError
from layers.schema import SCHEMAS, STORAGE_CRS, LayerKind, coerce_dtypes
from layers.store import Store

__all__ = ["PostGISStore"]

_META_TABLE = "geogrid_metadata"
_KINDS = {k.value for k in LayerKind}
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _pg_type(series: pd.Series) -> str:
    dt = series.dtype
    if isinstance(dt, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(dt):
        return "timestamptz"
    if pd.api.types.is_bool_dtype(dt):
        return "boolean"
    if pd.api.types.is_integer_dtype(dt):
        return "bigint"
    if pd.api.types.is_float_dtype(dt):
        return "double precision"
    return "text"


def _check_name(name: str, what: str) -> str:
    if not _NAME_RE.match(name):
        msg = f"{what} {name!r} is not a plain lower-case SQL name (letters, digits, underscore; max 63)"
        raise StoreError(msg)
    return name


class PostGISStore(Store):
    """A geogrid store in a PostGIS database.

    Parameters
    ----------
    dsn
        A libpq connection string or URL, e.g. ``postgresql://user@host/db``.
    schema
        The database schema holding the layers (created on first write).
    """

    def __init__(self, dsn: str, *, schema: str = "geogrid") -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError as err:
            msg = "the PostGIS store needs psycopg: pip install 'psycopg[binary]' (or geogrid[postgis])"
            raise StoreError(msg) from err
        self.dsn = dsn
        self.schema = _check_name(schema, "schema")

    def __repr__(self) -> str:
        host = self.dsn.split("@")[-1]
        return f"PostGISStore({host!r}, schema={self.schema!r})"

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self.dsn)
        except psycopg.OperationalError as err:
            msg = f"cannot connect to PostGIS at {self.dsn.split('@')[-1]!r}: {str(err).strip()}"
            raise StoreError(msg) from err

    # -- reading -----------------------------------------------------------------
    def layer_names(self) -> list[str]:
        """Names of the layers (tables with a geometry column) in the schema."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT f_table_name FROM geometry_columns WHERE f_table_schema = %s ORDER BY f_table_name",
                (self.schema,),
            ).fetchall()
        return [r[0] for r in rows]

    def read(self, name: str, *, bbox: tuple[float, float, float, float] | None = None) -> gpd.GeoDataFrame:
        """Read layer ``name`` (optionally only features intersecting ``bbox`` in lon/lat)."""
        from psycopg import sql

        names = self.layer_names()
        if name not in names:
            msg = f"PostGIS schema {self.schema!r} has no layer {name!r}; it has: {', '.join(names) or 'none'}"
            raise StoreError(msg)
        with self._connect() as con:
            cols = [
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = %s AND table_name = %s AND column_name <> 'geometry' "
                    "AND column_name <> 'fid' ORDER BY ordinal_position",
                    (self.schema, name),
                ).fetchall()
            ]
            query = sql.SQL("SELECT {cols}, ST_AsBinary(geometry) FROM {tbl}").format(
                cols=sql.SQL(", ").join([sql.Identifier(c) for c in cols]) if cols else sql.SQL("NULL"),
                tbl=sql.Identifier(self.schema, name),
            )
            params: tuple[Any, ...] = ()
            if bbox is not None:
                query = query + sql.SQL(" WHERE geometry && ST_MakeEnvelope(%s, %s, %s, %s, 4326)")
                params = tuple(float(v) for v in bbox)
            query = query + sql.SQL(" ORDER BY fid")
            rows = con.execute(query, params).fetchall()
        data = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
        geoms = shapely.from_wkb(np.array([bytes(r[-1]) for r in rows], dtype=object)) if rows else []
        gdf = gpd.GeoDataFrame(pd.DataFrame(data, columns=cols), geometry=list(geoms), crs=STORAGE_CRS)
        if name in _KINDS:
            coerce_dtypes(gdf, SCHEMAS[LayerKind(name)])
        return gdf

    def metadata(self) -> dict[str, Any]:
        """Metadata from ``<schema>.geogrid_metadata`` (empty if never written)."""
        from psycopg import errors, sql

        with self._connect() as con:
            try:
                rows = con.execute(
                    sql.SQL("SELECT key, value FROM {}").format(sql.Identifier(self.schema, _META_TABLE))
                ).fetchall()
            except errors.UndefinedTable:
                return {}
        return {k: json.loads(v) for k, v in rows}

    # -- writing -----------------------------------------------------------------
    def write(self, layers: Mapping[str, gpd.GeoDataFrame], *, metadata: Mapping[str, Any] | None = None) -> None:
        """Replace ``layers`` in one transaction and update metadata."""
        from psycopg import sql

        for name, gdf in layers.items():
            _check_name(name, "layer name")
            if gdf.crs is None:
                msg = f"layer {name!r} has no CRS; the store keeps {STORAGE_CRS}: set it before writing"
                raise StoreError(msg)
        with self._connect() as con, con.transaction():
            con.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            for name, gdf in layers.items():
                self._load_layer(con, name, gdf)
            meta_tbl = sql.Identifier(self.schema, _META_TABLE)
            con.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, value text NOT NULL)").format(meta_tbl)
            )
            now = datetime.now(UTC).isoformat(timespec="seconds")
            values: dict[str, Any] = {"schema_version": 1, "updated_at": now, **(metadata or {})}
            con.execute(
                sql.SQL("INSERT INTO {} (key, value) VALUES ('created_at', %s) ON CONFLICT (key) DO NOTHING").format(
                    meta_tbl
                ),
                (json.dumps(now),),
            )
            for k, v in values.items():
                con.execute(
                    sql.SQL(
                        "INSERT INTO {} (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
                    ).format(meta_tbl),
                    (k, json.dumps(v, ensure_ascii=False, default=str)),
                )

    def _load_layer(self, con: Any, name: str, gdf: gpd.GeoDataFrame) -> None:
        from psycopg import sql

        out = gdf if gdf.crs.to_epsg() in (4326, 4490) else gdf.to_crs(STORAGE_CRS)
        geom_col = out.geometry.name
        cols = [c for c in out.columns if c != geom_col]
        for c in cols:
            _check_name(str(c), f"column of layer {name!r}")
        staging = f"{name}__staging_{secrets.token_hex(4)}"
        con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.schema, staging)))
        col_defs: list[sql.Composable] = [sql.SQL("fid bigserial")]
        col_defs += [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_pg_type(out[c]))) for c in cols]
        col_defs.append(sql.SQL("geometry geometry(Geometry, 4326)"))
        con.execute(
            sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(self.schema, staging), sql.SQL(", ").join(col_defs))
        )
        wkb = shapely.to_wkb(shapely.set_srid(np.asarray(out.geometry.array), 4326), hex=True, include_srid=True)
        frame = pd.DataFrame({c: out[c].astype(object).where(out[c].notna(), None) for c in cols}, index=out.index)
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(self.schema, staging),
            sql.SQL(", ").join([sql.Identifier(c) for c in [*cols, "geometry"]]),
        )
        with con.cursor() as cur, cur.copy(copy_sql) as copy:
            for row, g in zip(frame.itertuples(index=False, name=None), wkb, strict=True):
                copy.write_row((*row, g))
        con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.schema, name)))
        con.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(self.schema, staging), sql.Identifier(name))
        )
        con.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (fid)").format(sql.Identifier(self.schema, name)))
        con.execute(
            sql.SQL("CREATE INDEX {} ON {} USING gist (geometry)").format(
                sql.Identifier(f"{name}_geometry_idx"), sql.Identifier(self.schema, name)
            )
        )
