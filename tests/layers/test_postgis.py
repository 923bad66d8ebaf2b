"""The PostGIS store honours the same contract as the GeoPackage store."""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd
import pytest

import geopandas as gpd
import shapely
from geopandas.testing import assert_geodataframe_equal

from layers.errors import StoreError
from layers.postgis import PostGISStore
from layers.store import Store, open_store
from tests._stores import snapshot


@pytest.fixture
def store(postgis_dsn, request):
    return PostGISStore(postgis_dsn, schema=f"t_{request.node.name[:40].lower().replace('[', '_').replace(']', '')}")


def _incidents() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "incident_id": ["e1", "e2"],
            "reported_at": pd.to_datetime(["2025-03-01 08:00", "2025-03-02 09:30"]).tz_localize("Asia/Shanghai"),
            "closed_at": [pd.Timestamp("2025-03-01 12:00", tz="Asia/Shanghai"), pd.NaT],
            "category": ["环境卫生", "占道经营"],
            "source": ["hotline", "grid_worker"],
            "status": ["closed", "handling"],
            "description": ["<img src=x onerror=alert(1)> 垃圾", None],
        },
        geometry=[shapely.Point(117.21, 39.105), shapely.Point(117.215, 39.107)],
        crs="EPSG:4326",
    )


def test_round_trip_grids_and_incidents(store, tiny_grids):
    store.write({"grids": tiny_grids, "incidents": _incidents()}, metadata={"district": "河北区"})
    assert store.layer_names() == ["grids", "incidents"]
    back = store.read("grids")
    assert back["grid_id"].tolist() == tiny_grids["grid_id"].tolist()
    assert back["name"].tolist() == tiny_grids["name"].tolist()
    assert shapely.equals(back.geometry.values, tiny_grids.geometry.values).all()
    inc = store.read("incidents")
    assert inc["description"].iloc[0] == "<img src=x onerror=alert(1)> 垃圾"
    assert inc["reported_at"].iloc[0] == pd.Timestamp("2025-03-01 00:00", tz="UTC")
    assert pd.isna(inc["closed_at"].iloc[1])
    assert store.metadata()["district"] == "河北区"


def test_same_frames_as_geopackage(store, tmp_store, tiny_grids):
    store.write({"grids": tiny_grids})
    tmp_store.write({"grids": tiny_grids})
    assert_geodataframe_equal(store.read("grids"), tmp_store.read("grids"), check_like=True)


def test_columns_named_as_users_name_them_are_kept_as_in_the_geopackage(store, tmp_store, tiny_grids):
    """The README's 网格.shp has 户数 and 人口; a GeoPackage keeps such columns, PostGIS must too."""
    g = tiny_grids.copy()
    g["户数"] = [10, 5, 5, 2, 3, 4, 1]
    g["Shops"] = 3  # quoted as it is, never folded to lower case
    g['a"b; DROP TABLE grids; --'] = 1.5
    store.write({"grids": g})
    tmp_store.write({"grids": g})
    assert_geodataframe_equal(store.read("grids"), tmp_store.read("grids"), check_like=True)
    assert store.read("grids")["户数"].tolist() == [10, 5, 5, 2, 3, 4, 1]


def test_bbox_filter(store, tiny_grids):
    store.write({"grids": tiny_grids})
    got = store.read("grids", bbox=(117.2, 39.1, 117.205, 39.103))
    assert set(got["grid_id"]) == {"D", "S1", "G1"}


def test_a_failed_write_changes_nothing(store, tiny_grids):
    store.write({"grids": tiny_grids})
    bad = tiny_grids.copy()
    bad["户" * 22] = 1  # 66 bytes: PostgreSQL would cut the name; refused before anything is written
    with pytest.raises(StoreError, match="has 66"):
        store.write({"grids": tiny_grids.iloc[:2], "incidents": bad})
    assert store.read("grids")["grid_id"].tolist() == tiny_grids["grid_id"].tolist()
    assert store.layer_names() == ["grids"]


def test_rewriting_a_layer_replaces_it(store, tiny_grids):
    store.write({"grids": tiny_grids})
    store.write({"grids": tiny_grids.iloc[:3]})
    store.write({"grids": tiny_grids.iloc[:2]})
    assert store.read("grids")["grid_id"].tolist() == ["D", "S1"]


def test_open_store_recognises_postgresql_urls(postgis_dsn):
    assert isinstance(open_store("postgresql://postgres@localhost/postgres"), PostGISStore)


