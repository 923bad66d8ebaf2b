"""PostGIS store: the same :class:`~layers.store.Store` interface on a PostgreSQL database.

For deployments larger than one GeoPackage file. Each layer is a table in one schema
(default ``geogrid``) with a ``geometry(Geometry, 4326)`` column and a GiST index;
metadata lives in ``<schema>.geogrid_metadata``.

Writes are atomic: every layer of a :meth:`PostGISStore.write` is loaded into a
staging table with ``COPY`` and swapped in with ``ALTER TABLE ... RENAME`` in ONE
transaction (PostgreSQL DDL is transactional), so readers see the old layers or the
new ones, never a mix, and a failed or killed writer changes nothing. Every
identifier is quoted with :mod:`psycopg.sql` and every value is a parameter.

Plans, versions and the edit log live in the same schema, with the semantics of
:class:`~layers.store.GeoPackageStore`: ``geogrid_plans``, ``geogrid_versions`` and
``geogrid_edit_log`` tables, one hidden layer per open plan (``geogrid_plan_<id>``) and
per committed version (``geogrid_grids_v<n>``). Every plan operation is ONE transaction.
A change locks the plan's row (``SELECT ... FOR UPDATE``) and checks the expected
version under that lock, so concurrent editors serialise and a stale one gets
:class:`~layers.errors.EditConflict` with nothing changed; starting and committing a
plan also take a transaction-level advisory lock on the schema's network, so plan ids
and version numbers are handed out once. Readers of a plan share-lock its row, so they
never see a half-replaced plan. Timestamps come from the database clock
(``clock_timestamp()`` taken under those locks), so validity periods follow commit
order even when several application servers write. A trigger refuses UPDATE, DELETE
and TRUNCATE on the edit log.

Requires ``psycopg`` (``pip install geogrid[postgis]``), PostgreSQL ≥ 11 and PostGIS ≥ 3.0.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from layers._guards import Limits, check_wkb
from layers.errors import (
    EditConflict,
    InputTooLargeError,
    NotFoundError,
    Problem,
    StoreError,
    ValidationError,
    format_ids,
)
from layers.schema import SCHEMAS, STORAGE_CRS, LayerKind, coerce_dtypes
from layers.store import (
    _EDIT_LOG_COLUMNS,
    _HIDDEN_PREFIX,
    _LOG,
    _OUTSIDE,
    _PLANS,
    _VERSIONS,
    PlanInfo,
    Store,
    VersionInfo,
    _protected,
    _refuse_internal_names,
    _refuse_unless_based_on,
    _refuse_unless_network_at,
    _refuse_unless_open_at,
)

__all__ = ["PostGISStore"]

_META_TABLE = "geogrid_metadata"
_KINDS = {k.value for k in LayerKind}
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1
_GRIDS = LayerKind.GRIDS.value
_PLAN_COLUMNS = ("plan_id", "name", "status", "version", "base_version", "created_by", "created_at", "updated_at")
_PLAN_ROW = f"SELECT {', '.join(_PLAN_COLUMNS)} FROM {{plans}} WHERE plan_id = %s"
_PLAN_ROW_FOR_SHARE = f"{_PLAN_ROW} FOR SHARE"  # readers: wait for a writer, keep writers out while reading
_PLAN_ROW_FOR_UPDATE = f"{_PLAN_ROW} FOR UPDATE"  # writers: one at a time per plan
_APPEND_ONLY_FN = f"{_LOG}_append_only"
_APPEND_ONLY_TRIGGERS = (f"{_LOG}_no_update_delete", f"{_LOG}_no_truncate")

# The plan tables: the GeoPackage store's, with timestamps as timestamptz and the log's parameters as json.
_PLAN_DDL = """
CREATE TABLE IF NOT EXISTS {plans} (
    plan_id text PRIMARY KEY, name text NOT NULL,
    status text NOT NULL CHECK (status IN ('open', 'committed', 'discarded')),
    version integer NOT NULL CHECK (version >= 0), base_version integer NOT NULL,
    created_by text NOT NULL, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS {versions} (
    version integer PRIMARY KEY, valid_from timestamptz, valid_to timestamptz, plan_id text, committed_by text);
CREATE TABLE IF NOT EXISTS {log} (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz NOT NULL, author text NOT NULL,
    plan_id text, operation text NOT NULL, parameters json NOT NULL, version_before integer, version_after integer);
CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'the edit log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$fn$;
"""
_GUARD_FN = f"{_HIDDEN_PREFIX}guard_rows"
_GUARD_DDL = """
CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'insufficient_privilege';
END
$fn$;
"""
_TRIGGER_DDL = (
    "CREATE TRIGGER {trigger} BEFORE UPDATE OR DELETE ON {log} FOR EACH ROW EXECUTE FUNCTION {fn}()",
    "CREATE TRIGGER {trigger} BEFORE TRUNCATE ON {log} FOR EACH STATEMENT EXECUTE FUNCTION {fn}()",
)


def _iso(value: datetime | None) -> str | None:
    """Return a database timestamp as the GeoPackage store writes it (ISO 8601, UTC, microseconds)."""
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


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


def _check_column(name: str, layer: str) -> str:
    """Refuse a column name PostgreSQL would change or the table layout owns; any other text is quoted as it is.

    Column names come from users' files (``户数``, ``Level``): the GeoPackage store keeps them,
    so this one does too. PostgreSQL cuts identifiers to 63 bytes without a word, and
    ``fid`` and ``geometry`` are the table's own columns.
    """
    size = len(name.encode("utf-8"))
    if not name or "\x00" in name or size > _MAX_IDENTIFIER_BYTES or name in ("fid", "geometry"):
        msg = (
            f"column {name!r} of layer {layer!r} cannot be stored in PostGIS: a column name must be 1 to "
            f"{_MAX_IDENTIFIER_BYTES} bytes of UTF-8 (this one has {size}) and not 'fid' or 'geometry'; rename it"
        )
        raise StoreError(msg)
    return name


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
    def _tables(self, con: Any) -> list[str]:
        """Every layer (table with a geometry column) in the schema, the hidden plan and version layers too."""
        rows = con.execute(
            "SELECT f_table_name FROM geometry_columns WHERE f_table_schema = %s ORDER BY f_table_name",
            (self.schema,),
        ).fetchall()
        return [r[0] for r in rows]

    def layer_names(self) -> list[str]:
        """Names of the layers (tables with a geometry column) in the schema; plan and version layers are internal."""
        with self._connect() as con:
            return [n for n in self._tables(con) if not n.startswith(_HIDDEN_PREFIX)]

    def _no_layer(self, name: str, tables: list[str]) -> StoreError:
        names = [n for n in tables if not n.startswith(_HIDDEN_PREFIX)]
        msg = f"PostGIS schema {self.schema!r} has no layer {name!r}; it has: {', '.join(names) or 'none'}"
        return StoreError(msg)

    def read(self, name: str, *, bbox: tuple[float, float, float, float] | None = None) -> gpd.GeoDataFrame:
        """Read layer ``name`` (optionally only features intersecting ``bbox`` in lon/lat)."""
        with self._connect() as con:
            tables = self._tables(con)
            if name not in tables:
                raise self._no_layer(name, tables)
            gdf = self._read_table(con, name, bbox=bbox)
        if name in _KINDS:
            coerce_dtypes(gdf, SCHEMAS[LayerKind(name)])
        return gdf

    def count(self, name: str) -> int:
        """Return the number of rows of layer ``name`` (0 if there is no such layer): one SQL count."""
        from psycopg import sql

        with self._connect() as con:
            if name not in self._tables(con):
                return 0
            row = con.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(self.schema, name))).fetchone()
        return int(row[0]) if row else 0

    def _read_table(
        self, con: Any, name: str, *, bbox: tuple[float, float, float, float] | None = None
    ) -> gpd.GeoDataFrame:
        """Read one table on ``con`` (inside the caller's transaction), in ``fid`` order."""
        from psycopg import sql

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
        wkbs = [None if r[-1] is None else bytes(r[-1]) for r in rows]
        try:  # the guard of the door, before GEOS parses anything (deep collections crash it)
            check_wkb(wkbs, Limits(), source=f"layer {name!r} of PostGIS schema {self.schema!r}")
        except InputTooLargeError as err:
            msg = f"{err}. The store holds geometries geogrid refuses to parse: fix or delete those rows, then retry"
            raise StoreError(msg) from err
        geoms = shapely.from_wkb(np.array(wkbs, dtype=object)) if rows else []
        return gpd.GeoDataFrame(pd.DataFrame(data, columns=cols), geometry=list(geoms), crs=STORAGE_CRS)

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
    def write(
        self,
        layers: Mapping[str, gpd.GeoDataFrame],
        *,
        metadata: Mapping[str, Any] | None = None,
        author: str | None = None,
        based_on: int | None = None,
    ) -> None:
        """Replace ``layers`` in one transaction and update metadata.

        Writing ``grids`` stores a new version of the network, as a commit does.
        """
        from psycopg import sql

        _refuse_internal_names(layers)
        for name, gdf in layers.items():
            _check_name(name, "layer name")
            if gdf.crs is None:
                msg = f"layer {name!r} has no CRS; the store keeps {STORAGE_CRS}: set it before writing"
                raise StoreError(msg)
        if _GRIDS in layers:
            self._adopt_outside_edits()
        with self._connect() as con, con.transaction():
            con.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            extra = dict(metadata or {})
            before: int | None = None
            if _GRIDS in layers:
                self._lock_network(con)
                self._ensure_plan_tables(con)
                if _GRIDS in self._tables(con):
                    before = self._baseline(con)
                if based_on is not None:
                    _refuse_unless_network_at(before or 1, int(based_on))
            for name, gdf in layers.items():
                self._load_layer(con, name, gdf)
            if _GRIDS in layers:
                if before is None:
                    self._copy_table(con, _GRIDS, self._version_layer(1))
                    con.execute(self._sql("INSERT INTO {versions} VALUES (1, NULL, NULL, NULL, NULL)"))
                    extra["network_version"] = 1
                else:
                    at = self._clock(con)
                    self._copy_table(con, _GRIDS, self._version_layer(before + 1))
                    con.execute(self._sql("UPDATE {versions} SET valid_to = %s WHERE version = %s"), (at, before))
                    con.execute(
                        self._sql("INSERT INTO {versions} VALUES (%s, %s, NULL, NULL, %s)"), (before + 1, at, author)
                    )
                    self._log(con, author or "import", None, "import", {"network_version": before + 1}, None, None, at)
                    extra["network_version"] = before + 1
            self._write_metadata(con, extra)

    def _baseline(self, con: Any) -> int:
        """Store the current grids as version 1 if no version exists yet; return the current version.

        Call under the network lock, with the plan tables present.
        """
        current = con.execute(self._sql("SELECT max(version) FROM {versions}")).fetchone()[0]
        if current is None:
            self._copy_table(con, _GRIDS, self._version_layer(1))
            con.execute(self._sql("INSERT INTO {versions} VALUES (1, NULL, NULL, NULL, NULL)"))
            return 1
        return int(current)

    def _adopt_outside_edits(self) -> None:
        """Record a ``grids`` table replaced outside geogrid (its guard trigger gone) as a new version.

        Its own transaction, committed before the caller's: a refused commit does not undo the
        record. Row edits cannot happen (the trigger refuses them); a replaced table equal to
        the current version is only given its trigger back.
        """
        from psycopg import sql

        with self._connect() as con, con.transaction():
            tables = self._tables(con)
            if _GRIDS not in tables:
                return
            guarded = con.execute(
                "SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s AND t.tgname = %s",
                (self.schema, _GRIDS, f"{_HIDDEN_PREFIX}guard"),
            ).fetchone()
            if guarded:
                return
            self._lock_network(con)
            self._ensure_plan_tables(con)
            current = self._baseline(con)
            layer = self._version_layer(current)

            def columns(table: str) -> list[str]:
                return [
                    r[0]
                    for r in con.execute(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                        "AND table_name = %s AND column_name <> 'fid' ORDER BY ordinal_position",
                        (self.schema, table),
                    )
                ]

            cols = columns(_GRIDS)
            same = False
            if layer in tables and cols == columns(layer):
                sel = sql.SQL(", ").join([sql.Identifier(c) for c in cols])
                a, b = self._id(_GRIDS), self._id(layer)
                same = bool(
                    con.execute(
                        sql.SQL(
                            "SELECT NOT EXISTS (SELECT {s} FROM {a} EXCEPT ALL SELECT {s} FROM {b}) "
                            "AND NOT EXISTS (SELECT {s} FROM {b} EXCEPT ALL SELECT {s} FROM {a})"
                        ).format(s=sel, a=a, b=b)
                    ).fetchone()[0]
                )
            if not same:
                self._read_table(con, _GRIDS)  # a geometry that crashes GEOS is refused, not made a version
                at = self._clock(con)
                self._copy_table(con, _GRIDS, self._version_layer(current + 1))
                con.execute(self._sql("UPDATE {versions} SET valid_to = %s WHERE version = %s"), (at, current))
                con.execute(
                    self._sql("INSERT INTO {versions} VALUES (%s, %s, NULL, NULL, %s)"),
                    (current + 1, at, _OUTSIDE),
                )
                self._log(con, _OUTSIDE, None, "outside_edit", {"network_version": current + 1}, None, None, at)
                self._write_metadata(con, {"network_version": current + 1})
            self._guard(con, _GRIDS)

    def _guard(self, con: Any, name: str) -> None:
        """Refuse row changes to ``name`` from any client if it is a protected layer (the network, versions, plans)."""
        from psycopg import sql

        why = _protected(name)
        if why is None:
            return
        fn = self._id(_GUARD_FN)
        con.execute(sql.SQL(_GUARD_DDL).format(fn=fn))
        for trigger in (f"{_HIDDEN_PREFIX}guard", f"{_HIDDEN_PREFIX}guard_truncate"):
            con.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(trigger), self._id(name)))
        con.execute(
            sql.SQL(
                "CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE OR DELETE ON {tbl} "
                "FOR EACH STATEMENT EXECUTE FUNCTION {fn}({why})"
            ).format(
                trigger=sql.Identifier(f"{_HIDDEN_PREFIX}guard"),
                tbl=self._id(name),
                fn=fn,
                why=sql.Literal(why),
            )
        )
        con.execute(
            sql.SQL(
                "CREATE TRIGGER {trigger} BEFORE TRUNCATE ON {tbl} FOR EACH STATEMENT EXECUTE FUNCTION {fn}({why})"
            ).format(
                trigger=sql.Identifier(f"{_HIDDEN_PREFIX}guard_truncate"),
                tbl=self._id(name),
                fn=fn,
                why=sql.Literal(why),
            )
        )

    def _write_metadata(self, con: Any, extra: Mapping[str, Any]) -> None:
        from psycopg import sql

        meta_tbl = sql.Identifier(self.schema, _META_TABLE)
        con.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, value text NOT NULL)").format(meta_tbl)
        )
        now = datetime.now(UTC).isoformat(timespec="seconds")
        values: dict[str, Any] = {"schema_version": 1, "updated_at": now, **extra}
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
        staging, cols = self._create_staging(con, name, gdf)
        self._copy_rows(con, staging, cols, gdf)
        self._swap_in(con, name, staging)

    def _create_staging(self, con: Any, name: str, gdf: gpd.GeoDataFrame) -> tuple[str, list[str]]:
        """Create an empty staging table with the columns of ``gdf``; return its name and the columns."""
        from psycopg import sql

        geom_col = gdf.geometry.name
        cols = [str(c) for c in gdf.columns if c != geom_col]
        for c in cols:
            _check_column(str(c), name)
        staging = f"{name}__staging_{secrets.token_hex(4)}"
        con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.schema, staging)))
        col_defs: list[sql.Composable] = [sql.SQL("fid bigserial")]
        col_defs += [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_pg_type(gdf[c]))) for c in cols]
        col_defs.append(sql.SQL("geometry geometry(Geometry, 4326)"))
        con.execute(
            sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(self.schema, staging), sql.SQL(", ").join(col_defs))
        )
        return staging, cols

    def _copy_rows(self, con: Any, staging: str, cols: list[str], gdf: gpd.GeoDataFrame) -> None:
        """COPY the rows of ``gdf`` (in the storage CRS) into the staging table, in order."""
        from psycopg import sql

        out = gdf if gdf.crs.to_epsg() in (4326, 4490) else gdf.to_crs(STORAGE_CRS)
        wkb = shapely.to_wkb(shapely.set_srid(np.asarray(out.geometry.array), 4326), hex=True, include_srid=True)
        frame = pd.DataFrame({c: out[c].astype(object).where(out[c].notna(), None) for c in cols}, index=out.index)
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(self.schema, staging),
            sql.SQL(", ").join([sql.Identifier(c) for c in [*cols, "geometry"]]),
        )
        with con.cursor() as cur, cur.copy(copy_sql) as copy:
            for row, g in zip(frame.itertuples(index=False, name=None), wkb, strict=True):
                copy.write_row((*row, g))

    def _swap_in(self, con: Any, name: str, staging: str) -> None:
        """Replace table ``name`` by the staging table (key, spatial index, guard triggers)."""
        from psycopg import sql

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
        self._guard(con, name)

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

        As :meth:`layers.store.GeoPackageStore.write_chunks`: each part is COPied into a
        staging table as it arrives (memory bounded by a part); then the staging table
        replaces the layer, or its rows are appended after the stored ones in their order.
        A problem raised by the parts, an id already stored, a failure or a killed writer
        leave the layer as it was (one transaction).
        """
        from psycopg import sql

        if name == _GRIDS or mode not in ("replace", "append"):
            msg = f"write_chunks writes point layers with mode 'replace' or 'append', not {name!r} / {mode!r}"
            raise StoreError(msg)
        _refuse_internal_names({name: None})
        _check_name(name, "layer name")
        with self._connect() as con, con.transaction():
            con.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            staging: str | None = None
            cols: list[str] = []
            for part in parts:
                if part.crs is None:
                    msg = f"layer {name!r} has no CRS; the store keeps {STORAGE_CRS}: set it before writing"
                    raise StoreError(msg)
                if staging is None:
                    staging, cols = self._create_staging(con, name, part)
                self._copy_rows(con, staging, cols, part)
            if staging is None:
                msg = f"no rows to write to layer {name!r}"
                raise StoreError(msg)
            if mode == "append" and name in self._tables(con):
                self._append_staging(con, name, staging, cols, source=source or name)
            else:
                self._swap_in(con, name, staging)
            self._write_metadata(con, dict(metadata or {}))
            row = con.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(self.schema, name))).fetchone()
            return int(row[0])

    def _append_staging(self, con: Any, name: str, staging: str, cols: list[str], *, source: str) -> None:
        """Append the staging table's rows after those of ``name`` (ids already there refused), then drop it."""
        from psycopg import sql

        table, stage = sql.Identifier(self.schema, name), sql.Identifier(self.schema, staging)
        have = {
            str(r[0]): str(r[1])
            for r in con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = %s",
                (self.schema, name),
            )
        }
        id_col = SCHEMAS[LayerKind(name)].id_column if name in {k.value for k in LayerKind} else None
        if id_col is not None and id_col in have and id_col in cols:
            qi = sql.Identifier(id_col)
            clash = con.execute(
                sql.SQL("SELECT s.fid, s.{} FROM {} s WHERE s.{} IN (SELECT {} FROM {}) ORDER BY s.fid").format(
                    qi, stage, qi, qi, table
                )
            ).fetchall()
            if clash:
                first = int(con.execute(sql.SQL("SELECT min(fid) FROM {}").format(stage)).fetchone()[0])
                rows = tuple(int(r[0]) - first for r in clash)
                ids = tuple(str(r[1]) for r in clash)
                msg = (
                    f"{id_col} {format_ids(ids)} already in the store at rows "
                    f"{', '.join(map(str, rows[:10]))}{' ...' if len(rows) > 10 else ''}: give new ids, "
                    "or use --mode replace to replace the whole layer"
                )
                raise ValidationError(source, [Problem("id_exists", msg, rows, ids)])
        for c in cols:
            if c not in have:
                decl = con.execute(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass "
                    "AND attname = %s",
                    (f'"{self.schema}"."{staging}"', c),
                ).fetchone()[0]
                con.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(table, sql.Identifier(c), sql.SQL(decl)))
        names = sql.SQL(", ").join([sql.Identifier(c) for c in [*cols, "geometry"]])
        con.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ORDER BY fid").format(table, names, names, stage))
        con.execute(sql.SQL("DROP TABLE {}").format(stage))

    def _copy_table(self, con: Any, src: str, dst: str) -> None:
        """Replace table ``dst`` by a copy of ``src`` made in the database (same columns, types and order)."""
        from psycopg import sql

        _check_name(dst, "layer name")
        con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.schema, dst)))
        con.execute(
            sql.SQL("CREATE TABLE {} AS SELECT * FROM {} ORDER BY fid").format(
                sql.Identifier(self.schema, dst), sql.Identifier(self.schema, src)
            )
        )
        con.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (fid)").format(sql.Identifier(self.schema, dst)))
        con.execute(
            sql.SQL("CREATE INDEX {} ON {} USING gist (geometry)").format(
                sql.Identifier(f"{dst}_geometry_idx"), sql.Identifier(self.schema, dst)
            )
        )
        self._guard(con, dst)

    # -- plans and versions --------------------------------------------------------
    @staticmethod
    def _plan_table(plan_id: str) -> str:
        return _check_name(f"{_HIDDEN_PREFIX}plan_{plan_id}", "plan layer")

    def _id(self, name: str) -> Any:
        from psycopg import sql

        return sql.Identifier(self.schema, name)

    def _sql(self, template: str) -> Any:
        """Compose ``template`` with the plan tables' quoted names ({plans}, {versions}, {log})."""
        from psycopg import sql

        return sql.SQL(template).format(plans=self._id(_PLANS), versions=self._id(_VERSIONS), log=self._id(_LOG))

    def _rows(self, template: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one read-only query on the plan tables; no rows when they do not exist yet."""
        from psycopg import errors

        with self._connect() as con:
            try:
                return list(con.execute(self._sql(template), params).fetchall())
            except errors.UndefinedTable:
                return []

    def _lock_network(self, con: Any) -> None:
        """Serialise the writers that hand out plan ids and network versions (until the transaction ends)."""
        con.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"geogrid network {self.schema}",))

    def _ensure_plan_tables(self, con: Any) -> None:
        """Create the plan, version and log tables and the log's triggers if missing (under the network lock)."""
        from psycopg import sql

        present = {
            r[0]
            for r in con.execute(
                "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
                (self.schema, _LOG),
            ).fetchall()
        }
        if present.issuperset(_APPEND_ONLY_TRIGGERS):
            return
        con.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
        fn = self._id(_APPEND_ONLY_FN)
        con.execute(
            sql.SQL(_PLAN_DDL).format(plans=self._id(_PLANS), versions=self._id(_VERSIONS), log=self._id(_LOG), fn=fn)
        )
        for trigger, ddl in zip(_APPEND_ONLY_TRIGGERS, _TRIGGER_DDL, strict=True):
            if trigger not in present:
                con.execute(sql.SQL(ddl).format(trigger=sql.Identifier(trigger), log=self._id(_LOG), fn=fn))

    @staticmethod
    def _clock(con: Any) -> datetime:
        """Return the database's clock now (not the transaction's start: read after the locks were granted)."""
        now: datetime = con.execute("SELECT clock_timestamp()").fetchone()[0]
        return now

    @staticmethod
    def _plan_of(row: tuple[Any, ...]) -> PlanInfo:
        created_at, updated_at = str(_iso(row[6])), str(_iso(row[7]))  # NOT NULL columns
        return PlanInfo(
            str(row[0]), str(row[1]), str(row[2]), int(row[3]), int(row[4]), str(row[5]), created_at, updated_at
        )

    @staticmethod
    def _version_of(row: tuple[Any, ...]) -> VersionInfo:
        return VersionInfo(int(row[0]), _iso(row[1]), _iso(row[2]), row[3], row[4])

    def _no_plan(self, plan_id: str) -> NotFoundError:
        known = [p.plan_id for p in self.plans()]
        msg = (
            f"PostGIS schema {self.schema!r} has no plan {plan_id!r}; plans: {', '.join(known) or 'none'} "
            "(geogrid plan list)"
        )
        return NotFoundError(msg)

    def _plan_row(self, con: Any, plan_id: str, lock: Literal["share", "update"]) -> PlanInfo | None:
        """Read the plan's record on ``con`` with a row lock (``FOR SHARE`` or ``FOR UPDATE``); None if missing."""
        from psycopg import errors

        query = _PLAN_ROW_FOR_SHARE if lock == "share" else _PLAN_ROW_FOR_UPDATE
        try:
            found = con.execute(self._sql(query), (str(plan_id),)).fetchone()
        except errors.UndefinedTable:
            return None
        return None if found is None else self._plan_of(found)

    def _locked(self, con: Any, plan_id: str, expected_version: int) -> PlanInfo:
        """Inside a transaction: lock the plan's row, then its record, or EditConflict if it moved on."""
        info = self._plan_row(con, plan_id, "update")
        if info is None:
            raise self._no_plan(plan_id)
        _refuse_unless_open_at(info, plan_id, expected_version)
        return info

    def _advance(self, con: Any, info: PlanInfo, status: str, at: datetime) -> int:
        """Move the (row-locked, checked) plan to its next version and ``status``; return the version it was at.

        The update is conditional on the version and status checked under the lock, and
        must hit exactly one row: belt and braces, should a caller ever skip the lock.
        """
        cur = con.execute(
            self._sql(
                "UPDATE {plans} SET status = %s, version = version + 1, updated_at = %s "
                "WHERE plan_id = %s AND version = %s AND status = 'open'"
            ),
            (status, at, info.plan_id, info.version),
        )
        if cur.rowcount != 1:
            msg = f"plan {info.plan_id!r} changed while being saved: nothing was changed; reload the plan and redo the edit"
            raise EditConflict(msg, expected=info.version, actual=None)
        return info.version

    def _log(
        self,
        con: Any,
        author: str,
        plan_id: str | None,
        operation: str,
        parameters: Mapping[str, Any],
        before: int | None,
        after: int | None,
        at: datetime,
    ) -> None:
        con.execute(
            self._sql(
                "INSERT INTO {log} (at, author, plan_id, operation, parameters, version_before, version_after) "
                "VALUES (%s, %s, %s, %s, %s::json, %s, %s)"
            ),
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

    def network_version(self) -> int:
        """Return the number of the current committed version of the grid network (1 before any commit)."""
        rows = self._rows("SELECT max(version) FROM {versions}")
        return int(rows[0][0]) if rows and rows[0][0] is not None else 1

    def versions(self) -> list[VersionInfo]:
        """List every committed version with its validity period, oldest first (empty before any commit)."""
        rows = self._rows(
            "SELECT version, valid_from, valid_to, plan_id, committed_by FROM {versions} ORDER BY version"
        )
        return [self._version_of(r) for r in rows]

    def _describe(self) -> str:
        return f"PostGIS schema {self.schema!r}"

    def plans(self) -> list[PlanInfo]:
        """List every plan (open, committed or discarded), oldest first."""
        rows = self._rows(f"SELECT {', '.join(_PLAN_COLUMNS)} FROM {{plans}} ORDER BY created_at, plan_id")
        return [self._plan_of(r) for r in rows]

    def plan_info(self, plan_id: str) -> PlanInfo:
        """Return one plan's record; NotFoundError if there is none."""
        rows = self._rows(f"SELECT {', '.join(_PLAN_COLUMNS)} FROM {{plans}} WHERE plan_id = %s", (str(plan_id),))
        if not rows:
            raise self._no_plan(plan_id)
        return self._plan_of(rows[0])

    def read_plan(self, plan_id: str) -> tuple[gpd.GeoDataFrame, PlanInfo]:
        """Read an open plan's grid layer and its record together (consistent).

        The plan's row is share-locked while its layer is read: a writer (who locks the
        row for update) either finished before, or waits until the read is done.
        """
        with self._connect() as con, con.transaction():
            info = self._plan_row(con, plan_id, "share")
            if info is None:
                raise self._no_plan(plan_id)
            if info.status != "open":
                msg = f"plan {plan_id!r} is {info.status}; only open plans can be read or edited"
                raise StoreError(msg)
            grids = self._read_table(con, self._plan_table(info.plan_id))
        return grids, info

    def create_plan(self, name: str, *, author: str) -> PlanInfo:
        """Copy the current grid network into a new open plan (version 0), in the database."""
        self._adopt_outside_edits()
        with self._connect() as con, con.transaction():
            tables = self._tables(con)
            if "grids" not in tables:
                raise self._no_layer(_GRIDS, tables)
            self._lock_network(con)
            self._ensure_plan_tables(con)
            ids = [r[0] for r in con.execute(self._sql("SELECT plan_id FROM {plans}")).fetchall()]
            plan_id = f"p{1 + max((int(i[1:]) for i in ids if i[1:].isdigit()), default=0)}"
            base = self._baseline(con)
            at = self._clock(con)
            self._copy_table(con, "grids", self._plan_table(plan_id))
            con.execute(
                self._sql("INSERT INTO {plans} VALUES (%s, %s, 'open', 0, %s, %s, %s, %s)"),
                (plan_id, str(name), base, str(author), at, at),
            )
            self._log(con, author, plan_id, "create", {"name": name, "base_version": base}, None, 0, at)
            info = self._plan_row(con, plan_id, "share")
        assert info is not None
        return info

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

        Logs the edit and increments the version in one transaction; the version is
        checked with the plan's row locked, so concurrent savers serialise.
        """
        if grids.crs is None:
            msg = "the plan's grids have no CRS; the store keeps EPSG:4326: set it before saving"
            raise StoreError(msg)
        with self._connect() as con, con.transaction():
            info = self._locked(con, plan_id, expected_version)
            at = self._clock(con)
            self._load_layer(con, self._plan_table(info.plan_id), grids)
            v = self._advance(con, info, "open", at)
            self._log(con, author, info.plan_id, operation, parameters, v, v + 1, at)
            saved = self._plan_row(con, info.plan_id, "update")
        assert saved is not None
        return saved

    def discard_plan(self, plan_id: str, *, expected_version: int, author: str) -> PlanInfo:
        """Discard an open plan at ``expected_version``; the network is untouched."""
        from psycopg import sql

        with self._connect() as con, con.transaction():
            info = self._locked(con, plan_id, expected_version)
            at = self._clock(con)
            v = self._advance(con, info, "discarded", at)
            con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._id(self._plan_table(info.plan_id))))
            self._log(con, author, info.plan_id, "discard", {}, v, v + 1, at)
            discarded = self._plan_row(con, info.plan_id, "update")
        assert discarded is not None
        return discarded

    def commit_plan(self, plan_id: str, *, expected_version: int, author: str) -> VersionInfo:
        """Make an open plan at ``expected_version`` the current network, as a new version.

        In one transaction, as :meth:`GeoPackageStore.commit_plan <layers.store.GeoPackageStore.commit_plan>`:
        the ``grids`` layer is replaced, the new version is stored with ``valid_from`` =
        now and the previous one gets ``valid_to`` = now (the first commit also stores
        the original network as version 1), the plan is marked committed and the commit
        is logged. EditConflict if the plan moved on, or another plan was committed since
        this one was copied from the network.
        """
        from psycopg import sql

        self._adopt_outside_edits()
        with self._connect() as con, con.transaction():
            self._lock_network(con)
            info = self._locked(con, plan_id, expected_version)
            current = self._baseline(con)
            _refuse_unless_based_on(info, current)
            at = self._clock(con)
            plan_table = self._plan_table(info.plan_id)
            self._copy_table(con, plan_table, self._version_layer(current + 1))
            self._copy_table(con, plan_table, "grids")
            con.execute(self._sql("UPDATE {versions} SET valid_to = %s WHERE version = %s"), (at, current))
            con.execute(
                self._sql("INSERT INTO {versions} VALUES (%s, %s, NULL, %s, %s)"),
                (current + 1, at, info.plan_id, str(author)),
            )
            v = self._advance(con, info, "committed", at)
            con.execute(sql.SQL("DROP TABLE {}").format(self._id(plan_table)))
            self._log(con, author, info.plan_id, "commit", {"network_version": current + 1}, v, v + 1, at)
            self._write_metadata(con, {"network_version": current + 1})
        return self._version_of((current + 1, at, None, info.plan_id, str(author)))

    def edit_log(self, plan_id: str | None = None) -> pd.DataFrame:
        """Read the append-only edit log (who, when, operation, parameters, version before/after), oldest first."""
        cols = list(_EDIT_LOG_COLUMNS)
        where, params = ("", ()) if plan_id is None else (" WHERE plan_id = %s", (str(plan_id),))
        rows = self._rows(f"SELECT {', '.join(cols)} FROM {{log}}{where} ORDER BY seq", params)
        at = cols.index("at")
        return pd.DataFrame([(*r[:at], _iso(r[at]), *r[at + 1 :]) for r in rows], columns=cols)
