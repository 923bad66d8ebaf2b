"""Backend-neutral helpers for store tests: reopen a store elsewhere, take a snapshot of all it holds."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlencode

import geopandas as gpd
import shapely

from layers.postgis import PostGISStore
from layers.store import GeoPackageStore, Store


def location(store: Store) -> str:
    """What ``open_store`` takes to open ``store`` again (in another process)."""
    if isinstance(store, GeoPackageStore):
        return str(store.path)
    from psycopg.conninfo import conninfo_to_dict

    assert isinstance(store, PostGISStore)
    params = {k: str(v) for k, v in conninfo_to_dict(store.dsn).items()}
    return "postgresql:///?" + urlencode({**params, "schema": store.schema})


def snapshot(store: Store) -> Any:
    """The store's whole content: the file's bytes, or every table of the schema with every row."""
    if isinstance(store, GeoPackageStore):
        return hashlib.sha256(store.path.read_bytes()).hexdigest()
    import psycopg
    from psycopg import sql

    assert isinstance(store, PostGISStore)
    with psycopg.connect(store.dsn) as con:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY table_name",
                (store.schema,),
            )
        ]
        return {
            t: con.execute(
                sql.SQL("SELECT array_agg(x::text ORDER BY x::text) FROM {} x").format(sql.Identifier(store.schema, t))
            ).fetchone()[0]
            for t in tables
        }


def two_grids(households: int = 10) -> gpd.GeoDataFrame:
    """A district ``D`` and its one grid ``a`` (the same square), for store round trips."""
    return gpd.GeoDataFrame(
        {"grid_id": ["D", "a"], "parent_id": [None, "D"], "level": [0, 1], "households": [households] * 2},
        geometry=[shapely.box(117.2, 39.1, 117.22, 39.11)] * 2,
        crs="EPSG:4326",
    )