# -- plans, versions and the edit log: what only a database can do wrong ----------------------
def _plan_store(store: PostGISStore) -> PostGISStore:
    store.write(
        {
            "grids": gpd.GeoDataFrame(
                {"grid_id": ["D", "a"], "parent_id": [None, "D"], "level": [0, 1], "households": [10, 10]},
                geometry=[shapely.box(117.2, 39.1, 117.22, 39.11)] * 2,
                crs="EPSG:4326",
            )
        }
    )
    return store


def _same_script(store: Store, network: gpd.GeoDataFrame) -> dict[str, Any]:
    """Run one plan workflow on ``network`` and return everything the store answers along the way."""
    store.write({"grids": network})
    out: dict[str, Any] = {"created": store.create_plan("拆分 S1", author="李雷")}
    grids, out["read"] = store.read_plan("p1")
    grids.loc[grids["grid_id"] == "G1", "name"] = "网格一（新）"
    out["saved"] = store.save_plan(
        "p1", grids, expected_version=0, author="李雷", operation="update_attributes", parameters={"grid_id": "G1"}
    )
    out["plan_grids"], _ = store.read_plan("p1")
    store.create_plan("丢弃", author="王")
    out["discarded"] = store.discard_plan("p2", expected_version=0, author="王")
    out["committed"] = store.commit_plan("p1", expected_version=1, author="李雷")
    out["grids"] = store.read("grids")
    out["v1"], out["v2"] = store.read_version(1), store.read_version(2)
    out["versions"], out["plans"], out["log"] = store.versions(), store.plans(), store.edit_log()
    out["network_version"], out["layers"] = store.network_version(), store.layer_names()
    return out


def test_plans_answer_what_the_geopackage_store_answers(store, tmp_store, tiny_grids):
    pg, gp = _same_script(store, tiny_grids), _same_script(tmp_store, tiny_grids)
    for key in ("plan_grids", "grids", "v1", "v2"):
        assert_geodataframe_equal(pg[key], gp[key], check_dtype=True)
    assert pg["plan_grids"]["name"].tolist()[3] == "网格一（新）"
    for key in ("created", "read", "saved", "discarded", "committed"):
        a, b = pg[key], gp[key]
        assert type(a) is type(b)
        for f in a.__dataclass_fields__:
            if f.endswith("_at") or f.startswith("valid_"):  # the two stores' clocks differ; the form does not
                x, y = getattr(a, f), getattr(b, f)
                assert type(x) is type(y) and (x is None or (len(x) == len(y) and x.endswith("+00:00"))), (key, f, x, y)
            else:
                assert getattr(a, f) == getattr(b, f), (key, f)
    assert [(v.version, v.plan_id, v.committed_by, v.valid_to is None) for v in pg["versions"]] == [
        (v.version, v.plan_id, v.committed_by, v.valid_to is None) for v in gp["versions"]
    ]
    assert [(p.plan_id, p.name, p.status, p.version) for p in pg["plans"]] == [
        (p.plan_id, p.name, p.status, p.version) for p in gp["plans"]
    ]
    log_pg, log_gp = pg["log"], gp["log"]
    assert log_pg.dtypes.to_dict() == log_gp.dtypes.to_dict()
    pd.testing.assert_frame_equal(log_pg.drop(columns="at"), log_gp.drop(columns="at"))
    assert all(isinstance(t, str) and t.endswith("+00:00") for t in log_pg["at"])
    assert (pg["network_version"], pg["layers"]) == (gp["network_version"], gp["layers"]) == (2, ["grids"])
    v1, v2 = pg["versions"]
    assert v1.valid_to == v2.valid_from == pg["committed"].valid_from


def test_the_edit_log_trigger_refuses_truncate_but_not_insert(store):
    import psycopg

    _plan_store(store).create_plan("x", author="li")
    with psycopg.connect(store.dsn, options=f"-c search_path={store.schema}") as con:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only: TRUNCATE refused"):
            con.execute("TRUNCATE geogrid_edit_log")
        con.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only: UPDATE refused"):
            con.execute("UPDATE geogrid_edit_log SET parameters = '{}' WHERE seq = 1")
        con.rollback()
        con.execute(
            "INSERT INTO geogrid_edit_log (at, author, operation, parameters) VALUES (now(), 'ops', 'note', '{}')"
        )
    assert store.edit_log()["operation"].tolist() == ["create", "note"]


