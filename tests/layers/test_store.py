import os
import signal
import subprocess
import sys
import textwrap

import pytest

from layers.errors import StoreError
from layers.store import GeoPackageStore, open_store


def test_round_trip_keeps_ids_names_and_dtypes(tmp_store, tiny_grids):
    tmp_store.write({"grids": tiny_grids}, metadata={"district": "河北区"})
    back = tmp_store.read("grids")
    assert back["grid_id"].tolist() == tiny_grids["grid_id"].tolist()
    assert back["name"].tolist() == tiny_grids["name"].tolist()
    assert str(back["level"].dtype) == "Int64"
    assert back.crs.to_epsg() == 4326
    meta = tmp_store.metadata()
    assert meta["district"] == "河北区"
    assert meta["schema_version"] == 1


def test_reading_a_missing_store_says_how_to_create_it(tmp_path):
    with pytest.raises(StoreError, match="geogrid demo"):
        GeoPackageStore(tmp_path / "nope.gpkg").read("grids")


def test_reading_a_missing_layer_lists_the_layers(tmp_store, tiny_grids):
    tmp_store.write({"grids": tiny_grids})
    with pytest.raises(StoreError, match=r"has no layer 'cameras'.*grids"):
        tmp_store.read("cameras")


def test_postgis_urls_open_a_postgis_store():
    from layers.postgis import PostGISStore

    store = open_store("postgresql://u:secret@db/geo?schema=hq")
    assert isinstance(store, PostGISStore)
    assert store.schema == "hq"
    assert "secret" not in repr(store)


def test_writer_killed_mid_write_leaves_store_unchanged(tmp_store, tiny_grids, tmp_path):
    tmp_store.write({"grids": tiny_grids})
    before = tmp_store.path.read_bytes()
    script = tmp_path / "writer.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, sys, time
            sys.path.insert(0, {os.getcwd()!r})
            import geopandas as gpd, shapely, numpy as np
            from layers.store import GeoPackageStore
            n = 200_000
            g = gpd.GeoDataFrame({{"grid_id": [str(i) for i in range(n)], "parent_id": [None] * n,
                                  "level": [0] * n}},
                                 geometry=shapely.points(np.random.rand(n), np.random.rand(n)).tolist(),
                                 crs="EPSG:4326")
            s = GeoPackageStore({str(tmp_store.path)!r})
            print("writing", flush=True)
            s.write({{"grids": g}})
            print("done", flush=True)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert tmp_store.path.read_bytes() == before
    assert tmp_store.read("grids")["grid_id"].tolist() == tiny_grids["grid_id"].tolist()
    # The next writer finds the store as it was (SQLite rolls the dead writer's journal back).
    tmp_store.write({"grids": tiny_grids.iloc[:2]})
    assert len(tmp_store.read("grids")) == 2


def test_a_write_leaves_no_file_beside_the_store(tmp_store, tiny_grids, tmp_path):
    tmp_store.write({"grids": tiny_grids})
    tmp_store.write({"grids": tiny_grids.iloc[:3]})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.gpkg"]
    assert len(tmp_store.read("grids")) == 3