def test_a_commit_failing_halfway_changes_nothing(store, monkeypatch):
    _plan_store(store).create_plan("x", author="li")
    grids, _ = store.read_plan("p1")
    grids["households"] = 11
    store.save_plan("p1", grids, expected_version=0, author="li", operation="bump", parameters={})
    before = snapshot(store)

    def broken(self, con, extra):  # everything else of the commit has run by now
        msg = "disk full"
        raise RuntimeError(msg)

    monkeypatch.setattr(PostGISStore, "_write_metadata", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        store.commit_plan("p1", expected_version=1, author="li")
    assert snapshot(store) == before
    monkeypatch.undo()
    assert store.commit_plan("p1", expected_version=1, author="li").version == 2
    assert store.read("grids")["households"].tolist() == [11, 11]


def test_a_refused_save_changes_nothing(store):
    _plan_store(store).create_plan("x", author="li")
    grids, _ = store.read_plan("p1")
    grids["户" * 22] = (
        1  # 66 bytes, too long for PostgreSQL: refused after the plan row was locked and the version checked
    )
    before = snapshot(store)
    with pytest.raises(StoreError, match="has 66"):
        store.save_plan("p1", grids, expected_version=0, author="li", operation="x", parameters={})
    assert snapshot(store) == before
    assert store.plan_info("p1").version == 0


def test_a_reader_waits_for_a_save_in_progress_and_sees_it_whole(store, monkeypatch):
    _plan_store(store).create_plan("x", author="li")
    swapped, release = threading.Event(), threading.Event()
    real = PostGISStore._load_layer

    def load_then_wait(self, con, name, gdf):
        real(self, con, name, gdf)
        swapped.set()  # the new plan layer is in place, the version not yet bumped, nothing committed
        release.wait(30)

    monkeypatch.setattr(PostGISStore, "_load_layer", load_then_wait)
    grids, _ = store.read_plan("p1")
    grids["households"] = 11
    saver = threading.Thread(
        target=store.save_plan,
        args=("p1", grids),
        kwargs={"expected_version": 0, "author": "li", "operation": "bump", "parameters": {}},
    )
    saver.start()
    try:
        assert swapped.wait(30)
        got: list[Any] = []
        reader = threading.Thread(target=lambda: got.append(store.read_plan("p1")))
        reader.start()
        reader.join(0.5)
        assert not got  # the reader is waiting on the saver's row lock
        release.set()
        reader.join(30)
    finally:
        release.set()
        saver.join(30)
    ((frame, info),) = got
    assert (info.version, frame["households"].tolist()) == (1, [11, 11])


def _many_incidents(n: int, first: int = 0) -> gpd.GeoDataFrame:
    i = range(first, first + n)
    return gpd.GeoDataFrame(
        {
            "incident_id": [f"e{k}" for k in i],
            "reported_at": pd.Timestamp("2025-03-01 08:00", tz="UTC") + pd.to_timedelta(list(i), unit="min"),
            "category": ["环境卫生"] * n,
            "source": ["hotline"] * n,
            "status": ["handling"] * n,
        },
        geometry=[shapely.Point(117.2 + k * 1e-5, 39.1) for k in i],
        crs="EPSG:4326",
    )


def _in_parts(gdf: gpd.GeoDataFrame, size: int):
    for start in range(0, len(gdf), size):
        yield gdf.iloc[start : start + size]


def test_a_layer_written_in_parts_equals_the_layer_written_whole_replace_and_append(store, tiny_grids):
    whole = _many_incidents(250)
    store.write({"grids": tiny_grids, "incidents": whole})
    expected = store.read("incidents")
    assert store.write_chunks("incidents", _in_parts(whole.iloc[:100], 40), mode="replace") == 100
    assert store.write_chunks("incidents", _in_parts(whole.iloc[100:], 60), mode="append") == 250
    assert_geodataframe_equal(store.read("incidents"), expected)


def test_parts_that_fail_or_clash_leave_the_layer_as_it_was(store, tiny_grids):
    store.write({"grids": tiny_grids, "incidents": _many_incidents(50)})
    before = snapshot(store)

    def failing():
        yield _many_incidents(30, first=1000)
        msg = "a problem found deep in the file"
        raise ValueError(msg)

    with pytest.raises(ValueError, match="deep in the file"):
        store.write_chunks("incidents", failing(), mode="append")
    assert snapshot(store) == before
    new = _many_incidents(80, first=1000)
    new.loc[79, "incident_id"] = "e49"  # the last row of the last part
    with pytest.raises(ValueError, match=r"incident_id 'e49' already in the store at rows 79:"):
        store.write_chunks("incidents", _in_parts(new, 25), mode="append")
    assert snapshot(store) == before
